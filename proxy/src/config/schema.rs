//! The configuration's shape: every section and key, documented on its type (unknown keys are
//! errors). Defaults are in `defaults.rs`, checks beyond the types in `validate.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

// serde's `default = "…"` attributes name these functions.
use super::defaults::*;
use super::{ByteSize, Millis};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where weir accepts client connections.
    pub listeners: Vec<Listener>,
    /// Upstream services, by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
    /// Filter modules and their VM settings, by name; routes refer to them.
    #[serde(default)]
    pub plugins: BTreeMap<String, Plugin>,
    /// Routes, tried in order; the first match wins.
    pub routes: Vec<Route>,
    /// Plugins that run without a route (Envoy's bootstrap `WasmService`): timers, callouts,
    /// shared data and queues only.
    #[serde(default)]
    pub services: Vec<WasmService>,
    /// What filters read as `xds.node`.
    #[serde(default)]
    pub node: NodeConfig,
    /// The admin listener (metrics, readiness, reload). Default `127.0.0.1:9901`.
    #[serde(default)]
    pub admin: Admin,
    /// Process settings.
    #[serde(default)]
    pub server: Server,
    /// How `/metrics` shows the metrics filters define.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where access-log lines go and what they show.
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// Distributed tracing (OpenTelemetry); off without it.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
}

/// Distributed tracing: spans exported over OTLP/HTTP (see `docs/configuration.md`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces URL, `http://HOST:4318/v1/traces`.
    pub endpoint: String,
    /// `http_protobuf` (the default, as OTLP's) or `http_json`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `service.name` of the spans. Default `weir`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of new traces sampled, 0 to 1; a request whose `traceparent` carries its
    /// caller's decision keeps it. Default 1.
    #[serde(default = "default_sampling")]
    pub sampling: f64,
    /// Longest an export may take. Default 10s.
    #[serde(default = "default_export_timeout")]
    pub timeout: Millis,
}

/// How spans are encoded for the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// Protobuf (`application/x-protobuf`).
    #[default]
    HttpProtobuf,
    /// JSON (`application/json`).
    HttpJson,
}

/// The access log (see `docs/configuration.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// `stderr`, `stdout` or a file (relative to the configuration file), reopened on SIGUSR1.
    /// Applies at start.
    #[serde(default = "default_access_log_path")]
    pub path: String,
    /// `text` or `json`; default: as `--log-format`.
    #[serde(default)]
    pub format: Option<AccessLogFormat>,
    /// The fields each line shows, in order.
    #[serde(default = "default_access_log_fields")]
    pub fields: Vec<crate::access_log::Field>,
}

/// An access-log line's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// `key=value` pairs, as weir's other log lines.
    Text,
    /// One flat JSON object.
    Json,
}

/// How `/metrics` shows the metrics filters define (see `docs/configuration.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Put before every filter metric's name, so it cannot be read as one of weir's own.
    /// Default `weir_filter_`.
    #[serde(default = "default_filter_prefix")]
    pub filter_prefix: String,
    /// Rules that turn parts of filter metric names into labels, as Envoy's `stats_tags`.
    #[serde(default)]
    pub filter_tags: Vec<TagRule>,
}

/// A label cut out of filter metric names: `regex`'s first capture group is removed from the
/// name, its second (or else its first) is the label's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    /// The label's name.
    pub tag_name: String,
    /// Matched against the name.
    pub regex: String,
}

/// A listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `ip:port`; port 0 picks a free port (reported in the log and on `/ready`).
    pub address: SocketAddr,
    /// Serve TLS with these certificates and keys (PEM files; reloaded with the configuration).
    /// HTTP/2 is then offered by ALPN.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Accept HTTP/2 (h2c with prior knowledge on plaintext, ALPN on TLS). Default true.
    #[serde(default = "yes")]
    pub http2: bool,
}

/// TLS files of a listener: `cert` and `key`, and more pairs in `certificates` chosen by the
/// client's SNI (the first pair answers clients whose SNI no certificate covers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificate chain, PEM.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Private key, PEM.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// More certificates, each served to clients whose SNI it covers.
    #[serde(default)]
    pub certificates: Vec<CertificatePair>,
}

