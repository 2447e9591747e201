//! Filters' log levels, per plugin: what `proxy_get_log_level` reports and which `proxy_log`
//! lines are kept. A plugin's level is the one `POST /logging?plugin=NAME&level=…` set, else
//! its `log_level` in the configuration, else the default: `RUST_LOG`'s level for
//! `weir::filter` at start, changed by `POST /logging?level=…`. Kept lines go to `tracing`
//! under `weir::filter`, which the process's log filter always lets through (see
//! `logging::init`): the level is decided here, per plugin.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::ArcSwap;
use weir_abi::{LogLevel, LogRecord, LogSink};

/// The process's levels (logging is process-wide, as `tracing`'s subscriber is).
pub fn levels() -> &'static Arc<FilterLogLevels> {
    static LEVELS: std::sync::OnceLock<Arc<FilterLogLevels>> = std::sync::OnceLock::new();
    LEVELS.get_or_init(|| Arc::new(FilterLogLevels::new(LogLevel::Info)))
}

/// The levels; the runtime's log sink.
pub struct FilterLogLevels {
    default: AtomicU8,
    configured: ArcSwap<HashMap<String, LogLevel>>,
    overrides: ArcSwap<HashMap<String, LogLevel>>,
}

impl FilterLogLevels {
    /// Levels defaulting to `default`.
    pub fn new(default: LogLevel) -> Self {
        Self { default: AtomicU8::new(default as u8), configured: Default::default(), overrides: Default::default() }
    }

    /// The level of plugins without one of their own.
    pub fn default_level(&self) -> LogLevel {
        LogLevel::from_raw(i32::from(self.default.load(Ordering::Relaxed))).unwrap_or(LogLevel::Info)
    }

    /// Sets the level of plugins without one of their own (`POST /logging?level=…`, which
    /// also sets the process's filter).
    pub fn set_default(&self, level: LogLevel) {
        self.default.store(level as u8, Ordering::Relaxed);
    }

    /// The configured levels (`plugins.NAME.log_level`), at each published generation.
    pub fn set_configured(&self, levels: HashMap<String, LogLevel>) {
        self.configured.store(Arc::new(levels));
        crate::logging::refresh_filter_lines();
    }

    /// Sets `plugin`'s level until the process ends (`POST /logging?plugin=…&level=…`).
    pub fn set_override(&self, plugin: &str, level: LogLevel) {
        self.overrides.rcu(|old| {
            let mut new = HashMap::clone(old);
            new.insert(plugin.to_owned(), level);
            new
        });
        crate::logging::refresh_filter_lines();
    }

    /// The most verbose level any plugin has.
    pub fn most_verbose(&self) -> LogLevel {
        let (configured, overrides) = (self.configured.load(), self.overrides.load());
        configured.values().chain(overrides.values()).copied().fold(self.default_level(), LogLevel::min)
    }

    /// `plugin`'s level and where it comes from (`admin`, `config` or `default`).
    pub fn effective(&self, plugin: &str) -> (LogLevel, &'static str) {
        if let Some(l) = self.overrides.load().get(plugin) {
            return (*l, "admin");
        }
        if let Some(l) = self.configured.load().get(plugin) {
            return (*l, "config");
        }
        (self.default_level(), "default")
    }
}

impl LogSink for FilterLogLevels {
    fn level(&self, plugin: &str) -> LogLevel {
        self.effective(plugin).0
    }

    fn log(&self, record: &LogRecord<'_>) {
        weir_abi::to_tracing(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_beats_the_configuration_which_beats_the_default() {
        let levels = FilterLogLevels::new(LogLevel::Info);
        levels.set_configured(HashMap::from([("a".to_owned(), LogLevel::Warn), ("b".to_owned(), LogLevel::Warn)]));
        levels.set_override("a", LogLevel::Trace);
        assert_eq!(levels.effective("a"), (LogLevel::Trace, "admin"));
        assert_eq!(levels.effective("b"), (LogLevel::Warn, "config"));
        assert_eq!(levels.effective("c"), (LogLevel::Info, "default"));
        levels.set_default(LogLevel::Debug);
        assert_eq!(levels.effective("c"), (LogLevel::Debug, "default"));
    }
}
