//! Callouts as Envoy delivers them: a gRPC call over HTTP/2 to a cluster, and a timeout that
//! reaches the filter as a 504.

use serde_json::json;

use crate::harness::*;

fn probe_config(clusters: &str, script: serde_json::Value) -> String {
    format!(
        "clusters:\n{clusters}plugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {script} }}]\n",
        probe()
    )
}

#[tokio::test]
async fn grpc_unary_call_over_http2() {
    let (origin, grpc) = (origin("o"), grpc_server());
    let weir = Weir::start(&probe_config(
        &format!("  origin: {{ endpoints: [\"{origin}\"] }}\n  grpc: {{ endpoints: [\"{grpc}\"], http2: true }}\n"),
        json!({
            "steps": {
                "request_headers": [["grpc_call", "grpc", "pkg.Echo", "Ping", [["x-md", "1"]], "hello", 2000]],
                "grpc_receive": [["get_buffer", 5, 0, 100], ["set_effective_context", "$origin"], ["continue_stream", 0]],
                "grpc_close": [["get_status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }),
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let lines = weir.probe_lines();
    let got = lines.iter().find(|l| l["cb"] == "grpc_receive" && l["op"] == "get_buffer");
    assert_eq!(got.map(|l| l["value"].clone()), Some(json!("pong:/pkg.Echo/Ping:hello")), "{lines:#?}");
}

#[tokio::test]
async fn callout_timeout_reaches_the_filter_as_504() {
    let origin = origin("o");
    let silent_addr = silent_server();
    let weir = Weir::start(&probe_config(
        &format!("  origin: {{ endpoints: [\"{origin}\"] }}\n  silent: {{ endpoints: [\"{silent_addr}\"] }}\n"),
        json!({
            "steps": {
                "request_headers": [["http_call", "silent", [[":method", "GET"], [":path", "/"], [":authority", "silent"]], null, [], 200]],
                "http_call_response": [["get_header", 6, ":status"], ["get_buffer", 4, 0, 100], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }),
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let lines = weir.probe_lines();
    let status = lines.iter().find(|l| l["op"] == "get_header" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(status["value"], "504");
    let body = lines.iter().find(|l| l["op"] == "get_buffer" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(body["value"], "upstream request timeout");
}
