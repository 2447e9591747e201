//! Every default value of the configuration, and the `Default` of the sections that have one
//! (serde's `#[serde(default = "…")]` on the schema names these functions).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::schema::*;
use super::{ByteSize, Millis};

pub(super) fn default_service_name() -> String {
    "weir".into()
}

pub(super) fn default_sampling() -> f64 {
    1.0
}

pub(super) fn default_export_timeout() -> Millis {
    Millis(std::time::Duration::from_secs(10))
}

pub(super) fn default_access_log_path() -> String {
    "stderr".into()
}

pub(super) fn default_access_log_fields() -> Vec<crate::access_log::Field> {
    crate::access_log::DEFAULT_FIELDS.to_vec()
}

pub(super) fn default_node_id() -> String {
    "weir".into()
}

pub(super) fn default_request_timeout() -> Millis {
    Millis(std::time::Duration::from_secs(300))
}

pub(super) fn default_filter_prefix() -> String {
    "weir_filter_".into()
}

pub(super) fn default_module_cache() -> String {
    "auto".into()
}

pub(super) fn default_vm_slots() -> u32 {
    weir_abi::PoolingLimits::default().max_instances
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn default_connect_timeout() -> Millis {
    Millis(Duration::from_secs(1))
}

pub(super) fn default_read_timeout() -> Millis {
    Millis(Duration::from_secs(60))
}

pub(super) fn default_health_interval() -> Millis {
    Millis(Duration::from_secs(5))
}

pub(super) fn default_memory() -> ByteSize {
    ByteSize(64 << 20)
}

pub(super) fn default_deadline() -> Millis {
    Millis(Duration::from_millis(100))
}

pub(super) fn default_buffer() -> ByteSize {
    ByteSize(1 << 20)
}

pub(super) fn default_idle_timeout() -> Millis {
    Millis(Duration::from_secs(60))
}

pub(super) fn default_max_requests() -> u32 {
    1000
}

pub(super) fn no_delay() -> Millis {
    Millis(Duration::ZERO)
}

pub(super) fn default_grace() -> u64 {
    10
}

pub(super) fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

pub(super) fn default_upgrade_sock() -> String {
    runtime_file("weir_upgrade.sock")
}

pub(super) fn default_pid_file() -> String {
    runtime_file("weir.pid")
}

/// `name` in systemd's runtime directory (`RuntimeDirectory=`, e.g. `/run/weir`) when weir runs
/// under a unit that has one, else in `/tmp`.
pub(super) fn runtime_file(name: &str) -> String {
    let dir = std::env::var("RUNTIME_DIRECTORY").ok().and_then(|d| d.split(':').next().map(str::to_owned));
    format!("{}/{name}", dir.filter(|d| !d.is_empty()).as_deref().unwrap_or("/tmp"))
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self { path: default_access_log_path(), format: None, fields: default_access_log_fields() }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { filter_prefix: default_filter_prefix(), filter_tags: Vec::new() }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { id: default_node_id(), cluster: String::new(), metadata: BTreeMap::new() }
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self { memory: default_memory(), deadline: default_deadline() }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self { address: default_admin(), token_file: None }
    }
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
            compiler: Default::default(),
        }
    }
}

pub(super) fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::ConnectFailure]
}

pub(super) fn default_num_retries() -> u32 {
    1
}

pub(super) fn default_retry_base_interval() -> Millis {
    Millis(Duration::from_millis(25))
}

impl Default for BackOff {
    fn default() -> Self {
        BackOff { base_interval: default_retry_base_interval(), max_interval: None }
    }
}

impl Default for RetryPolicyConfig {
    fn default() -> Self {
        RetryPolicyConfig {
            retry_on: default_retry_on(),
            num_retries: default_num_retries(),
            per_try_timeout: None,
            retriable_status_codes: Vec::new(),
            retry_back_off: BackOff::default(),
            retry_non_idempotent: false,
        }
    }
}

pub(super) fn default_budget_percent() -> f64 {
    20.0
}

pub(super) fn default_min_retry_concurrency() -> u32 {
    3
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget { budget_percent: default_budget_percent(), min_retry_concurrency: default_min_retry_concurrency() }
    }
}

pub(super) fn default_consecutive_5xx() -> u32 {
    5
}

pub(super) fn default_base_ejection_time() -> Millis {
    Millis(Duration::from_secs(30))
}

pub(super) fn default_max_ejection_time() -> Millis {
    Millis(Duration::from_secs(300))
}

pub(super) fn default_max_ejection_percent() -> u32 {
    10
}

pub(super) fn default_health_timeout() -> Millis {
    Millis(Duration::from_secs(1))
}

pub(super) fn default_threshold() -> u32 {
    1
}

pub(super) fn default_expected_statuses() -> Vec<u16> {
    vec![200]
}

pub(super) fn default_redirect_code() -> u16 {
    301
}
