//! Which hostcalls work in `on_log`: everything is readable, nothing is writable, and the stream
//! can no longer be answered or resumed.

use crate::suite::*;

conformance! {
    /// §10: 26, 50, 124
    /// proves: proxy_on_log, proxy_get_header_map_value, proxy_get_property, proxy_send_local_response, proxy_continue_stream
    async fn availability_in_log(mode) {
        let lines = run_battery(mode, "log").await;
        assert_battery("log", &lines, &[0, 2, 0, 2, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]);
        assert_eq!(lines[0]["value"], "POST");
        assert_eq!(lines[2]["value"], "200");
    }
}
