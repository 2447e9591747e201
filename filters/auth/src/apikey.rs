//! API keys, sent in a header or a query parameter (Envoy `api_key_auth`). Keys are kept as
//! SHA-256 digests and compared in constant time.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::crypto::{ct_eq, hex_array, sha256};
use crate::headers::{self, Headers};
use crate::path;

/// `api_keys` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    query: Option<String>,
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

/// The accepted keys and where to find them.
pub struct ApiKeys {
    /// Header carrying the key (lower-case).
    pub header: Option<String>,
    /// Query parameter carrying the key.
    pub query: Option<String>,
    /// (name, SHA-256 of the key).
    keys: Vec<(String, [u8; 32])>,
    /// Keys presented lately that matched, with the index of their entry: a client sends the
    /// same key on every request, and comparing it costs far less than hashing it. Only an
    /// exact copy of an accepted key hits, so a hit tells nothing to whoever lacks one.
    recent: RefCell<VecDeque<(Box<[u8]>, usize)>>,
}

/// How many accepted keys [`ApiKeys::check`] remembers (per VM).
const RECENT: usize = 16;

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("query", &self.query)
            .field("keys", &names)
            .finish()
    }
}

impl ApiKeys {
    /// Checks `raw`. Without `header` and `query`, the key is read from `x-api-key`.
    pub fn new(raw: Raw) -> Result<Self, ConfigError> {
        let header = match (&raw.header, &raw.query) {
            (None, None) => Some("x-api-key".to_owned()),
            (Some(h), _) => Some(headers::name("api_keys.header", h)?),
            (None, Some(_)) => None,
        };
        if let Some(q) = &raw.query
            && (q.is_empty() || !q.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)))
        {
            return Err(ConfigError::new(
                "api_keys.query",
                format!("expected a parameter name (letters, digits, `-_.~`), got {q:?}"),
            ));
        }
        if raw.keys.is_empty() {
            return Err(ConfigError::new("api_keys.keys", "expected at least one key"));
        }
        let mut keys: Vec<(String, [u8; 32])> = Vec::with_capacity(raw.keys.len());
        for (i, k) in raw.keys.into_iter().enumerate() {
            let field = |f: &str| format!("api_keys.keys[{i}].{f}");
            if k.name.is_empty() || !headers::is_safe_value(&k.name) {
                return Err(ConfigError::new(&field("name"), "expected a non-empty name without control characters"));
            }
            let digest = match (k.key, k.sha256) {
                (Some(key), None) if !key.is_empty() => sha256(key.as_bytes()),
                (None, Some(hex)) => {
                    hex_array::<32>(&hex).ok_or_else(|| ConfigError::new(&field("sha256"), "expected 64 hex digits"))?
                }
                _ => {
                    return Err(ConfigError::new(
                        &field("key"),
                        "expected exactly one of a non-empty `key` or `sha256`",
                    ));
                }
            };
            if keys.iter().any(|(_, d)| *d == digest) {
                return Err(ConfigError::new(&field("key"), "the same key is listed twice"));
            }
            keys.push((k.name, digest));
        }
        Ok(Self { header, query: raw.query, keys, recent: RefCell::default() })
    }

    /// The key the request presents: the header first, then the query parameter.
    pub fn presented<'a>(&self, headers: &'a Headers, query: &str) -> Option<Cow<'a, str>> {
        let from_header = self.header.as_deref().and_then(|h| headers.get(h)).map(Cow::Borrowed);
        from_header.or_else(|| self.query.as_deref().and_then(|q| path::query_param(query, q)).map(Cow::Owned))
    }

    /// The name of the key `presented` matches. Every key is compared, so timing does not
    /// depend on which one matched.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let presented = presented.as_bytes();
        let mut recent = self.recent.borrow_mut();
        let mut hit = None;
        for (key, i) in recent.iter() {
            if ct_eq(key, presented) && hit.is_none() {
                hit = Some(*i);
            }
        }
        if let Some(i) = hit {
            return Some(self.keys[i].0.as_str());
        }
        let digest = sha256(presented);
        let mut found = None;
        for (i, (_, d)) in self.keys.iter().enumerate() {
            if ct_eq(d, &digest) && found.is_none() {
                found = Some(i);
            }
        }
        let i = found?;
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((presented.into(), i));
        Some(self.keys[i].0.as_str())
    }

    /// The `www-authenticate` challenge naming where a key is expected (no registered
    /// scheme exists for API keys).
    pub fn challenge(&self) -> String {
        match (&self.header, &self.query) {
            (Some(h), Some(q)) => format!("ApiKey header=\"{h}\", query=\"{q}\""),
            (Some(h), None) => format!("ApiKey header=\"{h}\""),
            (None, Some(q)) => format!("ApiKey query=\"{q}\""),
            (None, None) => "ApiKey".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> Result<ApiKeys, ConfigError> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| ConfigError::new("test", e))?;
        ApiKeys::new(raw)
    }

    const SHA_OF_S3CR3T: &str = "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd";

    #[test]
    fn plain_and_hashed_keys_match() {
        let k =
            keys(&format!(r#"{{"keys":[{{"name":"ci","key":"abc"}},{{"name":"bot","sha256":"{SHA_OF_S3CR3T}"}}]}}"#));
        let k = k.ok();
        assert_eq!(k.as_ref().and_then(|k| k.check("abc")), Some("ci"));
        assert_eq!(k.as_ref().and_then(|k| k.check("s3cr3t")), Some("bot"));
        assert_eq!(k.as_ref().and_then(|k| k.check("nope")), None);
        // Asked again: answered from the keys remembered.
        let k = k.unwrap();
        for round in 0..3 {
            assert_eq!(k.check("abc"), Some("ci"), "round {round}");
            assert_eq!(k.check("s3cr3t"), Some("bot"));
            assert_eq!(k.check("abcd"), None);
            assert_eq!(k.check("ab"), None);
        }
        assert!(k.recent.borrow().len() == 2, "only accepted keys are remembered");
        // More keys than are remembered: the oldest make room, and every key still matches.
        let list: Vec<String> = (0..RECENT + 4).map(|i| format!(r#"{{"name":"n{i}","key":"k{i}"}}"#)).collect();
        let many = keys(&format!(r#"{{"keys":[{}]}}"#, list.join(","))).ok().unwrap();
        for round in 0..2 {
            for i in 0..RECENT + 4 {
                assert_eq!(many.check(&format!("k{i}")), Some(format!("n{i}").as_str()), "round {round}");
            }
        }
        assert_eq!(many.recent.borrow().len(), RECENT);
    }

    #[test]
    fn key_is_read_from_header_then_query() {
        let k = keys(r#"{"header":"X-Key","query":"api_key","keys":[{"name":"ci","key":"abc"}]}"#).ok();
        let with_header = Headers::new(vec![("x-key".into(), "h".into())]);
        assert_eq!(k.as_ref().and_then(|k| k.presented(&with_header, "api_key=q")).as_deref(), Some("h"));
        let without = Headers::default();
        assert_eq!(k.as_ref().and_then(|k| k.presented(&without, "a=1&api_key=q")).as_deref(), Some("q"));
        assert_eq!(k.as_ref().and_then(|k| k.presented(&without, "")), None);
    }

    #[test]
    fn header_defaults_to_x_api_key_only_without_query() {
        let k = keys(r#"{"keys":[{"name":"a","key":"k"}]}"#).ok();
        assert_eq!(k.and_then(|k| k.header).as_deref(), Some("x-api-key"));
        let k = keys(r#"{"query":"key","keys":[{"name":"a","key":"k"}]}"#).ok();
        assert_eq!(k.map(|k| k.header), Some(None));
    }

    #[test]
    fn bad_keys_are_refused() {
        let e = |j: &str| keys(j).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(r#"{"keys":[]}"#).contains("api_keys.keys"));
        assert!(e(r#"{"keys":[{"name":"a"}]}"#).contains("api_keys.keys[0].key"));
        assert!(e(r#"{"keys":[{"name":"a","key":"k","sha256":"00"}]}"#).contains("exactly one"));
        assert!(e(r#"{"keys":[{"name":"a","sha256":"zz"}]}"#).contains("api_keys.keys[0].sha256"));
        assert!(e(r#"{"keys":[{"name":"","key":"k"}]}"#).contains("api_keys.keys[0].name"));
        assert!(e(r#"{"keys":[{"name":"a","key":"k"},{"name":"b","key":"k"}]}"#).contains("twice"));
        assert!(e(r#"{"query":"a&b","keys":[{"name":"a","key":"k"}]}"#).contains("api_keys.query"));
    }
}
