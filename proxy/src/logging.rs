//! Logging through `tracing`: human-readable by default, JSON with `--log-format json`,
//! filtered with `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let debug = pingora_debug(&std::env::var("RUST_LOG").unwrap_or_default());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    crate::access_log::set_json(matches!(format, LogFormat::Json));
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    // The level filter stays global (a layer, not a per-layer filter): callsites it disables
    // cost nothing and `log` records below it are never made, which the dependencies' debug
    // logging (Cranelift's, for every function it compiles) needs.
    let hint = filter.max_level_hint();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt.with_filter(NotAnOperatorError { debug, hint }))
        .try_init();
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
    /// The level filter's: this filter adds none.
    hint: Option<tracing::level_filters::LevelFilter>,
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

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.hint
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
}
