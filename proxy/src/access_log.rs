//! The access log: one line per request, appended to a shared buffer on the worker and written
//! to stderr by a thread of its own. A request costs a few hundred instructions and no
//! syscall, and never waits on a slow stderr (a pipe nobody reads, a terminal): under load one
//! `write(2)` carries many lines. Lines keep the shape of weir's other log lines (tracing's
//! text format, or flat JSON with `--log-format json`), under the target `weir::access` that
//! `RUST_LOG` filters (`weir::access=off` turns the log off).
//!
//! The buffer is bounded: when the writer cannot keep up, lines are dropped and counted, and
//! the writer says how many once it catches up. Lines buffered at exit are written by
//! [`flush`].

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Most bytes waiting for the writer; lines beyond are dropped.
const MAX_BUFFERED: usize = 8 << 20;

/// One request as the access log records it.
pub struct Entry<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub details: &'a str,
    pub route: &'a str,
    pub filters: &'a str,
    pub duration_us: u64,
    pub error: Option<&'a dyn std::fmt::Display>,
}

/// Whether lines are written as flat JSON objects (`--log-format json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses the line format (at start-up, with the other logs').
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether `RUST_LOG` lets access-log lines through.
pub fn enabled() -> bool {
    tracing::enabled!(target: "weir::access", tracing::Level::INFO)
}

/// Lines waiting for the writer thread.
struct Shared {
    pending: Mutex<Pending>,
    /// Lines arrived for an idle writer.
    ready: Condvar,
    /// The writer finished a batch.
    written: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    /// The writer holds a batch it has not finished writing.
    writing: bool,
}

/// The buffer, made with its writer thread on first use (so after a daemon's fork).
static SHARED: OnceLock<&'static Shared> = OnceLock::new();

fn start() -> &'static Shared {
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        pending: Mutex::new(Pending::default()),
        ready: Condvar::new(),
        written: Condvar::new(),
    }));
    let spawned = std::thread::Builder::new().name("weir-access-log".into()).spawn(move || write_forever(shared));
    if let Err(e) = spawned {
        tracing::warn!(target: "weir::server", error = %e, "cannot start the access-log writer: lines are written at exit only");
    }
    shared
}

fn write_forever(shared: &'static Shared) {
    let mut out = Vec::new();
    loop {
        let dropped = {
            let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            while pending.bytes.is_empty() && pending.dropped == 0 {
                pending = shared.ready.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            std::mem::swap(&mut pending.bytes, &mut out);
            pending.writing = true;
            std::mem::take(&mut pending.dropped)
        };
        let _ = std::io::stderr().lock().write_all(&out);
        out.clear();
        shared.pending.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
        shared.written.notify_all();
        if dropped > 0 {
            tracing::warn!(target: "weir::server", dropped, "access-log lines dropped: stderr could not keep up");
        }
    }
}

/// Writes the lines still buffered, on this thread, after the writer's batch (before the
/// process exits; a writer stuck on its stderr is given a second).
pub fn flush() {
    let Some(shared) = SHARED.get() else { return };
    let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    let wait = std::time::Duration::from_secs(1);
    let (mut pending, _) =
        shared.written.wait_timeout_while(pending, wait, |p| p.writing).unwrap_or_else(|p| p.into_inner());
    let bytes = std::mem::take(&mut pending.bytes);
    drop(pending);
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// Records `entry` (when `RUST_LOG` lets access-log lines through).
pub fn record(entry: &Entry<'_>) {
    if !enabled() {
        return;
    }
    let shared = *SHARED.get_or_init(start);
    let json = JSON.load(Ordering::Relaxed);
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    if pending.bytes.len() >= MAX_BUFFERED {
        pending.dropped += 1;
        return;
    }
    let was_empty = pending.bytes.is_empty();
    if json {
        json_line(&mut pending.bytes, entry)
    } else {
        text_line(&mut pending.bytes, entry)
    }
    drop(pending);
    if was_empty {
        shared.ready.notify_one();
    }
}

/// A field's value.
enum Value<'a> {
    Text(&'a str),
    Number(u64),
}

/// The entry's fields, in the order lines show them (an error comes last, when there is one).
fn fields<'a>(e: &Entry<'a>) -> [(&'static str, Value<'a>); 7] {
    [
        ("method", Value::Text(e.method)),
        ("path", Value::Text(e.path)),
        ("status", Value::Number(e.status.into())),
        ("details", Value::Text(e.details)),
        ("route", Value::Text(e.route)),
        ("filters", Value::Text(e.filters)),
        ("duration_us", Value::Number(e.duration_us)),
    ]
}

/// `2026-12-02T21:05:38.123456Z  INFO weir::access: request method="GET" …`, as tracing's
/// text format writes an event.
fn text_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    timestamp(out);
    out.extend_from_slice(b"  INFO weir::access: request");
    let error = e.error.map(ToString::to_string);
    let error = error.as_deref().map(|text| ("error", Value::Text(text)));
    for (name, value) in fields(e).into_iter().chain(error) {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        match value {
            Value::Text(text) => quoted(out, text),
            Value::Number(n) => number(out, n),
        }
    }
    out.push(b'\n');
}

