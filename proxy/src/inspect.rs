//! `weir inspect FILE.wasm`: what a module is and whether weir will load it — the ABI version,
//! the callbacks it implements, every import with whether weir provides it, its memory, and a
//! verdict with the reason.

use std::fmt::Write;
use std::path::Path;

use weir_abi::{AbiVersion, Runtime, RuntimeConfig};

/// The report for `path`, and whether the module loads.
pub fn inspect(path: &Path) -> (String, bool) {
    let mut out = String::new();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return (format!("{}: cannot read: {e}\n", path.display()), false),
    };
    let _ = writeln!(out, "{}: {} bytes", path.display(), bytes.len());
    let runtime = match Runtime::new(RuntimeConfig { pooling: None, ..Default::default() }) {
        Ok(r) => r,
        Err(e) => return (format!("{out}cannot start the wasm runtime: {}\n", weir_abi::Chain(&e)), false),
    };
    let verdict = runtime.load_module(&bytes);
    // Describe the module even when weir refuses it, as far as it is WebAssembly at all.
    if let Ok(module) = wasmtime::Module::new(runtime.engine(), &bytes) {
        describe(&mut out, &runtime, &module);
    }
    match verdict {
        Ok(m) => {
            let _ = writeln!(out, "verdict: loads (Proxy-Wasm ABI {}, sha256 {})", m.abi, m.sha256_hex());
            (out, true)
        }
        Err(e) => {
            let _ = writeln!(out, "verdict: will not load: {}", weir_abi::Chain(&e));
            (out, false)
        }
    }
}

fn describe(out: &mut String, runtime: &Runtime, module: &wasmtime::Module) {
    let exports: Vec<(String, wasmtime::ExternType)> =
        module.exports().map(|e| (e.name().to_owned(), e.ty())).collect();
    let abi = exports.iter().find_map(|(n, _)| AbiVersion::from_marker(n));
    let _ = writeln!(
        out,
        "abi: {}",
        abi.map(|v| v.to_string())
            .unwrap_or_else(|| "none (no proxy_abi_version_* export: not a Proxy-Wasm filter)".into())
    );
    for (name, ty) in &exports {
        if let wasmtime::ExternType::Memory(m) = ty {
            let max = m.maximum().map(|p| format!("{p} pages")).unwrap_or_else(|| "no maximum".into());
            let _ = writeln!(out, "memory `{name}`: {} pages initial ({} KiB), {max}", m.minimum(), m.minimum() * 64);
        }
    }
    let start: Vec<&str> =
        ["_initialize", "_start", "main"].into_iter().filter(|s| exports.iter().any(|(n, _)| n == s)).collect();
    let _ = writeln!(out, "start functions: {}", if start.is_empty() { "none".into() } else { start.join(", ") });
    let alloc: Vec<&str> =
        ["malloc", "proxy_on_memory_allocate"].into_iter().filter(|s| exports.iter().any(|(n, _)| n == s)).collect();
    let _ = writeln!(out, "allocator: {}", if alloc.is_empty() { "none".into() } else { alloc.join(", ") });
    let callbacks: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).filter(|n| n.starts_with("proxy_on_")).collect();
    let _ = writeln!(out, "callbacks ({}): {}", callbacks.len(), callbacks.join(", "));
    let imports: Vec<_> = module.imports().collect();
    let _ = writeln!(out, "imports ({}):", imports.len());
    for i in imports {
        let provided = matches!(i.ty(), wasmtime::ExternType::Func(_)) && runtime.provides(i.module(), i.name());
        let _ = writeln!(out, "  {} {}.{}", if provided { "provided " } else { "MISSING  " }, i.module(), i.name());
    }
}
