//! weir's own metrics (Prometheus), and the export of the metrics filters define
//! ([`filters`]). Every family is present from the start: counters with the labels weir knows
//! in advance (reload results, each plugin's failure kinds, each cluster, each route's bytes)
//! start at 0.

pub mod filters;

use std::collections::HashSet;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use weir_abi::{FailureKind, Runtime};

use crate::generation::Generation;

/// Bounds of the request and upstream duration histograms, in seconds (500 µs to 60 s).
const DURATION_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Status classes, the duration histogram's `class` label: the index is the hundreds digit.
const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// weir's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    upstream_seconds: HistogramVec,
    upstream_connect_failures: IntCounterVec,
    upstream_timeouts: IntCounterVec,
    upstream_retries: IntCounterVec,
    upstream_retries_over_budget: IntCounterVec,
    outlier_ejections: IntCounterVec,
    endpoint_healthy: IntGaugeVec,
    endpoint_ejected: IntGaugeVec,
    filter_seconds: HistogramVec,
    filter_failures: IntCounterVec,
    vms: IntGauge,
    generation: IntGauge,
    /// Reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
    downstream_open: IntGauge,
    downstream_refused: IntCounter,
    downstream_idle: IntCounter,
    /// The families above (filter metrics may not take these names).
    reserved: HashSet<String>,
    filter_conflicts: filters::Conflicts,
    unrouted: std::sync::OnceLock<RouteMetrics>,
}

/// One route's metrics, looked up once per route rather than by label per request.
pub struct RouteMetrics {
    /// The route's name.
    name: String,
    /// Made at a class's first request: a route that never answers 1xx has no 1xx series.
    seconds_by_class: [std::sync::OnceLock<Histogram>; 6],
    request_bytes: IntCounter,
    response_bytes: IntCounter,
    /// `weir_filter_seconds` of each filter of the route's chain, by its place in the chain:
    /// looked up once, not per callback.
    filter_seconds: Vec<Histogram>,
    /// `weir_requests_total` by status code, as the route answered them (a lookup by labels
    /// hashes both on every request).
    requests_by_code: std::sync::RwLock<Vec<(u16, IntCounter)>>,
}

impl RouteMetrics {
    /// The callbacks of the chain's filter at `slot` took `d` over one request.
    pub fn filter_time(&self, slot: usize, d: Duration) {
        if let Some(h) = self.filter_seconds.get(slot) {
            h.observe(d.as_secs_f64());
        }
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics").finish_non_exhaustive()
    }
}

/// One cluster's metrics.
pub struct ClusterMetrics {
    seconds: Histogram,
    connect_failures: IntCounter,
    timeouts: IntCounter,
    retries: IntCounter,
    retries_over_budget: IntCounter,
    ejections: IntCounter,
}

impl ClusterMetrics {
    /// The upstream answered in `d` (request sent to response end).
    pub fn answered(&self, d: Duration) {
        self.seconds.observe(d.as_secs_f64());
    }

    /// A connection to an endpoint failed (refused, unreachable, timed out).
    pub fn connect_failure(&self) {
        self.connect_failures.inc();
    }

    /// An endpoint took longer than `read_timeout` (or the write stalled).
    pub fn timeout(&self) {
        self.timeouts.inc();
    }

    /// The request was sent again after a failed try.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// A retry the policy allowed was not made: the retry budget had no room.
    pub fn retry_over_budget(&self) {
        self.retries_over_budget.inc();
    }

    /// Outlier detection ejected an endpoint.
    pub fn ejection(&self) {
        self.ejections.inc();
    }

