//! Request header snapshots, and the checks configured header names and forwarded values pass.

use crate::config::ConfigError;

/// The request headers as the filter saw them (names lower-case, in order, UTF-8 values only).
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Wraps `pairs`, lower-casing names.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect())
    }

    /// Keeps the pairs whose value is UTF-8: the SDK's string accessors panic on anything
    /// else, so the glue reads bytes and drops what a string comparison could not match.
    pub fn from_bytes(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Self::new(pairs.into_iter().filter_map(|(k, v)| Some((k, String::from_utf8(v).ok()?))).collect())
    }

    /// The first value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Drops every header named in `names`, as the glue drops them from the request.
    pub fn remove_all(&mut self, names: &[String]) {
        self.0.retain(|(k, _)| !names.contains(k));
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
    fn non_utf8_values_are_dropped() {
        let h = Headers::from_bytes(vec![("a".into(), vec![0xff]), ("b".into(), b"ok".to_vec())]);
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
