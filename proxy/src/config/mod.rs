//! weir's configuration file (YAML): listeners, clusters, plugins, routes, admin.
//!
//! Every key is documented on its type; unknown keys are errors. Errors name the file, the
//! line and the field. [`Config::load`] parses and validates; the result is plain data that
//! [`crate::generation`] turns into a running generation.

mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use units::{ByteSize, Millis};

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

fn default_service_name() -> String {
    "weir".into()
}

fn default_sampling() -> f64 {
    1.0
}

fn default_export_timeout() -> Millis {
    Millis(std::time::Duration::from_secs(10))
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

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self { path: default_access_log_path(), format: None, fields: default_access_log_fields() }
    }
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

fn default_access_log_path() -> String {
    "stderr".into()
}

fn default_access_log_fields() -> Vec<crate::access_log::Field> {
    crate::access_log::DEFAULT_FIELDS.to_vec()
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

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { filter_prefix: default_filter_prefix(), filter_tags: Vec::new() }
    }
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
    /// Periodic TCP health checks; unhealthy endpoints are skipped.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Metadata filters read as `xds.cluster_metadata`.
    #[serde(default)]
    pub metadata: MetadataConfig,
}

/// Envoy's `Metadata`: a map of values per filter namespace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Namespace → fields (any YAML values).
    #[serde(default)]
    pub filter_metadata: BTreeMap<String, BTreeMap<String, serde_yaml::Value>>,
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
    pub metadata: BTreeMap<String, serde_yaml::Value>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { id: default_node_id(), cluster: String::new(), metadata: BTreeMap::new() }
    }
}

fn default_node_id() -> String {
    "weir".into()
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
    pub vm_config: Option<serde_yaml::Value>,
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

impl Default for PluginLimits {
    fn default() -> Self {
        Self { memory: default_memory(), deadline: default_deadline() }
    }
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
    /// The cluster requests go to (a filter may choose another, see ab-routing).
    pub cluster: String,
    /// Filters run on every phase: request phases in this order, response phases reversed.
    #[serde(default)]
    pub filters: Vec<FilterRef>,
    /// Metadata filters read as `xds.route_metadata`.
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// Longest time a filter may keep the request paused with nothing to wake it (Envoy's
    /// stream idle timeout): then 408, or 504 once the whole request was received. Default 5m.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Millis,
}

fn default_request_timeout() -> Millis {
    Millis(std::time::Duration::from_secs(300))
}

/// A plugin run as a service, outside any route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmService {
    /// The plugin (key of `plugins`).
    pub plugin: String,
    /// Passed to `proxy_on_configure`, as a filter's `config`.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
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
    /// Headers that must be present with exactly this value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A filter in a route's chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRef {
    /// The plugin (key of `plugins`).
    pub plugin: String,
    /// Passed to `proxy_on_configure`: a string as is, anything else as JSON.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
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

impl Default for Admin {
    fn default() -> Self {
        Self { address: default_admin(), token_file: None }
    }
}

/// The admin token in `path`, trimmed; an error says why there is none.
///
/// # Errors
///
/// The file cannot be read, or holds only whitespace.
pub fn read_admin_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(token.to_owned())
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
}

impl Default for Server {
    fn default() -> Self {
        Self {
            threads: None,
            max_buffered_body: default_buffer(),
            grace_period_seconds: default_grace(),
            drain_delay: no_delay(),
            idle_timeout: default_idle_timeout(),
            max_connection_duration: None,
            max_requests_per_connection: default_max_requests(),
            max_connections: None,
            upgrade_sock: default_upgrade_sock(),
            pid_file: default_pid_file(),
            vm_slots: default_vm_slots(),
            module_cache: default_module_cache(),
        }
    }
}

impl Server {
    /// Proxy worker threads: `threads`, else one per CPU.
    pub fn workers(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
    }
}

fn default_filter_prefix() -> String {
    "weir_filter_".into()
}

fn default_module_cache() -> String {
    "auto".into()
}

fn default_vm_slots() -> u32 {
    weir_abi::PoolingLimits::default().max_instances
}