/// One flat JSON object: `{"timestamp":…,"level":"INFO","target":"weir::access","method":…}`.
fn json_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"weir::access\",\"message\":\"request\"");
    let error = e.error.map(ToString::to_string);
    let error = error.as_deref().map(|text| ("error", Value::Text(text)));
    for (name, value) in fields(e).into_iter().chain(error) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Value::Text(text) => json_string(out, text),
            Value::Number(n) => number(out, n),
        }
    }
    out.extend_from_slice(b"}\n");
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `"value"` with Rust's string escapes, as tracing's text format shows a `&str` field.
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    if value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.extend_from_slice(value.as_bytes());
    } else {
        let mut escaped = String::new();
        let _ = write!(escaped, "{}", value.escape_debug());
        out.extend_from_slice(escaped.as_bytes());
    }
    out.push(b'"');
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if let Ok(text) = serde_json::to_string(value) {
        out.extend_from_slice(text.as_bytes());
    }
}

/// RFC 3339 UTC with microseconds. The date and time of day are formatted once per second
/// per thread.
pub(crate) fn timestamp(out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text.clear();
            if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs as i64) {
                let _ = write!(
                    text,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
        }
        out.extend_from_slice(text.as_bytes());
    });
    let mut micros = now.subsec_micros();
    let mut digits = *b".000000Z";
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, error: Option<&'a dyn std::fmt::Display>) -> Entry<'a> {
        Entry {
            method: "GET",
            path,
            status: 200,
            details: "via_upstream",
            route: "-",
            filters: "t:continued",
            duration_us: 42,
            error,
        }
    }

    #[test]
    fn text_lines_look_like_tracing_events() {
        let mut out = Vec::new();
        text_line(&mut out, &entry("/a\"b", Some(&"boom")));
        let line = String::from_utf8(out).unwrap();
        let (stamp, rest) = line.split_once("  INFO ").unwrap();
        assert_eq!(stamp.len(), "2026-12-02T21:05:38.123456Z".len(), "{line}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{line}");
        assert_eq!(
            rest,
            "weir::access: request method=\"GET\" path=\"/a\\\"b\" status=200 details=\"via_upstream\" route=\"-\" filters=\"t:continued\" duration_us=42 error=\"boom\"\n"
        );
    }

    #[test]
    fn json_lines_are_flat_objects() {
        let mut out = Vec::new();
        json_line(&mut out, &entry("/\u{1}\\", None));
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["path"], "/\u{1}\\");
        assert_eq!(value["status"], 200);
        assert_eq!(value["target"], "weir::access");
        assert!(value.get("error").is_none() && value.get("fields").is_none());
    }
}
