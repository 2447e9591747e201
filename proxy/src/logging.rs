//! Logging through `tracing`: human-readable by default, JSON with `--log-format json`,
//! filtered with `RUST_LOG` (default `info`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::cli::LogFormat;

/// Changes the process's log filter at run time (`POST /logging?level=…`, and when a
/// plugin's level changes).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The directives weir's own logs are filtered by: `RUST_LOG`, or the level last set by
/// `POST /logging?level=…`.
static DIRECTIVES: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// The filter's most verbose level, as a `LevelFilter` index (see [`hint`]): the output
/// layer's hint follows it when the filter is changed.
static HINT: AtomicU8 = AtomicU8::new(0);

fn store_hint(h: Option<LevelFilter>) {
    let v = match h {
        None => 0,
        Some(LevelFilter::OFF) => 1,
        Some(LevelFilter::ERROR) => 2,
        Some(LevelFilter::WARN) => 3,
        Some(LevelFilter::INFO) => 4,
        Some(LevelFilter::DEBUG) => 5,
        Some(_) => 6,
    };
    HINT.store(v, Ordering::Relaxed);
}

fn hint() -> Option<LevelFilter> {
    Some(match HINT.load(Ordering::Relaxed) {
        0 => return None,
        1 => LevelFilter::OFF,
        2 => LevelFilter::ERROR,
        3 => LevelFilter::WARN,
        4 => LevelFilter::INFO,
        5 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    })
}

/// `directives` with filter log lines let through down to the most verbose plugin's level:
/// which lines a plugin keeps is decided per plugin before they are emitted (`filter_log`),
/// and the filter stays as terse as the plugins allow (a more verbose global level makes every
/// disabled `log` record of the dependencies cost a call).
fn env_filter(directives: &str) -> Result<EnvFilter, String> {
    let filters = match crate::filter_log::levels().most_verbose() {
        weir_abi::LogLevel::Trace => "trace",
        weir_abi::LogLevel::Debug => "debug",
        weir_abi::LogLevel::Info => "info",
        weir_abi::LogLevel::Warn => "warn",
        weir_abi::LogLevel::Error | weir_abi::LogLevel::Critical => "error",
    };
    EnvFilter::builder()
        .parse(format!("{directives},weir::filter={filters}"))
        .map_err(|e| format!("invalid log level `{directives}`: {e}"))
}

/// Applies `directives` (or the current ones) to the process's log filter.
fn apply(directives: Option<&str>) -> Result<(), String> {
    let mut current = DIRECTIVES.lock().unwrap_or_else(|p| p.into_inner());
    let filter = env_filter(directives.unwrap_or(&current))?;
    store_hint(tracing_subscriber::Layer::<Registry>::max_level_hint(&filter));
    if let Some(handle) = FILTER.get() {
        handle.reload(filter).map_err(|e| format!("cannot change the log level: {e}"))?;
    }
    if let Some(d) = directives {
        *current = d.to_owned();
    }
    Ok(())
}

/// Lets filter log lines through down to the plugins' levels, after one changed.
pub fn refresh_filter_lines() {
    if FILTER.get().is_some()
        && let Err(e) = apply(None)
    {
        tracing::warn!(target: "weir::server", "{e}");
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = if directives.trim().is_empty() { "info".to_owned() } else { directives };
    crate::filter_log::levels().set_default(filter_level(&directives));
    let directives = if env_filter(&directives).is_ok() { directives } else { "info".to_owned() };
    let filter = env_filter(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    *DIRECTIVES.lock().unwrap_or_else(|p| p.into_inner()) = directives.clone();
    let debug = pingora_debug(&directives);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    crate::access_log::set_json(matches!(format, LogFormat::Json));
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.event_format(crate::json_log::FlatJson).boxed(),
    };
    // The level filter stays global (a layer, not a per-layer filter): callsites it disables
    // cost nothing and `log` records below it are never made, which the dependencies' debug
    // logging (Cranelift's, for every function it compiles) needs.
    store_hint(tracing_subscriber::Layer::<Registry>::max_level_hint(&filter));
    let (filter, handle) = reload::Layer::new(filter);
    let _ = FILTER.set(handle);
    let _ = tracing_subscriber::registry().with(filter).with(fmt.with_filter(NotAnOperatorError { debug })).try_init();
}

/// Sets the whole process's log level (weir's logs and the default level of filters'), as
/// Envoy's `POST /logging?level=…` does.
///
/// # Errors
///
/// `level` is not a level name.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter_level = weir_abi::LogLevel::from_name(level).ok_or_else(|| unknown_level(level))?;
    // Proxy-Wasm's `critical` is `error` for weir's own logs.
    let directives = if filter_level == weir_abi::LogLevel::Critical { "error" } else { level };
    crate::filter_log::levels().set_default(filter_level);
    apply(Some(directives))
}

