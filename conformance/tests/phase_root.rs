//! Which hostcalls work in a root context (`on_configure`): configuration yes; stream maps,
//! buffers and `request.*` properties no; stream actions are accepted and do nothing.

use crate::suite::*;

conformance! {
    /// §10: 17, 72, 88, 128
    /// proves: proxy_on_configure, proxy_get_buffer_bytes, proxy_get_property, proxy_send_local_response, proxy_continue_stream
    async fn availability_in_a_root_context(mode) {
        let lines = run_battery(mode, "configure").await;
        assert_battery("configure", &lines, &[2, 2, 2, 2, 0, 0, 1, 1, 1, 0, 1, 2, 0, 0]);
        assert!(lines[9]["value"].as_str().unwrap().contains("get_header"), "the plugin configuration");
    }
}
