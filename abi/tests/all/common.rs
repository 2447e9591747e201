//! Shared test harness: a runtime with a capturing log sink, the probe filter, and helpers to
//! read what the probe observed.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use weir_abi::*;

/// Captures every filter log line.
#[derive(Default)]
pub struct Capture {
    pub lines: Mutex<Vec<(LogLevel, String, u32, String)>>,
}

impl LogSink for Capture {
    fn level(&self, _plugin: &str) -> LogLevel {
        LogLevel::Trace
    }
    fn log(&self, r: &LogRecord<'_>) {
        let msg = String::from_utf8_lossy(r.message).into_owned();
        self.lines.lock().unwrap().push((r.level, r.plugin.to_owned(), r.context_id, msg));
    }
}

impl Capture {
    /// The probe's observations, in order, and clears them.
    pub fn take(&self) -> Vec<Value> {
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        lines
            .iter()
            .filter_map(|(_, _, _, m)| m.strip_prefix("probe ").map(|j| serde_json::from_str(j).unwrap()))
            .collect()
    }

    /// Every raw line (level, message), and clears them.
    pub fn raw(&self) -> Vec<(LogLevel, String)> {
        std::mem::take(&mut *self.lines.lock().unwrap()).into_iter().map(|(l, _, _, m)| (l, m)).collect()
    }
}

pub struct Host {
    pub rt: Runtime,
    pub log: Arc<Capture>,
}

/// A runtime for one test: small instance pool, captured logs, clusters `upstream` and `auth`.
pub fn host() -> Host {
    host_with_cache(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("module-cache"))
}

/// [`host`] with its on-disk module cache in `cache`.
pub fn host_with_cache(cache: std::path::PathBuf) -> Host {
    let log = Arc::new(Capture::default());
    let rt = Runtime::new(RuntimeConfig {
        pooling: Some(PoolingLimits { max_instances: 24, max_memory_bytes: 128 << 20 }),
        cache_dir: Some(cache),
        log_sink: log.clone(),
        ..Default::default()
    })
    .expect("runtime");
    rt.set_clusters(["upstream".to_string(), "auth".to_string()]);
    Host { rt, log }
}

pub fn probe_wasm() -> Vec<u8> {
    weir_test_fixtures::read(weir_test_fixtures::PROBE)
}

impl Host {
    /// The probe with this script as plugin configuration.
    pub fn probe(&self, script: Value) -> Arc<PluginSpec> {
        self.probe_with(script, VmConfig::default(), FailurePolicy::FailClosed)
    }

    pub fn probe_with(&self, script: Value, vm: VmConfig, policy: FailurePolicy) -> Arc<PluginSpec> {
        let module = self.rt.load_module(&probe_wasm()).expect("probe loads");
        let vm = self.rt.vm(module, vm).expect("vm");
        self.rt.plugin(
            &vm,
            PluginConfig {
                name: "probe".into(),
                configuration: script.to_string().into(),
                failure_policy: policy,
                reload_backoff: std::time::Duration::from_millis(0),
                ..Default::default()
            },
        )
    }

    /// Observations of op `op`, in order.
    pub fn ops(&self, op: &str) -> Vec<Value> {
        self.log.take().into_iter().filter(|v| v["op"] == op).collect()
    }
}

/// A GET request for `path` on `example.com`.
pub fn get(path: &str) -> StreamState {
    StreamState::with_request_headers(HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", path),
        (":authority", "example.com"),
        (":scheme", "http"),
        ("user-agent", "test"),
    ]))
}

/// Runs a whole request without body through `chain`, with a 200 response.
pub fn exchange(chain: &mut FilterChain, s: &mut StreamState) -> Vec<Outcome> {
    let mut out = vec![chain.on_request_headers(s, true)];
    s.response_headers = HeaderMap::from_pairs([(":status", "200"), ("content-type", "text/plain")]).into();
    out.push(chain.on_response_headers(s, true));
    chain.finish(s);
    out
}

pub fn script(steps: Value) -> Value {
    json!({ "steps": steps })
}

pub fn is_continue(o: &Outcome) -> bool {
    matches!(o, Outcome::Continue)
}
