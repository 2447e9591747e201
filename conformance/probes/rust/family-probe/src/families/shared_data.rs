//! `shared_data`: get/set with compare-and-swap on one key of the VM's shared data.

use crate::observe::{or_none, result_word, text, truth, Observer};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct Stream {
    obs: Observer,
}

impl Stream {
    pub fn new(obs: Observer) -> Stream {
        Stream { obs }
    }

    /// The value under `key` as text, `<none>` when absent, and its CAS (`None` for 0: the SDK
    /// maps a zero CAS to `None`).
    fn get(&self, key: &str) -> (String, Option<u32>) {
        let (value, cas) = self.get_shared_data(key);
        (or_none(value.map(|v| text(&v))), cas)
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let key = self.get_http_request_header("x-key").unwrap_or_else(|| "k".to_owned());

        self.obs.emit("get_missing", &self.get(&format!("{key}-missing")).0);
        self.obs.emit("set_new", &result_word(&self.set_shared_data(&key, Some(b"v1"), None)));
        let (value, cas) = self.get(&key);
        self.obs.emit("get", &value);
        self.obs.emit("cas_nonzero", truth(cas.is_some()));
        self.obs.emit("set_current", &result_word(&self.set_shared_data(&key, Some(b"v2"), cas)));
        // The same CAS again: the previous set has made it stale.
        self.obs.emit("set_stale", &result_word(&self.set_shared_data(&key, Some(b"v3"), cas)));
        self.obs.emit("final", &self.get(&key).0);
        Action::Continue
    }
}
