//! Failure handling (docs/abi.md#failures): a filter that traps fails only its request, and later
//! requests follow the plugin's failure policy.

use crate::suite::*;

conformance! {
    /// §10: 138, 139
    /// proves: proxy_on_request_headers
    async fn sdk_trap_fails_closed(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family_one_worker(mode, sdk, "failure", "");
            let ok = origin_saw(proxy.get("/", &[]).await).await;
            assert_eq!(seen(&ok, "x-failure-probe").as_deref(), Some("passed"), "{sdk:?}");
            let failed = proxy.get("/", &[("x-fail", "1")]).await;
            assert_eq!(failed.status(), 503, "{sdk:?}");
            assert!(failed.bytes().await.unwrap().is_empty(), "{sdk:?}: an empty body");
            if mode == Mode::Plain {
                // Without a reload the failed VM stays failed: 503 without entering it.
                assert_eq!(proxy.get("/", &[]).await.status(), 503, "{sdk:?}");
            } else {
                // A reload brings fresh VMs: the next request is served again.
                assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}");
            }
        }
    }
}

conformance! {
    /// §10: 140
    /// proves: proxy_on_request_headers
    async fn sdk_trap_fails_open(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family_one_worker(mode, sdk, "failure", "failure_policy: fail_open");
            let resp = proxy.get("/", &[("x-fail", "1")]).await;
            let body = origin_saw(resp).await;
            assert_eq!(seen(&body, "x-failure-probe"), None, "{sdk:?}: the filter was skipped");
            let later = origin_saw(proxy.get("/", &[]).await).await;
            let expected = if mode == Mode::Plain { None } else { Some("passed") };
            assert_eq!(seen(&later, "x-failure-probe").as_deref(), expected, "{sdk:?}: bypassed until a reload");
        }
    }
}

conformance! {
    /// §10: 138, 141
    /// proves: proxy_on_request_headers
    async fn reload_policy_brings_a_fresh_instance_after_a_backoff(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family_one_worker(mode, sdk, "failure", "failure_policy: reload");
            assert_eq!(proxy.get("/", &[("x-fail", "1")]).await.status(), 503, "{sdk:?}");
            // After the backoff (1 s) a fresh VM serves; until then 503 (or, under reload, the
            // reload itself brought a fresh VM).
            let fresh = eventually(async || {
                let resp = proxy.get("/", &[]).await;
                resp.status() == 200 && seen(&resp.json::<Value>().await.unwrap(), "x-failure-probe").as_deref() == Some("passed")
            })
            .await;
            assert!(fresh, "{sdk:?}: a fresh instance ran the filter:\n{}", proxy.weir.logs());
            let named = eventually(async || proxy.weir.logs().contains("wasm_fail_stream")).await;
            assert!(named, "{sdk:?}: the access log names the cause");
        }
    }
}

conformance! {
    /// §10: 142
    /// proves: proxy_on_response_body
    async fn trap_after_the_response_started_resets_the_stream(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "response_body": [["panic", "late"]] })));
        assert!(proxy.get_is_broken("/").await, "the client sees a reset, not a complete answer");
    }
}

conformance! {
    /// §10: 143
    /// proves: proxy_on_tick
    async fn trap_in_on_tick_fails_the_instance(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["set_tick_period", 20]],
            "tick": [["panic", "tick"]],
        })));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let failed = eventually(async || proxy.weir.logs().contains("on_tick")).await;
        assert!(failed, "the trap is logged:\n{}", proxy.weir.logs());
        if mode == Mode::Plain {
            let later = eventually(async || proxy.http1().get(proxy.url("/")).send().await.is_ok_and(|r| r.status() == 503)).await;
            assert!(later, "later streams on the failed instance get 503");
        }
    }
}
