//! `failure`: traps on request when asked to, the way a Rust filter fails.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

/// `failure` logs no observations, so it keeps no observer.
pub struct Stream;

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.get_http_request_header("x-fail").is_some() {
            // The SDK's panic hook logs the message at critical; panic = abort then traps.
            panic!("conformance trap");
        }
        self.add_http_request_header("x-failure-probe", "passed");
        Action::Continue
    }
}
