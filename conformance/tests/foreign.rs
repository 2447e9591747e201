//! Foreign functions (ABI.md §3.15, §7).

use crate::suite::*;

conformance! {
    /// §10: 148, 149, 150
    /// proves: proxy_call_foreign_function
    async fn foreign_functions_follow_envoy(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["foreign", "no_such_function", ""], ["foreign", "compress", "68656c6c6f68656c6c6f68656c6c6f"],
            ["foreign", "uncompress", "0000"], ["foreign", "clear_route_cache", ""],
        ]})));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 4).await;
        assert_eq!(statuses(&l), [1, 0, 3, 0], "unknown: NOT_FOUND; garbage: SERIALIZATION_FAILURE");
        let compressed = l[1]["hex"].as_str().unwrap().to_owned();
        let back = Proxy::raw(mode, steps(json!({ "request_headers": [["foreign", "uncompress", compressed]] })));
        assert_eq!(back.get("/", &[]).await.status(), 200);
        assert_eq!(back.wait_lines("request_headers", 1).await[0]["value"], "hellohellohello", "round trip");
    }
}
