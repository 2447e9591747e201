//! Which hostcalls work in `on_response_body`: the body is there; the header maps are not.

use crate::suite::*;

conformance! {
    /// §10: 60, 64
    /// proves: proxy_on_response_body, proxy_get_buffer_bytes
    async fn availability_in_response_body(mode) {
        let lines = run_battery(mode, "response_body").await;
        assert_battery("response_body", &lines, &[2, 2, 2, 2, 0, 0, 0, 0, 0, 1, 1, 2]);
        assert!(lines[5]["value"].as_str().unwrap().contains("\"path\":\"/phase\""), "the origin's body: {}", lines[5]);
    }
}
