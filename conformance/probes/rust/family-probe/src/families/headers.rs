//! `headers`: reads and edits the request headers, then the response headers.

use crate::observe::{or_none, truth, Observer};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct Stream {
    obs: Observer,
}

impl Stream {
    pub fn new(obs: Observer) -> Stream {
        Stream { obs }
    }

    fn request_header(&self, check: &str, name: &str) {
        self.obs.emit(check, &or_none(self.get_http_request_header(name)));
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.request_header("path", ":path");
        self.request_header("method", ":method");
        self.request_header("authority", ":authority");
        self.request_header("host", "host");
        self.request_header("mixed_case", "X-Conformance-In");
        self.request_header("dup", "x-dup");

        let pairs = self.get_http_request_headers();
        self.obs.emit("count", &pairs.len().to_string());
        // Pseudo-headers first: no `:` name after the first regular one.
        let first_regular = pairs.iter().position(|(name, _)| !name.starts_with(':')).unwrap_or(pairs.len());
        let pseudo_first = pairs[first_regular..].iter().all(|(name, _)| !name.starts_with(':'));
        self.obs.emit("pseudo_first", truth(pseudo_first));

        // The SDK's setters return nothing (they panic on an error status), so nothing is
        // logged for them.
        self.add_http_request_header("x-added", "1");
        self.add_http_request_header("x-dup", "c");
        self.set_http_request_header("x-replaced", Some("new"));
        self.set_http_request_header("x-created", Some("yes"));
        self.remove_http_request_header("x-remove-me");
        self.add_http_request_header("X-Upper", "v");
        self.set_http_request_header(":path", Some("/rewritten"));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.obs.emit("status", &or_none(self.get_http_response_header(":status")));
        self.add_http_response_header("x-response-added", "1");
        self.remove_http_response_header("x-demo-origin");
        Action::Continue
    }
}
