//! HTTP Basic authentication against htpasswd-style hashes (Envoy `basic_auth`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::crypto::{ct_eq, hex_array, sha1, sha256};
use crate::headers;

/// `basic` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    #[serde(default = "default_realm")]
    realm: String,
    users: Vec<RawUser>,
}

fn default_realm() -> String {
    "weir".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
}

/// A stored password hash.
#[derive(Clone, Copy)]
enum Hash {
    /// htpasswd `{SHA}`: base64 of SHA-1, what Envoy `basic_auth` accepts.
    Sha1([u8; 20]),
    /// `sha256:` and hex.
    Sha256([u8; 32]),
}

impl Hash {
    fn parse(s: &str) -> Option<Self> {
        if let Some(b64) = s.strip_prefix("{SHA}") {
            let bytes = STANDARD.decode(b64).ok()?;
            return Some(Self::Sha1(bytes.try_into().ok()?));
        }
        s.strip_prefix("sha256:").and_then(hex_array::<32>).map(Self::Sha256)
    }

    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Self::Sha1(h) => ct_eq(h, &sha1(password)),
            Self::Sha256(h) => ct_eq(h, &sha256(password)),
        }
    }
}

/// The users and the realm of the challenge.
pub struct Basic {
    /// Realm for `www-authenticate`.
    pub realm: String,
    users: Vec<(String, Hash)>,
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Basic").field("realm", &self.realm).field("users", &names).finish()
    }
}

/// Stands in for unknown users, so a wrong name costs as much as a wrong password.
const DUMMY: Hash = Hash::Sha256([0; 32]);

impl Basic {
    /// Checks `raw`: at least one user, unique names without `:`, known hash formats.
    pub fn new(raw: Raw) -> Result<Self, ConfigError> {
        if raw.realm.contains(['"', '\\']) || !headers::is_safe_value(&raw.realm) {
            return Err(ConfigError::new(
                "basic.realm",
                "expected text without quotes, backslashes or control characters",
            ));
        }
        if raw.users.is_empty() {
            return Err(ConfigError::new("basic.users", "expected at least one user"));
        }
        let mut users: Vec<(String, Hash)> = Vec::with_capacity(raw.users.len());
        for (i, u) in raw.users.into_iter().enumerate() {
            if u.name.is_empty() || u.name.contains(':') || !headers::is_safe_value(&u.name) {
                return Err(ConfigError::new(
                    &format!("basic.users[{i}].name"),
                    "expected a non-empty name without `:` or control characters",
                ));
            }
            if users.iter().any(|(n, _)| *n == u.name) {
                return Err(ConfigError::new(
                    &format!("basic.users[{i}].name"),
                    format!("{:?} is listed twice", u.name),
                ));
            }
            let hash = Hash::parse(&u.password_hash).ok_or_else(|| {
                ConfigError::new(
                    &format!("basic.users[{i}].password_hash"),
                    "expected `{SHA}` and base64 of SHA-1 (htpasswd -s), or `sha256:` and 64 hex digits",
                )
            })?;
            users.push((u.name, hash));
        }
        Ok(Self { realm: raw.realm, users })
    }

    /// The user name when `authorization` holds valid Basic credentials for a known user.
    pub fn check(&self, authorization: &str) -> Option<&str> {
        let (user, password) = decode(authorization)?;
        let (name, hash) = match self.users.iter().find(|(n, _)| *n == user) {
            Some((n, h)) => (Some(n.as_str()), *h),
            None => (None, DUMMY),
        };
        let ok = hash.matches(password.as_bytes());
        name.filter(|_| ok)
    }

    /// `Basic realm="..."`.
    pub fn challenge(&self) -> String {
        format!("Basic realm=\"{}\"", self.realm)
    }
}

/// True when `authorization` uses the Basic scheme (any case).
pub fn is_basic(authorization: &str) -> bool {
    scheme_value(authorization, "basic").is_some()
}

/// The value after `scheme ` when `authorization` uses `scheme` (compared ignoring case).
pub fn scheme_value<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = authorization.trim_start().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `Basic base64(user:password)` → (user, password).
fn decode(authorization: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(scheme_value(authorization, "basic")?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `htpasswd -nbs alice secret` and `sha256("hunter2")`.
    const ALICE: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
    const BOB: &str = "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";

    fn basic() -> Option<Basic> {
        let json = format!(
            r#"{{"users":[{{"name":"alice","password_hash":"{ALICE}"}},{{"name":"bob","password_hash":"{BOB}"}}]}}"#
        );
        serde_json::from_str(&json).ok().and_then(|raw| Basic::new(raw).ok())
    }

    fn header(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn sha1_and_sha256_hashes_verify() {
        let b = basic();
        assert_eq!(b.as_ref().and_then(|b| b.check(&header("alice:secret"))), Some("alice"));
        assert_eq!(b.as_ref().and_then(|b| b.check(&header("bob:hunter2"))), Some("bob"));
        assert_eq!(b.as_ref().and_then(|b| b.check("bAsIc  Ym9iOmh1bnRlcjI=")), Some("bob"));
    }

    #[test]
    fn wrong_password_user_or_encoding_fail() {
        let b = basic();
        assert_eq!(b.as_ref().and_then(|b| b.check(&header("alice:hunter2"))), None);
        assert_eq!(b.as_ref().and_then(|b| b.check(&header("carol:secret"))), None);
        assert_eq!(b.as_ref().and_then(|b| b.check(&header("alicesecret"))), None);
        assert_eq!(b.as_ref().and_then(|b| b.check("Basic !!!")), None);
        assert_eq!(b.as_ref().and_then(|b| b.check("Bearer abc")), None);
    }

    #[test]
    fn challenge_names_the_realm() {
        assert_eq!(basic().map(|b| b.challenge()).as_deref(), Some("Basic realm=\"weir\""));
    }

    #[test]
    fn bad_users_are_refused() {
        let e = |j: &str| match serde_json::from_str::<Raw>(j) {
            Ok(raw) => Basic::new(raw).err().map(|e| e.to_string()).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(e(r#"{"users":[]}"#).contains("basic.users"));
        assert!(e(r#"{"users":[{"name":"a:b","password_hash":"sha256:00"}]}"#).contains("basic.users[0].name"));
        assert!(e(r#"{"users":[{"name":"a","password_hash":"md5:00"}]}"#).contains("basic.users[0].password_hash"));
        assert!(e(r#"{"users":[{"name":"a","password_hash":"{SHA}AAAA"}]}"#).contains("password_hash"));
        assert!(e(r#"{"realm":"a\"b","users":[{"name":"a","password_hash":"x"}]}"#).contains("basic.realm"));
        let dup =
            format!(r#"{{"users":[{{"name":"a","password_hash":"{BOB}"}},{{"name":"a","password_hash":"{BOB}"}}]}}"#);
        assert!(e(&dup).contains("twice"));
    }
}
