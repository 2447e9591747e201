use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn parse_str(y: &str) -> Result<Loaded, Vec<ConfigError>> {
    parse(y.to_owned(), Some(PathBuf::from("test.yaml")))
}

const BASE: &str = "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\n";

#[test]
fn defaults_and_units() {
    let l = parse_str(&format!("{BASE}plugins:\n  p: {{ builtin: auth, limits: {{ memory: 16MiB, deadline: 20ms }} }}\nroutes:\n  - cluster: o\n"))
        .unwrap();
    let p = &l.config.plugins["p"];
    assert_eq!(p.limits.memory.0, 16 << 20);
    assert_eq!(p.limits.deadline.0, Duration::from_millis(20));
    assert_eq!(l.config.admin.address.to_string(), "127.0.0.1:9901");
    assert_eq!(l.config.clusters["o"].connect_timeout.0, Duration::from_secs(1));
    assert!(l.config.listeners[0].http2);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let errs = parse_str(&format!(
        "{BASE}plugins:\n  a: {{ builtin: nope }}\n  b: {{ }}\nroutes:\n  - cluster: x\n    filters: [{{ plugin: c }}]\n"
    ))
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|e| e.starts_with("test.yaml:5:8: plugins.a.builtin: unknown built-in filter `nope`")),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|e| e.starts_with("test.yaml:6:3: plugins.b") && e.contains("exactly one of")),
        "{text:#?}"
    );
    assert!(text.iter().any(|e| e.starts_with("test.yaml:8:5: routes[0].cluster")), "{text:#?}");
    assert!(text.iter().any(|e| e.starts_with("test.yaml:9:17: routes[0].filters[0].plugin")), "{text:#?}");
}

/// The same `key: value` text on several lines: each error points at its own line and column,
/// from the parser's marks (a text search would name the first line every time).
#[test]
fn repeated_text_gives_each_error_its_own_line() {
    let errs = parse_str(&format!(
        "{BASE}routes:\n  - name: a\n    cluster: x\n  - name: b\n    cluster: x\n  - {{ name: a, cluster: o }}\n  - {{ name: c, cluster: x }}\n"
    ))
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    for expected in [
        "test.yaml:6:5: routes[0].cluster: unknown cluster `x`",
        "test.yaml:8:5: routes[1].cluster: unknown cluster `x`",
        "test.yaml:9:7: routes[2].name: route name `a` is already the name of routes[0]",
        "test.yaml:10:16: routes[3].cluster: unknown cluster `x`",
    ] {
        assert!(text.iter().any(|e| e.starts_with(expected)), "{expected}\n{text:#?}");
    }
}

/// A key given twice in one mapping names both lines; the same key in two mappings is fine.
#[test]
fn a_key_given_twice_is_refused_at_its_second_appearance() {
    let errs = parse_str(&format!(
        "{BASE}  p: {{ endpoints: [\"127.0.0.1:2\"] }}\n  o: {{ endpoints: [\"127.0.0.1:3\"] }}\nroutes: []\n"
    ))
    .unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "test.yaml:5:3: clusters.o: `o` is given twice (first at line 3); each key may appear once"
    );
}

#[test]
fn bad_units_name_the_field() {
    let errs = parse_str(&format!(
        "{BASE}  slow: {{ endpoints: [\"127.0.0.1:2\"], connect_timeout: 5 parsecs }}\nroutes: []\n"
    ))
    .unwrap_err();
    assert!(errs[0].to_string().contains("connect_timeout") || errs[0].message.contains("duration"), "{}", errs[0]);
    assert_eq!((errs[0].line, errs[0].column), (Some(4), Some(56)));
}

#[test]
fn filter_configs_become_json_or_raw_strings() {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str("{ a: 1, b: [x] }").unwrap();
    assert_eq!(value_bytes(&Some(v)), br#"{"a":1,"b":["x"]}"#);
    assert_eq!(value_bytes(&Some(serde_yaml_ng::Value::String("raw".into()))), b"raw");
    assert!(value_bytes(&None).is_empty());
}

#[test]
fn config_dump_shows_settings_and_fingerprints_free_form_values() {
    let dump = redacted_json(
        "plugins:\n  a: { builtin: auth, vm_config: { token: t0k }, environment: { API_TOKEN: envsecret } }\n  m: { module: f.wasm, sha256: abc123 }\n\
         routes:\n  - match: { path_prefix: /p, headers: { x-key: matchsecret } }\n    cluster: c\n    metadata: { filter_metadata: { ns: { k: metasecret } } }\n\
         \x20   filters:\n      - { plugin: a, config: { api_keys: { keys: [{ name: ci, key: s3cr3t }] }, jwt: { keys: [{ alg: HS256, secret: hush }] } } }\n\
         services: [{ plugin: a, config: svcsecret }]\nnode: { id: edge, metadata: { k: nodesecret } }\n",
    );
    for secret in
        ["s3cr3t", "hush", "t0k", "envsecret", "matchsecret", "metasecret", "svcsecret", "nodesecret", "\"ci\""]
    {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
    // Settings stay readable; a fingerprint tells two values apart without showing them.
    for shown in ["abc123", "f.wasm", "/p", "API_TOKEN", "x-key", "\"edge\"", "sha256:"] {
        assert!(dump.contains(shown), "{shown} missing from {dump}");
    }
    let service = |config: &str| redacted_json(&format!("services: [{{ plugin: a, config: {config} }}]\n"));
    assert_eq!(service("one"), service("one"), "a fingerprint is stable");
    assert_ne!(service("one"), service("two"), "different values, different fingerprints");
}
