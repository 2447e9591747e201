//! weir's built-in filters, compiled from `filters/` by the build script and embedded.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// Names accepted by `builtin:` in the config.
pub const NAMES: &[&str] = &["auth", "header-rewrite", "ab-routing", "rate-limit"];

/// The module bytes of a built-in filter.
pub fn module(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