/// A certificate chain and its private key (PEM files, relative to the configuration file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

impl ListenerTls {
    /// Every pair, `cert`/`key` first; `Err` names what is missing.
    pub fn pairs(&self) -> Result<Vec<CertificatePair>, &'static str> {
        let first = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(CertificatePair { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => return Err("give both `cert` and `key`"),
        };
        let pairs: Vec<_> = first.into_iter().chain(self.certificates.iter().cloned()).collect();
        if pairs.is_empty() {
            return Err("give `cert` and `key` (and optionally `certificates`)");
        }
        Ok(pairs)
    }
}

/// How a cluster spreads requests over its endpoints.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each endpoint in turn. The default.
    #[default]
    RoundRobin,
    /// Consistent hashing (ketama) on [`Cluster::hash_on`].
    Hash,
}

/// An upstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `host:port` of each endpoint (resolved when the config is loaded).
    pub endpoints: Vec<String>,
    /// Load-balancing policy. Default `round_robin`.
    #[serde(default)]
    pub lb: LbPolicy,
    /// With `lb: hash`: the request header whose value is hashed (default: the client address).
    #[serde(default)]
    pub hash_on: Option<String>,
    /// Connect timeout. Default 1s.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Millis,
    /// Time to wait for each read from the upstream. Default 60s.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Millis,
    /// Speak HTTP/2 to the endpoints (h2c without TLS): needed for gRPC. Default false.
    #[serde(default)]
    pub http2: bool,
    /// Connect with TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Periodic health checks (TCP connect, or an HTTP request with `http:`); unhealthy
    /// endpoints are skipped.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Ejects endpoints that keep failing, for a time that grows each time (Envoy's outlier
    /// detection). Default: off.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// The retry policy of routes to this cluster that have none of their own.
    #[serde(default)]
    pub retry_policy: Option<RetryPolicyConfig>,
    /// How many retries may be under way at once, so retries cannot multiply an outage.
    #[serde(default)]
    pub retry_budget: RetryBudget,
    /// Metadata filters read as `xds.cluster_metadata`.
    #[serde(default)]
    pub metadata: MetadataConfig,
}

/// When a request is tried again, how often and how soon (Envoy's `retry_policy`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyConfig {
    /// The conditions, as Envoy names them (a list, or one comma-separated string). Default
    /// `connect-failure`.
    #[serde(default = "default_retry_on", deserialize_with = "super::units::comma_list")]
    pub retry_on: Vec<RetryOn>,
    /// Retries after the first try. Default 1; 0 turns retries off.
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// Most time each try may wait for the upstream's answer (each read of it). Default: the
    /// cluster's `read_timeout`.
    #[serde(default)]
    pub per_try_timeout: Option<Millis>,
    /// The statuses `retriable-status-codes` retries.
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
    /// The wait before a retry at an endpoint already tried: a random time up to
    /// `base_interval × 2^(retry − 1)`, at most `max_interval`.
    #[serde(default)]
    pub retry_back_off: BackOff,
    /// Retry requests whose method is not idempotent (POST, PATCH) also after they were sent.
    /// A connect failure is retried whatever the method: nothing reached the upstream. Default
    /// false.
    #[serde(default)]
    pub retry_non_idempotent: bool,
}

/// A condition that makes a try fail and the request go to another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "kebab-case")]
pub enum RetryOn {
    /// The connection to the endpoint could not be made.
    ConnectFailure,
    /// An HTTP/2 upstream refused the stream (REFUSED_STREAM).
    RefusedStream,
    /// The upstream closed, reset or timed out before its response head.
    Reset,
    /// A 5xx response, a reset or a connect failure.
    #[strum(serialize = "5xx")]
    FiveXx,
    /// A 502, 503 or 504 response, a reset or a connect failure.
    GatewayError,
    /// A status in `retriable_status_codes`.
    RetriableStatusCodes,
}

/// The wait between tries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackOff {
    /// Default 25ms.
    #[serde(default = "default_retry_base_interval")]
    pub base_interval: Millis,
    /// Default 10 × `base_interval`.
    #[serde(default)]
    pub max_interval: Option<Millis>,
}

