//! Verification keys: HS256 secrets, RS256 and ES256 public keys from PEM or JWK. Each key is
//! bound to one algorithm when it is loaded, so a token can never choose how its key is used
//! (no `none`, no HS256 keyed with an RSA public key).

use std::fmt;

use base64::Engine as _;
use base64::alphabet::{STANDARD as STANDARD_ALPHABET, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::config::ConfigError;

/// Base64 as found in PEM bodies and JWKs: padding optional.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const PEM_BASE64: GeneralPurpose = GeneralPurpose::new(&STANDARD_ALPHABET, LENIENT);
const JWK_BASE64URL: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, LENIENT);

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
const MIN_HMAC_BYTES: usize = 32;
/// Shorter RSA moduli are breakable; 2048 bits is the floor NIST and RFC 7518 set.
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithms weir verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Alg {
    /// The algorithm named `name` (JOSE spelling), if supported.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

enum Verifier {
    Hs256(Vec<u8>),
    Rs256(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
    Es256(p256::ecdsa::VerifyingKey),
}

/// One key, fixed to one algorithm, with an optional key id.
pub struct Key {
    /// `kid`, matched against the token header's `kid`.
    pub kid: Option<String>,
    verifier: Verifier,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).field("alg", &self.alg()).finish()
    }
}

impl Key {
    /// The only algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self.verifier {
            Verifier::Hs256(_) => Alg::Hs256,
            Verifier::Rs256(_) => Alg::Rs256,
            Verifier::Es256(_) => Alg::Es256,
        }
    }

    /// True when `signature` is this key's signature of `input`.
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Hs256(secret) => Hmac::<Sha256>::new_from_slice(secret)
                .map(|mac| mac.chain_update(input).verify_slice(signature).is_ok())
                .unwrap_or(false),
            Verifier::Rs256(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .map(|sig| rsa::signature::Verifier::verify(key.as_ref(), input, &sig).is_ok())
                .unwrap_or(false),
            // JWS carries r || s (64 bytes), not DER.
            Verifier::Es256(key) => p256::ecdsa::Signature::from_slice(signature)
                .map(|sig| signature.len() == 64 && key.verify(input, &sig).is_ok())
                .unwrap_or(false),
        }
    }

    /// A key from `jwt.keys[i]`.
    pub fn from_config(i: usize, raw: RawKey) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("jwt.keys[{i}].{f}");
        let alg = Alg::parse(&raw.alg).ok_or_else(|| {
            ConfigError::new(&field("alg"), format!("expected HS256, RS256 or ES256, got {:?}", raw.alg))
        })?;
        let verifier = match (alg, raw.secret, raw.pem) {
            (Alg::Hs256, Some(secret), None) => hmac_secret(&field("secret"), secret.into_bytes())?,
            (Alg::Rs256, None, Some(pem)) => rsa_from_pem(&field("pem"), &pem)?,
            (Alg::Es256, None, Some(pem)) => ec_from_pem(&field("pem"), &pem)?,
            (Alg::Hs256, ..) => return Err(ConfigError::new(&field("secret"), "HS256 keys take `secret` only")),
            _ => return Err(ConfigError::new(&field("pem"), "RS256 and ES256 keys take `pem` only")),
        };
        Ok(Self { kid: raw.kid, verifier })
    }

    /// A key from a JWK (`field` names it in errors). None for keys marked for encryption.
    pub fn from_jwk(field: &str, jwk: &Value) -> Result<Option<Self>, ConfigError> {
        let Some(obj) = jwk.as_object() else {
            return Err(ConfigError::new(field, "expected a JWK object"));
        };
        let text = |name: &str| -> Result<Option<&str>, ConfigError> {
            match obj.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(ConfigError::new(&format!("{field}.{name}"), "expected a string")),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, ConfigError> {
            let f = format!("{field}.{name}");
            let s = text(name)?.ok_or_else(|| ConfigError::new(&f, "is required"))?;
            JWK_BASE64URL.decode(s).map_err(|_| ConfigError::new(&f, "expected base64url"))
        };
        if text("use")?.is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let kty = text("kty")?.unwrap_or_default();
        let (expected_alg, verifier) = match kty {
            "RSA" => {
                let n = BigUint::from_bytes_be(&bytes("n")?);
                let e = BigUint::from_bytes_be(&bytes("e")?);
                let key = RsaPublicKey::new(n, e)
                    .map_err(|e| ConfigError::new(&format!("{field}.n"), format!("not a usable RSA key: {e}")))?;
                ("RS256", rsa_verifier(&format!("{field}.n"), key)?)
            }
            "EC" => {
                if text("crv")? != Some("P-256") {
                    return Err(ConfigError::new(&format!("{field}.crv"), "expected \"P-256\" (ES256)"));
                }
                let (x, y) = (bytes("x")?, bytes("y")?);
                ("ES256", ec_from_xy(field, &x, &y)?)
            }
            "oct" => ("HS256", hmac_secret(&format!("{field}.k"), bytes("k")?)?),
            other => {
                return Err(ConfigError::new(
                    &format!("{field}.kty"),
                    format!("expected RSA, EC or oct, got {other:?}"),
                ));
            }
        };
        if let Some(alg) = text("alg")?
            && alg != expected_alg
        {
            return Err(ConfigError::new(
                &format!("{field}.alg"),
                format!("a {kty} key verifies {expected_alg} here, got {alg:?}"),
            ));
        }
        Ok(Some(Self { kid: text("kid")?.map(str::to_owned), verifier }))
    }
}

