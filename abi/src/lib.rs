//! # weir-abi: the Proxy-Wasm host of weir
//!
//! Runs Proxy-Wasm filters (modules built with the Rust, AssemblyScript, Go or C++ SDKs) on
//! Wasmtime, implementing the ABI (0.1.0, 0.2.0, 0.2.1) with the behaviour Envoy shows. It
//! knows nothing of sockets or of Pingora: a request is plain data.
//!
//! ## Concepts
//!
//! - [`Runtime`]: one per process. The wasmtime engine (pooling allocator, epoch interruption),
//!   the linker with every hostcall, the compiled-module cache, shared data, queues, metrics.
//! - [`CompiledModule`]: a validated module ([`Runtime::load_module`]). Loading refuses modules
//!   without an ABI marker, memory or allocator, or with imports weir does not provide, with an
//!   error naming the item.
//! - [`VmSpec`] (module + VM configuration) and [`PluginSpec`] (one filter configuration =
//!   one root context). A VM is instantiated once per thread and shared by the filters of that
//!   spec, as Envoy keeps one instance per worker.
//! - [`Vm::poll`]: a VM's root-context work (timers, queue notifications) at a given time,
//!   returning the callouts it started and when it next needs a call; the proxy keeps the
//!   clock and the sockets. A paused stream can be parked in its VM
//!   ([`FilterChain::park`]), where any context of the VM can continue, answer or close it.
//! - [`FilterChain`]: drives one request through its filters. Each phase takes a
//!   [`StreamState`] and returns an [`Outcome`]: continue, buffer, pause (with callouts to run),
//!   local response, close, or failed. The proxy and the tests drive it the same way.
//!
//! ## Safety
//!
//! Guest pointers are bounds-checked (INVALID_MEMORY_ACCESS, never a trap or a host panic).
//! Each instance has a memory limit and each callback a CPU deadline ([`Limits`]). A trap is
//! classified ([`FailureKind`]) and marks the instance failed; the plugin's [`FailurePolicy`]
//! decides what requests see.

#![deny(missing_docs)]

mod chain;
mod clock;
mod error;
mod header_view;
mod headers;
mod host;
mod hostcalls;
mod limits;
mod local_reply;
mod log;
mod memory;
mod metadata;
mod module;
pub use weir_abi_codec as pairs;
mod plugin;
pub mod pool;
mod properties;
mod resident;
mod runtime;
mod shared;
mod stream;
mod types;
mod vm;

/// A map looked up on the request path by keys weir hands out or takes from its configuration
/// (context ids, VM ids, cluster names): foldhash instead of SipHash, whose resistance to
/// crafted keys these keys do not need (SipHash costs ~160 instructions a lookup).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use chain::{CallTiming, FilterChain, FilterFailure, FilterOutcome, Outcome};
pub use error::{Cause, Chain, Failure, FailureKind, LoadError, StartError};
pub use header_view::{HeaderSource, HeaderView, HeadersOf, lend_headers};
pub use headers::HeaderMap;
pub use host::{Effects, Phase};
pub use limits::Limits;
pub use local_reply::{grpc_reply, grpc_status_for_http};
pub use log::{LogRecord, LogSink, TracingLogSink, to_tracing};
pub use metadata::{MetaValue, Metadata, Node};
pub use module::{
    CALLBACKS, CompiledModule, ModuleOrigin, StartFunctions, TierUp, callback_params, import_versions,
    on_compile_threads,
};
pub use plugin::{CalloutClusters, PluginConfig, PluginSpec, VmConfig, VmSpec, VmStats};
pub use properties::write_socket_addr;
pub use runtime::{CodeTier, Compiler, PoolingLimits, Runtime, RuntimeConfig};
pub use shared::{HISTOGRAM_BOUNDS, Histogram, Inbox, Metric, Metrics, Shared, SharedData, SharedQueues};
pub use stream::{
    Callout, CalloutKind, CalloutResult, GrpcCallRequest, GrpcEvent, HttpCallRequest, HttpCallResponse, LocalResponse,
    StreamData, StreamInfo, StreamState, TlsInfo, is_grpc_content_type,
};
pub use types::{AbiVersion, Action, BufferType, FailurePolicy, LogLevel, MapType, MetricType, Status, StreamType};
pub use vm::{RootWork, Vm, live_instances};
