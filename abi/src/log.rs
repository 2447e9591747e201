//! Where filter log lines go: `proxy_log`, and WASI `fd_write` to stdout/stderr.

use crate::types::LogLevel;

/// One line a filter logged, with the prefix Envoy adds (`plugin_name`, `root_id`, `vm_id`).
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    /// Level.
    pub level: LogLevel,
    /// The plugin (filter) name, or empty during VM start-up.
    pub plugin: &'a str,
    /// The plugin's `root_id`.
    pub root_id: &'a str,
    /// The VM's `vm_id`.
    pub vm_id: &'a str,
    /// The context that logged (0 during start-up).
    pub context_id: u32,
    /// The message, as given (not necessarily UTF-8).
    pub message: &'a [u8],
}

/// Receives filter log lines. The proxy logs them through `tracing`; tests capture them.
pub trait LogSink: Send + Sync + 'static {
    /// The level `proxy_get_log_level` reports to `plugin` (empty while a VM starts, before
    /// any plugin runs); lower levels are dropped before `log`.
    fn level(&self, plugin: &str) -> LogLevel;
    /// One line.
    fn log(&self, record: &LogRecord<'_>);
}

/// Sends filter logs to `tracing` under the target `weir::filter`.
#[derive(Debug, Clone, Copy)]
pub struct TracingLogSink {
    /// The level reported to filters.
    pub level: LogLevel,
}

impl Default for TracingLogSink {
    fn default() -> Self {
        Self { level: LogLevel::Info }
    }
}

impl LogSink for TracingLogSink {
    fn level(&self, _plugin: &str) -> LogLevel {
        self.level
    }

    fn log(&self, r: &LogRecord<'_>) {
        to_tracing(r);
    }
}

/// Emits `r` as a `tracing` event under the target `weir::filter`.
pub fn to_tracing(r: &LogRecord<'_>) {
    let msg = String::from_utf8_lossy(r.message);
    macro_rules! emit {
        ($lvl:ident) => {
            tracing::$lvl!(target: "weir::filter", plugin = r.plugin, vm_id = r.vm_id, context = r.context_id, "{msg}")
        };
    }
    match r.level {
        LogLevel::Trace => emit!(trace),
        LogLevel::Debug => emit!(debug),
        LogLevel::Info => emit!(info),
        LogLevel::Warn => emit!(warn),
        LogLevel::Error | LogLevel::Critical => emit!(error),
    }
}
