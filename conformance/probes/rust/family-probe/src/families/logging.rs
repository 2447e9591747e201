//! `logging`: one line at each of the ABI's six levels.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

const LEVELS: [LogLevel; 6] =
    [LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Critical];

super::observer_stream!();

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        // The SDK's `log` facade has no critical level (it maps to off); its `hostcalls::log`
        // takes all six, so every line goes through it.
        for level in LEVELS {
            let _ = hostcalls::log(level, &format!("conformance level {}", level as u32));
        }
        self.obs.emit("logged", &LEVELS.len().to_string());
        Action::Continue
    }
}
