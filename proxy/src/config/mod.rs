//! weir's configuration file (YAML): listeners, clusters, plugins, routes, admin.
//!
//! Every key is documented on its type; unknown keys are errors. Errors name the file, the
//! line and the field. [`load`] parses and validates; the result is plain data that
//! [`crate::generation`] turns into a running generation.

mod defaults;
mod load;
mod positions;
mod redact;
mod schema;
mod units;
mod validate;
mod values;

pub use load::{ConfigError, Loaded, load, parse};
pub use redact::redacted_json;
pub use schema::*;
pub use units::{ByteSize, Millis};
pub use validate::{TokenError, read_admin_token};
pub use values::{value_bytes, value_text};

#[cfg(test)]
mod tests;
