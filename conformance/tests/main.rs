//! weir's Proxy-Wasm conformance suite: Envoy's behaviour (docs/abi.md#checklist, summarised in
//! `docs/COMPATIBILITY.md`), checked item by item through the real `weir` binary, a real origin
//! and real probe filters built from source with the Rust and AssemblyScript SDKs.
//!
//! One file per hostcall family (`loading` … `foreign`) and one per phase (`phase_*`). Each test
//! names the §10 items it covers on a `/// §10:` line and the hostcalls and callbacks it proves on
//! a `/// proves:` line; `compatibility` builds the compatibility table from those lines. Every
//! test runs twice: as written, and with a live reload before each request (see `suite`).
//!
//! Run the suite alone: `cargo test -p weir --test conformance`.

#[path = "../../proxy/tests/e2e/harness.rs"]
#[allow(dead_code, reason = "the harness is shared with the e2e tests, which use other parts of it")]
mod harness;
mod suite;

mod actions;
mod bodies;
mod compatibility;
mod effective_context;
mod failures;
mod foreign;
mod grpc_callouts;
mod headers;
mod http_callouts;
mod http_semantics;
mod lifecycle;
mod loading;
mod local_reply;
mod logging_wasi;
mod memory;
mod metrics;
mod phase_log;
mod phase_request_body;
mod phase_request_headers;
mod phase_response_body;
mod phase_response_headers;
mod phase_response_trailers;
mod phase_root;
mod properties;
mod queues;
mod root;
mod shared_data;
mod timers;
mod vm_lifecycle;
