//! Effective context (docs/abi.md#context-management): callout callbacks run on the root and act on a stream only
//! after `set_effective_context`, which lasts for that callback only.

use crate::suite::*;

conformance! {
    /// §10: 48, 145, 146, 147
    /// proves: proxy_set_effective_context, proxy_on_http_call_response, proxy_send_local_response
    async fn effective_context_targets_the_stream_for_one_callback(mode) {
        let proxy = Proxy::raw(mode, json!({
            "steps": {
                "request_headers": [["http_call", "origin", [[":method", "GET"], [":path", "/a"], [":authority", "a"]], null, [], 2000]],
                "http_call_response": [
                    ["get_header", 0, ":path"], ["set_effective_context", 987654], ["set_effective_context", "$origin"], ["get_header", 0, ":path"],
                    ["local_response", 401, "from_callout", "callout said no", [], -1],
                ],
                "response_headers": [["get_header", 2, ":status"]],
            },
            "actions": { "request_headers": "pause" },
        }));
        let resp = proxy.get("/mine", &[]).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.text().await.unwrap(), "callout said no");
        let l = proxy.wait_lines("http_call_response", 5).await;
        // The Rust SDK itself makes the calling stream effective before its callback runs.
        assert_eq!(l[0]["status"], 0);
        assert_eq!(l[1]["status"], 2, "unknown id: BAD_ARGUMENT");
        assert_eq!((l[3]["status"].clone(), l[3]["value"].clone()), (json!(0), json!("/mine")));
        let later = proxy.wait_lines("response_headers", 1).await;
        assert_eq!(later[0]["value"], "401", "the next callback acts on its own stream");
    }
}
