//! Loading a module: ABI version detection, export and import checks, compilation, and the
//! compiled-module cache (memory, and optionally disk, keyed by sha256 + engine hash).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, ExternType, FuncType, InstancePre, Linker, Module, ValType};

use crate::error::{Cause, LoadError};
use crate::host::HostState;
use crate::runtime::{CodeTier, Runtime};
use crate::types::AbiVersion;

/// Compiled modules kept in memory at most.
const MEMORY_CACHE_ENTRIES: usize = 64;

/// A compiled module on disk unused for this long is removed when a runtime opens the cache.
const DISK_CACHE_UNUSED: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A validated, compiled Proxy-Wasm module, ready to instantiate.
pub struct CompiledModule {
    /// sha256 of the `.wasm` bytes.
    pub sha256: [u8; 32],
    /// The ABI version its marker export declares.
    pub abi: AbiVersion,
    /// The start function(s) to run after instantiation.
    pub start: StartFunctions,
    /// The allocator export (`malloc` preferred, as in Envoy).
    pub allocator: &'static str,
    /// Where its first machine code came from.
    pub origin: ModuleOrigin,
    /// The code it was loaded with.
    first: Code,
    /// Cranelift's code, when the first was Winch's under [`crate::Compiler::Tiered`] and the
    /// [`TierUp`] has run.
    optimized: OnceLock<Code>,
}

/// A module's machine code, linked and ready to instantiate.
pub(crate) struct Code {
    pub pre: InstancePre<HostState>,
    pub tier: CodeTier,
}

/// Where a compiled module's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// Compiled by Cranelift, taking this long.
    Compiled(std::time::Duration),
    /// Read from the on-disk cache.
    DiskCache,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("sha256", &hex::encode(self.sha256))
            .field("abi", &self.abi)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl CompiledModule {
    /// The code VMs made now start with: the optimized code once there is some.
    pub(crate) fn code(&self) -> &Code {
        self.optimized.get().unwrap_or(&self.first)
    }

    /// Which compiler made the code VMs made now start with.
    pub fn tier(&self) -> CodeTier {
        self.code().tier
    }

    fn module(&self) -> &Module {
        self.first.pre.module()
    }

    /// The sha256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// True when the module exports the named function.
    pub fn exports_function(&self, name: &str) -> bool {
        matches!(self.module().get_export(name), Some(ExternType::Func(_)))
    }

    /// Every export, with its kind, for inspection.
    pub fn exports(&self) -> Vec<(String, &'static str)> {
        self.module().exports().map(|e| (e.name().to_owned(), extern_kind(&e.ty()))).collect()
    }

    /// Every import `(module, name)`.
    pub fn imports(&self) -> Vec<(String, String)> {
        self.module().imports().map(|i| (i.module().to_owned(), i.name().to_owned())).collect()
    }
}

/// Which start functions a module has (docs/abi.md#start-functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartFunctions {
    /// `_initialize` (WASI reactor).
    pub initialize: bool,
    /// `main(i32, i32) -> i32`, called with (0, 0) after `_initialize`.
    pub main: bool,
    /// `__main_void() -> i32`, when `main` is absent.
    pub main_void: bool,
    /// `_start`, only when `_initialize` is absent (WASI command).
    pub start: bool,
}

fn extern_kind(t: &ExternType) -> &'static str {
    match t {
        ExternType::Func(_) => "function",
        ExternType::Memory(_) => "memory",
        ExternType::Table(_) => "table",
        ExternType::Global(_) => "global",
        _ => "other",
    }
}

