//! Shared data (docs/abi.md#shared-data): compare-and-swap semantics, and values that outlive requests and
//! reloads for the same `vm_id`.

use crate::suite::*;

conformance! {
    /// §10: 109, 110
    /// proves: proxy_get_shared_data, proxy_set_shared_data
    async fn sdk_cas_semantics(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "shared_data");
            assert_eq!(proxy.get("/", &[("x-key", "cas")]).await.status(), 200, "{sdk:?}");
            let expect = [
                ("get_missing", "<none>"),
                ("set_new", "ok"),
                ("get", "v1"),
                ("cas_nonzero", "true"),
                ("set_current", "ok"),
                ("set_stale", "cas_mismatch"),
                ("final", "v2"),
            ];
            for (check, value) in expect {
                assert_eq!(proxy.value(sdk, check).await, value, "{sdk:?}: {check}");
            }
        }
    }
}

conformance! {
    /// §10: 109, 111, 112, 113
    /// proves: proxy_get_shared_data, proxy_set_shared_data
    async fn raw_values_persist_across_requests_and_reloads(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["get_shared", "kept"], ["set_shared", "kept", "value", 0], ["set_shared", "fresh", "x", 12345], ["set_shared", "empty", "", 0], ["get_shared", "empty"],
        ]})));
        proxy.get("/", &[]).await;
        proxy.get("/", &[]).await;
        let l = proxy.wait_lines("request_headers", 10).await;
        assert_eq!(l[0]["status"], 1, "missing: NOT_FOUND");
        assert_eq!(l[2]["status"], 0, "a CAS on a missing key creates it");
        assert_eq!((l[4]["status"].clone(), l[4]["ptr_null"].clone()), (json!(0), json!(true)), "empty value: OK, nothing");
        assert_ne!(l[4]["cas"], 0);
        assert_eq!(l[5]["value"], "value", "the second request (after a reload, in that mode) sees the first one's value");
    }
}
