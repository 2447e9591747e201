//! Failure policies, malformed requests and aborted clients: each gets the specified behaviour
//! and the proxy keeps serving.

use std::io::{Read, Write};

use serde_json::json;

use crate::harness::*;

fn trapping(origin: std::net::SocketAddr, policy: &str) -> String {
    // Panics on requests with x-boom; others pass.
    let script = json!({ "steps": { "request_headers": [["get_property", ["request", "headers", "x-boom"]]] } });
    let boom = json!({ "steps": { "request_headers": [["panic", "boom"]] } });
    format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {p}, failure_policy: {policy} }}\n  boom: {{ module: {p}, failure_policy: {policy}, vm_id: boom }}\nroutes:\n  - match: {{ headers: {{ x-boom: '1' }} }}\n    cluster: origin\n    filters: [{{ plugin: boom, config: {boom} }}]\n  - match: {{ path_prefix: /b }}\n    cluster: origin\n    filters: [{{ plugin: boom, config: {script} }}]\n  - match: {{ path_prefix: / }}\n    cluster: origin\n    filters: [{{ plugin: probe, config: {script} }}]\n",
        p = probe(),
    )
}

#[tokio::test]
async fn fail_closed_answers_503_and_keeps_serving_other_filters() {
    let origin = origin("o");
    let mut weir = Weir::start(&trapping(origin, "fail_closed"));
    let c = client();
    let r = c.get(weir.url("/b")).header("x-boom", "1").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "", "the body reveals nothing internal");
    // The failed VM keeps failing closed on this worker; other plugins are unaffected.
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
    assert!(weir.alive());
    // Refusals by the failed instance are not failures of their own: the metric counts VM
    // failures (at most one per worker), and each is logged once.
    for _ in 0..10 {
        assert_eq!(c.get(weir.url("/b")).header("x-boom", "1").send().await.unwrap().status(), 503);
    }
    // Metrics are recorded when a request's log is written, after its answer: wait for them.
    let counts = async || {
        let metrics = c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
        let counted: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("weir_filter_failures_total{kind=\"unreachable\",plugin=\"boom\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (counted, weir.logs().matches("filter failed; failing the request").count() as u64)
    };
    let settled = eventually(async || {
        let (counted, warned) = counts().await;
        counted > 0 && counted == warned
    })
    .await;
    let (counted, warned) = counts().await;
    assert!(settled, "one warning per VM failure: {counted} counted, {warned} warned");
    assert!(counted < 11, "{counted} failures counted for 11 refused requests");
    let named = eventually(async || weir.logs().contains("filters=\"boom:failed\"")).await;
    assert!(named, "the access log names the failed filter");
}

#[tokio::test]
async fn fail_open_skips_the_failed_filter() {
    let origin = origin("o");
    let weir = Weir::start(&trapping(origin, "fail_open"));
    let c = client();
    assert_eq!(c.get(weir.url("/b")).header("x-boom", "1").send().await.unwrap().status(), 200);
    assert_eq!(c.get(weir.url("/b")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn reload_policy_brings_a_fresh_vm() {
    let origin = origin("o");
    let weir = Weir::start(&trapping(origin, "reload"));
    let c = client();
    assert_eq!(c.get(weir.url("/b")).header("x-boom", "1").send().await.unwrap().status(), 503);
    assert!(
        eventually(async || c.get(weir.url("/b")).send().await.map(|r| r.status() == 200).unwrap_or(false)).await,
        "after the backoff a fresh VM serves"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  t: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: t }}]\n",
        trivial()
    ));
    let mut s = std::net::TcpStream::connect(weir.proxy).unwrap();
    s.write_all(b"GARBAGE / NOT-HTTP\r\n\x00\x01\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 400"), "{text}");
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn client_abort_mid_body_still_ends_the_filter_contexts() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        json!({ "steps": { "log": [["log", 2, "logged"], ["get_header", 0, ":path"]], "done": [["log", 2, "done"]] } })
    ));
    let mut s = std::net::TcpStream::connect(weir.proxy).unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\npartial body").unwrap();
    drop(s);
    let c = client();
    assert!(
        eventually(async || weir.probe_lines().iter().any(|l| l["cb"] == "done")).await,
        "on_log and on_done ran for the aborted request:\n{}",
        weir.logs()
    );
    assert!(weir.probe_lines().iter().any(|l| l["cb"] == "log"));
    let path = weir.probe_lines().into_iter().find(|l| l["cb"] == "log" && l["op"] == "get_header");
    assert_eq!(path.map(|l| l["value"].clone()), Some(json!("/upload")), "on_log reads the aborted request's headers");
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
}
