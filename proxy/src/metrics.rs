//! weir's own metrics (Prometheus), and the export of the metrics filters define.

use std::fmt::Write;
use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use weir_abi::{FailureKind, MetricType, Runtime};

/// weir's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    filter_seconds: HistogramVec,
    filter_failures: IntCounterVec,
    vms: IntGauge,
    generation: IntGauge,
    /// Reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
    downstream_open: IntGauge,
    downstream_refused: prometheus::IntCounter,
    downstream_idle: prometheus::IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("weir_requests_total", "Requests served, by route and status"),
            &["route", "code"],
        )
        .expect("valid metric");
        let filter_seconds = HistogramVec::new(
            HistogramOpts::new("weir_filter_call_seconds", "Time spent in a filter's callbacks per phase call")
                .buckets(vec![1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1]),
            &["plugin"],
        )
        .expect("valid metric");
        let filter_failures = IntCounterVec::new(
            Opts::new("weir_filter_failures_total", "Filter VM failures (traps, deadlines, memory limits)"),
            &["plugin", "kind"],
        )
        .expect("valid metric");
        let vms = IntGauge::new("weir_vms_live", "Wasm VM instances alive").expect("valid metric");
        let generation = IntGauge::new("weir_config_generation", "The configuration generation serving new requests")
            .expect("valid metric");
        let reloads =
            IntCounterVec::new(Opts::new("weir_reloads_total", "Configuration reloads by result"), &["result"])
                .expect("valid metric");
        let downstream_open =
            IntGauge::new("weir_downstream_connections", "Downstream (client) connections open").expect("valid metric");
        let downstream_refused = prometheus::IntCounter::new(
            "weir_downstream_connections_refused_total",
            "Downstream connections closed at accept because server.max_connections were open",
        )
        .expect("valid metric");
        let downstream_idle = prometheus::IntCounter::new(
            "weir_downstream_idle_timeouts_total",
            "Downstream connections closed after server.idle_timeout without a request",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(downstream_open.clone()),
            Box::new(downstream_refused.clone()),
            Box::new(downstream_idle.clone()),
            Box::new(filter_seconds.clone()),
            Box::new(filter_failures.clone()),
            Box::new(vms.clone()),
            Box::new(generation.clone()),
            Box::new(reloads.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Self {
            registry,
            requests,
            filter_seconds,
            filter_failures,
            vms,
            generation,
            reloads,
            downstream_open,
            downstream_refused,
            downstream_idle,
        }
    }

    /// A downstream connection opened (`1`) or closed (`-1`).
    pub fn downstream_connections(&self, delta: i64) {
        self.downstream_open.add(delta);
    }

    /// A connection closed at accept by `server.max_connections`.
    pub fn downstream_refused(&self) {
        self.downstream_refused.inc();
    }

    /// A connection closed by `server.idle_timeout`.
    pub fn downstream_idle_timeout(&self) {
        self.downstream_idle.inc();
    }

    /// One finished request.
    pub fn request(&self, route: &str, code: u16) {
        self.requests.with_label_values(&[route, itoa::Buffer::new().format(code)]).inc();
    }

    /// Time one filter spent in one phase.
    pub fn filter_call(&self, plugin: &str, d: Duration) {
        self.filter_seconds.with_label_values(&[plugin]).observe(d.as_secs_f64());
    }

    /// A filter VM failure.
    pub fn filter_failure(&self, plugin: &str, kind: FailureKind) {
        self.filter_failures.with_label_values(&[plugin, &format!("{kind:?}").to_ascii_lowercase()]).inc();
    }

    /// The Prometheus text exposition: weir's metrics, then the filters'.
    pub fn render(&self, runtime: &Runtime, generation: u64) -> String {
        self.vms.set(weir_abi::live_instances() as i64);
        self.generation.set(generation as i64);
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        let mut out = String::from_utf8(buf).unwrap_or_default();
        render_filter_metrics(runtime, &mut out);
        out
    }
}

/// Filter-defined metrics under their own names (as Envoy shows them), made valid for
/// Prometheus.
fn render_filter_metrics(runtime: &Runtime, out: &mut String) {
    for m in runtime.shared().metrics.snapshot() {
        let name = sanitize(&m.name);
        match m.kind {
            MetricType::Counter => {
                let _ = writeln!(out, "# TYPE {name} counter\n{name} {}", m.value());
            }
            MetricType::Gauge => {
                let _ = writeln!(out, "# TYPE {name} gauge\n{name} {}", m.value());
            }
            MetricType::Histogram => {
                let h = m.histogram();
                let _ = writeln!(out, "# TYPE {name} histogram");
                let mut cumulative = 0;
                for (i, bound) in weir_abi::HISTOGRAM_BOUNDS.iter().enumerate() {
                    cumulative += h.buckets.get(i).copied().unwrap_or(0);
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
                    h.count, h.sum, h.count
                );
            }
        }
    }
}

fn sanitize(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_made_valid() {
        assert_eq!(super::sanitize("my.filter-requests"), "my_filter_requests");
        assert_eq!(super::sanitize("9lives"), "_9lives");
    }
}
