//! `family-probe`: a Proxy-Wasm filter, written with the Rust SDK's usual API, that exercises
//! the one family its plugin configuration names and logs what it observed. The contract
//! (families, checks, value formats) is `conformance/probes/SPEC.md`.

mod families;
mod observe;

use families::{
    body, failure, headers, http_call, lifecycle, local_reply, logging, metrics, properties, queue, resume,
    shared_data, timers, Family,
};
use observe::Observer;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    // Also installs the SDK's panic hook, which logs a panic at critical before the trap.
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|id| Box::new(Root::new(id)));
}}

struct Root {
    id: u32,
    family: Family,
    obs: Observer,
    /// The `queue` family's queue, registered in `on_configure`.
    queue: Option<u32>,
    /// The `metrics` family's metrics, defined in `on_configure`.
    metrics: Option<metrics::Ids>,
    /// The `timers` family's tick count.
    ticks: u32,
}

impl Root {
    fn new(id: u32) -> Root {
        let mut root =
            Root { id, family: Family::Unknown, obs: Observer::new(""), queue: None, metrics: None, ticks: 0 };
        // proxy_on_vm_start comes before proxy_on_configure, and the plugin configuration is
        // not readable in it; the host does expose it while the root context is created (as
        // Envoy does), so the family is known for `vm_start` too. `on_configure` reads it again.
        root.load_family();
        root
    }

    fn load_family(&mut self) {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let name = observe::text(&config);
        let name = name.trim();
        self.family = Family::parse(name);
        self.obs = Observer::new(name);
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        if self.family.is_lifecycle() {
            self.obs.emit("vm_start", &vm_configuration_size.to_string());
        }
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        self.load_family();
        if self.family == Family::Unknown {
            // The value is the name that was not recognised (the family field holds it too).
            self.obs.emit("unknown_family", self.obs.family());
        }
        match self.family {
            Family::Lifecycle | Family::Unknown => {
                self.obs.emit("configure", &plugin_configuration_size.to_string());
            }
            Family::Queue => self.queue = queue::register(&self.obs),
            Family::Metrics => self.metrics = metrics::define(),
            Family::Timers => timers::start(self),
            Family::Resume => resume::start(self),
            _ => {}
        }
        true
    }

    fn on_tick(&mut self) {
        if self.family == Family::Timers {
            self.ticks += 1;
            timers::tick(self, &self.obs, self.ticks);
        }
        if self.family == Family::Resume {
            resume::tick(&self.obs);
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if self.family == Family::Queue {
            queue::drain(self, &self.obs, queue_id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let obs = self.obs.clone();
        Some(match self.family {
            Family::Lifecycle | Family::Unknown => Box::new(lifecycle::Stream::new(obs, context_id, self.id)),
            Family::Headers => Box::new(headers::Stream::new(obs)),
            Family::Body => Box::new(body::Stream::new(obs)),
            Family::LocalReply => Box::new(local_reply::Stream::new(obs)),
            Family::HttpCall => Box::new(http_call::Stream::new(obs)),
            Family::SharedData => Box::new(shared_data::Stream::new(obs)),
            Family::Queue => Box::new(queue::Stream::new(obs, self.queue)),
            Family::Metrics => Box::new(metrics::Stream::new(obs, self.metrics)),
            Family::Properties => Box::new(properties::Stream::new(obs)),
            Family::Timers => Box::new(timers::Stream::new(obs)),
            Family::Resume => Box::new(resume::Stream::new(obs, context_id)),
            Family::Logging => Box::new(logging::Stream::new(obs)),
            Family::Failure => Box::new(failure::Stream),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
