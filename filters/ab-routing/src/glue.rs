//! The Proxy-Wasm side: takes the configuration, chooses in the request-headers callback and
//! sends the pinning cookie in the response-headers callback.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use crate::choose::choose;
use weir_filter_support::header_block::HeaderBlock;
use weir_filter_support::log;

use crate::config::Config;
use crate::cookies;
use crate::hash::SplitMix64;
use crate::request::Inputs;

/// The property weir reads to route the request to another cluster.
const UPSTREAM_CLUSTER_PROPERTY: &str = "weir.upstream_cluster";

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None, rng: RefCell::new(SplitMix64::new(seed())) })
    });
}}

/// A seed from the host's entropy: on wasm32-wasip1, std seeds `RandomState` with WASI
/// `random_get`, which Proxy-Wasm hosts provide. This avoids a `getrandom` dependency.
fn seed() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}

struct Root {
    /// `None` until configured; requests then pass through untouched.
    config: Option<Rc<Config>>,
    /// Per-VM generator: one random draw per request (only used when nothing else decides).
    rng: RefCell<SplitMix64>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let expected = "a JSON object with `variants` (see docs/filters/ab-routing.md)";
        let Some(config) = weir_filter_support::configure("ab-routing", &bytes, expected, Config::parse) else {
            return false;
        };
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let random = self.rng.borrow_mut().next_u64();
        Some(Box::new(Http { config: self.config.clone(), random, set_cookie: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    config: Option<Rc<Config>>,
    random: u64,
    /// The `set-cookie` value to send with the response.
    set_cookie: Option<String>,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(config) = self.config.clone() else { return Action::Continue };
        let headers = HeaderBlock::read(MapType::HttpRequestHeaders);
        let choice = choose(&config, &Inputs::from_headers(&config, &headers), self.random);
        let Some(variant) = config.variants.get(choice.variant) else { return Action::Continue };
        if let Err(status) = hostcalls::set_property(vec![UPSTREAM_CLUSTER_PROPERTY], Some(variant.cluster.as_bytes()))
        {
            log(LogLevel::Error, &format!("ab-routing: the host refused {UPSTREAM_CLUSTER_PROPERTY}: {status:?}"));
        }
        // Replaces whatever the client sent, so the origin can trust the header.
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, &config.variant_header, Some(&variant.name));
        if let Some(cookie) = config.set_cookie.as_ref().filter(|_| choice.set_cookie) {
            self.set_cookie = Some(cookies::set_cookie(cookie, &variant.name));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(value) = self.set_cookie.take() {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "set-cookie", &value);
        }
        Action::Continue
    }
}
