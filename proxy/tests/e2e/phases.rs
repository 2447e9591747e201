//! Filters act on every phase through the proxy: header and body edits reach the origin and
//! the client with correct framing, local replies, pause for a callout, shared data, ticks.

use serde_json::{Value, json};

use crate::harness::*;

fn probe_route(origin: std::net::SocketAddr, script: Value) -> String {
    format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  authz: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - match: {{ path_prefix: / }}\n    cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        serde_json::to_string(&script).unwrap()
    )
}

#[tokio::test]
async fn header_edits_reach_origin_and_client_over_h1_and_h2() {
    let origin = origin("o");
    let weir = Weir::start(&probe_route(
        origin,
        json!({ "steps": {
            "request_headers": [["add_header", 0, "x-added", "yes"], ["remove_header", 0, "x-secret"], ["replace_header", 0, ":path", "/rewritten?q=1"]],
            "response_headers": [["add_header", 2, "x-resp", "1"], ["remove_header", 2, "x-demo-origin"]],
        }}),
    ));
    for c in [client(), h2_client()] {
        let resp = c.get(weir.url("/original")).header("x-secret", "s").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-resp"], "1");
        assert!(resp.headers().get("x-demo-origin").is_none());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["path"], "/rewritten?q=1");
        assert_eq!(seen(&body, "x-added").as_deref(), Some("yes"));
        assert_eq!(seen(&body, "x-secret"), None);
        assert!(seen(&body, "x-request-id").is_some(), "weir adds x-request-id as Envoy does");
    }
    // A request every filter passed logs the route's summary (made once per route).
    let passed = eventually(async || weir.logs().contains("filters=\"probe:passed\"")).await;
    assert!(passed, "the access log says the filter passed the request");
    // The filter's time is observed once per request, all its callbacks together.
    let c = client();
    let metrics = async || c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let counted = eventually(async || metrics().await.contains("weir_filter_seconds_count{plugin=\"probe\"} 2")).await;
    assert!(counted, "{}", metrics().await);
}

/// A filter that reads no header while the request goes upstream reads the request's headers
/// in later callbacks (as properties in the response's, from the maps in `on_log`, where
/// Envoy lets a filter read them), and the response's in `on_log`: weir builds what filters
/// see of the headers when a filter first reads them, from the request as it went upstream
/// and the response as it came back.
#[tokio::test]
async fn headers_first_read_in_later_callbacks_are_the_exchanges() {
    let origin = origin("o");
    let late = json!({ "steps": {
        "response_headers": [["get_property", ["request", "path"]]],
        "response_body": [["get_property", ["request", "headers", "x-client"]]],
    }});
    // The header callbacks log the entry counts they are told (INFO: request, WARN: response).
    let log = json!({ "steps": {
        "request_headers": [["log", 2, "$headers"]],
        "response_headers": [["log", 3, "$headers"]],
        "log": [["get_header", 0, ":method"], ["get_header", 2, "x-demo-origin"], ["get_header", 0, "x-client"], ["get_header", 2, ":status"], ["get_headers", 0]],
    }});
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - match: {{ path_prefix: /late }}\n    cluster: origin\n    filters: [{{ plugin: probe, config: {late} }}]\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {log} }}]\n",
        probe()
    ));
    for path in ["/late?q=1", "/log"] {
        let resp = client().get(weir.url(path)).header("x-client", "c1").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let logged = async || weir.probe_lines().iter().filter(|l| l["cb"] == "log").count() == 5;
    assert!(eventually(logged).await, "{:?}", weir.probe_lines());
    let lines = weir.probe_lines();
    let value = |cb: &str, nth: usize| {
        lines.iter().filter(|l| l["cb"] == cb).nth(nth).map(|l| l["value"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(value("response_headers", 0).as_deref(), Some("/late?q=1"), "{lines:?}");
    assert_eq!(value("response_body", 0).as_deref(), Some("c1"));
    assert_eq!(value("log", 0).as_deref(), Some("GET"), "{lines:?}");
    assert_eq!(value("log", 1).as_deref(), Some("o"));
    assert_eq!(value("log", 2).as_deref(), Some("c1"));
    assert_eq!(value("log", 3).as_deref(), Some("200"));
    // The counts the header callbacks were told, with no view built: the request's is its
    // view's size (as `on_log` reads it: the request went upstream as it was), the response's
    // is `:status` and the origin's three headers (`on_log` also sees the `date` and
    // `connection` the response was sent with, as Envoy sets `date` after its filters:
    // `ActiveStream::encodeHeaders` in source/common/http/conn_manager_impl.cc).
    let hex = lines.iter().filter(|l| l["cb"] == "log").nth(4).unwrap()["hex"].as_str().unwrap().to_owned();
    let byte = |i: usize| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    let request = u32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)]);
    assert!(request > 4, "{lines:?}");
    let logs = weir.logs();
    assert!(logs.contains(&format!("INFO weir::filter: {request} ")), "request headers told {request}:\n{logs}");
    assert!(logs.contains("WARN weir::filter: 4 "), "response headers told 4:\n{logs}");
}

#[tokio::test]
async fn bodies_are_buffered_and_replaced_with_correct_framing() {
    let origin = origin("o");
    let weir = Weir::start(&probe_route(
        origin,
        json!({
            "steps": {
                "request_headers": [["remove_header", 0, "content-length"]],
                "request_body_end": [["set_buffer", 0, 0, 4294967295u64, "REPLACED-REQUEST-BODY"]],
                "response_headers": [["remove_header", 2, "content-length"]],
                "response_body_end": [["set_buffer", 1, 0, 4294967295u64, "new response body"]],
            },
            // Buffer every chunk; replace the whole body once, at its end.
            "actions": { "request_body": "pause", "response_body": "pause" },
        }),
    ));
    let resp = client().post(weir.url("/upload")).body(vec![b'a'; 100_000]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "new response body");
}

