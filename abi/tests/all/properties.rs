//! Properties (docs/abi.md#properties-hostcalls, #properties; checklist items 20, 121–130).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

fn le(hex: &str) -> i64 {
    let b: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    i64::from_le_bytes(b.try_into().unwrap())
}

#[test]
fn request_and_connection_attributes() {
    let h = host();
    let p = h.probe(script(json!({
        "configure": [["get_property", ["request", "path"]], ["get_property", ["xds", "node", "id"]], ["set_property", ["k"], "v"]],
        "request_headers": [
            ["get_property", ["request", "path"]], ["get_property", ["request.path"]], ["get_property", ["request", "url_path"]],
            ["get_property", ["request", "query"]], ["get_property", ["request", "method"]], ["get_property", ["source", "address"]],
            ["get_property", ["source", "port"]], ["get_property", ["request", "headers", "x-dup"]], ["get_property", ["connection", "mtls"]],
            ["get_property", ["node", "id"]], ["get_property", ["no_such_thing"]], ["set_property", ["my_key"], "val"],
            ["get_property", ["my_key"]], ["get_property", ["request", "protocol"]], ["get_property", ["connection_id"]],
            ["get_property_raw", "72657175657374007061746800"],
        ],
        "response_headers": [["get_property", ["response", "code"]], ["get_property", ["upstream", "address"]]],
        "log": [["get_property", ["request", "duration"]], ["get_property", ["response", "code_details"]]],
    })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/a/b?x=1");
    s.request_headers.add(b"x-dup", "1");
    s.request_headers.add(b"x-dup", "2");
    s.info.source = Some("10.1.2.3:5555".parse().unwrap());
    s.info.connection_id = 7;
    s.info.upstream_address = Some("127.0.0.1:9000".parse().unwrap());
    chain.on_request_headers(&mut s, true);
    s.response_headers = HeaderMap::from_pairs([(":status", "201")]).into();
    chain.on_response_headers(&mut s, true);
    s.info.duration = Some(std::time::Duration::from_millis(3));
    chain.finish(&mut s);
    let l = h.log.take();
    let v = |i: usize| l[i]["value"].as_str().unwrap().to_owned();
    assert_eq!(l[0]["status"], 1, "request.* from a root context: NOT_FOUND");
    assert_eq!(v(1), "weir");
    assert_eq!(l[2]["status"], 1, "set_property from a root: NOT_FOUND");
    assert_eq!(v(3), "/a/b?x=1");
    assert_eq!(l[4]["status"], 1, "segments are never split on '.'");
    assert_eq!((v(5), v(6), v(7)), ("/a/b".into(), "x=1".into(), "GET".into()));
    assert_eq!(v(8), "10.1.2.3:5555");
    assert_eq!(le(l[9]["hex"].as_str().unwrap()), 5555, "ints are 8-byte little-endian");
    assert_eq!(v(10), "1,2", "repeated headers joined with a comma");
    assert_eq!(l[11]["hex"], "00", "bool is one byte");
    assert_eq!(v(12), "weir", "legacy top-level names answered");
    assert_eq!(l[13]["status"], 1);
    assert_eq!((l[14]["status"].clone(), v(15)), (json!(0), "val".into()), "set_property then get_property");
    assert_eq!(v(16), "HTTP/1.1");
    assert_eq!(le(l[17]["hex"].as_str().unwrap()), 7);
    assert_eq!(v(18), "/a/b?x=1", "a trailing NUL is tolerated");
    assert_eq!(le(l[19]["hex"].as_str().unwrap()), 201);
    assert_eq!(v(20), "127.0.0.1:9000");
    assert_eq!(le(l[21]["hex"].as_str().unwrap()), 3_000_000, "duration in ns, in on_log");
    assert_eq!(v(22), "via_upstream");
    assert_eq!(s.filter_state(&["my_key"]).map(|b| &b[..]), Some(&b"val"[..]));
}
