//! What operators read: `/metrics` as a strict Prometheus scraper parses it, `/server_info`,
//! `/clusters`, `HEAD /ready`, log levels changed at run time (`/logging`, `log_level`), and
//! `weir --version`, `completions` and `man`.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::FetchJson;
use crate::harness::*;

/// Parses a `/metrics` page with the Python client's parser (as a Prometheus scraper reads
/// it) and checks what it lets pass: one `# TYPE` and one `# HELP` per family, every sample
/// under a family that declared them. Returns the families' names.
fn strict_parse(page: &str) -> Vec<String> {
    const CHECK: &str = r##"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
types, helps = {}, {}
for line in text.splitlines():
    if line.startswith("# TYPE "):
        name = line.split()[2]
        assert name not in types, f"two TYPE lines for {name}"
        types[name] = line.split()[3]
    elif line.startswith("# HELP "):
        name = line.split()[2]
        assert name not in helps, f"two HELP lines for {name}"
        helps[name] = True
    elif line and not line.startswith("#"):
        sample = line.split("{")[0].split(" ")[0]
        family = next((f for f in types if sample == f or (sample.startswith(f + "_") and sample[len(f) + 1:] in ("bucket", "sum", "count", "total", "created"))), None)
        assert family is not None, f"sample {sample} has no TYPE line before it"
assert set(types) == set(helps), f"families without HELP: {set(types) ^ set(helps)}"
for family in text_string_to_metric_families(text):
    print(family.name)
"##;
    let mut child = Command::new("python3")
        .args(["-c", CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), page.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the strict check needs Python's prometheus_client (apt-get install python3-prometheus-client)"
    );
    assert!(out.status.success(), "the page does not parse strictly: {stderr}\n{page}");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// The value of the sample line starting with `series` (name and labels as written).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_metrics_page_parses_strictly_with_filter_metrics_named_apart_and_tagged() {
    let origin = origin("o");
    let (dead, _held) = closed_port();
    // The probe defines: a name under weir's own family (left out, logged once), one name as
    // a counter and a gauge after sanitizing (one left out), tagged names (labels), a histogram.
    let defines = [(0, "seconds"), (0, "x.y"), (1, "x_y"), (0, "reqs.method=GET"), (0, "reqs.method=POST"), (2, "lat")];
    let mut steps: Vec<Value> = Vec::new();
    for (kind, name) in defines {
        steps.push(json!(["define_metric", kind, name]));
        steps.push(if kind == 2 {
            json!(["record_metric", "$define_metric", 7])
        } else {
            json!(["increment_metric", "$define_metric", 1])
        });
    }
    let weir = Weir::start(&format!(
        "metrics:\n  filter_tags:\n    - {{ tag_name: method, regex: '(\\.method=([^.]+))' }}\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  dead: {{ endpoints: [\"{dead}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - match: {{ path_prefix: /dead }}\n    cluster: dead\n  - match: {{ path_prefix: / }}\n    name: main\n    cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        serde_json::to_string(&json!({ "steps": { "request_headers": steps } })).unwrap()
    ));
    let c = client();
    let before = c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "weir_reloads_total{result=\"ok\"}",
        "weir_reloads_total{result=\"error\"}",
        "weir_filter_failures_total{kind=\"deadline\",plugin=\"probe\"}",
        "weir_upstream_connect_failures_total{cluster=\"dead\"}",
        "weir_upstream_retries_total{cluster=\"origin\"}",
        "weir_response_body_bytes_total{route=\"main\"}",
    ] {
        assert_eq!(sample(&before, series), Some(0.0), "{series} is on the page from the start, at 0:\n{before}");
    }
    let mut body_bytes = 0;
    for _ in 0..3 {
        let r = c.get(weir.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        body_bytes += r.bytes().await.unwrap().len();
    }
    assert_eq!(c.get(weir.url("/dead")).send().await.unwrap().status(), 503);
    let page = c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let families = strict_parse(&page);
    for family in [
        "weir_requests",
        "weir_request_duration_seconds",
        "weir_upstream_request_duration_seconds",
        "weir_build_info",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds",
        "weir_filter_reqs",
        "weir_filter_lat",
    ] {
        assert!(families.iter().any(|f| f == family), "{family} is on the page: {families:?}\n{page}");
    }
    assert_eq!(sample(&page, "weir_request_duration_seconds_count{class=\"2xx\",route=\"main\"}"), Some(3.0), "{page}");
    assert_eq!(
        sample(&page, "weir_request_duration_seconds_count{class=\"5xx\",route=\"main\"}"),
        None,
        "classes a route never answered have no series"
    );
    assert_eq!(sample(&page, "weir_upstream_request_duration_seconds_count{cluster=\"origin\"}"), Some(3.0));
    // The try and its retry (`retry_on: connect-failure` once, by default).
    assert_eq!(sample(&page, "weir_upstream_connect_failures_total{cluster=\"dead\"}"), Some(2.0));
    assert_eq!(sample(&page, "weir_response_body_bytes_total{route=\"main\"}"), Some(body_bytes as f64), "{page}");
    assert_eq!(sample(&page, &format!("weir_endpoint_healthy{{cluster=\"origin\",endpoint=\"{origin}\"}}")), Some(1.0));
    assert_eq!(sample(&page, "weir_filter_reqs{method=\"GET\"}"), Some(3.0), "tagged names are labels of one family");
    assert_eq!(sample(&page, "weir_filter_reqs{method=\"POST\"}"), Some(3.0));
    assert_eq!(sample(&page, "weir_filter_lat_count"), Some(3.0));
    let version = env!("CARGO_PKG_VERSION");
    assert!(page.contains("weir_build_info{commit=\"") && page.contains(&format!("version=\"{version}\"")), "{page}");
    assert!(!page.contains("weir_filter_seconds{"), "a filter metric cannot take weir's own family:\n{page}");
    let x_y = page.lines().filter(|l| l.starts_with("# TYPE weir_filter_x_y ")).count();
    assert_eq!(x_y, 1, "a counter and a gauge named alike make one family, the other left out");
    let again = c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    strict_parse(&again);
    let logs = weir.logs();
    let left_out: Vec<&str> = logs.lines().filter(|l| l.contains("left out of /metrics")).collect();
    assert_eq!(left_out.len(), 2, "each conflict is logged once, not at every scrape:\n{}", left_out.join("\n"));
}

