//! Foreign functions (docs/abi.md#foreign-function-hostcall, #foreign-functions).

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

conformance! {
    /// §10: 54, 150
    /// proves: proxy_call_foreign_function, proxy_replace_header_map_value
    async fn clear_route_cache_picks_the_route_again(mode) {
        let (first, second) = (origin("first"), origin("second"));
        let rewrite = |clear: bool| {
            let mut ops = vec![json!(["replace_header", 0, ":path", "/b/x"])];
            if clear {
                ops.push(json!(["foreign", "clear_route_cache", ""]));
            }
            steps(json!({ "request_headers": ops }))
        };
        let proxy = Proxy::from_config(
            mode,
            &format!(
                "clusters:\n  first: {{ endpoints: [\"{first}\"] }}\n  second: {{ endpoints: [\"{second}\"] }}\nplugins:\n{}routes:\n  - match: {{ path_prefix: /keep/ }}\n    cluster: first\n    filters: [{{ plugin: probe, config: {} }}]\n  - match: {{ path_prefix: /a/ }}\n    cluster: first\n    filters: [{{ plugin: probe, config: {} }}]\n  - match: {{ path_prefix: /b/ }}\n    cluster: second\n",
                plugin(probe(), ""),
                rewrite(false),
                rewrite(true)
            ),
        );
        // Envoy 1.33+ keeps the route after a rewrite only for modules of ABI above 0.2.1; the
        // probe's 0.2.1 (like every SDK's) still re-routes (changelog: "The route cache will not
        // be cleared by default if ... the ABI version of wasm extension is larger then 0.2.1").
        let rerouted = origin_saw(proxy.get("/keep/x", &[]).await).await;
        assert_eq!((rerouted["origin"].as_str(), rerouted["path"].as_str()), (Some("second"), Some("/b/x")), "a rewrite re-routes");
        let moved = origin_saw(proxy.get("/a/x", &[]).await).await;
        assert_eq!((moved["origin"].as_str(), moved["path"].as_str()), (Some("second"), Some("/b/x")), "after clear_route_cache the route is matched again");
    }
}
