//! `hello_filter`: an example Proxy-Wasm HTTP filter, written with the Rust SDK (`proxy-wasm`).
//!
//! What it does, for every request through a route that lists it:
//!
//! - adds the response header `x-hello: <greeting>`, where the greeting comes from the plugin
//!   configuration `{"greeting": "..."}` (default `hello from wasm`);
//! - counts the request in the counter metric `example_requests_total` (weir shows it on the
//!   admin listener's `/metrics` as `weir_filter_example_requests_total`);
//! - answers `GET /example/ping` itself, with `200` and the body `pong\n`: the request never
//!   reaches the origin.
//!
//! A Proxy-Wasm module has one *root context* per plugin (configuration, metrics, state shared
//! by requests) and one *HTTP context* per request, created by the root context.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde::Deserialize;

// The module's entry point: runs once when the host starts the VM. It installs the logger
// (the `log` crate's macros then go to the host's log) and says how to make the root context.
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| Box::new(HelloRoot::default()));
}}

/// The plugin configuration: in weir's YAML, the filter's `config:` mapping, received as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)] // a typo in a key is an error, not silently ignored
struct Config {
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "hello from wasm".to_owned()
}

/// The root context: holds what every request needs.
struct HelloRoot {
    greeting: String,
    /// The id the host gave the counter (`None` if the host refused to define it).
    requests_metric: Option<u32>,
}

impl Default for HelloRoot {
    fn default() -> Self {
        Self { greeting: default_greeting(), requests_metric: None }
    }
}

impl Context for HelloRoot {}

impl RootContext for HelloRoot {
    // Once per VM: define the metric. Metrics belong to the VM's `vm_id`, so the count carries
    // on across configuration reloads and module swaps.
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.requests_metric = hostcalls::define_metric(MetricType::Counter, "example_requests_total").ok();
        true
    }

    // Each time a configuration is published (at start and on every reload). Returning false
    // refuses it: weir then reports the error and keeps serving the previous configuration.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        if bytes.is_empty() {
            self.greeting = default_greeting(); // no `config:` at all: use the defaults
            return true;
        }
        match serde_json::from_slice::<Config>(&bytes) {
            // A header value may not contain control characters (newlines in particular).
            Ok(config) if config.greeting.chars().any(char::is_control) => {
                log::error!("hello_filter: `greeting` may not contain control characters");
                false
            }
            Ok(config) => {
                self.greeting = config.greeting;
                true
            }
            Err(e) => {
                log::error!("hello_filter: bad configuration: {e}");
                false
            }
        }
    }

    // This root context makes HTTP contexts (rather than TCP stream contexts)...
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    // ...one per request, with a copy of what the request needs.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HelloRequest {
            greeting: self.greeting.clone(),
            requests_metric: self.requests_metric,
        }))
    }
}

/// One request's context.
struct HelloRequest {
    greeting: String,
    requests_metric: Option<u32>,
}

impl Context for HelloRequest {}

impl HttpContext for HelloRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(id) = self.requests_metric {
            let _ = hostcalls::increment_metric(id, 1);
        }

        // Pseudo-headers carry the method and the path (query included).
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();

        if method == "GET" && path == "/example/ping" {
            // A local response: the host sends it to the client instead of asking the origin.
            self.send_http_response(200, vec![("content-type", "text/plain")], Some(b"pong\n"));
            return Action::Pause; // stop here: no further filter, no upstream request
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_response_header("x-hello", &self.greeting);
        Action::Continue
    }
}