/// Expected `(params, returns a value)` of a callback export (all i32).
fn callback_arity(name: &str, abi: AbiVersion) -> Option<(usize, bool)> {
    let headers = if abi == AbiVersion::V0_1_0 { 2 } else { 3 };
    Some(match name {
        "proxy_on_context_create" => (2, false),
        "proxy_on_vm_start" | "proxy_on_configure" | "proxy_validate_configuration" => (2, true),
        "proxy_on_tick" | "proxy_on_log" | "proxy_on_delete" => (1, false),
        "proxy_on_done" | "proxy_on_new_connection" => (1, true),
        "proxy_on_queue_ready" => (2, false),
        "proxy_on_foreign_function" => (3, false),
        "proxy_on_downstream_data" | "proxy_on_upstream_data" => (3, true),
        "proxy_on_downstream_connection_close" | "proxy_on_upstream_connection_close" => (2, false),
        "proxy_on_request_headers" | "proxy_on_response_headers" => (headers, true),
        "proxy_on_request_body" | "proxy_on_response_body" => (3, true),
        "proxy_on_request_trailers" | "proxy_on_response_trailers" => (2, true),
        "proxy_on_request_metadata" | "proxy_on_response_metadata" => (2, true),
        "proxy_on_http_call_response" => (5, false),
        "proxy_on_grpc_receive_initial_metadata"
        | "proxy_on_grpc_receive"
        | "proxy_on_grpc_receive_trailing_metadata"
        | "proxy_on_grpc_close" => (3, false),
        "malloc" | "proxy_on_memory_allocate" => (1, true),
        _ => return None,
    })
}

fn i32_func(params: usize, ret: bool) -> String {
    let p = vec!["i32"; params].join(", ");
    if ret { format!("({p}) -> i32") } else { format!("({p}) -> ()") }
}

fn describe(f: &FuncType) -> String {
    let p: Vec<String> = f.params().map(|t| format!("{t}")).collect();
    let r: Vec<String> = f.results().map(|t| format!("{t}")).collect();
    format!("({}) -> ({})", p.join(", "), r.join(", "))
}

fn is_i32_func(f: &FuncType, params: usize, ret: bool) -> bool {
    f.params().len() == params
        && f.params().all(|t| matches!(t, ValType::I32))
        && f.results().len() == usize::from(ret)
        && f.results().all(|t| matches!(t, ValType::I32))
}

/// Every callback export weir knows (docs/abi.md#callbacks), whether or not it ever calls it.
pub const CALLBACKS: &[&str] = &[
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_validate_configuration",
    "proxy_on_tick",
    "proxy_on_queue_ready",
    "proxy_on_foreign_function",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_request_metadata",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_response_metadata",
    "proxy_on_http_call_response",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
    "proxy_on_memory_allocate",
    "malloc",
];

/// The number of (i32) parameters callback `name` takes under `abi`, if it is a callback.
pub fn callback_params(name: &str, abi: AbiVersion) -> Option<usize> {
    callback_arity(name, abi).map(|(params, _)| params)
}

/// The ABI versions under which weir links import `env.<name>`.
pub fn import_versions(name: &str) -> &'static [AbiVersion] {
    version_of_import(name).unwrap_or(&AbiVersion::ALL)
}

/// Imports that exist only for some ABI versions (proxy-wasm-cpp-host links them only there).
fn version_of_import(name: &str) -> Option<&'static [AbiVersion]> {
    use AbiVersion::*;
    Some(match name {
        "proxy_get_configuration"
        | "proxy_continue_request"
        | "proxy_continue_response"
        | "proxy_clear_route_cache" => &[V0_1_0],
        "proxy_continue_stream" | "proxy_close_stream" => &[V0_2_0, V0_2_1],
        "proxy_get_log_level" => &[V0_2_1],
        _ => return None,
    })
}

