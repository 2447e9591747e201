//! `http_call`: an HTTP callout from the request path, answered in the same context.

use crate::observe::{or_none, result_word};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::time::Duration;

super::observer_stream!();

impl Context for Stream {
    // The SDK routes the response to the context that dispatched the call (and makes it the
    // effective context first), so the request can be edited and resumed from here.
    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        let status = or_none(self.get_http_call_response_header(":status"));
        self.obs.emit("call_status", &status);
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        self.obs.emit("call_body", if body.is_empty() { "empty" } else { "nonempty" });
        self.add_http_request_header("x-call-status", &status);
        self.resume_http_request();
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let cluster = self.get_http_request_header("x-call-cluster").unwrap_or_else(|| "origin".to_owned());
        let dispatched = self.dispatch_http_call(
            &cluster,
            vec![(":method", "GET"), (":path", "/callout"), (":authority", "callout.test"), ("x-from", "probe")],
            None,
            vec![],
            Duration::from_millis(5000),
        );
        self.obs.emit("dispatch", &result_word(&dispatched));
        // Wait for the response only when a call is under way.
        if dispatched.is_ok() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
