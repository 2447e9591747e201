//! JWT bearer tokens (Envoy `jwt_authn`): compact JWS signed with HS256, RS256 or ES256,
//! keys given inline or as a JWKS, registered claims checked, claims forwarded as headers.

pub mod claims;
pub mod keys;
#[cfg(test)]
mod vectors;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::basic::scheme_value;
use crate::config::ConfigError;
use crate::headers::{self, Headers};
use keys::{Alg, Key};

/// Longer tokens are refused unread: nothing legitimate is this large, and decoding is work.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused; the text goes into `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url JSON parts, or a claim of the wrong type.
    Malformed,
    /// `alg` other than HS256/RS256/ES256, or a `crit` header.
    Unsupported,
    /// No configured key has the token's `alg` (and `kid`).
    NoKey,
    /// No candidate key verified the signature.
    Signature,
    /// `exp` passed.
    Expired,
    /// `nbf` not reached.
    NotYetValid,
    /// `exp` missing while `require_expiration` is set.
    MissingExp,
    /// `iss` not the configured issuer.
    Issuer,
    /// `aud` names none of the configured audiences.
    Audience,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed token",
            Self::Unsupported => "unsupported token algorithm",
            Self::NoKey => "no key for the token",
            Self::Signature => "invalid signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::MissingExp => "token has no expiration",
            Self::Issuer => "issuer not accepted",
            Self::Audience => "audience not accepted",
        })
    }
}

/// `jwt` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_skew")]
    clock_skew_seconds: u32,
    #[serde(default)]
    require_expiration: bool,
    #[serde(default)]
    keys: Vec<keys::RawKey>,
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default = "default_header")]
    header: String,
    #[serde(default)]
    claims_to_headers: Vec<RawClaimHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimHeader {
    claim: String,
    header: String,
}

fn default_skew() -> u32 {
    60
}

fn default_header() -> String {
    "authorization".to_owned()
}

/// A checked `jwt` section.
#[derive(Debug)]
pub struct Jwt {
    issuer: Option<String>,
    audiences: Vec<String>,
    skew: u64,
    require_exp: bool,
    keys: Vec<Key>,
    /// Header carrying the token (lower-case).
    pub header: String,
    /// (claim, header) pairs, header lower-case.
    pub claims_to_headers: Vec<(String, String)>,
}

impl Jwt {
    /// Checks `raw` and loads every key; at least one key is required.
    pub fn new(raw: Raw) -> Result<Self, ConfigError> {
        let mut keys =
            raw.keys.into_iter().enumerate().map(|(i, k)| Key::from_config(i, k)).collect::<Result<Vec<_>, _>>()?;
        if let Some(jwks) = &raw.jwks {
            keys.extend(jwks_keys(jwks)?);
        }
        if keys.is_empty() {
            return Err(ConfigError::new("jwt.keys", "expected at least one key in `keys` or `jwks`"));
        }
        let claims_to_headers = raw
            .claims_to_headers
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if c.claim.is_empty() {
                    return Err(ConfigError::new(
                        &format!("jwt.claims_to_headers[{i}].claim"),
                        "expected a claim name",
                    ));
                }
                Ok((c.claim, headers::name(&format!("jwt.claims_to_headers[{i}].header"), &c.header)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new("jwt.audiences", "expected non-empty audience names"));
        }
        Ok(Self {
            issuer: raw.issuer,
            audiences: raw.audiences,
            skew: raw.clock_skew_seconds.into(),
            require_exp: raw.require_expiration,
            keys,
            header: headers::name("jwt.header", &raw.header)?,
            claims_to_headers,
        })
    }

    /// The token the request presents: `Bearer <token>` in `authorization`; in any other
    /// configured header the `Bearer ` prefix is optional.
    pub fn token<'a>(&self, headers: &'a Headers) -> Option<&'a str> {
        let value = headers.get(&self.header)?;
        match scheme_value(value, "bearer") {
            Some(token) => Some(token),
            None if self.header != "authorization" => Some(value.trim()),
            None => None,
        }
    }

    /// Verifies `token` at `now` (Unix seconds): signature first, then the claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Map<String, Value>, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header = json_object(h)?;
        if header.contains_key("crit") {
            return Err(JwtError::Unsupported);
        }
        let alg = header.get("alg").and_then(Value::as_str).and_then(Alg::parse).ok_or(JwtError::Unsupported)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(JwtError::Malformed),
        };
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let input = &token.as_bytes()[..h.len() + 1 + p.len()];
        // Keys without a kid are candidates for every token, as in Envoy.
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.alg() == alg && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid))
            .peekable();
        if candidates.peek().is_none() {
            return Err(JwtError::NoKey);
        }
        if !candidates.any(|k| k.verify(input, &signature)) {
            return Err(JwtError::Signature);
        }
        let claims = json_object(p)?;
        claims::check_time(&claims, now, self.skew, self.require_exp)?;
        claims::check_issuer(&claims, self.issuer.as_deref())?;
        claims::check_audience(&claims, &self.audiences)?;
        Ok(claims)
    }

    /// The caller's identity: `sub`, when it is a string safe to put in a header.
    pub fn identity(claims: &Map<String, Value>) -> Option<String> {
        claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && headers::is_safe_value(s))
            .map(str::to_owned)
    }

    /// The `claims_to_headers` headers for `claims` (absent claims are skipped).
    pub fn claim_headers(&self, claims: &Map<String, Value>) -> Vec<(String, String)> {
        self.claims_to_headers
            .iter()
            .filter_map(|(claim, header)| Some((header.clone(), claims::header_value(claims, claim)?)))
            .collect()
    }
}

fn json_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// The keys of a JWKS given as an object or as JSON text.
fn jwks_keys(jwks: &Value) -> Result<Vec<Key>, ConfigError> {
    let parsed;
    let jwks = match jwks {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|e| ConfigError::new("jwt.jwks", e))?;
            &parsed
        }
        v => v,
    };
    let Some(list) = jwks.get("keys").and_then(Value::as_array) else {
        return Err(ConfigError::new("jwt.jwks", "expected a JWKS: an object with a `keys` array"));
    };
    let mut keys = Vec::with_capacity(list.len());
    for (i, jwk) in list.iter().enumerate() {
        keys.extend(Key::from_jwk(&format!("jwt.jwks.keys[{i}]"), jwk)?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
