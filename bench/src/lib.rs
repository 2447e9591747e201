//! Helpers shared by weir's benchmarks.

pub mod bare;

use std::sync::Arc;

use weir_abi::{HeaderMap, PluginConfig, PluginSpec, Runtime, RuntimeConfig, StreamState, VmConfig};

/// A runtime with default settings (pooling allocator, in-memory module cache).
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).expect("runtime")
}

/// The `trivial` fixture filter with this plugin configuration (`""`, `"pairs"`, `"header"`).
pub fn trivial(rt: &Runtime, configuration: &'static str) -> Arc<PluginSpec> {
    let wasm = weir_test_fixtures::read(weir_test_fixtures::TRIVIAL);
    let module = rt.load_module(&wasm).expect("trivial loads");
    let vm = rt.vm(module, VmConfig::default()).expect("vm");
    rt.plugin(&vm, PluginConfig { name: "trivial".into(), configuration: configuration.into(), ..Default::default() })
}

/// A request with `n` headers in total (4 pseudo-headers plus `n - 4` regular ones).
pub fn request(n: usize) -> StreamState {
    let mut h =
        HeaderMap::from_pairs([(":method", "GET"), (":path", "/bench"), (":authority", "bench"), (":scheme", "http")]);
    for i in 0..n.saturating_sub(4) {
        h.add(format!("x-header-{i}").as_bytes(), format!("value-{i}-with-some-length"));
    }
    StreamState::with_request_headers(h)
}