fn yes() -> bool {
    true
}
fn default_connect_timeout() -> Millis {
    Millis(Duration::from_secs(1))
}
fn default_read_timeout() -> Millis {
    Millis(Duration::from_secs(60))
}
fn default_health_interval() -> Millis {
    Millis(Duration::from_secs(5))
}
fn default_memory() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_deadline() -> Millis {
    Millis(Duration::from_millis(100))
}
fn default_buffer() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_idle_timeout() -> Millis {
    Millis(Duration::from_secs(60))
}
fn default_max_requests() -> u32 {
    1000
}
fn no_delay() -> Millis {
    Millis(Duration::ZERO)
}
fn default_grace() -> u64 {
    10
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
fn default_upgrade_sock() -> String {
    runtime_file("weir_upgrade.sock")
}
fn default_pid_file() -> String {
    runtime_file("weir.pid")
}

/// `name` in systemd's runtime directory (`RuntimeDirectory=`, e.g. `/run/weir`) when weir runs
/// under a unit that has one, else in `/tmp`.
fn runtime_file(name: &str) -> String {
    let dir = std::env::var("RUNTIME_DIRECTORY").ok().and_then(|d| d.split(':').next().map(str::to_owned));
    format!("{}/{name}", dir.filter(|d| !d.is_empty()).as_deref().unwrap_or("/tmp"))
}

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field path, e.g. `routes[0].cluster`.
    pub field: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}: {}", self.file, self.field, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded configuration with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The file it was read from (`None` for the embedded quick-start config).
    pub path: Option<PathBuf>,
    /// The text, for locating fields in errors found later.
    pub text: String,
}

impl Loaded {
    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."))
    }

    /// The file name for messages.
    pub fn file_name(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded config>".into())
    }

    /// An error at `field`, located by searching for `key: value` in the text.
    pub fn error(&self, field: impl Into<String>, key: &str, value: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file_name(),
            line: locate(&self.text, key, value),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads and parses `path`.
///
/// # Errors
///
/// [`ConfigError`] for an unreadable file, YAML errors, unknown keys, and invalid references.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.display().to_string(),
            line: None,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(text, Some(path.to_path_buf()))
}

/// Parses configuration text; `path` names it in errors.
///
/// # Errors
///
/// As [`load`].
pub fn parse(text: String, path: Option<PathBuf>) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded config>".into());
    // Into a YAML value first: it refuses a key given twice in one mapping, which a map type
    // would silently take the last of.
    serde_yaml::from_str::<serde_yaml::Value>(&text)
        .map_err(|e| vec![duplicate_aware(&text, yaml_error(&file, &e))])?;
    let config: Config = serde_yaml::from_str(&text).map_err(|e| vec![yaml_error(&file, &e)])?;
    let loaded = Loaded { config, path, text };
    let errors = validate(&loaded);
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> ConfigError {
    let text = e.to_string();
    // serde_yaml puts the field path first ("routes[0]: unknown field ...") and the location last.
    let (field, rest) = match text.split_once(": ") {
        Some((f, r)) if !f.contains(' ') => (f.to_owned(), r.to_owned()),
        _ => ("-".to_owned(), text.clone()),
    };
    let message = rest.split(" at line ").next().unwrap_or(&rest).to_owned();
    ConfigError { file: file.to_owned(), line: e.location().map(|l| l.line()), field, message }
}

/// A duplicate-key error names the lines of both appearances. The parser reports where the
/// mapping starts; the key's lines are those that start with it at the mapping's indentation.
fn duplicate_aware(text: &str, mut e: ConfigError) -> ConfigError {
    let Some(key) = e.message.strip_prefix("duplicate entry with key ").map(|k| k.trim_matches('"').to_owned()) else {
        return e;
    };
    let Some(start) = e.line else { return e };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let Some(depth) = lines.get(start - 1).map(|l| indent(l)) else { return e };
    let is_key = |l: &str| {
        let t = l.trim_start();
        [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")].iter().any(|k| t.starts_with(k.as_str()))
    };
    let found: Vec<usize> = lines[start - 1..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) >= depth)
        .filter(|(_, l)| indent(l) == depth && is_key(l))
        .map(|(i, _)| start + i)
        .take(2)
        .collect();
    e.message = match found[..] {
        [first, second] => {
            e.line = Some(second);
            format!("`{key}` is given twice (first at line {first}); each key may appear once")
        }
        _ => format!("`{key}` is given twice in one mapping; each key may appear once"),
    };
    e
}

