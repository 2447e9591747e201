//! Which hostcalls work in `on_request_body`: the body is there, the request headers are not
//! (Envoy drops its pointer to them once `on_request_headers` continues).

use crate::suite::*;

conformance! {
    /// §10: 23, 47, 55, 60
    /// proves: proxy_on_request_body, proxy_get_buffer_bytes, proxy_get_header_map_value, proxy_add_header_map_value
    async fn availability_in_request_body(mode) {
        let lines = run_battery(mode, "request_body").await;
        assert_battery("request_body", &lines, &[2, 2, 2, 2, 0, 0, 0, 1, 0, 1, 1, 2]);
        assert_eq!(lines[4]["value"], "hello");
        assert_eq!(lines[5]["ptr_null"], true, "no response body yet");
    }
}
