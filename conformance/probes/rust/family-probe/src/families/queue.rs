//! `queue`: the root registers a shared queue and drains it; requests enqueue their path.

use crate::observe::{or_none, result_word, text, Observer, NONE};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::Action;

const QUEUE: &str = "conformance";

/// Root `on_configure`: registers the queue, logs `register`. The trait's
/// `register_shared_queue` hides the status; the hostcall returns it.
pub fn register(obs: &Observer) -> Option<u32> {
    let registered = hostcalls::register_shared_queue(QUEUE);
    obs.emit("register", &result_word(&registered));
    registered.ok()
}

/// Root `on_queue_ready`: dequeues until the queue is empty.
pub fn drain(root: &impl RootContext, obs: &Observer, queue_id: u32) {
    // `Ok(None)` is the Empty status; an error status also ends the loop.
    while let Ok(Some(value)) = root.dequeue_shared_queue(queue_id) {
        obs.emit("dequeued", &text(&value));
    }
}

pub struct Stream {
    obs: Observer,
    /// The root's queue (`None` if registering failed).
    queue: Option<u32>,
}

impl Stream {
    pub fn new(obs: Observer, queue: Option<u32>) -> Stream {
        Stream { obs, queue }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let path = or_none(self.get_http_request_header(":path"));
        let word = match self.queue {
            Some(id) => result_word(&self.enqueue_shared_queue(id, Some(path.as_bytes()))),
            None => NONE.to_owned(),
        };
        self.obs.emit("enqueue", &word);
        Action::Continue
    }
}
