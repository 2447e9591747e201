//! The metrics filters define (`proxy_define_metric`), as `/metrics` shows them.
//!
//! Filters name metrics freely, so their names go under a prefix of their own
//! (`metrics.filter_prefix`, default `weir_filter_`) and can never be read as weir's. Tagged
//! names, the Proxy-Wasm convention (`requests.method=GET`), become labels by the rules in
//! `metrics.filter_tags`, which follow Envoy's `stats_tags`: a rule's first capture group is
//! cut from the name, its second (or else its first) is the label's value. Names that come out
//! the same after this are one family: series of one type are merged (summed), a series of
//! another type, or a family that would shadow one of weir's own, is left out and logged once.
//! See `docs/operations.md` (Metrics).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;

use weir_abi::{HISTOGRAM_BOUNDS, Metric, MetricType};

use crate::config::MetricsConfig;

/// How filter metric names become Prometheus families and labels.
#[derive(Debug)]
pub struct Naming {
    prefix: String,
    tags: Vec<(String, regex::Regex)>,
}

impl Naming {
    /// From the configuration (validated: the regexes compile).
    pub fn new(config: &MetricsConfig) -> Result<Self, String> {
        let tags = config
            .filter_tags
            .iter()
            .map(|t| Ok((t.tag_name.clone(), tag_regex(&t.regex)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self { prefix: config.filter_prefix.clone(), tags })
    }

    /// The family name and labels of a metric a filter named `name`.
    fn split(&self, name: &str) -> (String, Vec<(String, String)>) {
        let mut rest = name.to_owned();
        let mut labels = Vec::new();
        for (tag, regex) in &self.tags {
            let Some(caps) = regex.captures(&rest) else { continue };
            let (Some(cut), value) = (caps.get(1), caps.get(2).or(caps.get(1))) else { continue };
            let value = value.map_or("", |v| v.as_str()).to_owned();
            let range = cut.range();
            rest.replace_range(range, "");
            labels.push((tag.clone(), value));
        }
        (format!("{}{}", self.prefix, sanitize(&rest)), labels)
    }
}

/// A tag rule's regex, with the capture group the rule needs.
pub fn tag_regex(pattern: &str) -> Result<regex::Regex, String> {
    let regex = regex::Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
    if regex.captures_len() < 2 {
        return Err("the regex needs a capture group: the part of the name it cuts out".into());
    }
    Ok(regex)
}

/// One series' samples.
enum Samples {
    Value(i64),
    Histogram { buckets: Vec<u64>, sum: u64, count: u64 },
}

struct Family {
    kind: MetricType,
    /// The names filters gave, for `# HELP`.
    sources: Vec<String>,
    series: BTreeMap<Vec<(String, String)>, Samples>,
}

/// Families already reported as left out, so each is logged once.
#[derive(Default)]
pub struct Conflicts(Mutex<HashSet<String>>);

impl Conflicts {
    fn report(&self, family: &str, name: &str, why: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(format!("{family}\0{name}")) {
            tracing::warn!(target: "weir::metrics", metric = name, family, "a filter metric is left out of /metrics: {why}");
        }
    }
}

/// Appends the Prometheus text of `metrics` to `out`; `reserved` holds the families weir
/// itself exports.
pub fn render(
    metrics: &[std::sync::Arc<Metric>],
    naming: &Naming,
    reserved: &HashSet<String>,
    conflicts: &Conflicts,
    out: &mut String,
) {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for m in metrics {
        let (family_name, labels) = naming.split(&m.name);
        if reserved.contains(&family_name) {
            conflicts.report(&family_name, &m.name, "its name is one of weir's own metrics");
            continue;
        }
        let family = families.entry(family_name.clone()).or_insert_with(|| Family {
            kind: m.kind,
            sources: Vec::new(),
            series: BTreeMap::new(),
        });
        if family.kind != m.kind {
            conflicts.report(&family_name, &m.name, "another metric of another type has the same name");
            continue;
        }
        if !family.sources.contains(&m.name) {
            family.sources.push(m.name.clone());
        }
        let samples = match m.kind {
            MetricType::Counter | MetricType::Gauge => Samples::Value(m.value()),
            MetricType::Histogram => {
                let h = m.histogram();
                Samples::Histogram { buckets: h.buckets, sum: h.sum, count: h.count }
            }
        };
        match family.series.entry(labels) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(samples);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => merge(e.get_mut(), samples),
        }
    }
    for (name, family) in &families {
        write_family(out, name, family);
    }
}

/// Adds `more` into `into` (two filter names that came out as one series).
fn merge(into: &mut Samples, more: Samples) {
    match (into, more) {
        (Samples::Value(a), Samples::Value(b)) => *a = a.saturating_add(b),
        (Samples::Histogram { buckets, sum, count }, Samples::Histogram { buckets: b, sum: s, count: c }) => {
            buckets.resize(buckets.len().max(b.len()), 0);
            for (x, y) in buckets.iter_mut().zip(b) {
                *x += y;
            }
            *sum += s;
            *count += c;
        }
        _ => {}
    }
}

fn write_family(out: &mut String, name: &str, family: &Family) {
    let kind = match family.kind {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Histogram => "histogram",
    };
    let _ = writeln!(out, "# HELP {name} Defined by a filter as {}", escape_help(&family.sources.join(", ")));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, samples) in &family.series {
        match samples {
            Samples::Value(v) => {
                let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
            }
            Samples::Histogram { buckets, sum, count } => {
                let mut cumulative = 0;
                for (i, bound) in HISTOGRAM_BOUNDS.iter().enumerate() {
                    cumulative += buckets.get(i).copied().unwrap_or(0);
                    let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_text(labels, Some(&bound.to_string())));
                }
                let _ = writeln!(out, "{name}_bucket{} {count}", label_text(labels, Some("+Inf")));
                let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
                let _ = writeln!(out, "{name}_count{} {count}", label_text(labels, None));
            }
        }
    }
}