/// `jwt.keys[i]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    #[serde(default)]
    kid: Option<String>,
    alg: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    pem: Option<String>,
}

fn hmac_secret(field: &str, secret: Vec<u8>) -> Result<Verifier, ConfigError> {
    if secret.len() < MIN_HMAC_BYTES {
        return Err(ConfigError::new(field, format!("expected at least {MIN_HMAC_BYTES} bytes for HS256")));
    }
    Ok(Verifier::Hs256(secret))
}

fn rsa_verifier(field: &str, key: RsaPublicKey) -> Result<Verifier, ConfigError> {
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(ConfigError::new(field, format!("RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")));
    }
    Ok(Verifier::Rs256(Box::new(rsa::pkcs1v15::VerifyingKey::new(key))))
}

fn rsa_from_pem(field: &str, pem: &str) -> Result<Verifier, ConfigError> {
    let bad = || ConfigError::new(field, "expected an RSA public key PEM (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)");
    let key = match parse_pem(pem).ok_or_else(bad)? {
        (Label::Spki, der) => RsaPublicKey::from_public_key_der(&der).map_err(|_| bad())?,
        (Label::Pkcs1, der) => RsaPublicKey::from_pkcs1_der(&der).map_err(|_| bad())?,
    };
    rsa_verifier(field, key)
}

fn ec_from_pem(field: &str, pem: &str) -> Result<Verifier, ConfigError> {
    let bad = || ConfigError::new(field, "expected a P-256 public key PEM (BEGIN PUBLIC KEY)");
    match parse_pem(pem).ok_or_else(bad)? {
        (Label::Spki, der) => {
            p256::ecdsa::VerifyingKey::from_public_key_der(&der).map(Verifier::Es256).map_err(|_| bad())
        }
        (Label::Pkcs1, _) => Err(bad()),
    }
}

fn ec_from_xy(field: &str, x: &[u8], y: &[u8]) -> Result<Verifier, ConfigError> {
    let bad = || ConfigError::new(&format!("{field}.x"), "x and y are not a point on P-256");
    if x.len() != 32 || y.len() != 32 {
        return Err(bad());
    }
    let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    p256::ecdsa::VerifyingKey::from_encoded_point(&point).map(Verifier::Es256).map_err(|_| bad())
}

/// The PEM labels weir reads.
#[derive(Debug, PartialEq, Eq)]
enum Label {
    /// `PUBLIC KEY`: SubjectPublicKeyInfo.
    Spki,
    /// `RSA PUBLIC KEY`: PKCS#1.
    Pkcs1,
}

