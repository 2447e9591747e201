//! The state shared by every part of the running proxy: the current generation (swapped
//! atomically on reload), the wasm runtime, metrics.

use std::sync::Arc;

use arc_swap::ArcSwap;
use weir_abi::Runtime;

use crate::generation::Generation;
use crate::metrics::Metrics;

/// Shared by the proxy service, the admin service and background tasks.
pub struct State {
    /// The generation new requests use.
    pub current: ArcSwap<Generation>,
    /// The Proxy-Wasm host.
    pub runtime: Runtime,
    /// weir's own metrics.
    pub metrics: Metrics,
    /// Connects to clusters for callouts.
    pub callouts: crate::callout::Client,
    /// Tells the VM hosts of every thread that a generation was published.
    published: tokio::sync::watch::Sender<u64>,
    /// Readiness, requests in flight and the shutdown sequence.
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// When the state was made (at start), for `/server_info`'s uptime.
    pub started: (std::time::Instant, std::time::SystemTime),
    /// Proxy worker threads (fixed at start).
    pub workers: usize,
}

impl State {
    /// State serving `first`.
    pub fn new(runtime: Runtime, first: Generation) -> Arc<Self> {
        let (published, _) = tokio::sync::watch::channel(first.id);
        runtime.set_node(first.node.clone());
        let first_workers = first.loaded.config.server.workers();
        let metrics = Metrics::new();
        metrics.prepare(&first);
        configure_logs(&first);
        Arc::new(Self {
            current: ArcSwap::from_pointee(first),
            runtime,
            metrics,
            callouts: crate::callout::Client::new(),
            published,
            lifecycle: crate::lifecycle::Lifecycle::default(),
            started: (std::time::Instant::now(), std::time::SystemTime::now()),
            workers: first_workers,
        })
    }

    /// Makes `next` the generation for new requests; in-flight requests keep theirs. The VMs
    /// it no longer uses go when their last request ends; every thread's VM host adopts it.
    pub fn publish(&self, next: Generation) -> Arc<Generation> {
        next.own_clusters();
        self.metrics.prepare(&next);
        configure_logs(&next);
        self.runtime.set_node(next.node.clone());
        let id = next.id;
        let old = self.current.swap(Arc::new(next));
        old.retire(&self.current.load());
        self.published.send_replace(id);
        old
    }

    /// Changes whenever a generation is published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }
}

/// The plugins' configured log levels (`plugins.NAME.log_level`) and the access log's fields
/// and format take effect.
fn configure_logs(generation: &Generation) {
    let access_log = &generation.loaded.config.access_log;
    let json = access_log.format.map(|f| f == crate::config::AccessLogFormat::Json);
    crate::access_log::configure(&access_log.fields, json);
    let levels = generation
        .loaded
        .config
        .plugins
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), weir_abi::LogLevel::from_name(p.log_level.as_deref()?)?)))
        .collect();
    crate::filter_log::levels().set_configured(levels);
}