#[test]
fn a_bad_tag_rule_or_prefix_is_refused_with_its_field() {
    let (ok, text) = check_config(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - cluster: o\nmetrics:\n  filter_prefix: 9bad\n  filter_tags:\n    - { tag_name: le, regex: 'method=[a-z]+' }\n",
    );
    assert!(!ok, "{text}");
    for field in ["metrics.filter_prefix", "metrics.filter_tags[0].tag_name", "metrics.filter_tags[0].regex"] {
        assert!(text.contains(field), "the error names {field}:\n{text}");
    }
    assert!(text.contains("capture group"), "{text}");
}

#[tokio::test]
async fn server_info_clusters_and_head_ready() {
    let origin = origin("o");
    let (dead, _held) = closed_port();
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  dead: {{ endpoints: [\"{dead}\"], health_check: {{ interval: 50ms }} }}\nserver: {{ threads: 2 }}\nroutes:\n  - cluster: origin\n"
    ));
    let c = client();
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
    let info: Value = c.get(weir.admin_url("/server_info")).fetch_json().await;
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["workers"], 2);
    assert_eq!(info["ready"], true);
    assert_eq!(info["proxy_wasm_abi"], json!(["0.1.0", "0.2.0", "0.2.1"]));
    assert!(
        info["commit"].as_str().is_some_and(|c| !c.is_empty())
            && info["wasmtime"].as_str().is_some_and(|v| v.contains('.')),
        "{info}"
    );
    assert!(info["uptime_seconds"].is_u64() && info["generation"].is_u64(), "{info}");
    assert!(
        eventually(async || {
            let clusters: Value = c.get(weir.admin_url("/clusters")).fetch_json().await;
            clusters["clusters"]["dead"]["endpoints"][0]["healthy"] == false
        })
        .await,
        "the dead endpoint's health check fails"
    );
    let clusters: Value = c.get(weir.admin_url("/clusters")).fetch_json().await;
    let o = &clusters["clusters"]["origin"];
    assert_eq!(o["endpoints"], json!([{ "address": origin.to_string(), "healthy": true }]), "{clusters}");
    assert_eq!(o["lb"], "round_robin");
    assert_eq!(o["stats"]["upstream_responses"], 1, "{clusters}");
    assert_eq!(clusters["clusters"]["dead"]["health_check"]["interval_ms"], 50);
    // HEAD /ready: the status and length of GET's answer, no body (a raw read would see one).
    let raw = raw_exchange(weir.admin, b"HEAD /ready HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(head.to_ascii_lowercase().contains("content-length: "), "{raw}");
    assert_eq!(body, "", "HEAD has no body");
}

#[tokio::test]
async fn log_levels_per_plugin_from_the_configuration_and_the_admin_listener() {
    let origin = origin("o");
    let script = json!({ "steps": { "request_headers": [["get_log_level"], ["log", 0, "a-trace-line"], ["log", 4, "an-error-line"]] } });
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {}, log_level: trace }}\n  other: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        probe(),
        serde_json::to_string(&script).unwrap()
    ));
    let c = client();
    let count = |needle: &str| weir.logs().lines().filter(|l| l.contains(needle)).count();
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
    let level = weir.probe_lines().into_iter().find(|l| l["op"] == "get_log_level").unwrap();
    assert_eq!(level["level"], 0, "proxy_get_log_level reports the plugin's configured level (trace)");
    assert!(eventually(async || count("a-trace-line") == 1).await, "the trace line is kept:\n{}", weir.logs());
    let levels: Value = c.get(weir.admin_url("/logging")).fetch_json().await;
    assert_eq!(levels["plugins"]["probe"], json!({ "level": "trace", "source": "config" }), "{levels}");
    assert_eq!(levels["plugins"]["other"]["source"], "default", "{levels}");

    let changed = c.post(weir.admin_url("/logging?plugin=probe&level=error")).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    let probes = weir.probe_lines().len();
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
    assert!(eventually(async || count("an-error-line") == 2).await, "error lines are kept at `error`");
    assert_eq!(count("a-trace-line"), 1, "trace lines are dropped at `error`");
    assert_eq!(weir.probe_lines().len(), probes, "the probe's info lines are dropped too");
    let levels: Value = c.get(weir.admin_url("/logging")).fetch_json().await;
    assert_eq!(levels["plugins"]["probe"], json!({ "level": "error", "source": "admin" }), "{levels}");

    let global = c.post(weir.admin_url("/logging?level=warn")).send().await.unwrap();
    assert_eq!(global.status(), 200);
    let levels: Value = global.json().await.unwrap();
    assert_eq!(levels["level"], "warn");
    assert_eq!(levels["plugins"]["other"], json!({ "level": "warn", "source": "default" }));
    for (query, status) in
        [("level=loud", 400), ("plugin=nope&level=debug", 404), ("plugin=probe", 400), ("colour=red", 400)]
    {
        let r = c.post(weir.admin_url(&format!("/logging?{query}"))).send().await.unwrap();
        assert_eq!(r.status(), status, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{query}: {body}");
    }
}