/// Retries allowed at once in a cluster (Envoy's `retry_budget`): `budget_percent` of the
/// requests under way, and never fewer than `min_retry_concurrency`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Default 20.
    #[serde(default = "default_budget_percent")]
    pub budget_percent: f64,
    /// Default 3.
    #[serde(default = "default_min_retry_concurrency")]
    pub min_retry_concurrency: u32,
}

/// Passive health: endpoints that fail in a row are ejected (Envoy's `outlier_detection`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// 5xx answers (connect failures and resets count as 503) in a row that eject. Default 5;
    /// 0 off.
    #[serde(default = "default_consecutive_5xx")]
    pub consecutive_5xx: u32,
    /// 502, 503 and 504 answers (connect failures and resets included) in a row that eject.
    /// Default 0 (off).
    #[serde(default)]
    pub consecutive_gateway_failure: u32,
    /// The first ejection's length; the n-th lasts n times as long. Default 30s.
    #[serde(default = "default_base_ejection_time")]
    pub base_ejection_time: Millis,
    /// The longest ejection. Default 300s.
    #[serde(default = "default_max_ejection_time")]
    pub max_ejection_time: Millis,
    /// An endpoint is ejected only while the share already out is below this, in percent.
    /// Default 10.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

/// Envoy's `Metadata`: a map of values per filter namespace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Namespace → fields (any YAML values).
    #[serde(default)]
    pub filter_metadata: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>>,
}

/// What filters read as `xds.node` (Envoy's bootstrap node).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `xds.node.id`. Default `weir`.
    #[serde(default = "default_node_id")]
    pub id: String,
    /// `xds.node.cluster`. Default empty.
    #[serde(default)]
    pub cluster: String,
    /// `xds.node.metadata`: any YAML values.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_yaml_ng::Value>,
}

/// TLS to an upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Server name to send and verify. Default: the endpoint's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the certificate. Default true.
    #[serde(default = "yes")]
    pub verify: bool,
}

/// A health check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// How often. Default 5s.
    #[serde(default = "default_health_interval")]
    pub interval: Millis,
    /// Most time one check may take. Default 1s.
    #[serde(default = "default_health_timeout")]
    pub timeout: Millis,
    /// Checks in a row that pass before an unhealthy endpoint takes requests again. Default 1.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
    /// Checks in a row that fail before an endpoint stops taking requests. Default 1.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Check with an HTTP request instead of a TCP connect.
    #[serde(default)]
    pub http: Option<HttpHealthCheck>,
}

/// An HTTP health check: a GET whose answer must have one of the expected statuses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHealthCheck {
    /// The path requested.
    pub path: String,
    /// The `Host` header. Default: the endpoint's host.
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that pass. Default `[200]`, as Envoy.
    #[serde(default = "default_expected_statuses")]
    pub expected_statuses: Vec<u16>,
}

/// What to do with requests when a plugin's VM fails (`fail_closed`, the default; `fail_open`;
/// `reload`).
pub use weir_abi::FailurePolicy;

/// A filter module and how its VM runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// One of weir's built-in filters: `auth`, `header-rewrite`, `ab-routing`, `rate-limit`.
    #[serde(default)]
    pub builtin: Option<String>,
    /// A `.wasm` file, relative to the config file.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// Expected sha256 of the module (hex); a mismatch refuses the config.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Names the VM: shared data and queues are namespaced by it. Default: the plugin name.
    #[serde(default)]
    pub vm_id: Option<String>,
    /// Passed to `proxy_on_vm_start` (a string as is; anything else as JSON).
    #[serde(default)]
    pub vm_config: Option<serde_yaml_ng::Value>,
    /// `plugin_root_id`, for SDKs with several root contexts. Default empty.
    #[serde(default)]
    pub root_id: String,
    /// Environment variables the filter sees through WASI.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// What requests see when the VM fails. Default `fail_closed`.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Memory and CPU limits.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Envoy's `capability_restriction_config`: the only hostcalls and callbacks the filter
    /// may use. Default: no restriction.
    #[serde(default)]
    pub allowed_capabilities: Option<Vec<String>>,
    /// The level `proxy_get_log_level` reports and below which the filter's lines are dropped:
    /// `trace`, `debug`, `info`, `warn`, `error`, `critical`. Default: `RUST_LOG`'s level for
    /// `weir::filter` (`info`); `POST /logging?plugin=NAME&level=…` changes it at run time.
    #[serde(default)]
    pub log_level: Option<String>,
}

