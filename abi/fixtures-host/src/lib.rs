//! Paths of the test filters, built from source by this crate's build script.

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// Reads a fixture's bytes.
///
/// # Panics
///
/// Panics when the file is missing (the build script guarantees it is not).
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
