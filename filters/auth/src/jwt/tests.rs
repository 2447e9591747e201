use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use serde_json::{Value, json};
use sha2::Sha256;

use super::vectors::*;
use super::*;

/// Inside the vectors' validity window.
const NOW: u64 = 1_700_000_100;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn jwt(config: Value) -> Result<Jwt, ConfigError> {
    let raw: Raw = serde_json::from_value(config).map_err(|e| ConfigError::new("test", e))?;
    Jwt::new(raw)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn hs256(header: Value, claims: Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = Hmac::<Sha256>::new_from_slice(secret).map(|m| m.chain_update(input.as_bytes()).finalize().into_bytes());
    format!("{input}.{}", sig.map(|s| URL_SAFE_NO_PAD.encode(s)).unwrap_or_default())
}

fn claims() -> Value {
    json!({"iss": "https://issuer.example", "aud": "api", "sub": "user-42", "exp": NOW + 100, "nbf": NOW - 100})
}

fn hs_config() -> Value {
    json!({"issuer": "https://issuer.example", "audiences": ["api"], "keys": [{"alg": "HS256", "secret": SECRET}]})
}

fn verify(config: Value, token: &str, now: u64) -> Result<Map<String, Value>, JwtError> {
    jwt(config).map_err(|_| JwtError::NoKey)?.verify(token, now)
}

/// Replaces the claims segment, keeping the signature.
fn tamper_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims), parts.get(2).copied().unwrap_or_default())
}

/// Flips one bit in the signature's first byte.
fn tamper_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap_or_default();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    if let Some(b) = bytes.first_mut() {
        *b ^= 1;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[test]
fn hs256_valid_and_tampered() {
    let token = hs256(json!({"alg": "HS256", "typ": "JWT"}), claims(), SECRET.as_bytes());
    let ok = verify(hs_config(), &token, NOW);
    assert_eq!(ok.as_ref().ok().and_then(Jwt::identity).as_deref(), Some("user-42"));
    let mut admin = claims();
    admin["sub"] = json!("admin");
    assert_eq!(verify(hs_config(), &tamper_claims(&token, &admin), NOW), Err(JwtError::Signature));
    assert_eq!(verify(hs_config(), &tamper_signature(&token), NOW), Err(JwtError::Signature));
    let other = hs256(json!({"alg": "HS256"}), claims(), b"another-secret-another-secret-xx");
    assert_eq!(verify(hs_config(), &other, NOW), Err(JwtError::Signature));
}

#[test]
fn rs256_from_pem_pkcs1_and_jwk() {
    let base = json!({"issuer": "https://issuer.example", "audiences": ["api"]});
    let configs = [
        json!({"keys": [{"kid": "rsa1", "alg": "RS256", "pem": RSA_PEM}]}),
        json!({"keys": [{"alg": "RS256", "pem": RSA_PKCS1_PEM}]}),
        json!({"jwks": {"keys": [{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "n": RSA_N, "e": RSA_E}]}}),
        json!({"jwks": json!({"keys": [{"kty": "RSA", "n": RSA_N, "e": RSA_E}]}).to_string()}),
    ];
    for keys in configs {
        let mut config = base.clone();
        if let (Some(c), Some(k)) = (config.as_object_mut(), keys.as_object()) {
            c.extend(k.clone());
        }
        let claims = verify(config.clone(), RS256_TOKEN, NOW);
        assert_eq!(claims.as_ref().ok().and_then(Jwt::identity).as_deref(), Some("user-42"), "{config}");
        assert_eq!(verify(config.clone(), &tamper_signature(RS256_TOKEN), NOW), Err(JwtError::Signature));
        let forged =
            tamper_claims(RS256_TOKEN, &json!({"sub": "admin", "aud": "api", "iss": "https://issuer.example"}));
        assert_eq!(verify(config, &forged, NOW), Err(JwtError::Signature));
    }
}

#[test]
fn es256_from_pem_and_jwk() {
    for keys in [json!([{"kid": "ec1", "alg": "ES256", "pem": EC_PEM}]), json!([{"alg": "ES256", "pem": EC_PEM}])] {
        let config = json!({"audiences": ["api"], "keys": keys});
        assert!(verify(config.clone(), ES256_TOKEN, NOW).is_ok());
        assert_eq!(verify(config, &tamper_signature(ES256_TOKEN), NOW), Err(JwtError::Signature));
    }
    let jwks = json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec1", "x": EC_X, "y": EC_Y}]}});
    assert!(verify(jwks.clone(), ES256_TOKEN, NOW).is_ok());
    let forged = tamper_claims(ES256_TOKEN, &json!({"sub": "admin"}));
    assert_eq!(verify(jwks, &forged, NOW), Err(JwtError::Signature));
}

#[test]
fn es256_signed_natively_round_trips() {
    let Ok(signing) = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]) else {
        panic!("fixed scalar is valid");
    };
    let point = signing.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x().map(|x| URL_SAFE_NO_PAD.encode(x)), point.y().map(|y| URL_SAFE_NO_PAD.encode(y)));
    let input = format!("{}.{}", b64(&json!({"alg": "ES256"})), b64(&claims()));
    let sig: p256::ecdsa::Signature = signing.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    let config = json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y}]}});
    assert!(verify(config.clone(), &token, NOW).is_ok());
    // DER is not the JWS encoding.
    let der = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_der().as_bytes()));
    assert_eq!(verify(config, &der, NOW), Err(JwtError::Signature));
}