/// Checks a module against the ABI and links it with `linker` (of the engine that compiled it).
pub(crate) fn validate(
    runtime: &Runtime,
    linker: &Linker<HostState>,
    module: Module,
    sha256: [u8; 32],
    origin: ModuleOrigin,
    tier: CodeTier,
) -> Result<CompiledModule, LoadError> {
    let abi = module
        .exports()
        .find_map(|e| matches!(e.ty(), ExternType::Func(_)).then(|| AbiVersion::from_marker(e.name())).flatten())
        .ok_or(LoadError::NoAbiVersion)?;

    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        _ => return Err(LoadError::MissingExport("memory")),
    }

    let mut allocator = None;
    for export in module.exports() {
        let ExternType::Func(f) = export.ty() else {
            continue;
        };
        let Some((params, ret)) = callback_arity(export.name(), abi) else {
            continue;
        };
        if !is_i32_func(&f, params, ret) {
            return Err(LoadError::BadExportSignature {
                name: export.name().to_owned(),
                abi,
                expected: i32_func(params, ret),
                found: describe(&f),
            });
        }
    }
    for name in ["malloc", "proxy_on_memory_allocate"] {
        if matches!(module.get_export(name), Some(ExternType::Func(_))) {
            allocator = Some(if name == "malloc" { "malloc" } else { "proxy_on_memory_allocate" });
            break;
        }
    }
    let allocator = allocator.ok_or(LoadError::MissingAllocator)?;

    let func = |name: &str, params: usize, ret: bool| match module.get_export(name) {
        Some(ExternType::Func(f)) => is_i32_func(&f, params, ret),
        _ => false,
    };
    let start = StartFunctions {
        initialize: func("_initialize", 0, false),
        main: func("main", 2, true),
        main_void: func("__main_void", 0, true),
        start: func("_start", 0, false),
    };

    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let unknown = |hint: String| LoadError::UnknownImport { module: m.to_owned(), name: n.to_owned(), hint };
        if !matches!(import.ty(), ExternType::Func(_)) {
            return Err(unknown(format!(
                " (only function imports are supported; this is a {})",
                extern_kind(&import.ty())
            )));
        }
        if !runtime.inner.provided.contains(&(m, n)) {
            return Err(unknown(String::new()));
        }
        if m == "env"
            && let Some(versions) = version_of_import(n)
            && !versions.contains(&abi)
        {
            let list: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
            return Err(unknown(format!(" for ABI {abi} (it belongs to ABI {})", list.join(", "))));
        }
    }

    let pre = link(linker, &module)?;
    Ok(CompiledModule { sha256, abi, start, allocator, origin, first: Code { pre, tier }, optimized: OnceLock::new() })
}

/// Resolves a module's imports against `linker`'s hostcalls, once for all its instances.
fn link(linker: &Linker<HostState>, module: &Module) -> Result<InstancePre<HostState>, LoadError> {
    linker.instantiate_pre(module).map_err(|e| {
        let text = format!("{e:#}");
        let (m, n) = module
            .imports()
            .map(|i| (i.module().to_owned(), i.name().to_owned()))
            .find(|(m, n)| text.contains(&format!("{m}::{n}")))
            .unwrap_or_default();
        LoadError::ImportTypeMismatch { module: m, name: n, detail: text }
    })
}

/// Cranelift's compile of a module that was first compiled by Winch ([`Runtime::load_module_tiered`]).
/// Run it on a thread that may wait: it compiles on one low-priority thread, so the workers keep
/// the CPU, and writes the code to the on-disk cache for the next start.
#[must_use = "the module keeps its baseline code unless this runs"]
pub struct TierUp {
    runtime: Runtime,
    module: Arc<CompiledModule>,
    wasm: Vec<u8>,
}

impl std::fmt::Debug for TierUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierUp").field("module", &self.module.sha256_hex()).finish_non_exhaustive()
    }
}

impl TierUp {
    /// The module it optimizes.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    /// Compiles the module by Cranelift and gives the code to VMs made from now on. Returns how
    /// long the compile took.
    ///
    /// # Errors
    ///
    /// When Cranelift or the linker refuses what Winch accepted (the module keeps Winch's code).
    pub fn run(self) -> Result<std::time::Duration, LoadError> {
        let Self { runtime, module, wasm } = self;
        let cache = &runtime.inner.cache;
        let (compiled, took) = match low_priority_pool() {
            Some(pool) => pool.install(|| cache.compile(&runtime.inner.engine, &wasm, &module.sha256)),
            None => cache.compile(&runtime.inner.engine, &wasm, &module.sha256),
        }?;
        let pre = link(&runtime.inner.linker, &compiled)?;
        // Only one `TierUp` exists per module (the cache makes it with the module).
        let _ = module.optimized.set(Code { pre, tier: CodeTier::Optimized });
        Ok(took)
    }
}