/// Limits of one VM instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// Most linear memory per instance. Default 64MiB.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Most time one request callback may run. Default 100ms.
    #[serde(default = "default_deadline")]
    pub deadline: Millis,
}

/// A route: which requests, which cluster, which filters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name, shown in logs and as `xds.route_name`. Default `route-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions, all of which must hold. Default: match everything.
    #[serde(default, rename = "match")]
    pub matcher: Match,
    /// The cluster requests go to (a filter may choose another, see ab-routing). One of
    /// `cluster`, `weighted_clusters`, `direct_response` and `redirect` is required.
    #[serde(default)]
    pub cluster: String,
    /// Clusters chosen at random in proportion to their weights, per request.
    #[serde(default)]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Answer without an upstream (Envoy's `direct_response`).
    #[serde(default)]
    pub direct_response: Option<DirectResponse>,
    /// Answer with a redirect (Envoy's `redirect`).
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Replaces the matched `path_prefix` (or the whole `path`) in the path sent upstream.
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Rewrites the path sent upstream: every match of `pattern` becomes `substitution`.
    #[serde(default)]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Filters run on every phase: request phases in this order, response phases reversed.
    #[serde(default)]
    pub filters: Vec<FilterRef>,
    /// Metadata filters read as `xds.route_metadata`.
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// Envoy's stream idle timeout for the route: the longest a request may go without
    /// progress, paused by a filter with nothing to wake it or waiting for an upstream read.
    /// Then 408 while the request is still arriving, else 504 (`stream_idle_timeout`).
    /// Default 5m. `request_timeout` is its former name.
    #[serde(default = "default_request_timeout", alias = "request_timeout")]
    pub idle_timeout: Millis,
    /// Envoy's route timeout: the longest from the first try upstream to the end of the
    /// response; then 504 `upstream_response_timeout`, or a reset once the response started.
    /// Default: none.
    #[serde(default)]
    pub timeout: Option<Millis>,
    /// When requests are tried again. Default: the cluster's, else `connect-failure` once.
    #[serde(default)]
    pub retry_policy: Option<RetryPolicyConfig>,
}

/// A plugin run as a service, outside any route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmService {
    /// The plugin (key of `plugins`).
    pub plugin: String,
    /// Passed to `proxy_on_configure`, as a filter's `config`.
    #[serde(default)]
    pub config: Option<serde_yaml_ng::Value>,
    /// One instance for the whole process, on a thread of its own (Envoy's main thread);
    /// otherwise one on every worker. Default false.
    #[serde(default)]
    pub singleton: bool,
}

/// Route conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// `Host` / `:authority` without port, exact (case-insensitive); `*.example.com` matches
    /// subdomains.
    #[serde(default)]
    pub host: Option<String>,
    /// Exact path (without query).
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Methods (any of).
    #[serde(default)]
    pub methods: Vec<String>,
    /// The whole path (without query) matches this regular expression.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Headers and how their value must look: a string is an exact value.
    #[serde(default)]
    pub headers: BTreeMap<String, ValueMatch>,
    /// Query parameters and how their value must look: a string is an exact value.
    #[serde(default)]
    pub query_params: BTreeMap<String, ValueMatch>,
}

/// How a header's or a query parameter's value must look.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ValueMatch {
    /// Exactly this value.
    Exact(String),
    /// One rule.
    Rule(ValueRule),
}

/// One condition on a value (exactly one of the conditions), possibly inverted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueRule {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    /// The whole value matches this regular expression.
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: present, with any value; `false`: absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// Matches when the condition does not hold.
    #[serde(default)]
    pub invert: bool,
}

