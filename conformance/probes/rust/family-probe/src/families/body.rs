//! `body`: buffers both bodies, upper-cases the request body and appends to the response body.

use crate::observe::text;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

super::observer_stream!();

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            self.obs.emit("request_chunk", &body_size.to_string());
            // Pausing a body callback makes the host buffer it; the next call sees it all.
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.obs.emit("request_body", &text(&body));
        // ASCII upper-casing keeps the length and any non-ASCII bytes as they are.
        self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        // The body grows, so the origin's length no longer holds.
        self.remove_http_response_header("content-length");
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        self.obs.emit("response_size", &body_size.to_string());
        // Replacing zero bytes at the end appends.
        self.set_http_response_body(body_size, 0, b"|probe");
        Action::Continue
    }
}
