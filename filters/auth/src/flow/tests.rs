use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ALICE: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="; // alice:secret

fn config(v: serde_json::Value) -> Config {
    match Config::from_json(v.to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn all_methods() -> Config {
    config(json!({
        "api_keys": {"header": "x-api-key", "query": "api_key", "keys": [{"name": "ci-bot", "key": "s3cr3t"}]},
        "basic": {"realm": "weir", "users": [{"name": "alice", "password_hash": ALICE}]},
        "jwt": {"keys": [{"alg": "HS256", "secret": SECRET}], "claims_to_headers": [{"claim": "tenant", "header": "x-tenant"}]},
        "exempt_paths": ["/health", "/public/"]
    }))
}

fn request(path: &str, extra: &[(&str, &str)]) -> Headers {
    let mut pairs = vec![(":method".to_owned(), "GET".to_owned()), (":path".to_owned(), path.to_owned())];
    pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Headers::new(pairs)
}

fn token(claims: serde_json::Value) -> String {
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(json!({"alg": "HS256"})), b64(claims));
    let sig = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())
        .map(|m| m.chain_update(input.as_bytes()).finalize().into_bytes());
    format!("Bearer {input}.{}", sig.map(|s| URL_SAFE_NO_PAD.encode(s)).unwrap_or_default())
}

fn identity(step: &Step) -> Option<&str> {
    match step {
        Step::Continue(set) | Step::Callout { set, .. } => {
            set.iter().find(|(k, _)| k == "x-auth-identity").map(|(_, v)| v.as_str())
        }
        Step::Reply(_) => None,
    }
}

fn challenges(step: &Step) -> Vec<&str> {
    match step {
        Step::Reply(r) if r.status == 401 => r.headers.iter().map(|(_, v)| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn exempt_paths_need_nothing() {
    let c = all_methods();
    assert_eq!(on_request(&c, request("/health", &[]), NOW), Step::Continue(vec![]));
    assert_eq!(on_request(&c, request("/public/a.css", &[]), NOW), Step::Continue(vec![]));
    assert!(matches!(on_request(&c, request("/public/../admin", &[]), NOW), Step::Reply(_)));
}

#[test]
fn api_key_in_header_or_query() {
    let c = all_methods();
    assert_eq!(identity(&on_request(&c, request("/x", &[("x-api-key", "s3cr3t")]), NOW)), Some("ci-bot"));
    assert_eq!(identity(&on_request(&c, request("/x?api_key=s3cr3t", &[]), NOW)), Some("ci-bot"));
    let bad = on_request(&c, request("/x?api_key=wrong", &[]), NOW);
    assert_eq!(challenges(&bad), vec!["ApiKey header=\"x-api-key\", query=\"api_key\", error=\"invalid_key\""]);
}

#[test]
fn api_key_is_checked_first_when_present() {
    let c = all_methods();
    let step =
        on_request(&c, request("/x", &[("x-api-key", "wrong"), ("authorization", &token(json!({"sub": "u"})))]), NOW);
    assert!(matches!(step, Step::Reply(Reply { status: 401, .. })));
}

#[test]
fn basic_credentials() {
    let c = all_methods();
    let good = format!("Basic {}", STANDARD.encode("alice:secret"));
    assert_eq!(identity(&on_request(&c, request("/x", &[("authorization", &good)]), NOW)), Some("alice"));
    let bad = format!("Basic {}", STANDARD.encode("alice:nope"));
    assert_eq!(
        challenges(&on_request(&c, request("/x", &[("authorization", &bad)]), NOW)),
        vec!["Basic realm=\"weir\""]
    );
}

#[test]
fn bearer_tokens_set_identity_and_claim_headers() {
    let c = all_methods();
    let step = on_request(&c, request("/x", &[("authorization", &token(json!({"sub": "u1", "tenant": "acme"})))]), NOW);
    assert_eq!(step, Step::Continue(vec![("x-auth-identity".into(), "u1".into()), ("x-tenant".into(), "acme".into())]));
    let expired = on_request(&c, request("/x", &[("authorization", &token(json!({"exp": NOW - 3600})))]), NOW);
    assert_eq!(challenges(&expired), vec!["Bearer error=\"invalid_token\", error_description=\"token expired\""]);
}

#[test]
fn missing_credentials_challenge_every_method() {
    let c = all_methods();
    let step = on_request(&c, request("/x", &[("authorization", "Digest abc")]), NOW);
    assert_eq!(
        challenges(&step),
        vec!["ApiKey header=\"x-api-key\", query=\"api_key\"", "Basic realm=\"weir\"", "Bearer"]
    );
    assert!(matches!(step, Step::Reply(Reply { body: "unauthorized", .. })));
}

#[test]
fn spoofed_identity_and_claim_headers_are_dropped() {
    let c = all_methods();
    assert_eq!(c.protected_headers(), ["x-auth-identity".to_owned(), "x-tenant".to_owned()]);
    // A token without `sub` or `tenant` sets neither header; the client's values were removed.
    let spoofed = request(
        "/x",
        &[("x-auth-identity", "admin"), ("x-tenant", "other"), ("authorization", &token(json!({"aud": "x"})))],
    );
    assert_eq!(on_request(&c, spoofed, NOW), Step::Continue(vec![]));
}

#[test]
fn external_only_calls_out_without_identity() {
    let c = config(
        json!({"external": {"cluster": "authz", "path": "/check", "headers_to_send": ["authorization", "x-user"],
                                      "headers_from_response": ["x-user"]}}),
    );
    let step = on_request(&c, request("/orders", &[("authorization", "Bearer opaque"), ("x-user", "spoofed")]), NOW);
    let Step::Callout { set, request } = step else { panic!("expected a callout") };
    assert!(set.is_empty());
    assert!(request.contains(&("authorization".into(), "Bearer opaque".into())));
    assert!(!request.iter().any(|(k, _)| k == "x-user" || k == "x-auth-identity"));
}

#[test]
fn local_then_external() {
    let c = config(json!({
        "api_keys": {"keys": [{"name": "ci-bot", "key": "s3cr3t"}]},
        "external": {"cluster": "authz", "path": "/check", "headers_to_send": ["x-auth-identity"]}
    }));
    let step = on_request(&c, request("/o", &[("x-api-key", "s3cr3t"), ("x-auth-identity", "admin")]), NOW);
    let Step::Callout { set, request: check } = step else { panic!("expected a callout") };
    assert_eq!(set, vec![("x-auth-identity".to_owned(), "ci-bot".to_owned())]);
    let ids: Vec<&str> = check.iter().filter(|(k, _)| k == "x-auth-identity").map(|(_, v)| v.as_str()).collect();
    assert_eq!(ids, vec!["ci-bot"]);
    // Local failure never reaches the service.
    assert!(matches!(on_request(&c, request("/o", &[]), NOW), Step::Reply(Reply { status: 401, .. })));
}
