//! `timers`: the root ticks three times at 100 ms, then stops its timer; requests read the
//! clock.

use crate::observe::{truth, Observer};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::Action;
use std::time::{Duration, UNIX_EPOCH};

/// Root `on_configure`.
pub fn start(root: &impl RootContext) {
    root.set_tick_period(Duration::from_millis(100));
}

/// Root `on_tick`; `count` includes this tick.
pub fn tick(root: &impl RootContext, obs: &Observer, count: u32) {
    if count > 3 {
        return;
    }
    obs.emit("tick", &count.to_string());
    if count == 3 {
        // A zero period stops the timer.
        root.set_tick_period(Duration::ZERO);
        obs.emit("stopped", "");
    }
}

super::observer_stream!();

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let nanos = self.get_current_time().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        self.obs.emit("now_nonzero", truth(nanos > 0));
        Action::Continue
    }
}