#[test]
fn a_plugin_log_level_that_is_none_is_refused() {
    let (ok, text) = check_config(&format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nclusters:\n  o: {{ endpoints: [\"127.0.0.1:1\"] }}\nplugins:\n  p: {{ module: {}, log_level: loud }}\nroutes:\n  - cluster: o\n",
        probe()
    ));
    assert!(!ok && text.contains("plugins.p.log_level") && text.contains("unknown log level `loud`"), "{text}");
}

#[test]
fn version_completions_and_man_page() {
    let weir = env!("CARGO_BIN_EXE_weir");
    let run = |args: &[&str]| {
        let out = Command::new(weir).args(args).output().unwrap();
        assert!(out.status.success(), "weir {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let version = run(&["--version"]);
    for part in ["weir ", "commit: ", "wasmtime: ", "pingora: 0.9", "proxy-wasm ABI: 0.1.0, 0.2.0, 0.2.1"] {
        assert!(version.contains(part), "--version shows `{part}`:\n{version}");
    }
    assert_eq!(run(&["-V"]).trim(), format!("weir {}", env!("CARGO_PKG_VERSION")), "-V stays one line");
    assert!(run(&["completions", "bash"]).contains("_weir()"));
    assert!(run(&["completions", "zsh"]).contains("#compdef weir"));
    let man = run(&["man"]);
    assert!(man.contains(".TH weir") && man.contains("completions"), "{man}");
}
