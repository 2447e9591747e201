//! Descriptors: which requests a rule applies to and which bucket each one draws from.

use serde_json::Value;

use crate::config::ConfigError;

/// One part of a rule's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    /// The client IP (`source.address` without the port).
    ClientAddress,
    /// A request header's value; requests without it are not limited by the rule.
    Header(String),
    /// Applies only to paths starting with this; the prefix itself is the key part.
    PathPrefix(String),
}

/// What descriptors read from a request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `source.address` without the port, when the host knows it.
    pub client_address: Option<String>,
    /// `:path`.
    pub path: String,
    /// The headers descriptors name: (lower-case name, first value).
    pub headers: Vec<(String, String)>,
}

impl Descriptor {
    /// Reads `rules[i].descriptors[j]`: `"client_address"`, `{"header": name}` or
    /// `{"path_prefix": "/..."}`.
    pub fn parse(field: &str, v: &Value) -> Result<Self, ConfigError> {
        let expected = "expected \"client_address\", {\"header\": NAME} or {\"path_prefix\": \"/...\"}";
        match v {
            Value::String(s) if s == "client_address" => Ok(Self::ClientAddress),
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((k, Value::String(name))) if k == "header" => {
                    if is_token(name) {
                        Ok(Self::Header(name.to_ascii_lowercase()))
                    } else {
                        Err(ConfigError::new(
                            &format!("{field}.header"),
                            format!("expected a header name, got {name:?}"),
                        ))
                    }
                }
                Some((k, Value::String(prefix))) if k == "path_prefix" => {
                    if prefix.starts_with('/') && !prefix.chars().any(char::is_control) {
                        Ok(Self::PathPrefix(prefix.clone()))
                    } else {
                        Err(ConfigError::new(&format!("{field}.path_prefix"), "expected a path starting with `/`"))
                    }
                }
                _ => Err(ConfigError::new(field, expected)),
            },
            _ => Err(ConfigError::new(field, expected)),
        }
    }

    /// This descriptor's key part for `req`, or None when the rule does not apply.
    pub fn value<'a>(&'a self, req: &'a Request) -> Option<&'a str> {
        match self {
            Self::ClientAddress => req.client_address.as_deref(),
            Self::Header(name) => req.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()),
            Self::PathPrefix(prefix) => req.path.starts_with(prefix.as_str()).then_some(prefix.as_str()),
        }
    }
}

/// The shared-data key of rule `name` for `req`: `rl:<name>:<part>:<part>…`, or None when a
/// descriptor does not apply. Parts are escaped so a `:` in a header cannot forge another key.
pub fn key(name: &str, descriptors: &[Descriptor], req: &Request) -> Option<String> {
    let mut key = String::with_capacity(name.len() + 32);
    key.push_str("rl:");
    key.push_str(name);
    key.push(':');
    for (i, d) in descriptors.iter().enumerate() {
        if i > 0 {
            key.push(':');
        }
        for c in d.value(req)?.chars() {
            match c {
                '%' => key.push_str("%25"),
                ':' => key.push_str("%3A"),
                c => key.push(c),
            }
        }
    }
    Some(key)
}

/// The IP of an `ip:port` or `[ipv6]:port` address; an address without a port is kept.
pub fn strip_port(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req() -> Request {
        Request {
            client_address: Some("10.0.0.1".into()),
            path: "/api/orders?x=1".into(),
            headers: vec![("x-api-key".into(), "k1".into())],
        }
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(Descriptor::parse("d", &json!("client_address")).ok(), Some(Descriptor::ClientAddress));
        assert_eq!(
            Descriptor::parse("d", &json!({"header": "X-Api-Key"})).ok(),
            Some(Descriptor::Header("x-api-key".into()))
        );
        assert_eq!(
            Descriptor::parse("d", &json!({"path_prefix": "/api/"})).ok(),
            Some(Descriptor::PathPrefix("/api/".into()))
        );
    }

    #[test]
    fn refuses_other_forms() {
        let e = |v: Value| {
            Descriptor::parse("rules[0].descriptors[1]", &v).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(e(json!("remote_address")).contains("rules[0].descriptors[1]"));
        assert!(e(json!({"header": "x", "path_prefix": "/"})).contains("expected"));
        assert!(e(json!({"header": "bad name"})).contains("descriptors[1].header"));
        assert!(e(json!({"path_prefix": "api"})).contains("descriptors[1].path_prefix"));
        assert!(e(json!({"cookie": "a"})).contains("expected"));
    }

    #[test]
    fn keys_combine_descriptor_values() {
        let d = [Descriptor::Header("x-api-key".into()), Descriptor::PathPrefix("/api/".into())];
        assert_eq!(key("per-key-path", &d, &req()).as_deref(), Some("rl:per-key-path:k1:/api/"));
        assert_eq!(key("per-client", &[Descriptor::ClientAddress], &req()).as_deref(), Some("rl:per-client:10.0.0.1"));
        assert_eq!(key("global", &[], &req()).as_deref(), Some("rl:global:"));
    }

    #[test]
    fn rules_apply_only_when_every_descriptor_does() {
        let d = [Descriptor::Header("x-api-key".into()), Descriptor::PathPrefix("/admin/".into())];
        assert_eq!(key("r", &d, &req()), None);
        let no_header = Request { headers: vec![], ..req() };
        assert_eq!(key("r", &[Descriptor::Header("x-api-key".into())], &no_header), None);
        let no_addr = Request { client_address: None, ..req() };
        assert_eq!(key("r", &[Descriptor::ClientAddress], &no_addr), None);
    }

    #[test]
    fn separators_in_values_cannot_collide() {
        let d = [Descriptor::Header("a".into()), Descriptor::Header("b".into())];
        let r1 = Request { headers: vec![("a".into(), "x:y".into()), ("b".into(), "z".into())], ..req() };
        let r2 = Request { headers: vec![("a".into(), "x".into()), ("b".into(), "y:z".into())], ..req() };
        assert_ne!(key("r", &d, &r1), key("r", &d, &r2));
        assert_eq!(key("r", &d, &r1).as_deref(), Some("rl:r:x%3Ay:z"));
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("1.2.3.4:5678"), "1.2.3.4");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_port("1.2.3.4"), "1.2.3.4");
    }
}
