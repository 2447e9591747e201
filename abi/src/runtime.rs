//! The process-wide host: one wasmtime `Engine` (pooling allocator, epoch interruption), one
//! `Linker` with every hostcall, the compiled-module cache, the shared state and the log sink.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::error::{Cause, LoadError};
use crate::host::HostState;
use crate::log::{LogSink, TracingLogSink};
use crate::module::{CompiledModule, ModuleCache, TierUp};
use crate::plugin::{PluginConfig, PluginSpec, VmConfig, VmSpec, next_id};
use crate::shared::Shared;

/// How the runtime is set up.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// How often the epoch advances: the granularity of callback deadlines. Default 1 ms.
    pub epoch_tick: Duration,
    /// Pre-allocated instance slots (pooling allocator); `None` allocates on demand.
    /// Default: 1000 instances of at most 256 MiB each.
    pub pooling: Option<PoolingLimits>,
    /// Directory for compiled modules (`<sha256>-<engine hash>.cwasm`); `None` keeps the cache
    /// in memory only. Default `None`.
    pub cache_dir: Option<PathBuf>,
    /// Where filter logs go. Default: `tracing` at INFO.
    pub log_sink: Arc<dyn LogSink>,
    /// Writes `/tmp/perf-<pid>.map`, naming the filters' compiled functions for profilers
    /// (`perf`, `bench/profile.py`). Default `false`.
    pub perf_map: bool,
    /// Which compiler turns modules into machine code. Default [`Compiler::Tiered`].
    pub compiler: Compiler,
}

/// How modules become machine code, with Wasmtime's two compilers: the choice between a
/// module's compile time and its code's speed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(rename_all = "snake_case"))]
pub enum Compiler {
    /// Cranelift, optimizing: the fastest code, compiled in about half a second for a
    /// built-in filter on this project's benchmark machine.
    Optimizing,
    /// Winch, a baseline compiler: a module compiles four to five times faster (a
    /// never-seen module serves sooner after a reload) into slower code.
    Baseline,
    /// Cranelift, except where a caller cannot wait ([`Runtime::load_module_tiered`]): there
    /// a never-seen module is compiled by Winch first and by Cranelift in the background
    /// ([`crate::TierUp`]); VMs made once the optimized code is ready run it.
    #[default]
    Tiered,
}

/// Which compiler made a module's machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeTier {
    /// Winch's code.
    Baseline,
    /// Cranelift's code.
    Optimized,
}

impl CodeTier {
    /// `baseline` or `optimized`.
    pub fn name(self) -> &'static str {
        match self {
            CodeTier::Baseline => "baseline",
            CodeTier::Optimized => "optimized",
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(1),
            pooling: Some(PoolingLimits::default()),
            cache_dir: None,
            log_sink: Arc::new(TracingLogSink::default()),
            perf_map: false,
            compiler: Compiler::default(),
        }
    }
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("epoch_tick", &self.epoch_tick)
            .field("pooling", &self.pooling)
            .field("cache_dir", &self.cache_dir)
            .field("perf_map", &self.perf_map)
            .field("compiler", &self.compiler)
            .finish_non_exhaustive()
    }
}

/// Sizes of the pooling allocator.
#[derive(Debug, Clone, Copy)]
pub struct PoolingLimits {
    /// Instances that can exist at once (over all threads and generations).
    pub max_instances: u32,
    /// The largest memory limit a VM may be given, in bytes.
    pub max_memory_bytes: usize,
}

impl Default for PoolingLimits {
    fn default() -> Self {
        Self { max_instances: 1000, max_memory_bytes: 256 << 20 }
    }
}

/// The Proxy-Wasm host of one process. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    /// The engine of the configured compiler (Cranelift unless [`Compiler::Baseline`]).
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Winch's engine for [`Compiler::Tiered`]'s first code, made at its first use (shared
    /// with the epoch ticker, which advances both engines).
    pub baseline: Arc<OnceLock<Tier>>,
    /// Every `(module, name)` the linker provides.
    pub provided: Provided,
    pub config: RuntimeConfig,
    pub cache: ModuleCache,
    pub shared: Shared,
    /// Cluster names `proxy_http_call` and `proxy_grpc_*` accept.
    pub clusters: RwLock<Arc<HashSet<String>>>,
    /// What `xds.node` describes.
    pub node: RwLock<Arc<crate::metadata::Node>>,
    ticker: Mutex<Option<Ticker>>,
}

/// Every import `(module, name)` a linker provides.
pub(crate) type Provided = HashSet<(&'static str, &'static str)>;