/// A cluster of `weighted_clusters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

/// A route's own answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

/// A redirect: the request's URL with the given parts replaced, in `location`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// Redirect to `https`.
    #[serde(default)]
    pub https_redirect: bool,
    #[serde(default)]
    pub scheme_redirect: Option<String>,
    #[serde(default)]
    pub host_redirect: Option<String>,
    #[serde(default)]
    pub port_redirect: Option<u16>,
    /// The whole path (and query, when it has one).
    #[serde(default)]
    pub path_redirect: Option<String>,
    /// Replaces the matched `path_prefix`.
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Default 301, as Envoy; 302, 303, 307 or 308 otherwise.
    #[serde(default = "default_redirect_code")]
    pub response_code: u16,
    /// Drop the query.
    #[serde(default)]
    pub strip_query: bool,
}

/// A regular-expression path rewrite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

/// A filter in a route's chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRef {
    /// The plugin (key of `plugins`).
    pub plugin: String,
    /// Passed to `proxy_on_configure`: a string as is, anything else as JSON.
    #[serde(default)]
    pub config: Option<serde_yaml_ng::Value>,
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `ip:port`. Default `127.0.0.1:9901`.
    #[serde(default = "default_admin")]
    pub address: SocketAddr,
    /// A file holding the bearer token every admin request but `GET /ready` must present
    /// (`Authorization: Bearer <token>`); read at each request, so it can be rotated in place.
    /// Default: no token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Process settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Worker threads for the proxy. Default: the number of CPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Largest request or response body a filter may buffer; more gives 413 (request) or a
    /// reset (response). Default 1MiB, as Envoy's default buffer limit.
    #[serde(default = "default_buffer")]
    pub max_buffered_body: ByteSize,
    /// Seconds to let in-flight requests finish on shutdown (weir exits as soon as none is
    /// left). Default 10.
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u64,
    /// How long the listeners stay open after SIGTERM or SIGINT while `/ready` answers 503, so
    /// load balancers stop sending before weir stops accepting. Default 0s.
    #[serde(default = "no_delay")]
    pub drain_delay: Millis,
    /// Socket for the graceful binary upgrade. Default `weir_upgrade.sock` in systemd's
    /// `$RUNTIME_DIRECTORY`, else `/tmp/weir_upgrade.sock`.
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// PID file. Default `weir.pid` in systemd's `$RUNTIME_DIRECTORY`, else `/tmp/weir.pid`.
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    /// Longest time a client connection may stay open without a request in flight: before
    /// its first request, between requests, and while a request head trickles in. Default 60s.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Millis,
    /// Client connections older than this close after their current request. Default: none.
    #[serde(default)]
    pub max_connection_duration: Option<Millis>,
    /// Requests on one HTTP/1 connection; the last one's response closes it (0: no limit).
    /// Default 1000.
    #[serde(default = "default_max_requests")]
    pub max_requests_per_connection: u32,
    /// Client connections open at once; more are closed at accept, with a warning and
    /// `weir_downstream_connections_refused_total`. Default: half the open-file limit.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// VM instance slots the pooling allocator reserves address space for; 0 allocates each
    /// instance on demand instead (slower to create, no large reservation). Default 1000.
    #[serde(default = "default_vm_slots")]
    pub vm_slots: u32,
    /// Where compiled filter modules are kept between runs: `auto` (systemd's
    /// `$CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/weir/modules` or `~/.cache/weir/modules`), `off`, or a
    /// directory (relative to the configuration file). Default `auto`.
    #[serde(default = "default_module_cache")]
    pub module_cache: String,
    /// Which compiler turns filter modules into machine code: `optimizing` (Cranelift, the
    /// fastest code), `baseline` (Winch: modules compile four to five times faster into slower
    /// code) or `tiered` (Cranelift, except that a reload serves a never-seen module on Winch's
    /// code while Cranelift compiles it in the background). Default `tiered`.
    #[serde(default)]
    pub compiler: weir_abi::Compiler,
}

impl Server {
    /// Proxy worker threads: `threads`, else one per CPU.
    pub fn workers(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
    }
}
