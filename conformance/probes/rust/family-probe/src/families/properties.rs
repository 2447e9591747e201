//! `properties`: reads request, connection and plugin properties, sets one, and reads the
//! response code and duration later in the stream.

use crate::observe::{bytes_result, text, Observer};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Status};

pub struct Stream {
    obs: Observer,
}

/// A property through the hostcall: the trait's `get_property` unwraps, so a
/// SerializationFailure or InternalFailure status would panic instead of being observed.
fn get(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    hostcalls::get_property(path.to_vec())
}

/// An 8-byte little-endian int64 in decimal. Any other length is shown as text, for diagnosis.
fn int64(bytes: &[u8]) -> String {
    match <[u8; 8]>::try_from(bytes) {
        Ok(le) => i64::from_le_bytes(le).to_string(),
        Err(_) => text(bytes),
    }
}

impl Stream {
    pub fn new(obs: Observer) -> Stream {
        Stream { obs }
    }

    fn string(&self, check: &str, path: &[&str]) {
        self.obs.emit(check, &bytes_result(get(path), text));
    }

    fn int64(&self, check: &str, path: &[&str]) {
        self.obs.emit(check, &bytes_result(get(path), int64));
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.string("request.path", &["request", "path"]);
        self.string("request.method", &["request", "method"]);
        self.string("request.header", &["request", "headers", "x-conformance-in"]);
        self.string("source.address", &["source", "address"]);
        self.int64("source.port", &["source", "port"]);
        self.obs.emit("request.time", &bytes_result(get(&["request", "time"]), |b| b.len().to_string()));
        self.string("plugin_name", &["plugin_name"]);
        self.string("missing", &["no", "such", "property"]);
        self.set_property(vec!["conformance_key"], Some(b"v"));
        self.string("set_then_get", &["conformance_key"]);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.int64("response.code", &["response", "code"]);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.int64("log.response.code", &["response", "code"]);
        self.obs.emit("request.duration", &bytes_result(get(&["request", "duration"]), |_| "present".to_owned()));
    }
}