#[test]
fn alg_confusion_is_refused() {
    let rsa_only = json!({"keys": [{"alg": "RS256", "pem": RSA_PEM}]});
    // HS256 keyed with the RSA public key text: the classic confusion attack.
    let confused = hs256(json!({"alg": "HS256"}), claims(), RSA_PEM.as_bytes());
    assert_eq!(verify(rsa_only.clone(), &confused, NOW), Err(JwtError::NoKey));
    let both = json!({"keys": [{"alg": "RS256", "pem": RSA_PEM}, {"alg": "HS256", "secret": SECRET}]});
    assert_eq!(verify(both, &confused, NOW), Err(JwtError::Signature));
    // An RS256 token presented as ES256 finds no ES256 key.
    let relabelled =
        format!("{}.{}", b64(&json!({"alg": "ES256"})), RS256_TOKEN.split_once('.').map(|(_, r)| r).unwrap_or(""));
    assert_eq!(verify(rsa_only.clone(), &relabelled, NOW), Err(JwtError::NoKey));
    for alg in ["none", "None", "HS512", "PS256"] {
        let t = format!("{}.{}.", b64(&json!({"alg": alg})), b64(&claims()));
        assert_eq!(verify(rsa_only.clone(), &t, NOW), Err(JwtError::Unsupported), "{alg}");
    }
}

#[test]
fn kid_selects_keys() {
    let config = json!({"keys": [
        {"kid": "a", "alg": "HS256", "secret": "a-secret-a-secret-a-secret-a-sec"},
        {"kid": "b", "alg": "HS256", "secret": SECRET}
    ]});
    let signed_b = |kid: &str| hs256(json!({"alg": "HS256", "kid": kid}), claims(), SECRET.as_bytes());
    assert!(verify(config.clone(), &signed_b("b"), NOW).is_ok());
    assert_eq!(verify(config.clone(), &signed_b("a"), NOW), Err(JwtError::Signature));
    assert_eq!(verify(config.clone(), &signed_b("c"), NOW), Err(JwtError::NoKey));
    // No kid in the token: every key of the algorithm is tried.
    assert!(verify(config, &hs256(json!({"alg": "HS256"}), claims(), SECRET.as_bytes()), NOW).is_ok());
}

#[test]
fn time_claims_use_the_skew() {
    let token = hs256(json!({"alg": "HS256"}), claims(), SECRET.as_bytes());
    assert!(verify(hs_config(), &token, NOW + 100 + 60).is_ok());
    assert_eq!(verify(hs_config(), &token, NOW + 100 + 61), Err(JwtError::Expired));
    assert!(verify(hs_config(), &token, NOW - 160).is_ok());
    assert_eq!(verify(hs_config(), &token, NOW - 161), Err(JwtError::NotYetValid));
    let mut strict = hs_config();
    strict["clock_skew_seconds"] = json!(0);
    assert_eq!(verify(strict, &token, NOW + 101), Err(JwtError::Expired));
}

