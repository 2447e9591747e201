//! `weir inspect`: a valid filter, a filter with an import weir does not provide, a module that
//! is not Proxy-Wasm, and a file that is not WebAssembly.

use std::process::Command;

fn inspect(bytes: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.wasm");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).arg("inspect").arg(&path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_valid_filter() {
    let (ok, out) = inspect(&std::fs::read(weir_test_fixtures::PROBE).unwrap());
    assert!(ok, "{out}");
    assert!(out.contains("abi: 0.2.1"));
    assert!(out.contains("verdict: loads (Proxy-Wasm ABI 0.2.1"));
    assert!(out.contains("proxy_on_request_headers"));
    assert!(out.contains("provided  env.proxy_log"));
    assert!(out.contains("provided  wasi_snapshot_preview1.fd_write"));
    assert!(out.contains("start functions: _initialize"));
    assert!(!out.contains("MISSING"));
}

#[test]
fn an_unsupported_import() {
    let wasm = wat::parse_str(
        r#"(module (import "env" "proxy_teleport" (func (param i32)))
             (memory (export "memory") 1)
             (func (export "malloc") (param i32) (result i32) i32.const 0)
             (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .unwrap();
    let (ok, out) = inspect(&wasm);
    assert!(!ok);
    assert!(out.contains("MISSING   env.proxy_teleport"), "{out}");
    assert!(out.contains("verdict: will not load: unknown import `env.proxy_teleport`"), "{out}");
}

#[test]
fn not_proxy_wasm_and_not_wasm() {
    let wasm = wat::parse_str(
        r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#,
    )
    .unwrap();
    let (ok, out) = inspect(&wasm);
    assert!(!ok);
    assert!(out.contains("abi: none (no proxy_abi_version_* export: not a Proxy-Wasm filter)"), "{out}");
    assert!(out.contains("verdict: will not load: missing or unknown Proxy-Wasm ABI version"), "{out}");
    let (ok, out) = inspect(b"#!/bin/sh\necho not wasm\n");
    assert!(!ok);
    assert!(out.contains("not a WebAssembly module"), "{out}");
}
