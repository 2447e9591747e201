//! What weir's built-in filters share: configuration errors that name the field at fault.

use std::fmt;

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
