//! Bodies and buffers (docs/abi.md#buffers): buffering by pausing, whole-body edits, and Envoy's
//! `copyFrom` rules for `set_buffer_bytes`.

use crate::suite::*;

conformance! {
    /// §10: 55, 56, 57, 58, 64
    /// proves: proxy_on_request_body, proxy_on_response_body, proxy_get_buffer_bytes, proxy_set_buffer_bytes
    async fn sdk_buffers_and_rewrites_both_bodies(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "body");
            let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("hello "), Ok("wide "), Ok("world")];
            let request = proxy.http1().post(proxy.url("/b")).body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
            let resp = proxy.send(request).await;
            assert_eq!(resp.status(), 200, "{sdk:?}");
            let text = resp.text().await.unwrap();
            let (json, suffix) = text.rsplit_once('\n').unwrap();
            assert_eq!(suffix, "|probe", "{sdk:?}: appended at the end of the buffered response");
            let body: Value = serde_json::from_str(json).unwrap();
            assert_eq!(body["body"], "HELLO WIDE WORLD", "{sdk:?}: the whole replaced body reached the origin");
            assert_eq!(proxy.value(sdk, "request_body").await, "hello wide world", "{sdk:?}: all of it at the end");
            let size: usize = proxy.value(sdk, "response_size").await.parse().unwrap();
            assert_eq!(size, json.len() + 1, "{sdk:?}: the accumulated response size");
        }
    }
}

conformance! {
    /// §10: 58, 59, 60, 61, 62
    /// proves: proxy_get_buffer_bytes, proxy_set_buffer_bytes, proxy_get_buffer_status
    async fn raw_buffer_edits_follow_envoy(mode) {
        // The body changes size: like any filter that does that, the probe drops content-length.
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [["remove_header", 0, "content-length"]], "request_body": [
            ["buffer_status", 0],
            ["get_buffer", 0, 100, 5], ["get_buffer", 0, 1, 100], ["get_buffer", 9, 0, 1], ["get_buffer", 4, 0, 1],
            ["set_buffer", 0, 2, 1, "x"], ["set_buffer", 6, 0, 0, "x"], ["set_buffer", 7, 0, 0, "x"],
            ["set_buffer", 0, 0, 0, "<"], ["set_buffer", 0, 4294967295u64, 0, ">"], ["get_buffer", 0, 0, 100],
        ]})));
        let body = origin_saw(proxy.send(proxy.http1().post(proxy.url("/")).body("abcd")).await).await;
        let l = proxy.wait_lines("request_body", 11).await;
        assert_eq!(statuses(&l), [0, 0, 0, 2, 1, 2, 2, 2, 0, 0, 0], "{l:#?}");
        assert_eq!((l[0]["size"].clone(), l[0]["flags"].clone()), (json!(4), json!(0)), "size, flags 0");
        assert_eq!(l[1]["ptr_null"], true, "start past the end: OK, nothing");
        assert_eq!(l[2]["value"], "bcd", "max larger than what is left: truncated");
        assert_eq!(l[10]["value"], "<abcd>", "prepend and append");
        assert_eq!(body["body"], "<abcd>");
    }
}

conformance! {
    /// §10: 63
    /// proves: proxy_on_request_body
    async fn buffering_past_the_limit_is_refused_with_413(mode) {
        let proxy = Proxy::raw(mode, json!({ "actions": { "request_body": "pause" } }));
        let resp = proxy.send(proxy.http1().post(proxy.url("/")).body(vec![b'x'; 2 << 20])).await;
        assert_eq!(resp.status(), 413, "Envoy's default buffer limit is 1 MiB");
    }
}