/// An engine and the linker of its hostcalls (a linker's functions belong to one engine).
pub(crate) struct Tier {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

/// The epoch ticker thread: its stop flag, its handle, and the process that started it.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    pid: u32,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Runtime {
    /// VM instances that can exist at once (the pooling allocator's slots), or `None` when
    /// instances are allocated on demand.
    pub fn instance_slots(&self) -> Option<u32> {
        self.inner.config.pooling.map(|p| p.max_instances)
    }

    /// Builds the engine, links every hostcall and starts the epoch ticker thread.
    ///
    /// # Errors
    ///
    /// Fails when wasmtime refuses the configuration (e.g. the pooling allocator cannot
    /// reserve its address space).
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let strategy = match config.compiler {
            Compiler::Optimizing | Compiler::Tiered => wasmtime::Strategy::Cranelift,
            Compiler::Baseline => wasmtime::Strategy::Winch,
        };
        let (Tier { engine, linker }, provided) = Tier::new(&config, strategy, config.pooling)?;
        let cache = ModuleCache::new(&engine, config.cache_dir.clone());
        let runtime = Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                baseline: Arc::default(),
                provided,
                cache,
                shared: Shared::default(),
                clusters: RwLock::new(Arc::new(HashSet::new())),
                node: RwLock::new(Arc::default()),
                ticker: Mutex::new(None),
                config,
            }),
        };
        runtime.start_ticker();
        Ok(runtime)
    }

    /// Makes sure the epoch ticker runs in this process: after a `fork` (daemon mode) only the
    /// forking thread exists in the child, so callback deadlines would never expire.
    pub fn ensure_ticker(&self) {
        let mut ticker = self.inner.ticker.lock().unwrap_or_else(|p| p.into_inner());
        let here = std::process::id();
        if ticker.as_ref().is_some_and(|t| t.pid == here) {
            return;
        }
        // The handle names a thread of the parent process: it cannot be joined here.
        if let Some(old) = ticker.take() {
            std::mem::forget(old);
        }
        drop(ticker);
        self.start_ticker();
    }

    fn start_ticker(&self) {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = self.inner.engine.clone();
        let baseline = self.inner.baseline.clone();
        let tick = self.inner.config.epoch_tick;
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                // The epoch follows the monotonic clock, not the count of sleeps: on a busy
                // machine a sleep lasts longer than asked, and the ticks it missed are made up,
                // so a deadline stays a duration.
                let started = std::time::Instant::now();
                let mut ticks: u128 = 0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    let due = started.elapsed().as_nanos() / tick.as_nanos().max(1);
                    while ticks < due {
                        engine.increment_epoch();
                        if let Some(b) = baseline.get() {
                            b.engine.increment_epoch();
                        }
                        ticks += 1;
                    }
                }
            })
            .ok();
        if let Some(h) = handle {
            let ticker = Ticker { stop, thread: h, pid: std::process::id() };
            *self.inner.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some(ticker);
        }
    }

    /// Winch's engine and linker for a tiered module's first code, made on first use. Its
    /// instances are allocated on demand, not from the pool: they live until the next reload
    /// at most, and the pool's slots stay the configuration's.
    pub(crate) fn baseline_tier(&self) -> Result<&Tier, LoadError> {
        if let Some(t) = self.inner.baseline.get() {
            return Ok(t);
        }
        let (tier, _) = Tier::new(&self.inner.config, wasmtime::Strategy::Winch, None)?;
        // Started before the engine existed, the ticker advances it from its next tick on.
        Ok(self.inner.baseline.get_or_init(|| tier))
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Shared data, queues and metrics.
    pub fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Sets the cluster names callouts may target for plugins that carry no list of their
    /// own ([`crate::PluginConfig::clusters`]: the proxy gives every plugin its generation's).
    pub fn set_clusters(&self, names: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = names.into_iter().collect();
        *self.inner.clusters.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// Sets what `xds.node` describes (Envoy's bootstrap node).
    pub fn set_node(&self, node: crate::metadata::Node) {
        *self.inner.node.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(node);
    }

    pub(crate) fn node(&self) -> Arc<crate::metadata::Node> {
        self.inner.node.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn has_cluster(&self, name: &str) -> bool {
        self.inner.clusters.read().unwrap_or_else(|p| p.into_inner()).contains(name)
    }

    /// True when weir provides the import `module.name` (for some ABI version; see
    /// [`LoadError::UnknownImport`] for version-specific ones).
    pub fn provides(&self, module: &str, name: &str) -> bool {
        self.inner.provided.contains(&(module, name))
    }

    /// Every import weir provides, as `(module, name)`, sorted.
    pub fn provided_imports(&self) -> Vec<(&'static str, &'static str)> {
        let mut all: Vec<_> = self.inner.provided.iter().copied().collect();
        all.sort_unstable();
        all
    }

    /// Compiles (or takes from the cache) and validates a Proxy-Wasm module.
    ///
    /// # Errors
    ///
    /// [`LoadError`] naming what is wrong: not WebAssembly, no ABI marker, no memory or
    /// allocator, an import weir does not provide, a callback with the wrong signature.
    pub fn load_module(&self, wasm: &[u8]) -> Result<Arc<CompiledModule>, LoadError> {
        self.inner.cache.get_or_compile(self, wasm, false).map(|(module, _)| module)
    }

    /// As [`Runtime::load_module`], for a caller that should not wait for Cranelift (a
    /// reload): under [`Compiler::Tiered`], a module that is neither in memory nor in the
    /// on-disk cache is compiled by Winch, and the returned [`TierUp`] compiles it by
    /// Cranelift when run (on a thread of the caller's choosing). VMs made from the module
    /// after that run the optimized code; VMs made before keep the code they started with.
    ///
    /// # Errors
    ///
    /// As [`Runtime::load_module`].
    pub fn load_module_tiered(&self, wasm: &[u8]) -> Result<(Arc<CompiledModule>, Option<TierUp>), LoadError> {
        let tiered = self.inner.config.compiler == Compiler::Tiered;
        self.inner.cache.get_or_compile(self, wasm, tiered)
    }

    /// Describes a VM: a module plus its configuration.
    ///
    /// # Errors
    ///
    /// [`LoadError::Limits`] when the memory limit exceeds what the pooling allocator allows.
    pub fn vm(&self, module: Arc<CompiledModule>, config: VmConfig) -> Result<Arc<VmSpec>, LoadError> {
        if let Some(p) = self.inner.config.pooling
            && config.limits.memory_bytes > p.max_memory_bytes
        {
            return Err(LoadError::Limits(format!(
                "memory limit {} bytes is above the runtime's maximum of {} bytes",
                config.limits.memory_bytes, p.max_memory_bytes
            )));
        }
        Ok(Arc::new(VmSpec {
            id: next_id(),
            module,
            config,
            runtime: self.clone(),
            retired: Default::default(),
            stats: Default::default(),
        }))
    }

    /// Describes one filter (a root context) running in `vm`.
    pub fn plugin(&self, vm: &Arc<VmSpec>, config: PluginConfig) -> Arc<PluginSpec> {
        Arc::new(PluginSpec { id: next_id(), vm: vm.clone(), config })
    }

    /// Convenience: load `wasm` and describe a single-filter VM with default settings.
    ///
    /// # Errors
    ///
    /// As [`Runtime::load_module`].
    pub fn simple_plugin(
        &self,
        wasm: &[u8],
        name: &str,
        configuration: impl Into<Bytes>,
    ) -> Result<Arc<PluginSpec>, LoadError> {
        let module = self.load_module(wasm)?;
        let vm = self.vm(module, VmConfig::default())?;
        Ok(self
            .plugin(&vm, PluginConfig { name: name.into(), configuration: configuration.into(), ..Default::default() }))
    }
}

impl Tier {
    /// An engine compiling with `strategy` (its instances taken from a pool sized by `pooling`,
    /// or allocated on demand), and the linker of every hostcall with the names it provides.
    fn new(
        config: &RuntimeConfig,
        strategy: wasmtime::Strategy,
        pooling: Option<PoolingLimits>,
    ) -> Result<(Self, Provided), LoadError> {
        let mut wasm = Config::new();
        wasm.strategy(strategy)
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .parallel_compilation(true)
            .memory_init_cow(true)
            .max_wasm_stack(512 << 10);
        if config.perf_map {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(p) = pooling {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_core_instances(p.max_instances)
                .total_memories(p.max_instances)
                .total_tables(p.max_instances)
                .max_memory_size(p.max_memory_bytes)
                .max_core_instance_size(4 << 20);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(Cause::new(e)))?;
        let mut linker = Linker::new(&engine);
        let provided = crate::hostcalls::add_to_linker(&mut linker).map_err(|e| LoadError::Engine(Cause::new(e)))?;
        Ok((Self { engine, linker }, provided))
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.get_mut().ok().and_then(Option::take) {
            t.stop.store(true, Ordering::Relaxed);
            if t.pid == std::process::id() {
                let _ = t.thread.join();
            }
        }
    }
}
