//! Proxy-Wasm glue: reads the configuration, snapshots request headers, applies the
//! [`flow`] decision and the external service's answer. No logic of its own.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use weir_filter_support::header_block::HeaderBlock;
use weir_filter_support::log;

use crate::config::Config;
use crate::external::Decision;
use crate::flow::{self, Step};
use crate::headers::Headers;
use crate::reply::Reply;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AuthRoot { config: None }) });
}}

struct AuthRoot {
    config: Option<Rc<Config>>,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let expected = "a JSON object (see docs/filters/auth.md)";
        // On refusal the previous configuration, if any, stays in force.
        let Some(config) = weir_filter_support::configure("auth", &bytes, expected, Config::from_json) else {
            return false;
        };
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None would make the SDK panic; an unconfigured filter answers 500.
        Some(Box::new(AuthHttp { config: self.config.clone(), paused: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuthHttp {
    config: Option<Rc<Config>>,
    /// True while the request waits for the external service.
    paused: bool,
}

impl AuthHttp {
    fn reply(&self, reply: &Reply) -> Action {
        let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
        Action::Pause
    }

    fn set_request_headers(&self, set: &[(String, String)]) {
        for (name, value) in set {
            self.set_http_request_header(name, Some(value));
        }
    }

    fn now_secs(&self) -> u64 {
        self.get_current_time().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// Applies the external service's decision to the paused request.
    fn finish(&mut self, decision: Decision) {
        self.paused = false;
        match decision {
            Decision::Resume(set) => {
                self.set_request_headers(&set);
                self.resume_http_request();
            }
            Decision::Reply(reply) => {
                self.reply(&reply);
            }
        }
    }
}

impl Context for AuthHttp {
    fn on_http_call_response(&mut self, _token: u32, num_headers: usize, _body: usize, _trailers: usize) {
        let Some(ext) = self.config.as_ref().and_then(|c| c.external.as_ref()) else { return };
        if !self.paused {
            return;
        }
        // No headers: the host could not reach the service, timed out or was reset.
        let (status, response) = if num_headers == 0 {
            (None, Headers::default())
        } else {
            let response = Headers::from_block(HeaderBlock::read(MapType::HttpCallResponseHeaders));
            (response.get(":status").and_then(|s| s.parse::<u32>().ok()), response)
        };
        let decision = ext.on_response(status, &response);
        if status.is_none() || matches!(status, Some(500..=599)) {
            log(
                LogLevel::Warn,
                &format!("auth: external check via cluster {} failed (status {status:?})", ext.cluster),
            );
        }
        self.finish(decision);
    }
}

impl HttpContext for AuthHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.reply(&Reply::not_configured());
        };
        let headers = Headers::from_block(HeaderBlock::read(MapType::HttpRequestHeaders));
        for name in config.protected_headers() {
            self.set_http_request_header(name, None);
        }
        match flow::on_request(&config, headers, self.now_secs()) {
            Step::Continue(set) => {
                self.set_request_headers(&set);
                Action::Continue
            }
            Step::Reply(reply) => self.reply(&reply),
            Step::Callout { set, request } => {
                let Some(ext) = config.external.as_ref() else { return Action::Continue };
                self.set_request_headers(&set);
                let call_headers: Vec<(&str, &str)> = request.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                match self.dispatch_http_call(&ext.cluster, call_headers, None, vec![], ext.timeout) {
                    Ok(_) => {
                        self.paused = true;
                        Action::Pause
                    }
                    Err(status) => {
                        log(
                            LogLevel::Warn,
                            &format!("auth: cannot call cluster {} ({status:?}); is it configured?", ext.cluster),
                        );
                        match ext.on_failure() {
                            Decision::Resume(_) => Action::Continue,
                            Decision::Reply(reply) => self.reply(&reply),
                        }
                    }
                }
            }
        }
    }
}
