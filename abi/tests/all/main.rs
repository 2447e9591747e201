//! weir-abi tests: real `.wasm` filters built from source (the Rust SDK probe, an
//! AssemblyScript filter) and inline WAT for malformed modules, driven through the public
//! API. One module per hostcall family; each names the checklist items it covers.

mod common;

mod assemblyscript;
mod buffers;
mod callouts;
mod failures;
mod foreign;
mod headers;
mod lifecycle;
mod loading;
mod local_reply;
mod logging_wasi;
mod memory_safety;
mod metrics;
mod properties;
mod root_work;
mod shared;
mod stream_control;
