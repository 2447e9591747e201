//! Foreign functions (docs/abi.md#foreign-function-hostcall, #foreign-functions; checklist items 148–150).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn compress_uncompress_clear_route_cache_and_unknown_names() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["foreign", "compress", "68656c6c6f"], ["foreign", "uncompress", "789ccb48cdc9c90700062c0215"],
        ["foreign", "uncompress", "00ff00ff"], ["foreign", "no_such_function", null], ["foreign", "clear_route_cache", null],
    ]})));
    let mut chain = FilterChain::new(vec![p]);
    assert!(is_continue(&chain.on_request_headers(&mut get("/"), true)));
    let l = h.log.take();
    let st: Vec<i64> = l.iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [0, 0, 3, 1, 0]);
    assert!(l[0]["hex"].as_str().unwrap().starts_with("78"), "zlib stream");
    assert_eq!(l[1]["value"], "hello");
    assert!(chain.take_clear_route_cache(), "clear_route_cache asks the host to route again");
}
