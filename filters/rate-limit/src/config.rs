//! The filter's JSON configuration, checked completely in `on_configure`.

use serde::Deserialize;
use serde_json::Value;

use crate::bucket::{Limit, MILLI};
use crate::descriptor::Descriptor;

pub use weir_filter_support::ConfigError;

/// Rules stay JSON until each is read on its own, so a type error names its rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    rules: Vec<Value>,
    #[serde(default)]
    shadow: bool,
    #[serde(default = "yes")]
    response_headers: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    descriptors: Vec<Value>,
    capacity: u64,
    refill_per_second: f64,
}

const MAX_CAPACITY: u64 = 1_000_000_000;
const MAX_REFILL_PER_SECOND: f64 = 1_000_000.0;

/// One rule: its bucket size and rate, and which requests draw from which bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Name, part of the shared-data key (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// All must apply; their values form the bucket key.
    pub descriptors: Vec<Descriptor>,
    /// Size and refill rate.
    pub limit: Limit,
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Checked in order; a request must get a token from every rule that applies.
    pub rules: Vec<Rule>,
    /// Count and tag, never refuse.
    pub shadow: bool,
    /// Add `x-ratelimit-*` headers to allowed responses.
    pub response_headers: bool,
}

impl Config {
    /// Parses and checks the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| ConfigError::new("(config)", e))?;
        if raw.rules.is_empty() {
            return Err(ConfigError::new("rules", "expected at least one rule"));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        for (i, v) in raw.rules.into_iter().enumerate() {
            let rule = parse_rule(i, v)?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(ConfigError::new(&format!("rules[{i}].name"), format!("{:?} is used twice", rule.name)));
            }
            rules.push(rule);
        }
        Ok(Self { rules, shadow: raw.shadow, response_headers: raw.response_headers })
    }

    /// Whether any rule needs `source.address`.
    pub fn needs_client_address(&self) -> bool {
        self.rules.iter().any(|r| r.descriptors.contains(&Descriptor::ClientAddress))
    }

    /// True when a rule reads the path (`path_prefix`).
    pub fn needs_path(&self) -> bool {
        self.rules.iter().flat_map(|r| &r.descriptors).any(|d| matches!(d, Descriptor::PathPrefix(_)))
    }

    /// The headers rules read (lower-case, each once).
    pub fn header_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in self.rules.iter().flat_map(|r| &r.descriptors) {
            if let Descriptor::Header(h) = d
                && !names.contains(&h.as_str())
            {
                names.push(h);
            }
        }
        names
    }
}

fn parse_rule(i: usize, v: Value) -> Result<Rule, ConfigError> {
    let field = |f: &str| format!("rules[{i}].{f}");
    let raw: RawRule = serde_json::from_value(v).map_err(|e| ConfigError::new(&format!("rules[{i}]"), e))?;
    if raw.name.is_empty() || !raw.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(ConfigError::new(&field("name"), "expected a name of letters, digits, `_`, `.`, `-`"));
    }
    if !(1..=MAX_CAPACITY).contains(&raw.capacity) {
        return Err(ConfigError::new(&field("capacity"), format!("expected an integer from 1 to {MAX_CAPACITY}")));
    }
    let rate = raw.refill_per_second;
    let milli = (rate * MILLI as f64).round();
    if !rate.is_finite() || rate > MAX_REFILL_PER_SECOND || milli < 1.0 {
        return Err(ConfigError::new(
            &field("refill_per_second"),
            format!("expected tokens per second from 0.001 to {MAX_REFILL_PER_SECOND}"),
        ));
    }
    let descriptors = raw
        .descriptors
        .iter()
        .enumerate()
        .map(|(j, d)| Descriptor::parse(&field(&format!("descriptors[{j}]")), d))
        .collect::<Result<Vec<_>, _>>()?;
    // In range: checked above, so the cast is exact.
    let refill_milli_per_sec = milli as u64;
    Ok(Rule { name: raw.name, descriptors, limit: Limit { capacity: raw.capacity, refill_milli_per_sec } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Config::from_json(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn full_example_parses() {
        let json = r#"{"rules": [
            {"name": "per-client", "descriptors": ["client_address"], "capacity": 100, "refill_per_second": 10},
            {"name": "per-key-path", "descriptors": [{"header": "x-api-key"}, {"path_prefix": "/api/"}], "capacity": 20, "refill_per_second": 0.5}
        ], "shadow": true}"#;
        let c = Config::from_json(json.as_bytes());
        let Ok(c) = c else { panic!("{c:?}") };
        assert!(c.shadow && c.response_headers && c.needs_client_address());
        assert_eq!(c.header_names(), vec!["x-api-key"]);
        assert_eq!(c.rules[1].limit, Limit { capacity: 20, refill_milli_per_sec: 500 });
    }

    #[test]
    fn descriptors_default_to_one_bucket() {
        let c = Config::from_json(br#"{"rules":[{"name":"all","capacity":1,"refill_per_second":1}]}"#);
        assert_eq!(c.map(|c| c.rules[0].descriptors.len()).ok(), Some(0));
    }

    #[test]
    fn bad_configs_name_the_field() {
        assert!(err("").contains("(config)"));
        assert!(err(r#"{"rules":[]}"#).contains("`rules`"));
        assert!(
            err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":1}],"burst":1}"#)
                .contains("unknown field `burst`")
        );
        assert!(err(r#"{"rules":[{"name":"a","capacity":1.5,"refill_per_second":1}]}"#).starts_with("`rules[0]`"));
        assert!(err(r#"{"rules":[{"name":"a","capacity":0,"refill_per_second":1}]}"#).contains("rules[0].capacity"));
        assert!(
            err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":0}]}"#)
                .contains("rules[0].refill_per_second")
        );
        assert!(
            err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":0.0001}]}"#).contains("refill_per_second")
        );
        assert!(err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":1e9}]}"#).contains("refill_per_second"));
        assert!(err(r#"{"rules":[{"name":"a:b","capacity":1,"refill_per_second":1}]}"#).contains("rules[0].name"));
        assert!(
            err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":1,"x":1}]}"#).contains("unknown field `x`")
        );
        assert!(
            err(r#"{"rules":[{"name":"a","capacity":1,"refill_per_second":1},{"name":"a","capacity":1,"refill_per_second":1}]}"#)
                .contains("rules[1].name")
        );
        assert!(
            err(r#"{"rules":[{"name":"a","descriptors":["ip"],"capacity":1,"refill_per_second":1}]}"#)
                .contains("rules[0].descriptors[0]")
        );
    }
}
