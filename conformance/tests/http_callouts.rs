//! HTTP callouts (docs/abi.md#http-callouts): dispatch, the answer in the root's callback, and the synthetic
//! 503/504 answers Envoy gives for unreachable and silent upstreams.

use crate::suite::*;

conformance! {
    /// §10: 66, 67, 90, 91, 92
    /// proves: proxy_http_call, proxy_on_http_call_response, proxy_get_header_map_value, proxy_continue_stream
    async fn sdk_call_pauses_the_request_and_its_answer_resumes_it(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "http_call");
            let body = origin_saw(proxy.get("/guarded", &[]).await).await;
            assert_eq!(seen(&body, "x-call-status").as_deref(), Some("200"), "{sdk:?}: edits made in the answer's callback");
            assert_eq!(proxy.value(sdk, "dispatch").await, "ok", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "call_status").await, "200", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "call_body").await, "nonempty", "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 89
    /// proves: proxy_http_call
    async fn sdk_call_to_an_unknown_cluster_is_refused(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "http_call");
            let resp = proxy.get("/", &[("x-call-cluster", "nowhere")]).await;
            assert_eq!(resp.status(), 200, "{sdk:?}: the filter continued");
            assert_eq!(proxy.value(sdk, "dispatch").await, "bad_argument", "{sdk:?}");
        }
    }
}

const CALL: &str = "[[\":method\", \"GET\"], [\":path\", \"/c\"], [\":authority\", \"c.test\"]]";

conformance! {
    /// §10: 89, 90, 91, 92, 96, 97, 98
    /// proves: proxy_http_call, proxy_on_http_call_response, proxy_get_header_map_pairs, proxy_get_buffer_bytes
    async fn raw_calls_follow_envoy(mode) {
        let call: Value = serde_json::from_str(CALL).unwrap();
        let post = json!([[":method", "POST"], [":path", "/c"], [":authority", "c.test"]]);
        let proxy = Proxy::raw(mode, json!({
            "steps": {
                "request_headers": [
                    ["http_call", "origin", [[":method", "GET"], [":path", "/c"]], null, [], 1000],
                    ["http_call", "nowhere", call, null, [], 1000],
                    ["http_call", "origin", post, "payload", [], 0],
                    ["http_call", "origin", post, "payload", [], 1000],
                ],
                "http_call_response": [["get_headers", 6], ["get_buffer", 4, 0, 10000], ["get_headers", 7], ["continue_stream", 0]],
                "response_headers": [["get_buffer", 4, 0, 10], ["get_header", 6, ":status"]],
            },
            "actions": { "request_headers": "pause" },
        }));
        assert_eq!(proxy.get("/", &[]).await.status(), 200, "the first answer resumed the request");
        let calls = proxy.wait_lines("request_headers", 4).await;
        assert_eq!(statuses(&calls), [2, 2, 0, 0], "missing :authority, unknown cluster: BAD_ARGUMENT");
        assert_ne!(calls[2]["token"], calls[3]["token"], "tokens are unique");
        let answer = proxy.wait_lines("http_call_response", 4).await;
        assert_eq!(answer[0]["pairs"][0][0], ":status", "the answer's headers start with :status");
        let body: Value = serde_json::from_str(answer[1]["value"].as_str().unwrap()).unwrap();
        assert_eq!(seen(&body, "content-length").as_deref(), Some("7"), "a body is sent with its length");
        assert_eq!(body["body"], "payload");
        assert_eq!((answer[2]["status"].clone(), answer[2]["ptr_null"].clone()), (json!(0), json!(true)), "no trailers");
        let outside = proxy.wait_lines("response_headers", 2).await;
        assert_eq!(outside[0]["status"], 1, "call body outside its callback: NOT_FOUND");
        assert_eq!(outside[1]["status"], 2, "call headers outside its callback: not available");
    }
}

conformance! {
    /// §10: 93, 94
    /// proves: proxy_http_call, proxy_on_http_call_response
    async fn silent_and_unreachable_upstreams_answer_504_and_503(mode) {
        let (silent, (closed, _held)) = (crate::harness::silent_server(), crate::harness::closed_port());
        for (upstream, timeout, status, body) in [(silent, 300, "504", "upstream request timeout"), (closed, 3000, "503", "")] {
            let proxy = Proxy::custom(
                mode,
                &format!("  upstream: {{ endpoints: [\"{upstream}\"] }}\n"),
                &plugin(probe(), ""),
                &json!({
                    "steps": {
                        "request_headers": [["http_call", "upstream", [[":method", "GET"], [":path", "/"], [":authority", "u"]], null, [], timeout]],
                        "http_call_response": [["get_header", 6, ":status"], ["get_buffer", 4, 0, 100], ["continue_stream", 0]],
                    },
                    "actions": { "request_headers": "pause" },
                })
                .to_string(),
            );
            assert_eq!(proxy.get("/", &[]).await.status(), 200);
            let answer = proxy.wait_lines("http_call_response", 2).await;
            assert_eq!(answer[0]["value"], status, "{upstream}");
            if !body.is_empty() {
                assert_eq!(answer[1]["value"], body);
            }
        }
    }
}
