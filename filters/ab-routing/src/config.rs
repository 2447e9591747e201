//! The JSON configuration: parsed and validated completely before anything is applied.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object with `variants` and optionally `sticky`, `override`, `set_cookie`, `variant_header`"
)]
struct RawConfig {
    variants: Vec<RawVariant>,
    sticky: Option<RawSource>,
    #[serde(rename = "override")]
    override_by: Option<RawSource>,
    set_cookie: Option<RawSetCookie>,
    variant_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: String,
    cluster: String,
    weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    header: Option<String>,
    cookie: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetCookie {
    name: String,
    max_age_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub cluster: String,
    pub weight: u32,
}

/// Where a value is read from in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A request header (lower-case name).
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub name: String,
    pub max_age_seconds: u64,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub variants: Vec<Variant>,
    /// Sum of the weights; above 0.
    pub total_weight: u64,
    pub sticky: Option<Source>,
    pub override_by: Option<Source>,
    pub set_cookie: Option<SetCookie>,
    pub variant_header: String,
}

pub const DEFAULT_VARIANT_HEADER: &str = "x-weir-variant";
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 86_400;
const MAX_NAME_LEN: usize = 64;

impl Config {
    /// Parses and validates the plugin configuration. The error names the field at fault.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the configuration is not UTF-8".to_string())?;
        let raw: RawConfig = weir_filter_support::json_path::parse(text)?;
        let variants = variants(raw.variants)?;
        let total_weight = variants.iter().map(|v| u64::from(v.weight)).sum();
        if total_weight == 0 {
            return Err("variants: at least one weight must be above 0".into());
        }
        let set_cookie = match raw.set_cookie {
            None => None,
            Some(c) => Some(SetCookie {
                name: token(&c.name).map_err(|e| format!("set_cookie.name: {e}"))?,
                max_age_seconds: match c.max_age_seconds {
                    Some(0) => return Err("set_cookie.max_age_seconds: must be at least 1".into()),
                    Some(n) => n,
                    None => DEFAULT_MAX_AGE_SECONDS,
                },
            }),
        };
        let variant_header = match raw.variant_header {
            None => DEFAULT_VARIANT_HEADER.to_string(),
            Some(h) => header_name(&h).map_err(|e| format!("variant_header: {e}"))?,
        };
        Ok(Self {
            variants,
            total_weight,
            sticky: raw.sticky.map(|s| source(s, "sticky")).transpose()?,
            override_by: raw.override_by.map(|s| source(s, "override")).transpose()?,
            set_cookie,
            variant_header,
        })
    }
}

fn variants(raw: Vec<RawVariant>) -> Result<Vec<Variant>, String> {
    if raw.is_empty() {
        return Err("variants: at least one variant is needed".into());
    }
    let mut out: Vec<Variant> = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let at = format!("variants[{i}]");
        check_variant_name(&v.name).map_err(|e| format!("{at}.name: {e}"))?;
        if let Some(j) = out.iter().position(|o| o.name == v.name) {
            return Err(format!("{at}.name: `{}` is already the name of variants[{j}]", v.name));
        }
        if v.cluster.is_empty() || v.cluster.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{at}.cluster: expected a cluster name (not empty, no spaces)"));
        }
        out.push(Variant { name: v.name, cluster: v.cluster, weight: v.weight });
    }
    Ok(out)
}

/// Variant names travel in a header and a cookie value, so they keep to a safe alphabet.
fn check_variant_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(ok) {
        return Err(format!("`{name}`: expected 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`"));
    }
    Ok(())
}

fn source(raw: RawSource, at: &str) -> Result<Source, String> {
    match (raw.header, raw.cookie) {
        (Some(h), None) => Ok(Source::Header(header_name(&h).map_err(|e| format!("{at}.header: {e}"))?)),
        (None, Some(c)) => Ok(Source::Cookie(token(&c).map_err(|e| format!("{at}.cookie: {e}"))?)),
        _ => Err(format!("{at}: expected exactly one of `header` or `cookie`")),
    }
}

/// RFC 9110 token (header names, cookie names).
fn token(name: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    match name.chars().find(|c| !ok(*c)) {
        Some(c) => Err(format!("`{name}` is not a valid name (character {c:?} is not allowed)")),
        None => Ok(name.to_string()),
    }
}

