//! What weir's built-in filters share: loading their configuration, logging, and
//! configuration errors that name the field at fault.

use std::fmt;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

pub mod header_block;
pub mod json_path;

/// A configuration problem, naming the field (`rules[1].capacity: expected ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error about `field` (a path such as `jwt.keys[1].pem`).
    pub fn new(field: &str, expected: impl fmt::Display) -> Self {
        Self(format!("`{field}`: {expected}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Logs through the host. A filter has nothing better to do when logging itself fails.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// The parsed plugin configuration for `on_configure`, or `None` after logging why it was
/// refused (`<filter>: configuration refused: <error>`, or `<filter>: no configuration;
/// expected <expected>` when it is empty). On `None` the filter keeps the configuration it had
/// and returns false, so the host refuses the new one.
pub fn configure<T, E: fmt::Display>(
    filter: &str,
    bytes: &[u8],
    expected: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<T> {
    let refused = if bytes.is_empty() {
        format!("{filter}: no configuration; expected {expected}")
    } else {
        match parse(bytes) {
            Ok(config) => return Some(config),
            Err(e) => format!("{filter}: configuration refused: {e}"),
        }
    };
    log(LogLevel::Error, &refused);
    None
}
