//! Request header snapshots, and the checks configured header names and forwarded values pass.

use weir_filter_support::header_block::HeaderBlock;

use crate::config::ConfigError;

/// The request headers as the filter saw them (names lower-case, in order); lookups see
/// UTF-8 values only: the SDK's string accessors panic on anything else, and a value a string
/// comparison could not match is as good as absent.
#[derive(Debug, Clone, Default)]
pub struct Headers(HeaderBlock);

impl Headers {
    /// Wraps `pairs`.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(HeaderBlock::from_pairs(pairs))
    }

    /// Wraps a map read from the host.
    pub fn from_block(block: HeaderBlock) -> Self {
        Self(block)
    }

    /// The first value of `name` (lower-case), when it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Drops every header named in `names`, as the glue drops them from the request.
    pub fn remove_all(&mut self, names: &[String]) {
        self.0.retain(|k| !names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(k)));
    }
}

/// True for an RFC 9110 field name (a token). Pseudo-headers are not names here.
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a configured header name and returns it lower-cased.
pub fn name(field: &str, name: &str) -> Result<String, ConfigError> {
    if is_token(name) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::new(field, format!("expected a header name (letters, digits, `-`), got {name:?}")))
    }
}

/// True when `value` may be sent as a header value: no control characters but tab, so a
/// claim or an authz response can never inject a line break.
pub fn is_safe_value(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_by_lower_case_name() {
        let h = Headers::new(vec![("X-Api-Key".into(), "a".into()), ("x-api-key".into(), "b".into())]);
        assert_eq!(h.get("x-api-key"), Some("a"));
        assert_eq!(h.get("authorization"), None);
    }

    #[test]
    fn non_utf8_values_are_not_seen() {
        let h = Headers::from_block(HeaderBlock::from_pairs([("a", &[0xff][..]), ("b", b"ok")]));
        assert_eq!(h.get("a"), None);
        assert_eq!(h.get("b"), Some("ok"));
    }

    #[test]
    fn names_are_tokens() {
        assert_eq!(name("f", "X-User").ok().as_deref(), Some("x-user"));
        assert!(name("f", ":path").is_err());
        assert!(name("f", "bad name").is_err());
        assert!(name("f", "").is_err());
    }

    #[test]
    fn values_with_line_breaks_are_unsafe() {
        assert!(is_safe_value("alice\tsmith"));
        assert!(!is_safe_value("alice\r\nx-admin: 1"));
        assert!(!is_safe_value("a\0"));
    }
}
