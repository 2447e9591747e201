//! Header maps (docs/abi.md#header-maps; checklist items 25, 34–45, 47, 49–53).

use serde_json::{Value, json};
use weir_abi::*;

use crate::common::*;

fn run(h: &Host, steps: Value) -> (StreamState, Vec<Value>) {
    let mut chain = FilterChain::new(vec![h.probe(script(steps))]);
    let mut s = get("/p?q=1");
    s.request_headers.add(b"x-dup", "one");
    s.request_headers.add(b"x-dup", "two");
    exchange(&mut chain, &mut s);
    (s, h.log.take())
}

#[test]
fn pairs_are_byte_exact_with_pseudo_headers_first() {
    let h = host();
    let (s, lines) = run(&h, json!({ "request_headers": [["get_headers", 0]] }));
    let expected = s.request_headers.encode();
    assert_eq!(lines[0]["hex"], hex(&expected));
    let pairs = lines[0]["pairs"].as_array().unwrap();
    assert_eq!(pairs[0], json!([":method", "GET"]));
    assert_eq!(pairs.len(), 7);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn lookups_follow_envoy() {
    let h = host();
    let (_, l) = run(
        &h,
        json!({ "request_headers": [
            ["get_header", 0, "USER-Agent"], ["get_header", 0, "x-dup"], ["get_header", 0, "missing"],
            ["get_header", 0, "host"], ["header_size", 0],
        ]}),
    );
    assert_eq!((l[0]["status"].clone(), l[0]["value"].clone()), (json!(0), json!("test")), "case-insensitive");
    assert_eq!(l[1]["value"], "one", "first of duplicates");
    assert_eq!(l[2]["status"], 1, "missing: NOT_FOUND");
    assert_eq!(l[3]["status"], 1, "Host only as :authority");
    let size = ":method".len()
        + 3
        + ":path".len()
        + 6
        + ":authority".len()
        + 11
        + ":scheme".len()
        + 4
        + "user-agent".len()
        + 4
        + 2 * ("x-dup".len())
        + 6;
    assert_eq!(l[4]["size"], size, "byte size of names and values");
}

#[test]
fn edits_follow_envoy_and_reach_the_stream() {
    let h = host();
    let (s, l) = run(
        &h,
        json!({ "request_headers": [
            ["add_header", 0, "X-Dup", "three"], ["replace_header", 0, "x-new", "v"], ["remove_header", 0, "user-agent"],
            ["remove_header", 0, "absent"], ["replace_header", 0, ":path", "/rewritten"],
        ]}),
    );
    assert!(l.iter().all(|v| v["status"] == 0));
    assert_eq!(s.request_headers.get_all(b"x-dup").count(), 3, "add appends");
    assert_eq!(s.request_headers.iter().filter(|(k, _)| *k == b"x-dup").count(), 3, "stored lower-case");
    assert_eq!(s.request_headers.get_str("x-new"), Some("v"));
    assert!(s.request_headers.get(b"user-agent").is_none());
    assert_eq!(s.request_headers.get_str(":path"), Some("/rewritten"));
}

#[test]
fn set_pairs_replaces_everything_and_malformed_empties() {
    let h = host();
    let (s, _) = run(&h, json!({ "request_headers": [["set_headers", 0, [[":path", "/x"], ["A", "1"]]]] }));
    assert_eq!(s.request_headers.iter().collect::<Vec<_>>(), vec![(&b":path"[..], &b"/x"[..]), (&b"a"[..], &b"1"[..])]);
    let (s, l) = run(&h, json!({ "request_headers": [["set_headers_raw", 0, "0100000005000000"]] }));
    assert_eq!(l[0]["status"], 0, "Envoy answers OK");
    assert!(s.request_headers.is_empty(), "and the map is empty");
}

#[test]
fn maps_exist_only_in_their_phase() {
    let h = host();
    let (_, l) = run(
        &h,
        json!({
            "request_headers": [["continue_stream", 0], ["add_header", 0, "late", "1"], ["get_header", 0, ":path"]],
            "response_headers": [["get_header", 0, ":path"], ["get_headers", 0], ["get_header", 2, ":status"], ["add_header", 6, "k", "v"]],
            "log": [["get_header", 0, ":path"], ["add_header", 0, "k", "v"], ["get_header", 2, ":status"], ["get_header", 1, "t"]],
        }),
    );
    let st: Vec<i64> = l.iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [0, 2, 2, 2, 0, 0, 2, 0, 2, 0, 1], "{l:#?}");
    assert_eq!(l[4]["ptr_null"], true, "pairs of an unavailable map: OK, empty");
    assert_eq!(l[5]["value"], "200");
    assert_eq!(l[9]["value"], "200", "response headers readable in on_log");
}

#[test]
fn bad_map_types_are_bad_arguments() {
    let h = host();
    let (_, l) = run(
        &h,
        json!({ "request_headers": [["get_header", 8, "a"], ["add_header", 4, "a", "b"], ["get_headers", 9]] }),
    );
    assert!(l.iter().all(|v| v["status"] == 2), "{l:#?}");
}

#[test]
fn trailers_can_be_created_at_the_end_of_the_body() {
    let h = host();
    let p = h.probe(script(json!({ "request_body": [["add_header", 1, "x-trailer", "t"]] })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, false);
    s.request_body.extend_from_slice(b"a");
    chain.on_request_body(&mut s, false);
    assert!(s.request_trailers.is_none(), "not before the end of the stream");
    s.request_body.extend_from_slice(b"b");
    chain.on_request_body(&mut s, true);
    assert_eq!(s.request_trailers.as_ref().unwrap().get_str("x-trailer"), Some("t"));
    let statuses: Vec<_> = h.log.take().iter().map(|v| v["status"].clone()).collect();
    assert_eq!(statuses, [json!(2), json!(0)]);
}
