//! What this binary is: weir's version, the commit it was built from, the Wasmtime and Pingora
//! versions in it and the Proxy-Wasm ABI versions it runs. Recorded by `build.rs`; shown by
//! `weir --version`, `/server_info` and the `weir_build_info` metric.

/// weir's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built (`unknown` when neither `WEIR_COMMIT` nor git knew it).
pub const COMMIT: &str = env!("WEIR_BUILD_COMMIT");
/// The Wasmtime version linked in.
pub const WASMTIME: &str = env!("WEIR_BUILD_WASMTIME");
/// The Pingora version linked in.
pub const PINGORA: &str = env!("WEIR_BUILD_PINGORA");

/// The Proxy-Wasm ABI versions weir runs (`0.1.0, 0.2.0, 0.2.1`).
pub fn abi_versions() -> Vec<String> {
    weir_abi::AbiVersion::ALL.iter().map(ToString::to_string).collect()
}

/// `weir --version`'s text after the program name.
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{VERSION}\ncommit: {COMMIT}\nwasmtime: {WASMTIME}\npingora: {PINGORA}\nproxy-wasm ABI: {}",
            abi_versions().join(", ")
        )
    })
}
