//! `--log-format json`: one flat JSON object per line, `{"timestamp":…,"level":…,"target":…,
//! "message":…,<fields>}`, the shape of the access log's JSON lines. tracing-subscriber's JSON
//! format nests fields under `fields` and, for lines the `log` crate bridges from dependencies,
//! carries `log.file` paths of the build machine; log processors want neither.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format.
pub struct FlatJson;

/// An event's fields; `log.target` (a bridged `log` record's real target) is kept apart and
/// the other `log.*` fields dropped.
#[derive(Default)]
struct Fields {
    map: Map<String, Value>,
    log_target: Option<String>,
}

impl Fields {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "log.target" {
            self.log_target = value.as_str().map(str::to_owned);
        } else if !name.starts_with("log.") {
            self.map.insert(name.to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut timestamp = Vec::new();
        crate::access_log::timestamp(&mut timestamp);
        let target = fields.log_target.take().unwrap_or_else(|| meta.target().to_owned());
        let quoted = |s: &str| Value::from(s).to_string();
        write!(
            writer,
            "{{\"timestamp\":{},\"level\":\"{}\",\"target\":{}",
            quoted(&String::from_utf8_lossy(&timestamp)),
            meta.level(),
            quoted(&target)
        )?;
        if let Some(message) = fields.map.remove("message") {
            write!(writer, ",\"message\":{message}")?;
        }
        for (name, value) in &fields.map {
            // A field named like one of the line's own keys keeps its value under another name.
            let name = if matches!(name.as_str(), "timestamp" | "level" | "target") {
                format!("field.{name}")
            } else {
                name.clone()
            };
            write!(writer, ",{}:{value}", quoted(&name))?;
        }
        writeln!(writer, "}}")
    }
}