/// Cross-references and values serde cannot check.
fn validate(l: &Loaded) -> Vec<ConfigError> {
    let c = &l.config;
    let mut errors = Vec::new();
    if c.listeners.is_empty() {
        errors.push(l.error("listeners", "listeners", "", "at least one listener is needed"));
    }
    if let Some(file) = &c.admin.token_file
        && let Err(message) = read_admin_token(&l.base_dir().join(file))
    {
        errors.push(l.error("admin.token_file", "token_file", "", message));
    }
    if c.server.max_connections == Some(0) {
        errors.push(l.error("server.max_connections", "max_connections", "0", "at least 1 connection is needed"));
    }
    if c.server.threads == Some(0) {
        errors.push(l.error("server.threads", "threads", "0", "at least 1 worker thread is needed"));
    }
    errors.extend(metrics_errors(l));
    if let Some(t) = &c.tracing {
        if !(0.0..=1.0).contains(&t.sampling) {
            errors.push(l.error("tracing.sampling", "sampling", &t.sampling.to_string(), "must be between 0 and 1"));
        }
        let scheme = t.endpoint.parse::<http::Uri>().ok().and_then(|u| u.scheme_str().map(str::to_owned));
        match scheme.as_deref() {
            Some("http") => {}
            Some("https") => errors.push(l.error(
                "tracing.endpoint",
                "endpoint",
                &t.endpoint,
                "https is not supported yet: send spans to a collector or agent over http:// (usually local)",
            )),
            _ => errors.push(l.error(
                "tracing.endpoint",
                "endpoint",
                &t.endpoint,
                "must be a URL: http://HOST:4318/v1/traces",
            )),
        }
    }
    if c.access_log.fields.is_empty() {
        errors.push(l.error("access_log.fields", "fields", "", "at least one field is needed"));
    }
    if let Err(e) = crate::access_log::Destination::parse(&c.access_log.path, &l.base_dir()).check() {
        errors.push(l.error(
            "access_log.path",
            "path",
            &c.access_log.path,
            format!("cannot open it for appending: {e}"),
        ));
    }
    for (name, p) in &c.plugins {
        if let Some(level) = p.log_level.as_deref().filter(|l| weir_abi::LogLevel::from_name(l).is_none()) {
            errors.push(l.error(
                format!("plugins.{name}.log_level"),
                "log_level",
                level,
                crate::logging::unknown_level(level),
            ));
        }
    }
    let mut zero = |field: String, key: &str, d: &Millis| {
        if d.0.is_zero() {
            errors.push(l.error(field, key, "", "must be longer than 0 (0 would fail every request at once)"));
        }
    };
    for (name, cluster) in &c.clusters {
        zero(format!("clusters.{name}.connect_timeout"), "connect_timeout", &cluster.connect_timeout);
        zero(format!("clusters.{name}.read_timeout"), "read_timeout", &cluster.read_timeout);
        if let Some(h) = &cluster.health_check {
            zero(format!("clusters.{name}.health_check.interval"), "interval", &h.interval);
        }
    }
    for (name, p) in &c.plugins {
        zero(format!("plugins.{name}.limits.deadline"), "deadline", &p.limits.deadline);
    }
    for (i, r) in c.routes.iter().enumerate() {
        zero(format!("routes[{i}].request_timeout"), "request_timeout", &r.request_timeout);
    }
    zero("server.idle_timeout".into(), "idle_timeout", &c.server.idle_timeout);
    if let Some(d) = &c.server.max_connection_duration {
        zero("server.max_connection_duration".into(), "max_connection_duration", d);
    }
    let mut names = std::collections::HashMap::new();
    for (i, r) in c.routes.iter().enumerate() {
        let Some(name) = &r.name else { continue };
        if let Some(first) = names.insert(name.as_str(), i) {
            errors.push(l.error(
                format!("routes[{i}].name"),
                "name",
                name,
                format!("route name `{name}` is already the name of routes[{first}]; route names identify routes in logs and metrics"),
            ));
        }
    }
    errors.extend(builtin_cluster_references(l));
    for (name, cluster) in &c.clusters {
        if cluster.endpoints.is_empty() {
            errors.push(l.error(
                format!("clusters.{name}.endpoints"),
                "endpoints",
                "",
                "a cluster needs at least one endpoint",
            ));
        }
        for ep in &cluster.endpoints {
            if std::net::ToSocketAddrs::to_socket_addrs(ep.as_str()).map(|mut a| a.next().is_none()).unwrap_or(true) {
                errors.push(l.error(
                    format!("clusters.{name}.endpoints"),
                    "",
                    ep,
                    format!("`{ep}` is not a reachable host:port (could not resolve it)"),
                ));
            }
        }
        if cluster.hash_on.is_some() && cluster.lb != LbPolicy::Hash {
            errors.push(l.error(format!("clusters.{name}.hash_on"), "hash_on", "", "hash_on needs `lb: hash`"));
        }
    }
    for (name, p) in &c.plugins {
        match (&p.builtin, &p.module) {
            (Some(_), Some(_)) | (None, None) => errors.push(l.error(
                format!("plugins.{name}"),
                name,
                "",
                "give exactly one of `builtin` (a built-in filter) or `module` (a .wasm file)",
            )),
            (Some(b), None) if !crate::builtin::NAMES.contains(&b.as_str()) => errors.push(l.error(
                format!("plugins.{name}.builtin"),
                "builtin",
                b,
                format!("unknown built-in filter `{b}`; built-ins are: {}", crate::builtin::NAMES.join(", ")),
            )),
            _ => {}
        }
    }
    for (i, r) in c.routes.iter().enumerate() {
        if !c.clusters.contains_key(&r.cluster) {
            let known: Vec<&str> = c.clusters.keys().map(String::as_str).collect();
            errors.push(l.error(
                format!("routes[{i}].cluster"),
                "cluster",
                &r.cluster,
                format!("unknown cluster `{}`; defined clusters: {}", r.cluster, list(&known)),
            ));
        }
        if r.matcher.path.is_some() && r.matcher.path_prefix.is_some() {
            errors.push(l.error(
                format!("routes[{i}].match"),
                "path_prefix",
                "",
                "give `path` or `path_prefix`, not both",
            ));
        }
        for (j, f) in r.filters.iter().enumerate() {
            errors.extend(unknown_plugin(l, format!("routes[{i}].filters[{j}].plugin"), &f.plugin));
        }
    }
    for (i, svc) in c.services.iter().enumerate() {
        errors.extend(unknown_plugin(l, format!("services[{i}].plugin"), &svc.plugin));
    }
    errors
}

