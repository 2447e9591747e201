//! gRPC callouts (docs/abi.md#grpc-callouts): unary calls to an HTTP/2 cluster, their success and failure
//! callbacks, and the token rules.

use crate::suite::*;

fn grpc_proxy(mode: Mode, script: Value) -> Proxy {
    let grpc = crate::harness::grpc_server();
    Proxy::custom(
        mode,
        &format!("  grpc: {{ endpoints: [\"{grpc}\"], http2: true }}\n"),
        &plugin(probe(), ""),
        &script.to_string(),
    )
}

conformance! {
    /// §10: 100, 101
    /// proves: proxy_grpc_call, proxy_on_grpc_receive, proxy_get_buffer_bytes
    async fn unary_success_is_one_receive_and_no_close(mode) {
        let proxy = grpc_proxy(mode, json!({
            "steps": {
                "request_headers": [
                    ["grpc_call", "nowhere", "pkg.Echo", "Ping", [], "x", 1000],
                    ["grpc_call", "grpc", "pkg.Echo", "Ping", [["x-md", "1"]], "hello", 2000],
                ],
                "grpc_receive": [["get_buffer", 5, 0, 100], ["set_effective_context", "$origin"], ["continue_stream", 0]],
                "grpc_close": [["get_status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let calls = proxy.wait_lines("request_headers", 2).await;
        assert_eq!(statuses(&calls), [4, 0], "unknown cluster: PARSE_FAILURE");
        let receive = proxy.wait_lines("grpc_receive", 3).await;
        assert_eq!(receive[0]["value"], "pong:/pkg.Echo/Ping:hello");
        assert!(proxy.lines_of("grpc_close").is_empty(), "a unary success has no close");
    }
}

conformance! {
    /// §10: 102, 104
    /// proves: proxy_grpc_call, proxy_on_grpc_close, proxy_get_status, proxy_grpc_send
    async fn unary_failure_closes_with_the_status(mode) {
        let proxy = grpc_proxy(mode, json!({
            "steps": {
                "request_headers": [["grpc_call", "grpc", "pkg.Echo", "Fail", [], "x", 2000], ["grpc_send", "$grpc_call", "m", false], ["grpc_send", 99999, "m", false]],
                "grpc_close": [["get_status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let calls = proxy.wait_lines("request_headers", 3).await;
        assert_eq!(statuses(&calls), [0, 2, 1], "send on a call token: BAD_ARGUMENT; unknown: NOT_FOUND");
        let close = proxy.wait_lines("grpc_close", 1).await;
        assert_eq!((close[0]["code"].clone(), close[0]["value"].clone()), (json!(5), json!("nope")));
    }
}

conformance! {
    /// §10: none
    /// proves: proxy_grpc_stream, proxy_on_grpc_close, proxy_get_status
    async fn a_stream_is_closed_at_once_as_unimplemented(mode) {
        // weir's callout client carries unary calls only: a stream ends with UNIMPLEMENTED,
        // so the filter learns why instead of waiting for messages that never come.
        let proxy = grpc_proxy(mode, json!({
            "steps": {
                "request_headers": [["grpc_stream", "grpc", "pkg.Echo", "Chat", []]],
                "grpc_close": [["get_status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }));
        assert_eq!(proxy.get("/", &[]).await.status(), 200, "the filter resumed from on_grpc_close");
        assert_eq!(proxy.wait_lines("request_headers", 1).await[0]["status"], 0, "the stream gets a token");
        let close = proxy.wait_lines("grpc_close", 1).await;
        assert_eq!(close[0]["code"], 12);
        assert_eq!(close[0]["value"], "gRPC streams are not supported by weir");
    }
}
