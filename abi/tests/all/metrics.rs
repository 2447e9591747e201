//! Metrics (docs/abi.md#metrics; checklist items 116–120).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn counters_gauges_histograms() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["define_metric", 3, "bad"],
        ["define_metric", 0, "requests_total"], ["increment_metric", "$define_metric", 5], ["increment_metric", "$define_metric", 0],
        ["increment_metric", "$define_metric", -1], ["record_metric", "$define_metric", 7], ["get_metric", "$define_metric"],
        ["define_metric", 1, "inflight"], ["record_metric", "$define_metric", 10], ["increment_metric", "$define_metric", -3], ["get_metric", "$define_metric"],
        ["define_metric", 2, "latency"], ["record_metric", "$define_metric", 42], ["increment_metric", "$define_metric", 1], ["get_metric", "$define_metric"],
        ["get_metric", 4000], ["get_metric", 4003],
    ]})));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let l = h.log.take();
    let st: Vec<i64> = l.iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [2, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 1, 2], "{l:#?}");
    assert_eq!(l[1]["id"].as_u64().unwrap() % 4, 0);
    assert_eq!(l[7]["id"].as_u64().unwrap() % 4, 1);
    assert_eq!(l[11]["id"].as_u64().unwrap() % 4, 2);
    assert_eq!(l[6]["value"], "12");
    assert_eq!(l[10]["value"], "7");
    let all = h.rt.shared().metrics.snapshot();
    let latency = all.iter().find(|m| m.name == "latency").unwrap();
    assert_eq!((latency.histogram().count, latency.histogram().sum), (1, 42));
}
