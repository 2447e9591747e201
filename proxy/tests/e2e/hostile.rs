//! Broken upstreams, odd clients and odd filter answers: each ends one exchange cleanly, never
//! with a corrupted response, a hung client or a panic.

use serde_json::{Value, json};

use crate::harness::*;

/// weir with one route to `origin` through the probe configured with `script` (no route filter
/// when `script` is null), and a `callee` cluster for callouts.
fn config(origin: std::net::SocketAddr, callee: std::net::SocketAddr, script: Value, route: &str) -> String {
    let filters = if script.is_null() {
        String::new()
    } else {
        format!("\n    filters: [{{ plugin: probe, config: {script} }}]")
    };
    format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  callee: {{ endpoints: [\"{callee}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin{route}{filters}\n",
        probe()
    )
}

#[tokio::test]
async fn an_upstream_that_dies_mid_body_breaks_the_response_it_started() {
    // Chunked, and with a content-length, each cut after five bytes.
    for upstream in [
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello",
    ] {
        let dying = canned_server(upstream, true);
        let weir = Weir::start(&config(dying, dying, Value::Null, ""));
        for c in [client(), h2_client()] {
            let resp = c.get(weir.url("/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            // Envoy resets the stream: the client must not get a complete answer.
            assert!(resp.bytes().await.is_err(), "a truncated answer must not look complete");
        }
        // The access log is written after the client saw the break.
        let logged =
            eventually(async || weir.logs().matches("upstream_reset_after_response_started").count() >= 2).await;
        let logs = weir.logs();
        assert!(logged, "{logs}");
        assert!(!logs.contains("upstream error"), "no error text inside a started response");
    }
}

#[tokio::test]
async fn a_malformed_host_is_answered_without_a_panic() {
    let origin = origin("o");
    let route = "\n    match: { host: example.test }";
    let weir = Weir::start(&config(origin, origin, Value::Null, route));
    for host in ["[abc", "[", "[::1"] {
        let answer =
            raw_exchange(weir.proxy, format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes());
        assert!(answer.starts_with("HTTP/1.1 "), "{host}: {answer}");
    }
    assert!(!weir.logs().contains("panicked"), "{}", weir.logs());
}

#[tokio::test]
async fn a_callout_answered_with_informational_responses_gets_the_final_one() {
    let origin = origin("o");
    for callee in [
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ] {
        let callee = canned_server(callee, false);
        let call =
            json!(["http_call", "callee", [[":method", "GET"], [":path", "/"], [":authority", "c"]], "", [], 5000]);
        let script = json!({
            "steps": {
                "request_headers": [call],
                "http_call_response": [["get_header", 6, ":status"], ["get_buffer", 4, 0, 100], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        });
        let weir = Weir::start(&config(origin, callee, script, ""));
        let resp = client().get(weir.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let answered: Vec<Value> = weir.probe_lines().into_iter().filter(|l| l["cb"] == "http_call_response").collect();
        assert_eq!(answered[0]["value"], "200", "{answered:#?}");
        assert_eq!(answered[1]["value"], "ok");
        assert!(!weir.logs().contains("panicked"));
    }
}

#[tokio::test]
async fn a_filter_reply_with_a_status_that_cannot_end_a_stream_is_a_500() {
    let origin = origin("o");
    for code in [100u32, 103, 199, 600, 65736, 19003] {
        let script = json!({ "steps": { "request_headers": [["local_response", code, "odd", "body", [], -1]] } });
        let weir = Weir::start(&config(origin, origin, script, ""));
        for c in [client(), h2_client()] {
            let resp = c.get(weir.url("/")).send().await.unwrap();
            assert_eq!(resp.status(), 500, "{code}");
            // Read whole: a response dropped unread resets the HTTP/2 stream, and a client
            // gone mid-response is logged as such.
            let _ = resp.bytes().await;
        }
        let logged =
            eventually(async || weir.logs().matches("details=\"wasm_invalid_local_reply_status\"").count() >= 2).await;
        assert!(logged, "{code}: {}", weir.logs());
        assert!(weir.logs().contains("status=500 details=\"wasm_invalid_local_reply_status\""), "{code}");
    }
}

#[tokio::test]
async fn a_content_length_a_filter_sets_must_be_a_number() {
    let origin = origin("o");
    let script = json!({ "steps": {
        "request_headers": [["replace_header", 0, "content-length", "18446744073709551616"]],
    }});
    let weir = Weir::start(&config(origin, origin, script, ""));
    let resp = client().post(weir.url("/")).body("hello").send().await.unwrap();
    assert_eq!(resp.status(), 500, "never forwarded");
    let script = json!({ "steps": { "response_headers": [["replace_header", 2, "content-length", "-1"]] } });
    let weir = Weir::start(&config(origin, origin, script, ""));
    let broken = match client().get(weir.url("/")).send().await {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(broken, "a response with an impossible length is reset, never sent");
}

/// A filter that turns the request into a HEAD gets the upstream's bodiless answer to the
/// client framed as such: the client, which sent a GET or POST, does not wait for a body.
#[tokio::test]
async fn a_method_rewritten_to_head_does_not_leave_the_client_waiting() {
    let origin = origin("o");
    let script = json!({ "steps": { "request_headers": [["replace_header", 0, ":method", "HEAD"]] } });
    let weir = Weir::start(&config(origin, origin, script, ""));
    for method in ["GET", "POST"] {
        let out = raw_exchange(
            weir.proxy,
            format!("{method} / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        assert!(out.starts_with("HTTP/1.1 200"), "{method}: {out}");
        assert!(out.to_ascii_lowercase().contains("content-length: 0\r\n"), "{method}: {out}");
    }
    // A client that keeps the connection gets its answer without waiting out a read timeout.
    let started = std::time::Instant::now();
    let resp = client().get(weir.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Names a filter passes (shared-data keys, queues, metrics, clusters) are hashed, decoded and
/// kept by the host: one over 4 KiB is refused with BAD_ARGUMENT, so a filter cannot make the
/// host hash and store megabytes per call.
#[tokio::test]
async fn names_over_4_kib_are_refused() {
    let origin = origin("o");
    let long = "k".repeat(4097);
    let fits = "k".repeat(4096);
    let script = json!({ "steps": { "request_headers": [
        ["set_shared", long, "v"],
        ["set_shared", fits, "v"],
        ["define_metric", 0, long],
        ["register_queue", long],
    ]}});
    let weir = Weir::start(&config(origin, origin, script, ""));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let statuses = || -> Vec<serde_json::Value> {
        weir.probe_lines().iter().filter(|l| l["cb"] == "request_headers").map(|l| l["status"].clone()).collect()
    };
    assert!(eventually(async || statuses().len() >= 4).await, "{:#?}", weir.probe_lines());
    assert_eq!(
        statuses()[..4],
        [json!(2), json!(0), json!(2), json!(2)],
        "BAD_ARGUMENT, OK, BAD_ARGUMENT, BAD_ARGUMENT"
    );
}
