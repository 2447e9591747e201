//! The access log: one line per request, appended to a shared buffer on the worker and written
//! by a thread of its own to stderr, stdout or a file (`access_log.path`; a file is reopened
//! on SIGUSR1, for logrotate). A request costs its line's formatting and no syscall, and never
//! waits on a slow destination (a pipe nobody reads, a terminal, a slow disk): a worker wakes
//! the writer only when it sleeps with nothing to write, and the writer then gathers lines for
//! [`GATHER`] before one `write(2)` carries them all. Lines show the fields `access_log.fields` chooses,
//! in the shape of weir's other log lines (tracing's text format, or flat JSON with
//! `--log-format json` or `access_log.format: json`), under the target `weir::access` that
//! `RUST_LOG` filters (`weir::access=off` turns the log off).
//!
//! The buffer is bounded: when the writer cannot keep up, lines are dropped and counted, and
//! the writer says how many once it catches up. Lines buffered at exit are written by
//! [`flush`].

mod destination;
mod line;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
pub use destination::{Destination, catch_sigusr1};
pub use line::{DEFAULT_FIELDS, Entry, Field, timestamp};

/// The `filters` field: each filter's name and how the request went for it
/// (`auth:passed,limiter:replied`).
pub fn filter_summary<'a>(outcomes: impl IntoIterator<Item = (&'a str, weir_abi::FilterOutcome)>) -> String {
    let mut out = String::new();
    for (i, (name, outcome)) in outcomes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        out.push_str(outcome.as_str());
    }
    out
}

/// Most bytes waiting for the writer; lines beyond are dropped.
const MAX_BUFFERED: usize = 8 << 20;

/// How often an idle writer looks whether SIGUSR1 asked for a reopen.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// How long the writer gathers lines before it writes them: at most this many writes, and
/// wake-ups, a second (100), whatever the request rate.
const GATHER: Duration = Duration::from_millis(10);

/// Whether `--log-format json` was given: lines follow it unless `access_log.format` says.
static LOG_FORMAT_JSON: AtomicBool = AtomicBool::new(false);

/// What the running configuration asks of lines.
struct Settings {
    fields: Vec<Field>,
    /// `access_log.format`; `None` follows `--log-format`.
    json: Option<bool>,
}

fn settings() -> &'static ArcSwap<Settings> {
    static SETTINGS: OnceLock<ArcSwap<Settings>> = OnceLock::new();
    SETTINGS.get_or_init(|| ArcSwap::from_pointee(Settings { fields: DEFAULT_FIELDS.to_vec(), json: None }))
}

/// Where the writer sends lines, fixed at start (before a daemon's fork, before the writer).
static DESTINATION: Mutex<Option<Destination>> = Mutex::new(None);

/// Chooses the line format of `--log-format` (at start-up, with the other logs').
pub fn set_json(json: bool) {
    LOG_FORMAT_JSON.store(json, Ordering::Relaxed);
}

/// Sets the fields and format (at start and at each reload).
pub fn configure(fields: &[Field], json: Option<bool>) {
    settings().store(Arc::new(Settings { fields: fields.to_vec(), json }));
}

/// Sets the destination, at start, before the first line.
pub fn set_destination(destination: Destination) {
    *DESTINATION.lock().unwrap_or_else(|p| p.into_inner()) = Some(destination);
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
    /// Where lines go; held by whoever writes.
    output: Mutex<destination::Output>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    /// The writer holds a batch it has not finished writing.
    writing: bool,
    /// The writer sleeps until lines arrive: the next line must wake it.
    writer_idle: bool,
}

/// The buffer, made with its writer thread on first use (so after a daemon's fork).
static SHARED: OnceLock<&'static Shared> = OnceLock::new();

fn start() -> &'static Shared {
    let destination = DESTINATION.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(Destination::Stderr);
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        pending: Mutex::new(Pending::default()),
        ready: Condvar::new(),
        written: Condvar::new(),
        output: Mutex::new(destination::Output::new(destination)),
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
                pending.writer_idle = true;
                let (next, _) = shared.ready.wait_timeout(pending, REOPEN_CHECK).unwrap_or_else(|p| p.into_inner());
                pending = next;
                pending.writer_idle = false;
                shared.output.lock().unwrap_or_else(|p| p.into_inner()).reopen_if_asked();
            }
            drop(pending);
            std::thread::sleep(GATHER);
            let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut pending.bytes, &mut out);
            pending.writing = true;
            std::mem::take(&mut pending.dropped)
        };
        {
            let mut output = shared.output.lock().unwrap_or_else(|p| p.into_inner());
            output.reopen_if_asked();
            output.write_all(&out);
        }
        out.clear();
        shared.pending.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
        shared.written.notify_all();
        if dropped > 0 {
            tracing::warn!(target: "weir::server", dropped, "access-log lines dropped: the log's destination could not keep up");
        }
    }
}

/// Writes the lines still buffered, on this thread, after the writer's batch (before the
/// process exits; a writer stuck on its destination is given a second).
pub fn flush() {
    let Some(shared) = SHARED.get() else { return };
    let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    let wait = Duration::from_secs(1);
    let (mut pending, timed_out) =
        shared.written.wait_timeout_while(pending, wait, |p| p.writing).unwrap_or_else(|p| p.into_inner());
    let bytes = std::mem::take(&mut pending.bytes);
    drop(pending);
    if timed_out.timed_out() {
        // The writer holds the output, stuck: write past it.
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &bytes);
    } else {
        shared.output.lock().unwrap_or_else(|p| p.into_inner()).write_all(&bytes);
    }
}

/// Records `entry` (when `RUST_LOG` lets access-log lines through).
pub fn record(entry: &Entry<'_>) {
    if !enabled() {
        return;
    }
    let shared = *SHARED.get_or_init(start);
    let settings = settings().load();
    let json = settings.json.unwrap_or_else(|| LOG_FORMAT_JSON.load(Ordering::Relaxed));
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    if pending.bytes.len() >= MAX_BUFFERED {
        pending.dropped += 1;
        return;
    }
    let wake = pending.writer_idle && pending.bytes.is_empty();
    if json {
        line::json_line(&mut pending.bytes, entry, &settings.fields)
    } else {
        line::text_line(&mut pending.bytes, entry, &settings.fields)
    }
    drop(pending);
    if wake {
        shared.ready.notify_one();
    }
}