/// A header name, lower-cased as hosts keep them; pseudo-headers are not plain headers.
fn header_name(name: &str) -> Result<String, String> {
    if name.starts_with(':') {
        return Err(format!("`{name}` is a pseudo-header; expected a plain header name"));
    }
    token(name).map(|n| n.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn parse(json: &str) -> Config {
        match Config::parse(json.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn error(json: &str) -> String {
        match Config::parse(json.as_bytes()) {
            Ok(c) => panic!("accepted {json}: {c:?}"),
            Err(e) => e,
        }
    }

    const TWO: &str = r#""variants": [{"name": "stable", "cluster": "origin", "weight": 90},
                                      {"name": "canary", "cluster": "canary", "weight": 10}]"#;

    #[test]
    fn parses_a_full_config() {
        let c = parse(&format!(
            r#"{{{TWO}, "sticky": {{"header": "X-User-Id"}}, "override": {{"cookie": "variant"}},
                "set_cookie": {{"name": "weir_variant", "max_age_seconds": 3600}}, "variant_header": "X-Variant"}}"#
        ));
        assert_eq!(c.total_weight, 100);
        assert_eq!(c.variants[1], Variant { name: "canary".into(), cluster: "canary".into(), weight: 10 });
        assert_eq!(c.sticky, Some(Source::Header("x-user-id".into())));
        assert_eq!(c.override_by, Some(Source::Cookie("variant".into())));
        assert_eq!(c.set_cookie, Some(SetCookie { name: "weir_variant".into(), max_age_seconds: 3600 }));
        assert_eq!(c.variant_header, "x-variant");
    }

    #[test]
    fn has_defaults() {
        let c = parse(&format!(r#"{{{TWO}, "set_cookie": {{"name": "v"}}}}"#));
        assert_eq!(c.variant_header, DEFAULT_VARIANT_HEADER);
        assert_eq!(c.set_cookie.map(|s| s.max_age_seconds), Some(DEFAULT_MAX_AGE_SECONDS));
        assert_eq!((c.sticky, c.override_by), (None, None));
    }

    #[test]
    fn errors_name_the_field() {
        let v = |name: &str, cluster: &str, weight: &str| {
            format!(r#"{{"name": "{name}", "cluster": "{cluster}", "weight": {weight}}}"#)
        };
        let with = |variants: &[String]| format!(r#"{{"variants": [{}]}}"#, variants.join(","));
        assert_eq!(error(r#"{"variants": []}"#), "variants: at least one variant is needed");
        assert!(error("{}").starts_with("missing field `variants`"));
        assert_eq!(
            error(&with(&[v("a", "x", "0"), v("b", "y", "0")])),
            "variants: at least one weight must be above 0"
        );
        assert_eq!(
            error(&with(&[v("a", "x", "1"), v("b", "y", "1"), v("a", "z", "1")])),
            "variants[2].name: `a` is already the name of variants[0]"
        );
        assert!(error(&with(&[v("a b", "x", "1")])).starts_with("variants[0].name: `a b`: expected 1 to 64"));
        assert!(error(&with(&[v("a", "", "1")])).starts_with("variants[0].cluster: expected a cluster name"));
        assert_eq!(
            error(&with(&[v("a", "x", "1"), v("b", "y", "-5")])),
            "variants[1].weight: invalid value: integer `-5`, expected u32"
        );
        assert!(error(&with(&[v("a", "x", "1.5")])).starts_with("variants[0].weight: invalid type: floating point"));
        assert!(
            error(r#"{"variants": [{"name": "a", "cluster": "x", "weight": 1, "wieght": 2}]}"#)
                .starts_with("variants[0].wieght: unknown field `wieght`")
        );
        assert_eq!(
            error(&format!(r#"{{{TWO}, "sticky": {{"header": "a", "cookie": "b"}}}}"#)),
            "sticky: expected exactly one of `header` or `cookie`"
        );
        assert_eq!(
            error(&format!(r#"{{{TWO}, "override": {{}}}}"#)),
            "override: expected exactly one of `header` or `cookie`"
        );
        assert!(error(&format!(r#"{{{TWO}, "sticky": {{"cookie": "a;b"}}}}"#)).starts_with("sticky.cookie: `a;b`"));
        assert!(
            error(&format!(r#"{{{TWO}, "variant_header": ":path"}}"#))
                .starts_with("variant_header: `:path` is a pseudo")
        );
        assert_eq!(
            error(&format!(r#"{{{TWO}, "set_cookie": {{"name": "v", "max_age_seconds": 0}}}}"#)),
            "set_cookie.max_age_seconds: must be at least 1"
        );
        assert_eq!(error(&format!(r#"{{{TWO}, "set_cookie": {{"name": ""}}}}"#)), "set_cookie.name: must not be empty");
    }
}
