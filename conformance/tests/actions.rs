//! Actions, pause and resume (docs/abi.md#stream-control, #pause-resume): what a callback's return value and the stream
//! control hostcalls do to the request.

use crate::suite::*;

conformance! {
    /// §10: 66, 67, 73
    /// proves: proxy_continue_stream, proxy_on_http_call_response, proxy_set_effective_context
    async fn pause_holds_everything_until_the_callout_resumes(mode) {
        let proxy = Proxy::raw(mode, json!({
            "steps": {
                "request_headers": [["http_call", "origin", [[":method", "GET"], [":path", "/auth"], [":authority", "a"]], null, [], 2000]],
                "request_body": [["buffer_status", 0]],
                "http_call_response": [["set_effective_context", "$origin"], ["add_header", 0, "x-resumed", "1"], ["continue_stream", 0], ["log", 2, "after resume"]],
            },
            "actions": { "request_headers": "pause" },
        }));
        let body = origin_saw(proxy.send(proxy.http1().post(proxy.url("/")).body("held body")).await).await;
        assert_eq!(seen(&body, "x-resumed").as_deref(), Some("1"), "edits from the callout's callback");
        assert_eq!(body["body"], "held body", "the held body follows");
        let lines = proxy.lines();
        let order: Vec<_> = lines.iter().map(|l| l["cb"].as_str().unwrap()).collect();
        let answered = order.iter().position(|c| *c == "http_call_response").unwrap();
        let body_cb = order.iter().position(|c| *c == "request_body").expect("on_request_body ran for the held body");
        assert!(answered < body_cb, "no body callback before the resume: {order:?}");
        let after = lines.iter().position(|l| l["op"] == "log").unwrap();
        assert!(after < body_cb, "the resume takes effect after the callback returns");
    }
}

conformance! {
    /// §10: 69
    /// proves: proxy_on_request_headers, proxy_on_request_body
    async fn rich_return_values_are_read_as_envoy_does(mode) {
        // 2 (ContinueAndEndStream) is treated as Continue; 3 and larger stop.
        for (value, stops) in [(2, false), (3, true), (7, true)] {
            let proxy = Proxy::raw(mode, json!({ "actions": { "request_headers": value } }));
            proxy.reload_if_asked().await;
            let sent = tokio::time::timeout(std::time::Duration::from_millis(1500), proxy.http1().get(proxy.url("/")).send()).await;
            match sent {
                Ok(Ok(resp)) => assert!(!stops || resp.status() != 200, "{value}: the request should have stopped"),
                Ok(Err(e)) => panic!("{value}: {e}"),
                Err(_) => assert!(stops, "{value}: the request should have continued"),
            }
        }
    }
}

conformance! {
    /// §10: 70
    /// proves: proxy_on_response_headers, proxy_continue_stream
    async fn a_paused_response_is_released_by_continue(mode) {
        let proxy = Proxy::raw(mode, json!({
            "steps": {
                "response_headers": [["http_call", "origin", [[":method", "GET"], [":path", "/r"], [":authority", "a"]], null, [], 2000]],
                "http_call_response": [["set_effective_context", "$origin"], ["add_header", 2, "x-released", "1"], ["continue_stream", 1]],
            },
            "actions": { "response_headers": "pause" },
        }));
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.headers()["x-released"], "1");
        assert_eq!(origin_saw(resp).await["path"], "/");
    }
}

conformance! {
    /// §10: 71, 72
    /// proves: proxy_continue_stream
    async fn continue_stream_arguments(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["continue_stream", 3], ["continue_stream", 4]],
            "configure": [["continue_stream", 0]],
        })));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        assert_eq!(statuses(&proxy.wait_lines("request_headers", 2).await), [12, 2], "UPSTREAM: UNIMPLEMENTED; 4: BAD_ARGUMENT");
        let root = proxy.wait_lines("configure", 1).await;
        assert!(statuses(&root).iter().all(|s| *s == 0), "from a root context (every worker's): OK, no effect");
    }
}

conformance! {
    /// §10: 74
    /// proves: proxy_close_stream
    async fn close_stream_resets_the_request(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["close_stream", 0]],
            "log": [["get_property", ["response", "code_details"]]],
        })));
        proxy.reload_if_asked().await;
        let result = proxy.http1().get(proxy.url("/")).send().await;
        assert!(result.is_err() || result.unwrap().status().is_server_error(), "no answer from the origin");
        let log = proxy.wait_lines("log", 1).await;
        assert_eq!(log[0]["value"], "wasm_close_stream");
    }
}