#[tokio::test]
async fn local_replies_never_reach_the_origin() {
    let origin = origin("o");
    let weir = Weir::start(&probe_route(
        origin,
        json!({ "steps": { "request_headers": [["local_response", 403, "blocked", "go away", [["x-why", "probe"]], -1]] } }),
    ));
    for c in [client(), h2_client()] {
        let resp = c.get(weir.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["x-why"], "probe");
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.text().await.unwrap(), "go away");
    }
    // Access-log lines reach the log within the writer's gathering time.
    let named = eventually(async || weir.logs().contains("filters=\"probe:replied\"")).await;
    assert!(named, "the access log names the filter that answered");
}

#[tokio::test]
async fn pause_for_a_callout_holds_the_request_until_it_continues() {
    let origin = origin("o");
    let weir = Weir::start(&probe_route(
        origin,
        json!({
            "steps": {
                "request_headers": [["http_call", "authz", [[":method", "GET"], [":path", "/check"], [":authority", "authz"]], null, [], 2000]],
                "http_call_response": [["get_header", 6, ":status"], ["set_effective_context", "$origin"], ["add_header", 0, "x-authz", "checked"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }),
    ));
    let resp = client().post(weir.url("/paused")).body("payload").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(seen(&body, "x-authz").as_deref(), Some("checked"), "headers edited while paused reach the origin");
    assert_eq!(body["body_bytes"], 7, "the held body follows");
    let status =
        weir.probe_lines().into_iter().find(|l| l["op"] == "get_header" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(status["value"], "200");
}

#[tokio::test]
async fn callout_to_an_unreachable_cluster_gets_503() {
    let origin = origin("o");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let weir = Weir::start(&format!(
        "clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  dead: {{ endpoints: [\"{dead}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - match: {{ path_prefix: / }}\n    cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        json!({
            "steps": {
                "request_headers": [["http_call", "dead", [[":method", "GET"], [":path", "/"], [":authority", "dead"]], null, [], 1000]],
                "http_call_response": [["get_header", 6, ":status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        })
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let status =
        weir.probe_lines().into_iter().find(|l| l["op"] == "get_header" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(status["value"], "503");
}

#[tokio::test]
async fn shared_data_ticks_and_metrics() {
    let origin = origin("o");
    let weir = Weir::start(&probe_route(
        origin,
        json!({
            "steps": {
                "configure": [["set_tick_period", 20], ["define_metric", 0, "probe_requests"]],
                "tick": [["set_shared", "ticked", "yes", 0]],
                "request_headers": [["increment_metric", "$define_metric", 1], ["get_shared", "ticked"], ["set_shared", "seen", "1", 0]],
            }
        }),
    ));
    let c = client();
    assert!(
        eventually(async || {
            if let Ok(r) = c.get(weir.url("/")).send().await {
                let _ = r.bytes().await;
            }
            weir.probe_lines().iter().any(|l| l["op"] == "get_shared" && l["status"] == 0 && l["value"] == "yes")
        })
        .await,
        "on_tick ran and its shared data is visible to requests"
    );
    // A request is counted when it ends, just after its client has the whole response.
    let metrics = async || c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(eventually(async || metrics().await.contains("weir_requests_total{")).await, "{}", metrics().await);
    let metrics = metrics().await;
    assert!(metrics.contains("probe_requests "), "filter metrics are exported:\n{metrics}");
    assert!(metrics.contains("weir_filter_seconds_bucket{plugin=\"probe\""));
}

/// Replies weir makes itself pass the filters' response callbacks, as Envoy's local replies
/// pass its encoder filters (`FilterManager::sendLocalReplyViaFilterChain`): a filter sees an
/// upstream failure's 503 and a direct response's status, edits their headers and replaces a
/// reply's body, and the client gets the edited reply with a length that matches its body.
#[tokio::test]
async fn weirs_own_replies_pass_the_filters_response_callbacks() {
    let (dead, _held) = closed_port();
    let script = json!({ "steps": {
        "response_headers": [["get_header", 2, ":status"], ["add_header", 2, "x-seen", "reply"]],
        "response_body": [["set_buffer", 1, 0, 10000, "replaced by the filter\n"]],
    }});
    let weir = Weir::start(&format!(
        "clusters:\n  dead: {{ endpoints: [\"{dead}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - match: {{ path: /gone }}\n    direct_response: {{ status: 410 }}\n    filters: [{{ plugin: probe, config: {script} }}]\n  - cluster: dead\n    filters: [{{ plugin: probe, config: {script} }}]\n",
        probe()
    ));
    for c in [client(), h2_client()] {
        let resp = c.get(weir.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers().get("x-seen").map(|v| v.as_bytes()), Some(&b"reply"[..]));
        assert_eq!(resp.text().await.unwrap(), "replaced by the filter\n");

        let resp = c.get(weir.url("/gone")).send().await.unwrap();
        assert_eq!(resp.status(), 410);
        assert_eq!(resp.headers().get("x-seen").map(|v| v.as_bytes()), Some(&b"reply"[..]));
        assert_eq!(resp.text().await.unwrap(), "", "a reply without a body gets no body callback");
    }
    let statuses: Vec<Value> =
        weir.probe_lines().into_iter().filter(|l| l["op"] == "get_header").map(|l| l["value"].clone()).collect();
    assert_eq!(
        statuses,
        [json!("503"), json!("410"), json!("503"), json!("410")],
        "the filter saw each reply's status"
    );
    let logged = eventually(async || weir.logs().contains("status=503") && weir.logs().contains("status=410")).await;
    assert!(logged, "{}", weir.logs());
}
