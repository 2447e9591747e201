//! Module loading and linking (docs/abi.md#loading; checklist items 1–8, 12): each bad module is refused with
//! an error naming what is wrong, and the runtime stays usable.

use serde_json::json;
use weir_abi::*;

use crate::common::*;

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid wat")
}

const BASE: &str = r#"
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) i32.const 1024)
"#;

fn module(marker: &str, body: &str) -> Vec<u8> {
    wat(&format!(r#"(module {body} {BASE} (func (export "{marker}")))"#))
}

#[test]
fn refuses_modules_with_clear_errors() {
    let h = host();
    let no_marker = wat(&format!("(module {BASE})"));
    assert_eq!(h.rt.load_module(&no_marker).unwrap_err(), LoadError::NoAbiVersion);

    let unknown = module("proxy_abi_version_0_2_1", r#"(import "env" "proxy_teleport" (func (param i32)))"#);
    let e = h.rt.load_module(&unknown).unwrap_err();
    assert!(e.to_string().contains("env.proxy_teleport"), "{e}");

    let other_version =
        module("proxy_abi_version_0_2_0", r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32)))"#);
    let e = h.rt.load_module(&other_version).unwrap_err();
    assert!(e.to_string().contains("ABI 0.2.1"), "{e}");

    let mistyped = module("proxy_abi_version_0_2_1", r#"(import "env" "proxy_log" (func (param i32)))"#);
    assert!(
        matches!(h.rt.load_module(&mistyped).unwrap_err(), LoadError::ImportTypeMismatch { ref name, .. } if name == "proxy_log")
    );

    let bad_callback = module(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_request_headers") (param i32 i32) (result i32) i32.const 0)"#,
    );
    let e = h.rt.load_module(&bad_callback).unwrap_err();
    assert!(
        e.to_string().contains("proxy_on_request_headers") && e.to_string().contains("(i32, i32, i32) -> i32"),
        "{e}"
    );

    let no_memory = wat(
        r#"(module (func (export "malloc") (param i32) (result i32) i32.const 0) (func (export "proxy_abi_version_0_2_1")))"#,
    );
    assert_eq!(h.rt.load_module(&no_memory).unwrap_err(), LoadError::MissingExport("memory"));

    let no_alloc = wat(r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#);
    assert_eq!(h.rt.load_module(&no_alloc).unwrap_err(), LoadError::MissingAllocator);

    assert!(matches!(h.rt.load_module(b"hello world, not wasm").unwrap_err(), LoadError::NotWasm(_)));

    // Wasmtime's reason is kept as the error's source (not flattened into its message), and
    // `Chain` shows it with every cause below it, as logs and configuration errors do.
    let ill_typed = module("proxy_abi_version_0_2_1", r#"(func (export "f") (result i32))"#);
    let e = h.rt.load_module(&ill_typed).unwrap_err();
    assert!(matches!(e, LoadError::Invalid(_)), "{e:?}");
    assert_eq!(e.to_string(), "invalid WebAssembly module");
    let cause = std::error::Error::source(&e).expect("Wasmtime's error is the source");
    let chain = Chain(&e).to_string();
    assert!(chain.starts_with(&format!("invalid WebAssembly module: {cause}")), "{chain}");
    assert!(chain.contains("type mismatch"), "{chain}");
    let global = module("proxy_abi_version_0_2_1", r#"(import "env" "g" (global i32))"#);
    assert!(h.rt.load_module(&global).unwrap_err().to_string().contains("only function imports"));

    // Still usable.
    assert!(h.rt.load_module(&probe_wasm()).is_ok());
}

#[test]
fn both_wasi_module_names_link() {
    let h = host();
    let m = module(
        "proxy_abi_version_0_2_1",
        r#"(import "wasi_unstable" "proc_exit" (func (param i32))) (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))"#,
    );
    assert!(h.rt.load_module(&m).is_ok());
}

#[test]
fn cached_modules_are_shared() {
    let h = host();
    let a = h.rt.load_module(&probe_wasm()).unwrap();
    let b = h.rt.load_module(&probe_wasm()).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(a.abi, AbiVersion::V0_2_1);
    assert!(a.start.initialize);
}

/// A 0.1.0 module: two-argument header callbacks, OK with empty value for missing headers,
/// `proxy_continue_request`.
const V010: &str = r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_request" (func $cont (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "missing")
  (global $next (mut i32) (i32.const 4096))
  (func (export "malloc") (param i32) (result i32) (local i32)
    global.get $next local.set 1 global.get $next local.get 0 i32.add global.set $next local.get 1)
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "proxy_on_request_headers") (param i32 i32) (result i32)
    ;; log the status of get_header_map_value("missing") as one ASCII digit
    (i32.store8 (i32.const 100) (i32.add (i32.const 48) (call $get (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 200) (i32.const 204))))
    (drop (call $log (i32.const 2) (i32.const 100) (i32.const 1)))
    ;; and the header count it was given
    (i32.store8 (i32.const 101) (i32.add (i32.const 48) (local.get 1)))
    (drop (call $log (i32.const 2) (i32.const 101) (i32.const 1)))
    (drop (call $cont))
    i32.const 1))
"#;

#[test]
fn abi_0_1_0_modules_run_with_their_signatures() {
    let h = host();
    let module = h.rt.load_module(&wat(V010)).unwrap();
    assert_eq!(module.abi, AbiVersion::V0_1_0);
    let vm = h.rt.vm(module, VmConfig::default()).unwrap();
    let p = h.rt.plugin(&vm, PluginConfig { name: "old".into(), ..Default::default() });
    let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    assert!(is_continue(&out), "continue_request in the callback: not paused ({out:?})");
    let raw: Vec<String> = h.log.raw().into_iter().map(|(_, m)| m).collect();
    assert_eq!(raw, ["0", "5"], "missing header: OK (0.1.0); 5 headers");
}

#[test]
fn trap_in_initialize_and_restricted_calls_fail_the_start() {
    let h = host();
    let trap = module("proxy_abi_version_0_2_1", r#"(func (export "_initialize") unreachable)"#);
    let vm = h.rt.vm(h.rt.load_module(&trap).unwrap(), VmConfig::default()).unwrap();
    assert!(matches!(Vm::new(&vm), Err(StartError::StartFunction(Failure { kind: FailureKind::Unreachable, .. }))));

    let restricted = module(
        "proxy_abi_version_0_2_1",
        r#"(import "env" "proxy_get_property" (func $p (param i32 i32 i32 i32) (result i32)))
           (func (export "_initialize") (drop (call $p (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))"#,
    );
    let vm = h.rt.vm(h.rt.load_module(&restricted).unwrap(), VmConfig::default()).unwrap();
    let err = Vm::new(&vm).unwrap_err();
    assert!(matches!(err, StartError::StartFunction(Failure { kind: FailureKind::Restricted, .. })), "{err}");

    let _ = json!({});
}

/// `RuntimeConfig::perf_map` (WEIR_PERF_MAP=1, docs/operations.md#profiling-filters): the
/// filters' compiled functions are named in `/tmp/perf-<pid>.map` for profilers.
#[test]
fn a_perf_map_names_the_compiled_functions() {
    let path = std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    let rt = Runtime::new(RuntimeConfig { pooling: None, perf_map: true, ..Default::default() }).expect("runtime");
    rt.load_module(&probe_wasm()).expect("probe loads");
    let map = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let line = map.lines().find(|l| l.ends_with(" proxy_on_request_headers"));
    let fields: Vec<&str> = line.map(|l| l.split(' ').collect()).unwrap_or_default();
    assert!(
        fields.len() == 3 && fields[0].starts_with("0x") && u64::from_str_radix(fields[1], 16).is_ok_and(|n| n > 0),
        "perf map line for proxy_on_request_headers: {line:?} (map of {} bytes)",
        map.len()
    );
}

/// The probe with a custom section no other test has: a module neither cache has seen.
fn never_seen_probe(tag: &str) -> Vec<u8> {
    let unique = format!("{tag}-{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let name = b"weir-test";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(unique.as_bytes());
    let mut wasm = probe_wasm();
    wasm.push(0);
    wasm.push(u8::try_from(body.len()).expect("a short section"));
    wasm.extend_from_slice(&body);
    wasm
}

/// `Compiler::Tiered` (the default): a never-seen module loaded for a reload starts on Winch's
/// code and serves at once; after its `TierUp`, VMs made from it run Cranelift's code while a
/// VM made before keeps its own and still serves (no VM is replaced under its filter); the
/// optimized code is in the on-disk cache for the next runtime, and a plain load never waits
/// on Winch.
#[test]
fn a_tiered_module_serves_on_baseline_code_until_its_optimized_code_is_ready() {
    let cache = tempfile::tempdir().unwrap();
    let h = host_with_cache(cache.path().to_owned());
    let wasm = never_seen_probe("tiered");
    let (module, tier_up) = h.rt.load_module_tiered(&wasm).unwrap();
    let tier_up = tier_up.expect("a never-seen module is optimized afterwards");
    assert_eq!(module.tier(), CodeTier::Baseline);
    let (again, none) = h.rt.load_module_tiered(&wasm).unwrap();
    assert!(std::sync::Arc::ptr_eq(&module, &again) && none.is_none(), "one module, one tier-up");

    let plugin = |vm_id: &str| {
        let vm = h.rt.vm(module.clone(), VmConfig { vm_id: vm_id.into(), ..Default::default() }).unwrap();
        let steps = script(json!({ "request_headers": [["add_header", 0, "x-tier", vm_id]] }));
        h.rt.plugin(
            &vm,
            PluginConfig { name: vm_id.into(), configuration: steps.to_string().into(), ..Default::default() },
        )
    };
    let serves = |p: &std::sync::Arc<PluginSpec>| {
        let mut s = get("/");
        exchange(&mut FilterChain::new(vec![p.clone()]), &mut s);
        s.request_headers.get(b"x-tier").map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let early = plugin("early");
    assert_eq!(serves(&early).as_deref(), Some("early"));
    assert_eq!(early.vm.stats().baseline_instances.load(std::sync::atomic::Ordering::Relaxed), 1);

    tier_up.run().expect("Cranelift compiles what Winch compiled");
    assert_eq!(module.tier(), CodeTier::Optimized);
    let late = plugin("late");
    assert_eq!(serves(&late).as_deref(), Some("late"));
    assert_eq!(late.vm.stats().baseline_instances.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(Vm::new(&late.vm).unwrap().tier(), CodeTier::Optimized);
    assert_eq!(serves(&early).as_deref(), Some("early"), "the early VM keeps serving on its code");
    assert_eq!(early.vm.stats().baseline_instances.load(std::sync::atomic::Ordering::Relaxed), 1);

    let next = host_with_cache(cache.path().to_owned());
    let (loaded, none) = next.rt.load_module_tiered(&wasm).unwrap();
    assert!(none.is_none());
    assert_eq!((loaded.origin, loaded.tier()), (ModuleOrigin::DiskCache, CodeTier::Optimized));
}

/// Outside `Compiler::Tiered`, and for `load_module` (a start), a module is compiled by the
/// configured compiler before the call returns: nothing runs on Winch's code unasked.
#[test]
fn only_a_tiered_load_starts_on_baseline_code() {
    let cache = tempfile::tempdir().unwrap();
    let h = host_with_cache(cache.path().to_owned());
    let module = h.rt.load_module(&never_seen_probe("plain")).unwrap();
    assert!(matches!(module.origin, ModuleOrigin::Compiled(_)));
    assert_eq!(module.tier(), CodeTier::Optimized);

    let optimizing =
        Runtime::new(RuntimeConfig { compiler: Compiler::Optimizing, pooling: None, ..Default::default() }).unwrap();
    let (module, tier_up) = optimizing.load_module_tiered(&never_seen_probe("optimizing")).unwrap();
    assert!(tier_up.is_none());
    assert_eq!(module.tier(), CodeTier::Optimized);

    let baseline =
        Runtime::new(RuntimeConfig { compiler: Compiler::Baseline, pooling: None, ..Default::default() }).unwrap();
    let (module, tier_up) = baseline.load_module_tiered(&never_seen_probe("baseline")).unwrap();
    assert!(tier_up.is_none());
    assert_eq!(module.tier(), CodeTier::Baseline);
}
