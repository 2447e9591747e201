//! The Proxy-Wasm side: takes the configuration, snapshots the request in its headers callback
//! (request headers cannot be read later) and applies each direction's rules in its callbacks.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use weir_filter_support::log;

use crate::config::{Config, Needs};
use crate::headers::{HeaderMap, Rules};
use crate::template::Vars;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: Rc::default() }) });
}}

/// One of the host's header or trailer maps.
struct HostMap(MapType);

impl HeaderMap for HostMap {
    fn get(&self, name: &str) -> Option<String> {
        let value = hostcalls::get_map_value_bytes(self.0, name).ok().flatten()?;
        Some(String::from_utf8_lossy(&value).into_owned())
    }
    fn set(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value(self.0, name, Some(value));
    }
    fn add(&mut self, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(self.0, name, value);
    }
    fn remove(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(self.0, name);
    }
}

struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let expected = "a JSON object (see docs/filters/header-rewrite.md)";
        let Some(config) = weir_filter_support::configure("header-rewrite", &bytes, expected, Config::parse) else {
            return false;
        };
        self.config = Rc::new(config);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { config: Rc::clone(&self.config), vars: Vars::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    config: Rc<Config>,
    /// The request as it reached the filter; response rules render from it too.
    vars: Vars,
}

impl Http {
    fn edit(&self, rules: &Rules, map: MapType) {
        if !rules.is_empty() {
            report(rules.apply(&self.vars, &mut HostMap(map)));
        }
    }

    /// Creates trailers at the end of a body that had none (the host allows it only there).
    fn create_trailers(&self, rules: &Rules, map: MapType) {
        if rules.creates() {
            report(rules.apply_to_new(&self.vars, &mut HostMap(map)));
        }
    }
}

fn report(refused: Vec<String>) {
    for name in refused {
        log(LogLevel::Warn, &format!("header-rewrite: `{name}` not changed: its value would contain CR, LF or NUL"));
    }
}

fn request_header(name: &str) -> Option<String> {
    HostMap(MapType::HttpRequestHeaders).get(name)
}

fn snapshot(needs: &Needs) -> Vars {
    let wanted = |on: bool, name: &str| if on { request_header(name).unwrap_or_default() } else { String::new() };
    let remote_address = if needs.remote_address {
        let value = hostcalls::get_property(vec!["source", "address"]).ok().flatten().unwrap_or_default();
        String::from_utf8_lossy(&value).into_owned()
    } else {
        String::new()
    };
    Vars {
        remote_address,
        request_id: wanted(needs.request_id, "x-request-id"),
        host: wanted(needs.host, ":authority"),
        req: needs.req_headers.iter().filter_map(|n| Some((n.clone(), request_header(n)?))).collect(),
        captures: Vec::new(),
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let config = Rc::clone(&self.config);
        self.vars = snapshot(&config.needs);
        if !config.uri.is_empty()
            && let Some(path) = request_header(":path")
            && let Some(new) = config.uri.apply(&path, &mut self.vars)
        {
            HostMap(MapType::HttpRequestHeaders).set(":path", &new);
        }
        self.edit(&config.request.headers, MapType::HttpRequestHeaders);
        Action::Continue
    }

    fn on_http_request_body(&mut self, _: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.create_trailers(&self.config.request.trailers, MapType::HttpRequestTrailers);
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        self.edit(&self.config.request.trailers, MapType::HttpRequestTrailers);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.edit(&self.config.response.headers, MapType::HttpResponseHeaders);
        Action::Continue
    }

    fn on_http_response_body(&mut self, _: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.create_trailers(&self.config.response.trailers, MapType::HttpResponseTrailers);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        self.edit(&self.config.response.trailers, MapType::HttpResponseTrailers);
        Action::Continue
    }
}
