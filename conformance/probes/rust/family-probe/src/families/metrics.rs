//! `metrics`: the root defines a counter, a gauge and a histogram; requests update them and
//! read the counter and gauge back. The SDK 0.2.5 has metrics only as hostcalls, no trait
//! methods.

use crate::observe::{status_word, Observer, NONE};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MetricType, Status};

#[derive(Clone, Copy)]
pub struct Ids {
    counter: u32,
    gauge: u32,
    histogram: u32,
}

/// Root `on_configure`. Nothing is logged: the spec has no check for it, and the SDK panics on
/// any status but ok.
pub fn define() -> Option<Ids> {
    Some(Ids {
        counter: hostcalls::define_metric(MetricType::Counter, "conformance_counter").ok()?,
        gauge: hostcalls::define_metric(MetricType::Gauge, "conformance_gauge").ok()?,
        histogram: hostcalls::define_metric(MetricType::Histogram, "conformance_histogram").ok()?,
    })
}

/// A metric's value in decimal; `<none>` for NotFound, else the status word.
fn read(id: u32) -> String {
    match hostcalls::get_metric(id) {
        Ok(value) => value.to_string(),
        Err(Status::NotFound) => NONE.to_owned(),
        Err(status) => status_word(status),
    }
}

pub struct Stream {
    obs: Observer,
    ids: Option<Ids>,
}

impl Stream {
    pub fn new(obs: Observer, ids: Option<Ids>) -> Stream {
        Stream { obs, ids }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(ids) = self.ids else {
            return Action::Continue;
        };
        // Their statuses are not part of the spec's observations; the read-backs show them.
        let _ = hostcalls::increment_metric(ids.counter, 1);
        let _ = hostcalls::record_metric(ids.gauge, 42);
        let _ = hostcalls::record_metric(ids.histogram, 7);
        self.obs.emit("counter", &read(ids.counter));
        self.obs.emit("gauge", &read(ids.gauge));
        Action::Continue
    }
}