/// Clusters named inside built-in filters' configurations (`auth`'s `external.cluster`,
/// `ab-routing`'s `variants[].cluster`) must exist: the filters cannot see weir's clusters,
/// and a missing one would deny every request (auth) or silently send the traffic to the
/// route's cluster (ab-routing).
/// `metrics`: a prefix that makes valid names, labels Prometheus allows, regexes that compile.
fn metrics_errors(l: &Loaded) -> Vec<ConfigError> {
    let m = &l.config.metrics;
    let mut errors = Vec::new();
    let name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    if !m.filter_prefix.starts_with(name_start) || !m.filter_prefix.chars().all(name_char) {
        errors.push(l.error(
            "metrics.filter_prefix",
            "filter_prefix",
            &m.filter_prefix,
            "must start a valid Prometheus name: a letter, `_` or `:`, then letters, digits, `_` or `:`",
        ));
    }
    for (i, rule) in m.filter_tags.iter().enumerate() {
        let label_ok = rule.tag_name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && rule.tag_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !rule.tag_name.starts_with("__")
            && rule.tag_name != "le";
        if !label_ok {
            errors.push(l.error(
                format!("metrics.filter_tags[{i}].tag_name"),
                "tag_name",
                &rule.tag_name,
                "must be a Prometheus label name (letters, digits, `_`; not `le`, not starting with `__`)",
            ));
        }
        if let Err(e) = crate::metrics::filters::tag_regex(&rule.regex) {
            errors.push(l.error(format!("metrics.filter_tags[{i}].regex"), "regex", &rule.regex, e));
        }
    }
    errors
}

fn builtin_cluster_references(l: &Loaded) -> Vec<ConfigError> {
    let c = &l.config;
    let mut errors = Vec::new();
    let mut check = |field: String, cluster: Option<&serde_yaml::Value>| {
        let Some(name) = cluster.and_then(serde_yaml::Value::as_str) else { return };
        if !c.clusters.contains_key(name) {
            let known: Vec<&str> = c.clusters.keys().map(String::as_str).collect();
            errors.push(l.error(
                field,
                "cluster",
                name,
                format!("unknown cluster `{name}`; defined clusters: {}", list(&known)),
            ));
        }
    };
    for (i, r) in c.routes.iter().enumerate() {
        for (j, f) in r.filters.iter().enumerate() {
            let builtin = c.plugins.get(&f.plugin).and_then(|p| p.builtin.as_deref());
            // A configuration given as JSON text is read the same way (YAML is a superset).
            let parsed = match &f.config {
                Some(serde_yaml::Value::String(text)) => serde_yaml::from_str(text).ok(),
                other => other.clone(),
            };
            let Some(config) = &parsed else { continue };
            let field = |rest: &str| format!("routes[{i}].filters[{j}].config.{rest}");
            match builtin {
                Some("auth") => check(field("external.cluster"), config.get("external").and_then(|e| e.get("cluster"))),
                Some("ab-routing") => {
                    let variants = config.get("variants").and_then(serde_yaml::Value::as_sequence);
                    for (k, v) in variants.into_iter().flatten().enumerate() {
                        check(field(&format!("variants[{k}].cluster")), v.get("cluster"));
                    }
                }
                _ => {}
            }
        }
    }
    errors
}

