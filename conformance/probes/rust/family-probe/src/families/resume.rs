//! `resume`: requests pause at their headers; the root's next tick resumes each from outside
//! its context (`proxy_set_effective_context`), as a filter that waits for something its root
//! fetches does.

use crate::observe::Observer;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, MapType};
use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    /// Streams waiting for the root, by context id (VM globals, as a real filter keeps them).
    static PAUSED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Root `on_configure`.
pub fn start(root: &impl RootContext) {
    root.set_tick_period(Duration::from_millis(50));
}

/// Root `on_tick`: resumes every paused stream.
pub fn tick(obs: &Observer) {
    for id in PAUSED.with(|p| std::mem::take(&mut *p.borrow_mut())) {
        let resumed = hostcalls::set_effective_context(id).is_ok()
            && hostcalls::add_map_value(MapType::HttpRequestHeaders, "x-resumed-by", "tick").is_ok()
            && hostcalls::resume_http_request().is_ok();
        obs.emit("resumed", if resumed { "ok" } else { "failed" });
    }
}

pub struct Stream {
    obs: Observer,
    id: u32,
}

impl Stream {
    pub fn new(obs: Observer, id: u32) -> Stream {
        Stream { obs, id }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        PAUSED.with(|p| p.borrow_mut().push(self.id));
        self.obs.emit("paused", "true");
        Action::Pause
    }
}
