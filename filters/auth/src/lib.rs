//! weir's `auth` filter: API keys, HTTP Basic, JWT bearer tokens and an external HTTP
//! authorization service — Envoy's `api_key_auth`, `basic_auth`, `jwt_authn` and `ext_authz`
//! in one Proxy-Wasm filter. See `docs/filters/auth.md`.
//!
//! Everything but [`glue`] is plain Rust with native tests; `glue` binds it to the
//! Proxy-Wasm SDK and is compiled for wasm32 only.

pub mod apikey;
pub mod basic;
pub mod config;
pub mod crypto;
pub mod external;
pub mod flow;
pub mod headers;
pub mod jwt;
pub mod path;
pub mod reply;

#[cfg(target_arch = "wasm32")]
mod glue;
