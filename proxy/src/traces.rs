//! Distributed tracing with OpenTelemetry (`tracing:` in the configuration; off without it).
//!
//! Each request gets a server span, child of the caller's span when the request carries a W3C
//! `traceparent` (and `tracestate`); under it, a span per filter callback (plugin and phase),
//! an `upstream` client span whose context goes upstream in `traceparent`, and a span per
//! callout a filter makes, whose context goes to the callout's service. Spans are exported
//! over OTLP/HTTP by a batch processor on a thread of its own, made on first use (so after a
//! daemon's fork) and flushed at exit. Sampling is parent-based: a caller's decision is kept,
//! new traces are sampled at `tracing.sampling`. See `docs/operations.md` (Tracing).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{OtlpProtocol, TracingConfig};

/// The configuration, set at start; the exporter is made from it on first use.
static SETTINGS: Mutex<Option<TracingConfig>> = Mutex::new(None);

/// The exporter and tracer, once made (`None`: tracing is off).
static EXPORT: OnceLock<Option<Export>> = OnceLock::new();

struct Export {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// Turns tracing on with `config` (at start, before the first request).
pub fn configure(config: Option<TracingConfig>) {
    *SETTINGS.lock().unwrap_or_else(|p| p.into_inner()) = config;
}

fn export() -> Option<&'static Export> {
    EXPORT
        .get_or_init(|| {
            let config = SETTINGS.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
            // The blocking HTTP client owns a runtime of its own, which may not be made or
            // dropped on a Tokio worker: make it on a plain thread.
            let made = std::thread::spawn(move || make(&config)).join();
            match made {
                Ok(Ok(export)) => Some(export),
                Ok(Err(e)) => {
                    tracing::error!(target: "weir::server", error = %e, "cannot start the trace exporter: requests are not traced");
                    None
                }
                Err(_) => None,
            }
        })
        .as_ref()
}

fn make(config: &TracingConfig) -> Result<Export, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let protocol = match config.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&config.endpoint)
        .with_protocol(protocol)
        .with_timeout(config.timeout.0)
        .with_headers(std::collections::HashMap::new())
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", crate::build_info::VERSION))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("weir");
    Ok(Export { provider, tracer })
}

/// Exports the spans still buffered (at exit; bounded by the exporter's timeout).
pub fn flush() {
    if let Some(Some(export)) = EXPORT.get() {
        let provider = export.provider.clone();
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = provider.shutdown();
            let _ = done.send(());
        });
        let _ = wait.recv_timeout(Duration::from_secs(5));
    }
}

/// Reads W3C trace context from request headers.
struct FromHeaders<'a>(&'a http::HeaderMap);

