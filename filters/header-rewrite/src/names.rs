//! Header names accepted in the configuration.

/// Pseudo-headers `%REQ(...)%` may read (they cannot be written: see [`writable`]).
const READABLE_PSEUDO: &[&str] = &[":authority", ":path", ":method", ":scheme"];

/// RFC 9110 `tchar`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A header name as written in the config, lower-cased (header names are case-insensitive and
/// Proxy-Wasm hosts use lower case), or why it is not valid.
fn token(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a header name must not be empty".into());
    }
    if let Some(bad) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(format!("`{name}` is not a valid header name (character {bad:?} is not allowed)"));
    }
    Ok(name.to_ascii_lowercase())
}

/// A header name this filter may add, set, append to or remove.
pub fn writable(name: &str) -> Result<String, String> {
    if name == ":path" {
        return Err("`:path` cannot be changed as a header: use the `path` and `query` sections".into());
    }
    if name.starts_with(':') {
        return Err(format!("`{name}` is a pseudo-header and cannot be changed by this filter"));
    }
    let name = token(name)?;
    if name == "host" {
        // Hosts keep the host in `:authority`; a `host` header would be a second, conflicting one.
        return Err("`host` is the `:authority` pseudo-header and cannot be changed by this filter".into());
    }
    Ok(name)
}

/// A header name `%REQ(...)%` may read.
pub fn readable(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if READABLE_PSEUDO.contains(&lower.as_str()) {
        return Ok(lower);
    }
    if lower == "host" {
        return Ok(":authority".into());
    }
    token(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_valid_names() {
        assert_eq!(writable("X-Request-Start").as_deref(), Ok("x-request-start"));
    }

    #[test]
    fn refuses_bad_names() {
        assert!(writable("").is_err());
        assert!(writable("x a").unwrap_err().contains("' '"));
        assert!(writable("x:a").is_err());
        assert!(writable(":path").unwrap_err().contains("`path`"));
        assert!(writable(":authority").unwrap_err().contains("pseudo-header"));
        assert!(writable("Host").is_err());
    }

    #[test]
    fn reads_pseudo_headers() {
        assert_eq!(readable(":Authority").as_deref(), Ok(":authority"));
        assert_eq!(readable("host").as_deref(), Ok(":authority"));
        assert!(readable(":status").is_err());
    }
}
