//! Memory safety (docs/abi.md#failures, #checklist P): out-of-bounds pointers from a filter are an error status,
//! never a trap and never a host crash.

use crate::suite::*;

const HOSTCALLS: &[&str] = &[
    "proxy_log",
    "proxy_get_header_map_value",
    "proxy_get_header_map_pairs",
    "proxy_add_header_map_value",
    "proxy_get_buffer_bytes",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_send_local_response",
];

conformance! {
    /// §10: 135, 136
    /// proves: proxy_log, proxy_get_header_map_value, proxy_get_header_map_pairs, proxy_add_header_map_value, proxy_get_buffer_bytes, proxy_get_property, proxy_set_property, proxy_get_shared_data, proxy_set_shared_data, proxy_send_local_response
    async fn out_of_bounds_pointers_are_invalid_memory_access(mode) {
        let ops: Vec<Value> = HOSTCALLS.iter().map(|h| json!(["oob", h])).collect();
        let mut ops = ops;
        ops.push(json!(["set_shared", "empty", "", 0]));
        ops.push(json!(["local_response", 200, "", "", [], -1]));
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": ops })));
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.status(), 200, "the filter kept running and sent an empty reply");
        assert!(resp.bytes().await.unwrap().is_empty());
        let l = proxy.wait_lines("request_headers", HOSTCALLS.len() + 2).await;
        for (line, name) in l.iter().zip(HOSTCALLS) {
            assert_eq!(line["status"], 6, "{name}: INVALID_MEMORY_ACCESS");
        }
        assert_eq!(l[HOSTCALLS.len()]["status"], 0, "(0, 0) is an empty input");
        assert_eq!(proxy.get("/", &[]).await.status(), 200, "the VM is still healthy");
    }
}
