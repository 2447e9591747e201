//! weir's `ab-routing` filter: Envoy's `weighted_clusters`, with stickiness.
//!
//! Each request is given one of the configured variants: the one a client override names, else
//! the one in the pinning cookie, else the one a sticky key (header or cookie) hashes to, else
//! one drawn at random by weight. The filter tells weir the variant's cluster through the
//! `weir.upstream_cluster` property, names the variant to the origin in a request header, and
//! can pin the client with a `set-cookie`. See `docs/filters/ab-routing.md`.

pub mod choose;
pub mod config;
pub mod cookies;
pub mod hash;
pub mod request;

#[cfg(target_arch = "wasm32")]
mod glue;