/// The error for a level name that is none.
pub fn unknown_level(level: &str) -> String {
    format!("unknown log level `{level}`: use trace, debug, info, warn, error or critical")
}

/// The level `RUST_LOG` gives `weir::filter`: its most specific directive (`weir::filter`,
/// then `weir`, then the bare level), `info` without one.
fn filter_level(directives: &str) -> weir_abi::LogLevel {
    let mut best: Option<(usize, weir_abi::LogLevel)> = None;
    for d in directives.split(',') {
        let (target, level) = d.rsplit_once('=').map_or(("", d), |(t, l)| (t.trim(), l));
        let rank = match target {
            "" => 0,
            "weir" => 1,
            "weir::filter" => 2,
            _ => continue,
        };
        let level = match level.trim().to_ascii_lowercase().as_str() {
            "off" => weir_abi::LogLevel::Critical,
            l => match weir_abi::LogLevel::from_name(l) {
                Some(l) => l,
                None => continue,
            },
        };
        if best.is_none_or(|(r, _)| rank >= r) {
            best = Some((rank, level));
        }
    }
    best.map_or(weir_abi::LogLevel::Info, |(_, l)| l)
}

/// Whether `RUST_LOG` asks for Pingora's debug output: a global `debug`/`trace` level, or one
/// for a `pingora…` target.
fn pingora_debug(directives: &str) -> bool {
    directives.split(',').any(|d| {
        let (target, level) = d.rsplit_once('=').unwrap_or(("", d));
        let verbose = matches!(level.trim().to_ascii_lowercase().as_str(), "debug" | "trace");
        verbose && (target.is_empty() || target.trim().starts_with("pingora"))
    })
}

/// What Pingora logs at ERROR about one client or one pooled connection, with nothing for an
/// operator to do: clients that close or fail their TLS or HTTP/2 handshake, a request the
/// client broke off (its access-log line says so), a pooled upstream connection that closed
/// while being reused. Shown only when debug logging is on.
const NOT_OPERATOR_ERRORS: &[&str] = &[
    "failed to acquire reusable stream",
    "H2 handshake error",
    "Downstream handshake error",
    "Downstream handshake timeout",
    "Fail to proxy:",
    "failed to send error response to downstream",
];

/// Drops the ERROR events of [`NOT_OPERATOR_ERRORS`] unless debug logging is on: ERROR means
/// an operator has something to do.
struct NotAnOperatorError {
    debug: bool,
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for NotAnOperatorError {
    fn enabled(&self, _meta: &tracing::Metadata<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        // Only ERROR events are looked at, one by one.
        if self.debug || *meta.level() != tracing::Level::ERROR {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The level filter's, as it is now: this filter adds none.
        hint()
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        if self.debug || *event.metadata().level() != tracing::Level::ERROR {
            return true;
        }
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    let text = format!("{value:?}");
                    self.0 = NOT_OPERATOR_ERRORS.iter().any(|m| text.starts_with(m));
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = NOT_OPERATOR_ERRORS.iter().any(|m| value.starts_with(m));
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        !message.0
    }
}

/// A panic's message, when it carries one (`panic!` with a string or a format).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

/// Reports a panic as one log line (in the configured format) instead of the standard
/// multi-line report on stderr; `RUST_BACKTRACE=1` adds the backtrace to the line.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(target: "weir::panic", thread, location, %backtrace, "panic: {message}");
        } else {
            tracing::error!(target: "weir::panic", thread, location, "panic: {message}");
        }
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn pingora_debug_directives() {
        assert!(super::pingora_debug("debug"));
        assert!(super::pingora_debug("info,pingora_core=trace"));
        assert!(!super::pingora_debug("info,weir::filter=debug"));
        assert!(!super::pingora_debug(""));
    }

    #[test]
    fn filter_level_takes_the_most_specific_directive() {
        use weir_abi::LogLevel::*;
        assert_eq!(super::filter_level("info"), Info);
        assert_eq!(super::filter_level("warn,weir::filter=debug"), Debug);
        assert_eq!(super::filter_level("weir::filter=trace,debug"), Trace);
        assert_eq!(super::filter_level("weir=error,pingora=debug"), Error);
        assert_eq!(super::filter_level("pingora=debug"), Info);
    }
}