    /// The counters, for `/clusters`.
    pub fn counts(&self) -> serde_json::Value {
        serde_json::json!({
            "upstream_responses": self.seconds.get_sample_count(),
            "connect_failures": self.connect_failures.get(),
            "timeouts": self.timeouts.get(),
            "retries": self.retries.get(),
            "retries_over_budget": self.retries_over_budget.get(),
            "ejections": self.ejections.get(),
        })
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric")
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let duration = &DURATION_BUCKETS;
        let requests = counter_vec("weir_requests_total", "Requests served, by route and status", &["route", "code"]);
        let request_seconds = histogram_vec(
            "weir_request_duration_seconds",
            "Time from a request's arrival to its last response byte, by route and status class",
            &["route", "class"],
            duration,
        );
        let request_bytes = counter_vec(
            "weir_request_body_bytes_total",
            "Request body bytes received from clients, by route",
            &["route"],
        );
        let response_bytes =
            counter_vec("weir_response_body_bytes_total", "Response body bytes sent to clients, by route", &["route"]);
        let upstream_seconds = histogram_vec(
            "weir_upstream_request_duration_seconds",
            "Time from choosing an endpoint to the upstream response's last byte, by cluster",
            &["cluster"],
            duration,
        );
        let upstream_connect_failures = counter_vec(
            "weir_upstream_connect_failures_total",
            "Connections to an endpoint that failed (refused, unreachable, timed out), by cluster",
            &["cluster"],
        );
        let upstream_timeouts = counter_vec(
            "weir_upstream_timeouts_total",
            "Upstream requests that ran past the cluster's read_timeout, by cluster",
            &["cluster"],
        );
        let upstream_retries = counter_vec(
            "weir_upstream_retries_total",
            "Upstream requests sent again after a failed try, by cluster",
            &["cluster"],
        );
        let upstream_retries_over_budget = counter_vec(
            "weir_upstream_retries_over_budget_total",
            "Retries the retry policy allowed but the cluster's retry_budget did not, by cluster",
            &["cluster"],
        );
        let outlier_ejections = counter_vec(
            "weir_outlier_ejections_total",
            "Endpoints ejected by outlier detection, by cluster",
            &["cluster"],
        );
        let endpoint_healthy = IntGaugeVec::new(
            Opts::new(
                "weir_endpoint_healthy",
                "1 when an endpoint takes requests (its health check passes, or it has none)",
            ),
            &["cluster", "endpoint"],
        )
        .expect("valid metric");
        let endpoint_ejected = IntGaugeVec::new(
            Opts::new("weir_endpoint_ejected", "1 while outlier detection has an endpoint ejected"),
            &["cluster", "endpoint"],
        )
        .expect("valid metric");
        let filter_seconds = histogram_vec(
            "weir_filter_seconds",
            "Time spent in a filter's callbacks over one request",
            &["plugin"],
            &[1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1],
        );
        let filter_failures = counter_vec(
            "weir_filter_failures_total",
            "Filter VM failures (traps, deadlines, memory limits), by plugin and kind",
            &["plugin", "kind"],
        );
        let vms = IntGauge::new("weir_vms_live", "Wasm VM instances alive").expect("valid metric");
        let generation = IntGauge::new("weir_config_generation", "The configuration generation serving new requests")
            .expect("valid metric");
        let reloads = counter_vec("weir_reloads_total", "Configuration reloads by result", &["result"]);
        for result in ["ok", "error"] {
            reloads.with_label_values(&[result]);
        }
        let downstream_open =
            IntGauge::new("weir_downstream_connections", "Downstream (client) connections open").expect("valid metric");
        let downstream_refused = IntCounter::new(
            "weir_downstream_connections_refused_total",
            "Downstream connections closed at accept because server.max_connections were open",
        )
        .expect("valid metric");
        let downstream_idle = IntCounter::new(
            "weir_downstream_idle_timeouts_total",
            "Downstream connections closed after server.idle_timeout without a request",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("weir_build_info", "Always 1: the version, commit, Wasmtime and Pingora of this binary"),
            &["version", "commit", "wasmtime", "pingora"],
        )
        .expect("valid metric");
        use crate::build_info as b;
        build_info.with_label_values(&[b::VERSION, b::COMMIT, b::WASMTIME, b::PINGORA]).set(1);

        let registry = Registry::new();
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(requests.clone()),
            Box::new(request_seconds.clone()),
            Box::new(request_bytes.clone()),
            Box::new(response_bytes.clone()),
            Box::new(upstream_seconds.clone()),
            Box::new(upstream_connect_failures.clone()),
            Box::new(upstream_timeouts.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(upstream_retries_over_budget.clone()),
            Box::new(outlier_ejections.clone()),
            Box::new(endpoint_healthy.clone()),
            Box::new(endpoint_ejected.clone()),
            Box::new(downstream_open.clone()),
            Box::new(downstream_refused.clone()),
            Box::new(downstream_idle.clone()),
            Box::new(filter_seconds.clone()),
            Box::new(filter_failures.clone()),
            Box::new(vms.clone()),
            Box::new(generation.clone()),
            Box::new(reloads.clone()),
            Box::new(build_info),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        let mut reserved = HashSet::new();
        for c in collectors {
            for desc in c.desc() {
                // A histogram's series names too (reserving them for the others costs nothing).
                for suffix in ["", "_bucket", "_sum", "_count"] {
                    reserved.insert(format!("{}{suffix}", desc.fq_name));
                }
            }
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            requests,
            request_seconds,
            request_bytes,
            response_bytes,
            upstream_seconds,
            upstream_connect_failures,
            upstream_timeouts,
            upstream_retries,
            upstream_retries_over_budget,
            outlier_ejections,
            endpoint_healthy,
            endpoint_ejected,
            filter_seconds,
            filter_failures,
            vms,
            generation,
            reloads,
            downstream_open,
            downstream_refused,
            downstream_idle,
            reserved,
            filter_conflicts: filters::Conflicts::default(),
            unrouted: std::sync::OnceLock::new(),
        }
    }

    /// Creates the series a generation's clusters and plugins will use, at 0, so they are on
    /// the page before their first event.
    pub fn prepare(&self, generation: &Generation) {
        for name in generation.clusters.keys() {
            self.cluster(name);
        }
        for route in &generation.routes {
            self.request_bytes.with_label_values(&[&route.name]);
            self.response_bytes.with_label_values(&[&route.name]);
        }
        for name in generation.plugins.keys() {
            for kind in FailureKind::ALL {
                self.filter_failures.with_label_values(&[name, kind.label()]);
            }
        }
    }

    /// The metrics of the route named `route`, whose chain runs the plugins `filters`.
    pub fn route<'a>(&self, route: &str, filters: impl IntoIterator<Item = &'a str>) -> RouteMetrics {
        RouteMetrics {
            name: route.to_owned(),
            seconds_by_class: Default::default(),
            request_bytes: self.request_bytes.with_label_values(&[route]),
            response_bytes: self.response_bytes.with_label_values(&[route]),
            filter_seconds: filters.into_iter().map(|p| self.filter_seconds.with_label_values(&[p])).collect(),
            requests_by_code: Default::default(),
        }
    }

