//! weir's `rate-limit` filter: token buckets in Proxy-Wasm shared data, keyed by client
//! address, header values and path prefixes — Envoy's `local_ratelimit` with descriptors,
//! shared by every worker of the VM. See `docs/filters/rate-limit.md`.
//!
//! Everything but [`glue`] is plain Rust with native tests; `glue` binds it to the
//! Proxy-Wasm SDK and is compiled for wasm32 only.

pub mod bucket;
pub mod config;
pub mod descriptor;
pub mod limiter;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod glue;
