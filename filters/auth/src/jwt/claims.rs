//! Registered-claim checks (`exp`, `nbf`, `iss`, `aud`) and turning claims into header values.

use serde_json::{Map, Value};

use super::JwtError;
use crate::headers;

/// Checks `exp` and `nbf` against `now` (Unix seconds), allowing `skew` either way.
pub fn check_time(claims: &Map<String, Value>, now: u64, skew: u64, require_exp: bool) -> Result<(), JwtError> {
    let date = |name: &str| -> Result<Option<f64>, JwtError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or(JwtError::Malformed),
        }
    };
    let (now, skew) = (now as f64, skew as f64);
    match date("exp")? {
        Some(exp) if now > exp + skew => return Err(JwtError::Expired),
        None if require_exp => return Err(JwtError::MissingExp),
        _ => {}
    }
    match date("nbf")? {
        Some(nbf) if now + skew < nbf => Err(JwtError::NotYetValid),
        _ => Ok(()),
    }
}

/// `iss` must equal `issuer` when one is configured.
pub fn check_issuer(claims: &Map<String, Value>, issuer: Option<&str>) -> Result<(), JwtError> {
    match issuer {
        Some(want) if claims.get("iss").and_then(Value::as_str) != Some(want) => Err(JwtError::Issuer),
        _ => Ok(()),
    }
}

/// `aud` (a string or an array of strings) must contain one of `audiences` when any are
/// configured.
pub fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), JwtError> {
    if audiences.is_empty() {
        return Ok(());
    }
    let accepted = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|want| want == a));
    let ok = match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(accepted),
        Some(v) => accepted(v),
        None => false,
    };
    if ok { Ok(()) } else { Err(JwtError::Audience) }
}

/// The value of claim `name` as header text. `name` is first looked up as is (claim names
/// are often URLs with dots), then as a dotted path into nested objects. Strings are sent
/// as is, numbers and booleans as JSON, arrays of those joined with `,`; objects, and
/// anything with control characters, are not sent.
pub fn header_value(claims: &Map<String, Value>, name: &str) -> Option<String> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.as_object()?.get(p))
    })?;
    let text = match value {
        Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(","),
        v => scalar(v)?,
    };
    headers::is_safe_value(&text).then_some(text)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn exp_with_skew() {
        let c = claims(json!({"exp": 1000}));
        assert_eq!(check_time(&c, 1000, 0, false), Ok(()));
        assert_eq!(check_time(&c, 1001, 0, false), Err(JwtError::Expired));
        assert_eq!(check_time(&c, 1060, 60, false), Ok(()));
        assert_eq!(check_time(&c, 1061, 60, false), Err(JwtError::Expired));
    }

    #[test]
    fn nbf_with_skew() {
        let c = claims(json!({"nbf": 1000.5}));
        assert_eq!(check_time(&c, 999, 0, false), Err(JwtError::NotYetValid));
        assert_eq!(check_time(&c, 1001, 0, false), Ok(()));
        assert_eq!(check_time(&c, 950, 60, false), Ok(()));
        assert_eq!(check_time(&c, 900, 60, false), Err(JwtError::NotYetValid));
    }

    #[test]
    fn exp_can_be_required_and_must_be_numeric() {
        assert_eq!(check_time(&claims(json!({})), 0, 0, false), Ok(()));
        assert_eq!(check_time(&claims(json!({})), 0, 0, true), Err(JwtError::MissingExp));
        assert_eq!(check_time(&claims(json!({"exp": "soon"})), 0, 0, false), Err(JwtError::Malformed));
    }

    #[test]
    fn issuer_must_match_when_configured() {
        let c = claims(json!({"iss": "https://a"}));
        assert_eq!(check_issuer(&c, None), Ok(()));
        assert_eq!(check_issuer(&c, Some("https://a")), Ok(()));
        assert_eq!(check_issuer(&c, Some("https://b")), Err(JwtError::Issuer));
        assert_eq!(check_issuer(&claims(json!({})), Some("https://a")), Err(JwtError::Issuer));
    }

    #[test]
    fn audience_string_or_array() {
        let want = vec!["api".to_owned(), "web".to_owned()];
        assert_eq!(check_audience(&claims(json!({"aud": "web"})), &want), Ok(()));
        assert_eq!(check_audience(&claims(json!({"aud": ["x", "api"]})), &want), Ok(()));
        assert_eq!(check_audience(&claims(json!({"aud": ["x"]})), &want), Err(JwtError::Audience));
        assert_eq!(check_audience(&claims(json!({})), &want), Err(JwtError::Audience));
        assert_eq!(check_audience(&claims(json!({})), &[]), Ok(()));
    }

    #[test]
    fn claims_become_header_text() {
        let c = claims(json!({
            "sub": "u1", "n": 7, "admin": true, "roles": ["a", "b"],
            "https://x.io/tenant": "acme", "org": {"id": "o1"}, "evil": "a\r\nx: y"
        }));
        assert_eq!(header_value(&c, "sub").as_deref(), Some("u1"));
        assert_eq!(header_value(&c, "n").as_deref(), Some("7"));
        assert_eq!(header_value(&c, "admin").as_deref(), Some("true"));
        assert_eq!(header_value(&c, "roles").as_deref(), Some("a,b"));
        assert_eq!(header_value(&c, "https://x.io/tenant").as_deref(), Some("acme"));
        assert_eq!(header_value(&c, "org.id").as_deref(), Some("o1"));
        assert_eq!(header_value(&c, "org"), None);
        assert_eq!(header_value(&c, "evil"), None);
        assert_eq!(header_value(&c, "missing"), None);
    }
}
