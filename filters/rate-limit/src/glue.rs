//! Proxy-Wasm glue: reads the configuration, gathers what descriptors need, runs the
//! [`limiter`] against shared data, and answers 429 or tags the response.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

use weir_filter_support::log;

use crate::config::Config;
use crate::descriptor::{Request, strip_port};
use crate::limiter::{self, Quota, Verdict};
use crate::store::{SetError, Store};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(LimitRoot { config: None }) });
}}

/// Shared data of this VM (`vm_id`), shared by every worker.
struct SharedData;

impl Store for SharedData {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), SetError> {
        hostcalls::get_shared_data(key).map_err(|_| SetError::Unavailable)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|s| match s {
            Status::CasMismatch => SetError::Conflict,
            _ => SetError::Unavailable,
        })
    }
}

struct LimitRoot {
    config: Option<Rc<Config>>,
}

impl Context for LimitRoot {}

impl RootContext for LimitRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let expected = "a JSON object with `rules` (see docs/filters/rate-limit.md)";
        // On refusal the previous configuration, if any, stays in force.
        let Some(config) = weir_filter_support::configure("rate-limit", &bytes, expected, Config::from_json) else {
            return false;
        };
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None would make the SDK panic; an unconfigured filter limits nothing.
        Some(Box::new(LimitHttp { config: self.config.clone(), verdict: Verdict::default(), replied: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct LimitHttp {
    config: Option<Rc<Config>>,
    /// Kept from the request phase for the response headers.
    verdict: Verdict,
    /// A 429 was sent; its headers are already complete.
    replied: bool,
}

impl LimitHttp {
    fn header(&self, name: &str) -> Option<String> {
        self.get_http_request_header_bytes(name).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn request(&self, config: &Config) -> Request {
        let client_address = if config.needs_client_address() {
            // The hostcall directly: the SDK's `get_property` panics on an unexpected status.
            hostcalls::get_property(vec!["source", "address"])
                .ok()
                .flatten()
                .map(|a| strip_port(&String::from_utf8_lossy(&a)).to_owned())
        } else {
            None
        };
        let headers = config.header_names().into_iter().filter_map(|n| Some((n.to_owned(), self.header(n)?))).collect();
        let path = if config.needs_path() { self.header(":path").unwrap_or_default() } else { String::new() };
        Request { client_address, path, headers }
    }

    fn too_many_requests(&mut self, quota: &Quota) -> Action {
        let retry_after = quota.retry_after_secs.to_string();
        let values = quota.headers().map(|(k, v)| (k, v.to_string()));
        // `x-envoy-ratelimited` as Envoy's local_ratelimit sends it.
        let mut headers: Vec<(&str, &str)> =
            vec![("retry-after", retry_after.as_str()), ("x-envoy-ratelimited", "true")];
        headers.extend(values.iter().map(|(k, v)| (*k, v.as_str())));
        self.send_http_response(429, headers, Some(b"rate limited"));
        self.replied = true;
        Action::Pause
    }
}

impl Context for LimitHttp {}

impl HttpContext for LimitHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else { return Action::Continue };
        let request = self.request(&config);
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.verdict = limiter::check(&config, &SharedData, &request, now);
        for rule in &self.verdict.failed_open {
            log(LogLevel::Debug, &format!("rate-limit: rule {rule}: shared data busy or unavailable; request allowed"));
        }
        match self.verdict.limited {
            Some(quota) if !config.shadow => self.too_many_requests(&quota),
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else { return Action::Continue };
        if self.replied {
            return Action::Continue;
        }
        if self.verdict.limited.is_some() {
            self.set_http_response_header("x-ratelimit-shadow", Some("limited"));
        }
        if config.response_headers
            && let Some(quota) = self.verdict.limited.or(self.verdict.quota)
        {
            // Numbers written on the stack (`itoa`): three `to_string`s were three allocations
            // and the formatting machinery on every request.
            for (name, value) in quota.headers() {
                self.set_http_response_header(name, Some(itoa::Buffer::new().format(value)));
            }
        }
        Action::Continue
    }
}
