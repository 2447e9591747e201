//! # weir
//!
//! A reverse proxy on Pingora that runs Proxy-Wasm filter chains (via [`weir_abi`]) on every
//! request phase. The `weir` binary is a thin wrapper around [`server::run`]; the modules are
//! public so tests and benchmarks can start parts of it (the demo origin, the config loader).

pub mod access_log;
pub mod address_space;
pub mod admin;
pub mod build_info;
pub mod builtin;
pub mod callout;
pub mod cli;
pub mod clusters;
pub mod compile_memory;
pub mod config;
pub mod connections;
pub mod convert;
pub mod demo;
pub mod filter_log;
pub mod generation;
pub mod inspect;
pub mod json_log;
pub mod lifecycle;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod module_cache;
pub mod outlier;
pub mod reload;
pub mod retry;
pub mod route_action;
pub mod routes;
pub mod server;
pub mod service;
pub mod startup_error;
pub mod state;
pub mod tls;
pub mod traces;
pub mod workers;

pub use weir_abi::FastMap;
