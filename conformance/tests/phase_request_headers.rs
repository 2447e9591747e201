//! Which hostcalls work in `on_request_headers` (docs/abi.md#buffers, #header-maps, #properties; Envoy keeps the request
//! header map for the filter until the callback continues).

use crate::suite::*;

conformance! {
    /// §10: 22, 47, 60, 92, 126
    /// proves: proxy_on_request_headers, proxy_get_header_map_value, proxy_add_header_map_value, proxy_get_buffer_bytes, proxy_get_property
    async fn availability_in_request_headers(mode) {
        let lines = run_battery(mode, "request_headers").await;
        assert_battery("request_headers", &lines, &[0, 0, 2, 2, 0, 0, 0, 1, 1, 1, 1, 2]);
        assert_eq!(lines[0]["value"], "POST");
        assert_eq!(lines[4]["ptr_null"], true, "no body yet: OK with nothing");
        assert_eq!(lines[6]["value"], "POST");
    }
}
