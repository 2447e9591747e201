//! `lifecycle` (and any unknown family): every HTTP callback logs its arguments. The root's
//! `vm_start` and `configure` are logged in `lib.rs`.

use crate::observe::{flag, Observer};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct Stream {
    obs: Observer,
}

impl Stream {
    /// Logs `http_context`: the SDK creates the context through the root's
    /// `create_http_context`, which is where this is called.
    pub fn new(obs: Observer, context_id: u32, root_context_id: u32) -> Stream {
        obs.emit("http_context", &format!("{context_id},{root_context_id}"));
        Stream { obs }
    }

    fn args(&self, check: &str, size: usize, end_of_stream: bool) -> Action {
        self.obs.emit(check, &format!("{size},{}", flag(end_of_stream)));
        Action::Continue
    }
}

impl Context for Stream {
    fn on_done(&mut self) -> bool {
        self.obs.emit("done", "");
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.args("request_headers", num_headers, end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.args("request_body", body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        self.obs.emit("request_trailers", &num_trailers.to_string());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.args("response_headers", num_headers, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.args("response_body", body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        self.obs.emit("response_trailers", &num_trailers.to_string());
        Action::Continue
    }

    fn on_log(&mut self) {
        self.obs.emit("log", "");
    }
}