impl Extractor for FromHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Collects the headers trace context is written as (`traceparent`, `tracestate`).
#[derive(Default)]
struct Collected(Vec<(&'static str, String)>);

impl Injector for Collected {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((key, value));
    }
}

/// The headers that carry `cx` to another service.
fn context_headers(cx: &Context) -> Vec<(&'static str, String)> {
    let mut headers = Collected::default();
    TraceContextPropagator::new().inject_context(cx, &mut headers);
    headers.0
}

/// One request's spans.
pub struct RequestTrace {
    /// Holds the server span.
    server: Context,
    /// When the request arrived, on both clocks (filter spans are made after the fact, from
    /// their `Instant`s).
    started: (Instant, SystemTime),
    /// Holds the upstream client span, once an endpoint was picked.
    upstream: Option<Context>,
}

impl RequestTrace {
    /// The server span of a request with `headers` (`None` when tracing is off).
    pub fn start(headers: &http::HeaderMap, method: &str, path: &str, started: Instant) -> Option<Self> {
        let export = export()?;
        let parent = TraceContextPropagator::new().extract(&FromHeaders(headers));
        let now = SystemTime::now() - started.elapsed();
        let span = export
            .tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Server)
            .with_start_time(now)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(&export.tracer, &parent);
        Some(Self { server: parent.with_span(span), started: (started, now), upstream: None })
    }

    /// The request matched `route`: the span is named `METHOD route`, as OpenTelemetry's HTTP
    /// conventions name server spans.
    pub fn route(&self, method: &str, route: &str) {
        let span = self.server.span();
        span.update_name(format!("{method} {route}"));
        span.set_attribute(KeyValue::new("http.route", route.to_owned()));
    }

    fn at(&self, instant: Instant) -> SystemTime {
        self.started.1 + instant.saturating_duration_since(self.started.0)
    }

    /// True when this request's spans are exported (sampled).
    pub fn sampled(&self) -> bool {
        self.server.span().span_context().is_sampled()
    }

    /// A filter callback, as a child span `PLUGIN CALLBACK` (`auth request_headers`).
    pub fn filter_call(&self, plugin: &str, timing: &weir_abi::CallTiming) {
        let Some(export) = export() else { return };
        if !self.server.span().span_context().is_sampled() {
            return;
        }
        let start = self.at(timing.started());
        let mut span = export
            .tracer
            .span_builder(format!("{plugin} {}", timing.callback))
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("weir.plugin", plugin.to_owned()),
                KeyValue::new("weir.phase", timing.phase.name()),
                KeyValue::new("weir.callback", timing.callback),
            ])
            .start_with_context(&export.tracer, &self.server);
        span.end_with_timestamp(start + timing.took);
    }

    /// The request goes upstream to `cluster`: the `upstream` client span starts, and the
    /// headers that carry it upstream are returned.
    pub fn upstream(&mut self, cluster: &str, address: Option<std::net::SocketAddr>) -> Vec<(&'static str, String)> {
        let Some(export) = export() else { return Vec::new() };
        if self.upstream.is_none() {
            let mut attributes = vec![KeyValue::new("weir.cluster", cluster.to_owned())];
            if let Some(a) = address {
                attributes.push(KeyValue::new("server.address", a.ip().to_string()));
                attributes.push(KeyValue::new("server.port", i64::from(a.port())));
            }
            let span = export
                .tracer
                .span_builder(format!("upstream {cluster}"))
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start_with_context(&export.tracer, &self.server);
            self.upstream = Some(self.server.with_span(span));
        }
        self.upstream.as_ref().map(context_headers).unwrap_or_default()
    }

    /// The context callouts this request's filters make are children of.
    pub fn context(&self) -> &Context {
        &self.server
    }

    /// Ends the request's spans with the status the client received.
    pub fn finish(&self, status: u16, details: &str, upstream_done: Option<Instant>) {
        let code = KeyValue::new("http.response.status_code", i64::from(status));
        if let Some(upstream) = &self.upstream {
            let span = upstream.span();
            span.set_attribute(code.clone());
            span.end_with_timestamp(upstream_done.map_or_else(SystemTime::now, |t| self.at(t)));
        }
        let span = self.server.span();
        span.set_attribute(code);
        span.set_attribute(KeyValue::new("weir.response_code_details", details.to_owned()));
        if status >= 500 || status == 0 {
            span.set_status(Status::error(details.to_owned()));
        }
        span.end();
    }
}

/// A callout's client span.
pub struct CalloutSpan(Context);

impl CalloutSpan {
    /// Starts the span of a callout to `cluster` (a child of `parent`, the request's trace,
    /// or a new trace for a root context's callout) and adds the headers that carry it.
    pub fn start(parent: Option<&Context>, cluster: &str, headers: &mut weir_abi::HeaderMap) -> Option<Self> {
        let export = export()?;
        let root = Context::new();
        let parent = parent.unwrap_or(&root);
        let span = export
            .tracer
            .span_builder(format!("callout {cluster}"))
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("weir.cluster", cluster.to_owned())])
            .start_with_context(&export.tracer, parent);
        let cx = parent.with_span(span);
        for (name, value) in context_headers(&cx) {
            headers.replace(name.as_bytes(), value.into_bytes());
        }
        Some(Self(cx))
    }

    /// Ends the span with the callout's outcome (`status` 0: no answer).
    pub fn finish(self, status: u16) {
        let span = self.0.span();
        if status > 0 {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        if status == 0 || status >= 500 {
            span.set_status(Status::error("callout failed"));
        }
        span.end();
    }
}