    /// The metrics of requests no route matched (route `-`).
    pub fn unrouted(&self) -> &RouteMetrics {
        self.unrouted.get_or_init(|| self.route("-", []))
    }

    /// The metrics of the cluster named `cluster`.
    pub fn cluster(&self, cluster: &str) -> ClusterMetrics {
        ClusterMetrics {
            seconds: self.upstream_seconds.with_label_values(&[cluster]),
            connect_failures: self.upstream_connect_failures.with_label_values(&[cluster]),
            timeouts: self.upstream_timeouts.with_label_values(&[cluster]),
            retries: self.upstream_retries.with_label_values(&[cluster]),
            retries_over_budget: self.upstream_retries_over_budget.with_label_values(&[cluster]),
            ejections: self.outlier_ejections.with_label_values(&[cluster]),
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

    /// One finished request on `route`.
    pub fn request(&self, route: &RouteMetrics, done: &Finished) {
        self.count_request(route, done.code);
        let class = if (100..600).contains(&done.code) { usize::from(done.code / 100) } else { 0 };
        let seconds = route.seconds_by_class[class]
            .get_or_init(|| self.request_seconds.with_label_values(&[route.name.as_str(), CLASSES[class]]));
        seconds.observe(done.duration.as_secs_f64());
        route.request_bytes.inc_by(done.request_bytes);
        route.response_bytes.inc_by(done.response_bytes);
    }

    /// Counts one answer of `route` with status `code`.
    fn count_request(&self, route: &RouteMetrics, code: u16) {
        let known = route.requests_by_code.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, counter)) = known.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        drop(known);
        let counter = self.requests.with_label_values(&[route.name.as_str(), itoa::Buffer::new().format(code)]);
        counter.inc();
        let mut known = route.requests_by_code.write().unwrap_or_else(|p| p.into_inner());
        // Status codes are at most three digits; the bound only keeps the scan short.
        if known.len() < 32 && !known.iter().any(|(c, _)| *c == code) {
            known.push((code, counter));
        }
    }

    /// A filter VM failure.
    pub fn filter_failure(&self, plugin: &str, kind: FailureKind) {
        self.filter_failures.with_label_values(&[plugin, kind.label()]).inc();
    }

    /// The Prometheus text exposition: weir's metrics, then the filters'.
    pub fn render(&self, runtime: &Runtime, generation: &Generation) -> String {
        self.vms.set(weir_abi::live_instances() as i64);
        self.generation.set(generation.id as i64);
        self.endpoint_healthy.reset();
        self.endpoint_ejected.reset();
        for (name, cluster) in &generation.clusters {
            for (endpoint, healthy, outlier) in cluster.endpoint_health() {
                let labels = [name.as_str(), &endpoint];
                self.endpoint_healthy.with_label_values(&labels).set(i64::from(healthy));
                if let Some(o) = outlier {
                    self.endpoint_ejected.with_label_values(&labels).set(i64::from(o.ejected));
                }
            }
        }
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        let mut out = String::from_utf8(buf).unwrap_or_default();
        let metrics = runtime.shared().metrics.snapshot();
        filters::render(&metrics, &generation.metric_naming, &self.reserved, &self.filter_conflicts, &mut out);
        out
    }
}

/// How a request ended, for its metrics.
pub struct Finished {
    /// The status the client received (0 when none was sent).
    pub code: u16,
    /// From arrival to the last response byte.
    pub duration: Duration,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
}
