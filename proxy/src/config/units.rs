//! Durations (`250ms`, `1s`, `2m`) and sizes (`16MiB`, `512KiB`, `1048576`) in the config.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration written `<n>ms`, `<n>s`, `<n>m` or `<n>h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

/// A size in bytes, written as a number or `<n>KiB`, `<n>MiB`, `<n>GiB`, `<n>KB`, `<n>MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    // Far beyond any timeout, and small enough that `Instant::now() + d` cannot overflow.
    (d <= MAX_DURATION).then_some(d)
}

/// The longest duration a configuration may give.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

struct Visit<T>(fn(&str) -> Option<T>, &'static str);

impl<T> de::Visitor<'_> for Visit<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).ok_or_else(|| E::custom(format!("invalid value `{v}`, expected {}", self.1)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visit(parse_duration, "a duration such as 250ms, 1s, 2m (at most 8760h)")).map(Millis)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visit(parse_size, "a size such as 1048576, 512KiB, 16MiB")).map(ByteSize)
    }
}

/// A list written either as a YAML list or as one comma-separated string (Envoy writes
/// `retry_on: "5xx,connect-failure"`); an unknown item is named with the known ones.
pub(super) fn comma_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + strum::VariantNames,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        List(Vec<String>),
        Text(String),
    }
    let items = match Written::deserialize(d)? {
        Written::List(items) => items,
        Written::Text(text) => text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
    };
    items
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                de::Error::custom(format!("unknown value `{s}`, expected one of: {}", T::VARIANTS.join(", ")))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2 parsecs"), None);
        assert_eq!(parse_duration("99999999999999999h"), None, "overflows");
        assert_eq!(parse_duration("8761h"), None, "longer than a year");
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1 TB"), None);
    }
}
