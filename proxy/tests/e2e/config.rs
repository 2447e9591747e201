//! `weir -t -c FILE`: exit 0 for a valid configuration, 1 with reasons that name the file,
//! line and field.

use std::process::Command;

fn check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).arg("-t").arg("-c").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.replace(&path.display().to_string(), "FILE"))
}

#[test]
fn valid_config_passes() {
    let (ok, out) = check(&format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nclusters:\n  o: {{ endpoints: [\"127.0.0.1:1\"] }}\nplugins:\n  t: {{ module: {} }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: t }}]\n",
        weir_test_fixtures::TRIVIAL
    ));
    assert!(ok, "{out}");
    assert!(out.contains("configuration OK"));
}

#[test]
fn errors_name_file_line_and_field() {
    let (ok, out) = check(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - cluster: o\n    clustr: typo\n",
    );
    assert!(!ok);
    assert!(out.contains("FILE:6") && out.contains("unknown field `clustr`"), "{out}");

    let (ok, out) = check(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - cluster: nowhere\n",
    );
    assert!(!ok);
    assert!(out.contains("FILE:5: routes[0].cluster: unknown cluster `nowhere`; defined clusters: o"), "{out}");

    let (ok, out) = check(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nplugins:\n  p: { module: /nonexistent.wasm }\nroutes:\n  - cluster: o\n    filters: [{ plugin: p }]\n",
    );
    assert!(!ok);
    assert!(out.contains("plugins.p.module") && out.contains("cannot read"), "{out}");
}

#[test]
fn a_filter_refusing_its_config_fails_validation() {
    let (ok, out) = check(&format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nclusters:\n  o: {{ endpoints: [\"127.0.0.1:1\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: o\n    filters:\n      - plugin: probe\n        config: {{ configure: false }}\n",
        weir_test_fixtures::PROBE
    ));
    assert!(!ok);
    assert!(out.contains("routes[0].filters[0]") && out.contains("proxy_on_configure returned false"), "{out}");
}
