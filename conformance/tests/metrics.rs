//! Metrics (docs/abi.md#metrics): counters, gauges and histograms, exported on `/metrics`.

use crate::suite::*;

conformance! {
    /// §10: 117, 118, 120
    /// proves: proxy_define_metric, proxy_increment_metric, proxy_record_metric, proxy_get_metric
    async fn sdk_metrics_count_and_are_exported(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "metrics");
            for _ in 0..2 {
                assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}");
            }
            let counts = proxy.values(sdk, "counter");
            assert_eq!(counts.len(), 2, "{sdk:?}");
            let (a, b): (u64, u64) = (counts[0].parse().unwrap(), counts[1].parse().unwrap());
            assert_eq!(b, a + 1, "{sdk:?}: the counter grows by the increment");
            assert_eq!(proxy.values(sdk, "gauge")[0], "42", "{sdk:?}: record sets a gauge");
            let metrics = proxy.http1().get(proxy.weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
            for name in ["conformance_counter", "conformance_gauge", "conformance_histogram"] {
                assert!(metrics.contains(name), "{sdk:?}: {name} on /metrics:\n{metrics}");
            }
        }
    }
}

conformance! {
    /// §10: 116, 117, 118, 119, 120
    /// proves: proxy_define_metric, proxy_increment_metric, proxy_record_metric, proxy_get_metric
    async fn raw_metric_rules(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["define_metric", 3, "bad"],
            ["define_metric", 0, "c"], ["increment_metric", "$define_metric", 5], ["record_metric", "$define_metric", 7],
            ["get_metric", "$define_metric"], ["increment_metric", "$define_metric", -1],
            ["define_metric", 1, "g"], ["record_metric", "$define_metric", 10], ["increment_metric", "$define_metric", -3], ["get_metric", "$define_metric"],
            ["define_metric", 2, "h"], ["record_metric", "$define_metric", 1], ["increment_metric", "$define_metric", 1], ["get_metric", "$define_metric"],
            ["get_metric", 987654],
        ]})));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 15).await;
        assert_eq!(statuses(&l), [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 2, 1], "{l:#?}");
        for (i, kind) in [(1, 0), (6, 1), (10, 2)] {
            assert_eq!(l[i]["id"].as_u64().unwrap() % 4, kind, "the id encodes the type");
        }
        assert_eq!(l[4]["value"], "12", "counter: +5, then record 7 adds 7");
        assert_eq!(l[9]["value"], "7", "gauge: record sets, increment adds");
    }
}