#[test]
fn issuer_and_audience_are_checked() {
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        hs256(json!({"alg": "HS256"}), c, SECRET.as_bytes())
    };
    assert_eq!(verify(hs_config(), &with("iss", json!("https://evil")), NOW), Err(JwtError::Issuer));
    assert_eq!(verify(hs_config(), &with("aud", json!(["web"])), NOW), Err(JwtError::Audience));
    assert!(verify(hs_config(), &with("aud", json!(["web", "api"])), NOW).is_ok());
    let mut require = hs_config();
    require["require_expiration"] = json!(true);
    let mut no_exp = claims();
    if let Some(c) = no_exp.as_object_mut() {
        c.remove("exp");
    }
    let token = hs256(json!({"alg": "HS256"}), no_exp, SECRET.as_bytes());
    assert!(verify(hs_config(), &token, NOW).is_ok());
    assert_eq!(verify(require, &token, NOW), Err(JwtError::MissingExp));
}

#[test]
fn malformed_tokens_are_refused() {
    let good = hs256(json!({"alg": "HS256"}), claims(), SECRET.as_bytes());
    for t in ["", "a.b", "a.b.c.d", "!!.!!.!!", &format!("{good}="), &"a".repeat(MAX_TOKEN_BYTES + 1)] {
        assert!(matches!(verify(hs_config(), t, NOW), Err(JwtError::Malformed | JwtError::Unsupported)), "{t:.20}");
    }
    let crit = hs256(json!({"alg": "HS256", "crit": ["exp"]}), claims(), SECRET.as_bytes());
    assert_eq!(verify(hs_config(), &crit, NOW), Err(JwtError::Unsupported));
    let not_object = hs256(json!({"alg": "HS256"}), json!([1]), SECRET.as_bytes());
    assert_eq!(verify(hs_config(), &not_object, NOW), Err(JwtError::Malformed));
}

#[test]
fn token_comes_from_the_configured_header() {
    let h =
        |pairs: &[(&str, &str)]| Headers::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    let Ok(default) = jwt(hs_config()) else { panic!("valid config") };
    assert_eq!(default.token(&h(&[("authorization", "Bearer abc")])), Some("abc"));
    assert_eq!(default.token(&h(&[("authorization", "bearer  abc ")])), Some("abc"));
    assert_eq!(default.token(&h(&[("authorization", "Basic abc")])), None);
    let mut custom = hs_config();
    custom["header"] = json!("X-Jwt");
    let Ok(custom) = jwt(custom) else { panic!("valid config") };
    assert_eq!(custom.token(&h(&[("x-jwt", "abc")])), Some("abc"));
    assert_eq!(custom.token(&h(&[("x-jwt", "Bearer abc")])), Some("abc"));
    assert_eq!(custom.token(&h(&[("authorization", "Bearer abc")])), None);
}

#[test]
fn claims_map_to_headers() {
    let mut config = hs_config();
    config["claims_to_headers"] =
        json!([{"claim": "sub", "header": "X-User"}, {"claim": "tenant", "header": "x-tenant"}]);
    let Ok(j) = jwt(config) else { panic!("valid config") };
    let claims = json!({"sub": "u", "tenant": "acme"}).as_object().cloned().unwrap_or_default();
    assert_eq!(j.claim_headers(&claims), vec![("x-user".into(), "u".into()), ("x-tenant".into(), "acme".into())]);
}

#[test]
fn config_needs_keys() {
    let e = |v: Value| jwt(v).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e(json!({})).contains("jwt.keys"));
    assert!(e(json!({"jwks": {"nokeys": []}})).contains("jwt.jwks"));
    assert!(e(json!({"jwks": "{not json"})).contains("jwt.jwks"));
    assert!(e(json!({"jwks": {"keys": [{"kty": "RSA", "use": "enc", "n": RSA_N, "e": RSA_E}]}})).contains("jwt.keys"));
    assert!(e(json!({"keys": [{"alg": "HS256", "secret": SECRET}], "claims_to_headers": [{"claim": "sub", "header": "bad header"}]}))
        .contains("jwt.claims_to_headers[0].header"));
    assert!(e(json!({"keys": [{"alg": "HS256", "secret": SECRET}], "clock_skew_seconds": -1})).contains("u32"));
}