/// `{a="1",b="2"}` (empty without labels), with `le` last for a bucket.
fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(le.map(|le| ("le", le)))
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `name` made a valid Prometheus name: other characters become `_`.
pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MetricsConfig, TagRule};

    fn naming(prefix: &str, tags: &[(&str, &str)]) -> Naming {
        Naming::new(&MetricsConfig {
            filter_prefix: prefix.into(),
            filter_tags: tags.iter().map(|(t, r)| TagRule { tag_name: (*t).into(), regex: (*r).into() }).collect(),
        })
        .unwrap()
    }

    #[test]
    fn names_go_under_the_prefix_and_are_made_valid() {
        assert_eq!(naming("weir_filter_", &[]).split("my.filter-requests").0, "weir_filter_my_filter_requests");
        assert_eq!(naming("f_", &[]).split("9lives").0, "f_9lives");
    }

    #[test]
    fn tag_rules_cut_the_first_group_and_label_the_second_as_envoy_stats_tags_do() {
        let n = naming("f_", &[("method", r"(\.method=([^.]+))"), ("code", r"(\.code=(\d+))")]);
        let (name, labels) = n.split("reqs.method=GET.code=200");
        assert_eq!(name, "f_reqs");
        assert_eq!(labels, vec![("method".into(), "GET".into()), ("code".into(), "200".into())]);
        assert_eq!(n.split("reqs").1, vec![], "a name no rule matches has no labels");
        // One group: it is both cut and the value.
        let (name, labels) = naming("f_", &[("cluster", r"^cluster\.([^.]+)\.")]).split("cluster.a.hits");
        assert_eq!(name, "f_cluster__hits");
        assert_eq!(labels, vec![("cluster".into(), "a".into())]);
    }

    #[test]
    fn a_rule_without_a_group_is_refused() {
        assert!(tag_regex(r"\.method=[^.]+").is_err());
        assert!(tag_regex(r"(").is_err());
    }
}
