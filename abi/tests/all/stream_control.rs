//! Stream control (docs/abi.md#stream-control, #pause-resume; checklist items 66, 69, 70, 71, 72, 73, 74).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn continue_and_close_codes() {
    let h = host();
    let p = h.probe(script(json!({
        "configure": [["continue_stream", 0], ["close_stream", 0]],
        "request_headers": [["continue_stream", 3], ["continue_stream", 4], ["close_stream", 4], ["continue_stream", 2]],
    })));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let st: Vec<i64> = h.log.take().iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [0, 0, 12, 2, 2, 0], "root: OK no-op; UPSTREAM: UNIMPLEMENTED; 4: BAD_ARGUMENT");
}

#[test]
fn pause_in_headers_holds_the_chain() {
    let h = host();
    let first = h.probe(json!({ "actions": { "request_headers": "pause" } }));
    let second = h.probe(script(json!({ "request_headers": [["log", 2, "second"]] })));
    let mut chain = FilterChain::new(vec![first, second]);
    let mut s = get("/");
    assert!(matches!(chain.on_request_headers(&mut s, true), Outcome::Pause { .. }));
    assert!(h.log.take().is_empty(), "the next filter is not called while paused");
}

#[test]
fn rich_return_values_are_decoded_like_envoy() {
    let h = host();
    for (value, pauses) in [(2, false), (3, true), (4, true), (7, true), (0, false)] {
        let p = h.probe(json!({ "actions": { "request_headers": value } }));
        let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
        assert_eq!(matches!(out, Outcome::Pause { .. }), pauses, "headers status {value}");
    }
}

#[test]
fn continue_in_the_same_callback_does_not_pause() {
    let h = host();
    let p = h.probe(
        json!({ "steps": { "request_headers": [["continue_stream", 0]] }, "actions": { "request_headers": "pause" } }),
    );
    assert!(is_continue(&FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true)));
}

#[test]
fn response_pause_and_close() {
    let h = host();
    let p = h.probe(json!({ "actions": { "response_headers": "pause" } }));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, true);
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    assert!(matches!(chain.on_response_headers(&mut s, true), Outcome::Pause { .. }));

    let p = h.probe(script(json!({ "request_headers": [["close_stream", 0]] })));
    assert!(matches!(FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true), Outcome::Close));
}
