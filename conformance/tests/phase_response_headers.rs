//! Which hostcalls work in `on_response_headers`: the response headers and `response.code` are
//! there, the request headers are not.

use crate::suite::*;

conformance! {
    /// §10: 47, 126
    /// proves: proxy_on_response_headers, proxy_get_header_map_value, proxy_add_header_map_value, proxy_get_property
    async fn availability_in_response_headers(mode) {
        let lines = run_battery(mode, "response_headers").await;
        assert_battery("response_headers", &lines, &[2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2]);
        assert_eq!(lines[2]["value"], "200");
        assert_eq!(lines[7]["hex"], "c800000000000000", "response.code: int64 little-endian");
        assert!(lines[8]["value"].as_str().unwrap().starts_with("127.0.0.1:"), "upstream.address: ip:port");
    }
}
