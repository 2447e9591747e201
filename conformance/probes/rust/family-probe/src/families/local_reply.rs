//! `local_reply`: answers every request from the filter, then watches the reply go out.

use crate::observe::{flag, or_none};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

super::observer_stream!();

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.get_http_request_header("x-reply-empty").is_some() {
            self.send_http_response(204, vec![], None);
        } else {
            self.send_http_response(
                403,
                vec![("x-conformance", "denied"), ("x-dup", "1"), ("x-dup", "2")],
                Some(b"denied by probe"),
            );
        }
        // The SDK's call returns nothing (it panics on an error status): reaching here is `ok`.
        self.obs.emit("sent", "ok");
        Action::Pause
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.obs.emit("status", &or_none(self.get_http_response_header(":status")));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.obs.emit("response_body", &format!("{body_size},{}", flag(end_of_stream)));
        Action::Continue
    }

    fn on_log(&mut self) {
        self.obs.emit("log", "");
    }
}
