//! Bodies and buffers (docs/abi.md#buffers; checklist items 55–62).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn pause_accumulates_and_continue_releases_the_modified_body() {
    let h = host();
    let p = h.probe(json!({
        "steps": { "request_body": [["buffer_status", 0], ["get_buffer", 0, 0, 100]] },
        "actions": { "request_body": "pause" },
    }));
    let mut chain = FilterChain::new(vec![p.clone()]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, false);
    s.request_body.extend_from_slice(b"hello ");
    assert!(matches!(chain.on_request_body(&mut s, false), Outcome::Buffer));
    assert!(s.request_body.is_empty(), "nothing released while buffering");
    s.request_body.extend_from_slice(b"world");
    // The probe pauses at every chunk; at the end of the stream that is a pause with nothing to wait for.
    assert!(matches!(chain.on_request_body(&mut s, true), Outcome::Pause { ref callouts } if callouts.is_empty()));
    let l = h.log.take();
    assert_eq!(l[0]["size"], 6);
    assert_eq!(l[2]["size"], 11, "the next call sees the accumulated size");
    assert_eq!(l[3]["value"], "hello world");
}

#[test]
fn set_buffer_follows_envoy_copy_from() {
    let h = host();
    let p = h.probe(script(json!({ "request_body": [
        ["set_buffer", 0, 0, 0, "<"], ["set_buffer", 0, 2147483647, 0, ">"], ["set_buffer", 0, 1, 1, "x"],
        ["get_buffer", 0, 0, 100], ["get_buffer", 0, 100, 10], ["get_buffer", 0, 1, 2], ["get_buffer", 9, 0, 1],
        ["get_buffer", 0, 4294967295u64, 2], ["set_buffer", 6, 0, 0, "x"], ["get_buffer", 4, 0, 10], ["get_buffer", 5, 0, 10],
    ]})));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, false);
    s.request_body.extend_from_slice(b"body");
    assert!(is_continue(&chain.on_request_body(&mut s, true)));
    assert_eq!(&s.request_body[..], b"<body>", "the modified body is released");
    let l = h.log.take();
    let st: Vec<i64> = l.iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [0, 0, 2, 0, 0, 0, 2, 2, 2, 1, 0], "{l:#?}");
    assert_eq!(l[3]["value"], "<body>");
    assert_eq!(l[4]["ptr_null"], true, "start past the end: OK, no bytes");
    assert_eq!(l[5]["value"], "bo", "bounded by max_size");
}

#[test]
fn body_outside_its_callback_is_empty() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [["get_buffer", 0, 0, 10], ["set_buffer", 0, 0, 0, "x"]] })));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let l = h.log.take();
    assert_eq!((l[0]["status"].clone(), l[0]["ptr_null"].clone()), (json!(0), json!(true)));
    assert_eq!(l[1]["status"], 1);
}

#[test]
fn response_body_mirrors_the_request_side() {
    let h = host();
    let p = h.probe(json!({
        "steps": { "response_body": [["set_buffer", 1, 0, 4294967295u64, "replaced"]] },
    }));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, true);
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    chain.on_response_headers(&mut s, false);
    s.response_body.extend_from_slice(b"original");
    assert!(is_continue(&chain.on_response_body(&mut s, true)));
    assert_eq!(&s.response_body[..], b"replaced");
}
