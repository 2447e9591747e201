//! Local responses (docs/abi.md#local-replies, #after-local-reply): what the client gets, what the filter sees afterwards,
//! and the gRPC, HEAD and late cases.

use crate::suite::*;

conformance! {
    /// §10: 76, 77, 78, 81
    /// proves: proxy_send_local_response, proxy_on_response_headers, proxy_on_response_body, proxy_on_log
    async fn sdk_local_reply_reaches_the_client_and_not_the_origin(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "local_reply");
            let resp = proxy.get("/", &[]).await;
            assert_eq!(resp.status(), 403, "{sdk:?}");
            let h = resp.headers().clone();
            assert_eq!(h["x-conformance"], "denied", "{sdk:?}");
            assert_eq!(h.get_all("x-dup").iter().collect::<Vec<_>>(), ["1", "2"], "{sdk:?}: duplicates are all sent");
            assert_eq!(h["content-type"], "text/plain", "{sdk:?}");
            assert_eq!(h["content-length"], "15", "{sdk:?}");
            assert_eq!(resp.text().await.unwrap(), "denied by probe", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "sent").await, "ok", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "status").await, "403", "{sdk:?}: the reply passes on_response_headers");
            assert_eq!(proxy.value(sdk, "response_body").await, "15,1", "{sdk:?}: and on_response_body");
            proxy.value(sdk, "log").await;
        }
    }
}

conformance! {
    /// §10: 79
    /// proves: proxy_send_local_response
    async fn sdk_local_reply_with_empty_body_has_no_framing_headers(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "local_reply");
            let resp = proxy.get("/", &[("x-reply-empty", "1")]).await;
            assert_eq!(resp.status(), 204, "{sdk:?}");
            assert!(resp.headers().get("content-type").is_none(), "{sdk:?}");
            assert!(resp.headers().get("content-length").is_none(), "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 78, 79, 80, 82
    /// proves: proxy_send_local_response, proxy_get_property
    async fn raw_content_type_and_details(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["local_response", 200, "my reply details", "{}", [["content-type", "application/json"]], -1]],
            "log": [["get_property", ["response", "code_details"]]],
        })));
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.headers()["content-type"], "application/json", "a plugin content-type is kept");
        assert_eq!(resp.text().await.unwrap(), "{}");
        let log = proxy.wait_lines("log", 1).await;
        assert_eq!(log[0]["value"], "my_reply_details", "spaces become underscores");
    }
}

conformance! {
    /// §10: 83, 84
    /// proves: proxy_send_local_response
    async fn grpc_requests_get_trailers_only_replies(mode) {
        // An explicit gRPC status, then -1: mapped from the HTTP code (403 → PERMISSION_DENIED).
        for (grpc_status, expected) in [(13, "13"), (-1, "7")] {
            let proxy = Proxy::raw(mode, steps(json!({
                "request_headers": [["local_response", 403, "", "no way: 100%", [], grpc_status]],
            })));
            let request = proxy
                .http2()
                .post(proxy.url("/pkg.S/M"))
                .header("content-type", "application/grpc")
                .body(vec![0u8, 0, 0, 0, 0]);
            let resp = proxy.send(request).await;
            assert_eq!(resp.status(), 200, "gRPC errors ride on HTTP 200");
            assert_eq!(resp.headers()["grpc-status"], expected);
            assert_eq!(resp.headers()["grpc-message"], "no way: 100%25", "the body, percent-encoded as gRPC says");
        }
    }
}

conformance! {
    /// §10: 85, 86
    /// proves: proxy_send_local_response, proxy_on_response_headers
    async fn head_replies_have_no_body_and_response_headers_can_be_replaced(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "response_headers": [["local_response", 409, "", "replaced", [["x-local", "1"]], -1]],
        })));
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.status(), 409);
        assert_eq!(resp.headers()["x-local"], "1");
        assert!(resp.headers().get("x-demo-origin").is_none(), "the upstream response is replaced");
        assert_eq!(resp.text().await.unwrap(), "replaced");
        let head = proxy.send(proxy.http1().head(proxy.url("/"))).await;
        assert_eq!(head.status(), 409);
        assert!(head.bytes().await.unwrap().is_empty());
    }
}

conformance! {
    /// §10: 87
    /// proves: proxy_send_local_response, proxy_on_response_body
    async fn a_reply_after_the_response_started_resets_the_stream(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "response_body": [["local_response", 500, "", "late", [], -1]],
        })));
        // The response headers went out before on_response_body ran: all Envoy can do is reset.
        assert!(proxy.get_is_broken("/").await, "the client sees a broken response, not a second one");
    }
}
