//! End-to-end tests: the real weir binary, real origins on loopback, real HTTP/1.1 and HTTP/2
//! clients, filters built from source with the Rust SDK.

#[allow(dead_code, reason = "the harness is shared with the conformance suite, which uses other parts of it")]
mod harness;

mod access_log;
mod admin;
mod builtin_routing;
mod builtin_security;
mod callouts;
mod config;
mod daemon;
mod docs;
mod downstream;
mod examples;
mod failures;
mod fuzz;
mod hostile;
mod inspect;
mod module_cache;
mod observability;
mod packaging;
mod phases;
mod reload;
mod resilience;
mod routing;
mod shutdown;
mod tls;
mod tracing;
mod upgrade;
mod upstreams;