/// The error for a reference to a plugin `plugins` does not define.
fn unknown_plugin(l: &Loaded, field: String, name: &str) -> Option<ConfigError> {
    let plugins = &l.config.plugins;
    if plugins.contains_key(name) {
        return None;
    }
    let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
    Some(l.error(field, "plugin", name, format!("unknown plugin `{name}`; defined plugins: {}", list(&known))))
}

fn list(items: &[&str]) -> String {
    if items.is_empty() { "(none)".into() } else { items.join(", ") }
}

/// The 1-based line of the first `key: value` (block or flow style), or of `value` alone when
/// `key` is empty, or of `key:` when `value` is empty.
fn locate(text: &str, key: &str, value: &str) -> Option<usize> {
    let pairs = [format!("{key}: {value}"), format!("{key}: \"{value}\""), format!("{key}: '{value}'")];
    let hit = |line: &str| -> bool {
        if key.is_empty() {
            return line.contains(value);
        }
        if value.is_empty() {
            return line.contains(&format!("{key}:"));
        }
        pairs.iter().any(|p| {
            line.match_indices(p.as_str()).any(|(i, _)| {
                let before = line[..i].chars().next_back();
                let after = line[i + p.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
            })
        })
    };
    text.lines().position(hit).map(|i| i + 1)
}

/// The configuration text as JSON for `/config`. The schema is closed (unknown keys are
/// errors), so every setting weir defines is shown as written, and every free-form value a
/// secret could hide in is replaced by a fingerprint (`"sha256:" + 12 hex digits` of its JSON,
/// enough to tell whether two generations differ): filter and service `config`, `vm_config`,
/// `environment` values, metadata, and the header values routes match on.
pub fn redacted_json(text: &str) -> String {
    use serde_yaml::Value;
    fn fingerprint(v: &mut Value) {
        if v.is_null() {
            return;
        }
        let digest = Sha256::digest(serde_json::to_vec(&*v).unwrap_or_default());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        *v = Value::String(format!("sha256:{hex}"));
    }
    fn each_value(v: Option<&mut Value>, f: fn(&mut Value)) {
        if let Some(Value::Mapping(m)) = v {
            m.iter_mut().for_each(|(_, v)| f(v));
        }
    }
    fn each_item(v: Option<&mut Value>, f: &mut dyn FnMut(&mut Value)) {
        match v {
            Some(Value::Sequence(s)) => s.iter_mut().for_each(f),
            Some(Value::Mapping(m)) => m.iter_mut().for_each(|(_, v)| f(v)),
            _ => {}
        }
    }
    let mut v: Value = serde_yaml::from_str(text).unwrap_or(Value::Null);
    each_item(v.get_mut("routes"), &mut |r| {
        r.get_mut("metadata").map(fingerprint);
        each_value(r.get_mut("match").and_then(|m| m.get_mut("headers")), fingerprint);
        each_item(r.get_mut("filters"), &mut |f| _ = f.get_mut("config").map(fingerprint));
    });
    each_item(v.get_mut("services"), &mut |svc| _ = svc.get_mut("config").map(fingerprint));
    each_item(v.get_mut("plugins"), &mut |p| {
        p.get_mut("vm_config").map(fingerprint);
        each_value(p.get_mut("environment"), fingerprint);
    });
    each_item(v.get_mut("clusters"), &mut |c| _ = c.get_mut("metadata").map(fingerprint));
    v.get_mut("node").and_then(|n| n.get_mut("metadata")).map(fingerprint);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// A YAML value as the bytes a filter receives: strings raw, anything else as JSON.
pub fn value_bytes(v: &Option<serde_yaml::Value>) -> Vec<u8> {
    match v {
        None | Some(serde_yaml::Value::Null) => Vec::new(),
        Some(serde_yaml::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).unwrap_or_default(),
    }
}

/// A YAML scalar used as a key: a string as is, anything else in its YAML form.
pub fn value_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).map(|t| t.trim_end().to_owned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
