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
}

impl State {
    /// State serving `first`.
    pub fn new(runtime: Runtime, first: Generation) -> Arc<Self> {
        runtime.set_clusters(first.clusters.keys().cloned());
        Arc::new(Self {
            current: ArcSwap::from_pointee(first),
            runtime,
            metrics: Metrics::new(),
            callouts: crate::callout::Client::new(),
        })
    }

    /// Makes `next` the generation for new requests; in-flight requests keep theirs, and the
    /// old one's VMs go when its last request ends.
    pub fn publish(&self, next: Generation) -> Arc<Generation> {
        self.runtime.set_clusters(next.clusters.keys().cloned());
        let old = self.current.swap(Arc::new(next));
        old.retire();
        old
    }
}
