//! Guest pointers (docs/abi.md#hostcalls; checklist items 135–137): every hostcall given out-of-bounds pointers
//! answers INVALID_MEMORY_ACCESS, without a trap, and the VM keeps working.

use serde_json::json;
use weir_abi::*;

use crate::common::*;

const HOSTCALLS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_get_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_get_status",
    "proxy_call_foreign_function",
    "proxy_define_metric",
    "proxy_get_metric",
];

#[test]
fn out_of_bounds_pointers_give_invalid_memory_access() {
    let h = host();
    let mut ops: Vec<serde_json::Value> = vec![
        json!(["register_queue", "q"]),
        json!(["define_metric", 0, "m"]),
        json!(["grpc_stream", "auth", "s", "m", []]),
    ];
    ops.extend(HOSTCALLS.iter().map(|n| json!(["oob", n])));
    ops.push(json!(["get_header", 0, ":path"]));
    let p = h.probe(script(json!({ "request_headers": ops })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    assert!(is_continue(&chain.on_request_headers(&mut s, true)), "no trap");
    let l = h.log.take();
    for (name, line) in HOSTCALLS.iter().zip(&l[3..]) {
        assert_eq!(line["status"], 6, "{name}: {line}");
    }
    assert_eq!(l.last().unwrap()["value"], "/", "the VM still works");
}

#[test]
fn empty_inputs_are_valid() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [["local_response", 200, null, null, null, -1]] })));
    let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    assert!(matches!(out, Outcome::LocalResponse(ref r) if r.status == 200 && r.body.is_empty()));
}