/// The label and DER body of a single-block PEM. A small reader, so no PEM crate is needed.
/// Whitespace inside the body is ignored, so a PEM whose line breaks YAML folded into
/// spaces still reads.
fn parse_pem(pem: &str) -> Option<(Label, Vec<u8>)> {
    let pem = pem.trim();
    let (label, begin, end) = if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
        (Label::Spki, "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----")
    } else {
        (Label::Pkcs1, "-----BEGIN RSA PUBLIC KEY-----", "-----END RSA PUBLIC KEY-----")
    };
    let body = pem.strip_prefix(begin)?.strip_suffix(end)?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    PEM_BASE64.decode(body).ok().map(|der| (label, der))
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use serde_json::json;

    fn config_key(json: Value) -> Result<Key, ConfigError> {
        let raw: RawKey = serde_json::from_value(json).map_err(|e| ConfigError::new("test", e))?;
        Key::from_config(0, raw)
    }

    fn error(r: Result<Key, ConfigError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn pem_keys_load_with_their_algorithm() {
        assert_eq!(config_key(json!({"alg": "RS256", "pem": RSA_PEM})).map(|k| k.alg()).ok(), Some(Alg::Rs256));
        assert_eq!(config_key(json!({"alg": "RS256", "pem": RSA_PKCS1_PEM})).map(|k| k.alg()).ok(), Some(Alg::Rs256));
        assert_eq!(config_key(json!({"alg": "ES256", "pem": EC_PEM})).map(|k| k.alg()).ok(), Some(Alg::Es256));
    }

    #[test]
    fn mismatched_or_bad_pems_are_refused() {
        assert!(error(config_key(json!({"alg": "RS256", "pem": EC_PEM}))).contains("jwt.keys[0].pem"));
        assert!(error(config_key(json!({"alg": "ES256", "pem": RSA_PEM}))).contains("P-256"));
        assert!(error(config_key(json!({"alg": "ES256", "pem": RSA_PKCS1_PEM}))).contains("P-256"));
        assert!(
            error(config_key(json!({"alg": "RS256", "pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n"}))).contains("pem")
        );
        let truncated = RSA_PEM.replace("mwIDAQAB", "");
        assert!(error(config_key(json!({"alg": "RS256", "pem": truncated}))).contains("pem"));
        let two = format!("{RSA_PEM}{RSA_PEM}");
        assert!(error(config_key(json!({"alg": "RS256", "pem": two}))).contains("pem"));
    }

    #[test]
    fn pems_with_folded_lines_read() {
        let folded = RSA_PEM.replace('\n', " ");
        assert_eq!(config_key(json!({"alg": "RS256", "pem": folded})).map(|k| k.alg()).ok(), Some(Alg::Rs256));
        let crlf = EC_PEM.replace('\n', "\r\n");
        assert_eq!(config_key(json!({"alg": "ES256", "pem": crlf})).map(|k| k.alg()).ok(), Some(Alg::Es256));
    }

    #[test]
    fn config_keys_need_matching_material() {
        assert!(error(config_key(json!({"alg": "none", "secret": "x"}))).contains("jwt.keys[0].alg"));
        assert!(error(config_key(json!({"alg": "HS256", "secret": "short"}))).contains("at least 32 bytes"));
        assert!(error(config_key(json!({"alg": "HS256", "pem": RSA_PEM}))).contains("secret"));
        assert!(
            error(config_key(json!({"alg": "RS256", "secret": "0123456789abcdef0123456789abcdef"}))).contains("pem")
        );
    }

    #[test]
    fn jwks_load_rsa_ec_and_oct() {
        let rsa = Key::from_jwk("k", &json!({"kty": "RSA", "kid": "r", "n": RSA_N, "e": RSA_E, "alg": "RS256"}));
        assert_eq!(rsa.ok().flatten().map(|k| (k.alg(), k.kid)), Some((Alg::Rs256, Some("r".to_owned()))));
        let ec = Key::from_jwk("k", &json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}));
        assert_eq!(ec.ok().flatten().map(|k| k.alg()), Some(Alg::Es256));
        let oct = Key::from_jwk("k", &json!({"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}));
        assert_eq!(oct.ok().flatten().map(|k| k.alg()), Some(Alg::Hs256));
        let enc = Key::from_jwk("k", &json!({"kty": "RSA", "use": "enc", "n": RSA_N, "e": RSA_E}));
        assert!(matches!(enc, Ok(None)));
    }

    #[test]
    fn bad_jwks_are_refused() {
        let e = |v: Value| Key::from_jwk("jwks.keys[3]", &v).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(json!({"kty": "RSA", "n": RSA_N, "e": RSA_E, "alg": "HS256"})).contains("jwks.keys[3].alg"));
        assert!(e(json!({"kty": "RSA", "n": "AQAB", "e": RSA_E})).contains("jwks.keys[3].n"));
        assert!(e(json!({"kty": "RSA", "e": RSA_E})).contains("jwks.keys[3].n"));
        assert!(e(json!({"kty": "EC", "crv": "P-384", "x": EC_X, "y": EC_Y})).contains("crv"));
        assert!(e(json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_X})).contains("not a point"));
        assert!(e(json!({"kty": "OKP"})).contains("kty"));
        assert!(e(json!("RSA")).contains("JWK object"));
    }
}