/// A pool of one thread at a lower scheduling priority (nice 10), for compiles nothing waits
/// for. `None` when the thread cannot be started (the compile then runs on the caller's).
fn low_priority_pool() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "weir-tier-up".into())
        .start_handler(|_| {
            // SAFETY: setpriority has no memory preconditions; `who` 0 is the calling thread
            // on Linux (threads are scheduled as processes). A failure leaves the priority as is.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        })
        .build()
        .ok()
}

/// The threads modules are compiled on, with the process that made them.
static COMPILE_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// This process's compile threads. Wasmtime compiles a module's functions in parallel on the
/// rayon pool it is called from; after a fork (`weir -d`) the threads of a pool made before it
/// do not exist in the child, and a compile there would wait for them forever, so a process
/// that finds another process's pool makes its own (as `Runtime::ensure_ticker` does for the
/// epoch thread). `None` when no thread can be started: the module then compiles on the
/// calling thread's pool.
fn compile_pool() -> Option<Arc<rayon::ThreadPool>> {
    let mut pool = COMPILE_POOL.lock().unwrap_or_else(|p| p.into_inner());
    let here = std::process::id();
    match pool.as_ref() {
        Some((pid, p)) if *pid == here => return Some(p.clone()),
        // Its threads were the parent's: nothing to stop or join here.
        Some(_) => std::mem::forget(pool.take()),
        None => {}
    }
    let made = Arc::new(rayon::ThreadPoolBuilder::new().thread_name(|i| format!("weir-compile-{i}")).build().ok()?);
    *pool = Some((here, made.clone()));
    Some(made)
}

/// Runs `f` on each thread this process compiled modules on (on none before the first
/// compile): lets the host give back what compiling left in their allocator's caches.
pub fn on_compile_threads(f: impl Fn() + Sync) {
    let pool = COMPILE_POOL.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some((pid, pool)) = pool
        && pid == std::process::id()
    {
        pool.broadcast(|_| f());
    }
}

/// Removes from the on-disk cache what no runtime of this engine will read: modules compiled
/// by another engine (another weir or Wasmtime version, other settings), unused for
/// [`DISK_CACHE_UNUSED`], and the temporary files of writes that did not finish.
fn prune(dir: &std::path::Path, engine_hash: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.rsplit_once('.') else { continue };
        let Some((sha, hash)) = stem.split_once('-') else { continue };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let unused = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > DISK_CACHE_UNUSED);
        let stale = ext == "cwasm" && (hash != engine_hash || unused);
        let unfinished = ext.starts_with("tmp") && unused_for_a_while(&entry);
        if stale || unfinished {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A temporary file older than a minute: its writer is gone.
fn unused_for_a_while(entry: &std::fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > std::time::Duration::from_secs(60))
}

/// Compiles `wasm` with `engine` on the compile threads (or the caller's pool, or, when the
/// caller is in a single-thread pool, that thread).
fn compile_now(engine: &Engine, wasm: &[u8]) -> Result<Module, LoadError> {
    let module = || Module::new(engine, wasm).map_err(|e| LoadError::Invalid(Cause::new(e)));
    if rayon::current_thread_index().is_some() {
        return module();
    }
    match compile_pool() {
        Some(pool) => pool.install(module),
        None => module(),
    }
}

/// Keeps `module` in the memory cache, dropping the oldest entry when it is full.
fn mem_insert(mem: &mut Vec<([u8; 32], Arc<CompiledModule>)>, sha: [u8; 32], module: Arc<CompiledModule>) {
    if mem.len() >= MEMORY_CACHE_ENTRIES {
        mem.remove(0);
    }
    mem.push((sha, module));
}

/// Compiled modules by content, in memory and optionally on disk.
pub(crate) struct ModuleCache {
    memory: Mutex<Vec<([u8; 32], Arc<CompiledModule>)>>,
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl ModuleCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = format!("{:016x}", h.finish());
        if let Some(dir) = &dir {
            prune(dir, &engine_hash);
        }
        Self { memory: Mutex::new(Vec::new()), dir, engine_hash }
    }

    /// The module of `wasm`, from memory, disk, or compiled; with `tiered`, a module compiled
    /// now is Winch's, and comes with the [`TierUp`] that optimizes it.
    pub(crate) fn get_or_compile(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        tiered: bool,
    ) -> Result<(Arc<CompiledModule>, Option<TierUp>), LoadError> {
        if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
            return Err(LoadError::NotWasm("the file does not start with the WebAssembly magic bytes `\\0asm`".into()));
        }
        if wasm[4..8] != [1, 0, 0, 0] {
            return Err(LoadError::NotWasm(
                "this is a WebAssembly component (or an unknown binary version), not a core module; \
                 Proxy-Wasm filters are core modules"
                    .into(),
            ));
        }
        let sha: [u8; 32] = Sha256::digest(wasm).into();
        let mut mem = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, m)) = mem.iter().find(|(k, _)| *k == sha) {
            return Ok((m.clone(), None));
        }
        // The code of the runtime's own engine: Cranelift's unless the compiler is `baseline`.
        let engine_tier = match runtime.inner.config.compiler {
            crate::Compiler::Baseline => CodeTier::Baseline,
            crate::Compiler::Optimizing | crate::Compiler::Tiered => CodeTier::Optimized,
        };
        let (engine, linker) = (&runtime.inner.engine, &runtime.inner.linker);
        let (compiled, tier_up) = if let Some(module) = self.cached(engine, &sha) {
            (Arc::new(validate(runtime, linker, module, sha, ModuleOrigin::DiskCache, engine_tier)?), None)
        } else if tiered {
            let baseline = runtime.baseline_tier()?;
            let started = std::time::Instant::now();
            let module = compile_now(&baseline.engine, wasm)?;
            let origin = ModuleOrigin::Compiled(started.elapsed());
            let compiled = Arc::new(validate(runtime, &baseline.linker, module, sha, origin, CodeTier::Baseline)?);
            let tier_up = TierUp { runtime: runtime.clone(), module: compiled.clone(), wasm: wasm.to_vec() };
            (compiled, Some(tier_up))
        } else {
            let (module, took) = self.compile(engine, wasm, &sha)?;
            (Arc::new(validate(runtime, linker, module, sha, ModuleOrigin::Compiled(took), engine_tier)?), None)
        };
        mem_insert(&mut mem, sha, compiled.clone());
        Ok((compiled, tier_up))
    }

    /// The module of `sha` from the on-disk cache, if it is there and loads.
    fn cached(&self, engine: &Engine, sha: &[u8; 32]) -> Option<Module> {
        let path = self.path(sha)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is in weir's own cache directory, named by the sha256 of the
        // source and the engine's compatibility hash, and was written by `compile` below.
        let module = unsafe { Module::deserialize_file(engine, &path) }.ok()?;
        // Marks it used, for the pruning of unused entries.
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Some(module)
    }

    fn path(&self, sha: &[u8; 32]) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{}-{}.cwasm", hex::encode(sha), self.engine_hash)))
    }

    /// Compiles `wasm` with `engine` (the primary one) and writes its code to the on-disk
    /// cache. Returns the module and how long the compile took.
    fn compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha: &[u8; 32],
    ) -> Result<(Module, std::time::Duration), LoadError> {
        let started = std::time::Instant::now();
        let module = compile_now(engine, wasm)?;
        let took = started.elapsed();
        if let Some(path) = self.path(sha)
            && let Ok(bytes) = module.serialize()
        {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // Unique per write: a tier-up and a load of the same module may write at once.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok((module, took))
    }
}
