//! weir's `header-rewrite` filter: Envoy's `header_mutation` plus the route's path rewrites.
//!
//! On the request it removes, sets, appends to and adds headers (in that order), rewrites the
//! path (`prefix` or `regex`, keeping the query) and edits the query string; on the response it
//! edits headers the same way; trailer rules apply to trailers, and create them at the end of a
//! body that had none. Values may use Envoy-style variables (`%REQ(x-user)%`, `%REQUEST_ID%`,
//! ...), taken from the request as it reached the filter. See `docs/filters/header-rewrite.md`.

pub mod config;
pub mod headers;
pub mod names;
pub mod path;
pub mod query;
pub mod template;
pub mod uri;

#[cfg(target_arch = "wasm32")]
mod glue;
