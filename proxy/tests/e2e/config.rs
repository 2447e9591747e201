//! `weir -t -c FILE`: exit 0 for a valid configuration, 1 with reasons that name the file,
//! line and field.

use crate::harness::check_config as check;

/// The VM pool holds what the configuration needs: plugins sharing a vm_id share a VM.
#[test]
fn a_configuration_that_fits_its_vm_slots_passes() {
    let (ok, out) = check(&format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nclusters:\n  o: {{ endpoints: [\"127.0.0.1:1\"] }}\nserver: {{ threads: 4, vm_slots: 9 }}\nplugins:\n  a: {{ module: {t} }}\n  b: {{ module: {t}, vm_id: other }}\n  c: {{ module: {t}, vm_id: other }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: a }}, {{ plugin: b }}, {{ plugin: c }}]\n",
        t = weir_test_fixtures::TRIVIAL
    ));
    assert!(ok, "{out}");
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
    assert!(out.contains("FILE:6:5: routes[0]") && out.contains("unknown field `clustr`"), "{out}");

    let (ok, out) = check(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - cluster: nowhere\n",
    );
    assert!(!ok);
    assert!(out.contains("FILE:5:5: routes[0].cluster: unknown cluster `nowhere`; defined clusters: o"), "{out}");

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

/// What `weir -t` refuses because the running process would fail or misbehave with it.
#[test]
fn the_check_refuses_what_would_fail_at_run_time() {
    let base = "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\n";
    let cases = [
        // A key given twice: the last one would silently win.
        (
            "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\n  o: { endpoints: [\"127.0.0.1:2\"] }\nroutes:\n  - cluster: o\n".to_owned(),
            "FILE:4:3: clusters.o",
            "`o` is given twice (first at line 3)",
        ),
        (format!("{base}server: {{ threads: 0 }}\nroutes:\n  - cluster: o\n"), "server.threads", "at least 1"),
        (
            format!("{base}routes:\n  - cluster: o\nserver: {{ grace_period_seconds: 1 }}\nplugins:\n  p: {{ builtin: header-rewrite, limits: {{ deadline: 0ms }} }}\n"),
            "plugins.p.limits.deadline",
            "longer than 0",
        ),
        (
            "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"], read_timeout: 0s }\nroutes:\n  - cluster: o\n".to_owned(),
            "clusters.o.read_timeout",
            "longer than 0",
        ),
        (
            "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"], connect_timeout: 99999999999999999h }\nroutes:\n  - cluster: o\n".to_owned(),
            "clusters.o.connect_timeout",
            "at most 8760h",
        ),
        (
            format!("{base}routes:\n  - {{ name: api, cluster: o }}\n  - {{ name: api, cluster: o }}\n"),
            "routes[1].name",
            "already the name of routes[0]",
        ),
        (
            format!("{base}plugins:\n  auth: {{ builtin: auth }}\nroutes:\n  - cluster: o\n    filters:\n      - plugin: auth\n        config: {{ external: {{ cluster: authz, path: /check }} }}\n"),
            "FILE:10:31: routes[0].filters[0].config.external.cluster",
            "unknown cluster `authz`",
        ),
        (
            format!("{base}plugins:\n  ab: {{ builtin: ab-routing }}\nroutes:\n  - cluster: o\n    filters:\n      - plugin: ab\n        config: '{{\"variants\": [{{\"name\": \"a\", \"cluster\": \"o\", \"weight\": 1}}, {{\"name\": \"b\", \"cluster\": \"canary\", \"weight\": 1}}]}}'\n"),
            "routes[0].filters[0].config.variants[1].cluster",
            "unknown cluster `canary`",
        ),
        (
            format!("{base}routes:\n  - cluster: o\n    retry_policy: {{ retry_on: \"5xx,teleport\" }}\n"),
            "routes[0].retry_policy: unknown value",
            "`teleport`, expected one of: connect-failure, refused-stream, reset, 5xx, gateway-error, retriable-status-codes",
        ),
        (
            format!("{base}routes:\n  - cluster: o\n    retry_policy: {{ retry_on: [retriable-status-codes] }}\n"),
            "FILE:6:5: routes[0].retry_policy.retriable_status_codes",
            "needs the codes to retry",
        ),
        (
            "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"], health_check: { http: { path: healthz } } }\nroutes:\n  - cluster: o\n".to_owned(),
            "clusters.o.health_check.http.path",
            "must start with `/`",
        ),
        (
            format!("{base}routes:\n  - cluster: o\n    direct_response: {{ status: 200 }}\n"),
            "FILE:5:5: routes[0]",
            "give exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
        ),
        (
            format!("{base}routes:\n  - match: {{ path_regex: \"(unclosed\" }}\n    cluster: o\n"),
            "routes[0].match.path_regex",
            "not a valid regular expression",
        ),
        (
            format!("{base}routes:\n  - match: {{ headers: {{ x-a: {{ prefix: a, suffix: b }} }} }}\n    cluster: o\n"),
            "routes[0].match.headers.x-a",
            "give exactly one of `exact`, `prefix`",
        ),
        // Two VMs on each of 4 workers, and one to validate: 9 instances in 8 slots.
        (
            format!("{base}server: {{ threads: 4, vm_slots: 8 }}\nplugins:\n  a: {{ builtin: header-rewrite }}\n  b: {{ builtin: header-rewrite, vm_id: other }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: a }}, {{ plugin: b }}]\n"),
            "FILE:4:23: server.vm_slots",
            "9 VM instances are needed (2 VM(s) on each of 4 workers, and one to validate a module) but server.vm_slots is 8",
        ),
    ];
    for (yaml, field, message) in cases {
        let (ok, out) = check(&yaml);
        assert!(!ok, "refused:\n{yaml}");
        assert!(out.contains(field) && out.contains(message), "{field} / {message}:\n{out}");
    }
}

/// A built-in filter's reason for refusing its configuration (field path and message) is in
/// the error itself, not only in the log.
#[test]
fn a_builtin_filters_refusal_reason_is_in_the_error() {
    let (ok, out) = check(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nplugins:\n  rw: { builtin: header-rewrite }\nroutes:\n  - cluster: o\n    filters:\n      - plugin: rw\n        config: { request: { sett: [] } }\n",
    );
    assert!(!ok);
    let error = out.lines().find(|l| l.contains("routes[0].filters[0]")).unwrap_or_else(|| panic!("{out}"));
    assert!(error.contains("request.sett") && error.contains("unknown field"), "{error}");
}

/// Under an address-space limit (`ulimit -v`) too small for the VMs (each reserves about
/// 4 GiB of address space), `weir -t` says which limit and what to set, with the VM pool and
/// with VMs made on demand, instead of starting and answering 503.
#[test]
fn an_address_space_limit_too_small_for_the_vms_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nplugins:\n  a: { builtin: header-rewrite }\n  b: { builtin: header-rewrite, vm_id: other }\nroutes:\n  - cluster: o\n    filters: [{ plugin: a, config: {} }, { plugin: b, config: {} }]\n";
    for (server, expected) in [
        ("server: { threads: 2 }\n", "the VM instance pool (server.vm_slots: 1000) cannot reserve its address space"),
        ("server: { threads: 2, vm_slots: 0 }\n", "5 VM instances are needed but the process's address-space limit"),
    ] {
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, format!("{base}{server}")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 8000000 && exec '{}' -t -c '{}'", env!("CARGO_BIN_EXE_weir"), path.display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(expected) && text.contains("RLIMIT_AS") && text.contains("LimitAS=infinity"), "{text}");
    }
}
