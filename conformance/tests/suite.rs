//! What every conformance test stands on: one weir process per test, running a probe filter in
//! front of a demo origin, and a client whose requests can each be preceded by a live reload.
//!
//! Every test is written once with [`conformance!`] and runs twice: `plain`, and
//! `under_reload`, where `POST /reload` publishes a new generation (new VMs, new root contexts)
//! before each request. A test that holds in both shows that a reload between requests changes
//! nothing a filter can observe within a request.

pub use crate::harness::{Weir, eventually, origin, probe, seen};
pub use serde_json::{Value, json};

/// How requests are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One configuration for the whole test.
    Plain,
    /// A live reload (`POST /reload`) before every request.
    Reload,
}

/// The SDKs the family probes are written with (`conformance/probes/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// The Rust `proxy-wasm` crate.
    Rust,
    /// AssemblyScript `@solo-io/proxy-runtime`.
    As,
}

impl Sdk {
    /// Both SDKs, in the order tests run them.
    pub const ALL: [Sdk; 2] = [Sdk::Rust, Sdk::As];

    /// The probe module built with this SDK.
    pub fn module(self) -> &'static str {
        match self {
            Sdk::Rust => weir_test_fixtures::FAMILY_PROBE,
            Sdk::As => weir_test_fixtures::FAMILY_PROBE_AS,
        }
    }

    /// The `sdk` field of its observations.
    pub fn name(self) -> &'static str {
        match self {
            Sdk::Rust => "rust",
            Sdk::As => "as",
        }
    }
}

/// Defines a conformance test once and runs it in both [`Mode`]s, as `<name>::plain` and
/// `<name>::under_reload`. The body sees the mode as the named variable.
macro_rules! conformance {
    ($(#[doc = $doc:literal])* async fn $name:ident($mode:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports, reason = "each test uses a different part of the suite")]
            use super::*;

            async fn run($mode: $crate::suite::Mode) $body

            #[tokio::test]
            async fn plain() {
                run($crate::suite::Mode::Plain).await
            }

            #[tokio::test]
            async fn under_reload() {
                run($crate::suite::Mode::Reload).await
            }
        }
    };
}
pub(crate) use conformance;

/// A weir with one probe filter on its only route, and the demo origin behind it.
pub struct Proxy {
    pub weir: Weir,
    mode: Mode,
    http1: reqwest::Client,
    http2: reqwest::Client,
}

/// The plugin definition line for a probe module (`extra` adds YAML keys, e.g. `vm_config`).
pub fn plugin(module: &str, extra: &str) -> String {
    format!("  probe: {{ module: {module}{}{extra} }}\n", if extra.is_empty() { "" } else { ", " })
}

impl Proxy {
    /// The script-driven Rust probe (`abi/fixtures/PROBE.md`) with `config` as its plugin
    /// configuration (`{"steps": ..., "actions": ...}`).
    pub fn raw(mode: Mode, config: Value) -> Proxy {
        Self::raw_with(mode, config, "")
    }

    /// [`Proxy::raw`] with extra plugin keys (`failure_policy: fail_open`, `vm_config: ...`).
    pub fn raw_with(mode: Mode, config: Value, plugin_keys: &str) -> Proxy {
        Self::custom(mode, "", &plugin(probe(), plugin_keys), &config.to_string())
    }

    /// A family probe written with `sdk`, exercising `family` (`conformance/probes/SPEC.md`).
    pub fn family(mode: Mode, sdk: Sdk, family: &str) -> Proxy {
        Self::family_with(mode, sdk, family, "")
    }

    /// [`Proxy::family`] with extra plugin keys.
    pub fn family_with(mode: Mode, sdk: Sdk, family: &str, plugin_keys: &str) -> Proxy {
        Self::custom(mode, "", &plugin(sdk.module(), plugin_keys), &serde_json::to_string(family).unwrap())
    }

    /// [`Proxy::family_with`] on one worker thread: every request meets the same VM instance.
    pub fn family_one_worker(mode: Mode, sdk: Sdk, family: &str, plugin_keys: &str) -> Proxy {
        let filters = format!("[{{ plugin: probe, config: {} }}]", serde_json::to_string(family).unwrap());
        Self::setup(mode, None, "", &plugin(sdk.module(), plugin_keys), &filters, "{ threads: 1 }")
    }

    /// weir with `clusters` (YAML lines under `clusters:`, besides `origin`), the `plugins`
    /// lines, and one route to `origin` through plugin `probe` configured with `filter_config`
    /// (a YAML/JSON value).
    pub fn custom(mode: Mode, clusters: &str, plugins: &str, filter_config: &str) -> Proxy {
        Self::setup(mode, None, clusters, plugins, &format!("[{{ plugin: probe, config: {filter_config} }}]"), "")
    }

    /// The general form: cluster `origin` is the demo origin unless `origin_cluster` (its YAML)
    /// is given; the only route goes to it through `filters` (a YAML list); `server` is the
    /// `server:` section or empty (`{ threads: 1 }` makes consecutive requests meet the same
    /// VM instance).
    pub fn setup(
        mode: Mode,
        origin_cluster: Option<&str>,
        clusters: &str,
        plugins: &str,
        filters: &str,
        server: &str,
    ) -> Proxy {
        let origin = origin("origin");
        let origin_cluster = origin_cluster.map_or_else(|| format!("{{ endpoints: [\"{origin}\"] }}"), str::to_owned);
        let server = if server.is_empty() { String::new() } else { format!("server: {server}\n") };
        Self::from_config(
            mode,
            &format!(
                "{server}clusters:\n  origin: {origin_cluster}\n{clusters}plugins:\n{plugins}routes:\n  - cluster: origin\n    filters: {filters}\n"
            ),
        )
    }

    /// weir with a whole configuration (listeners and admin are added).
    pub fn from_config(mode: Mode, config: &str) -> Proxy {
        let client = |h2: bool| {
            let b = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10));
            if h2 { b.http2_prior_knowledge() } else { b }.build().unwrap()
        };
        Proxy { weir: Weir::start(config), mode, http1: client(false), http2: client(true) }
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        self.weir.url(path)
    }

    /// An HTTP/1.1 request builder.
    pub fn http1(&self) -> &reqwest::Client {
        &self.http1
    }

    /// An HTTP/2 (h2c) request builder.
    pub fn http2(&self) -> &reqwest::Client {
        &self.http2
    }

    /// Sends `request`, after a live reload in [`Mode::Reload`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        self.reload_if_asked().await;
        request.send().await.expect("request through weir")
    }

    /// `GET path` over HTTP/1.1 with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http1.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.send(request).await
    }

    /// True when `GET path` fails midway: the client sees a reset or a broken body, never a
    /// complete answer (what Envoy does once the response has started).
    pub async fn get_is_broken(&self, path: &str) -> bool {
        self.reload_if_asked().await;
        match self.http1.get(self.url(path)).send().await {
            Err(_) => true,
            Ok(resp) => resp.bytes().await.is_err(),
        }
    }

    /// In [`Mode::Reload`], publishes a new generation and waits until it serves.
    pub async fn reload_if_asked(&self) {
        if self.mode != Mode::Reload {
            return;
        }
        let resp = self.http1.post(self.weir.admin_url("/reload")).send().await.expect("POST /reload");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "reload refused: {body}");
    }

    /// What the script-driven probe logged so far.
    pub fn lines(&self) -> Vec<Value> {
        self.weir.probe_lines()
    }

    /// Its lines for one callback.
    pub fn lines_of(&self, callback: &str) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["cb"] == callback).collect()
    }

    /// Waits until the probe logged at least `n` lines for `callback`, and returns them.
    pub async fn wait_lines(&self, callback: &str, n: usize) -> Vec<Value> {
        let found = eventually(async || self.lines_of(callback).len() >= n).await;
        let lines = self.lines_of(callback);
        assert!(found, "expected {n} probe lines for {callback}, got {lines:#?}\n{}", self.weir.logs());
        lines
    }

    /// The family probe's observations so far, as `(check, value)` in log order.
    pub fn observed(&self, sdk: Sdk) -> Vec<(String, String)> {
        self.weir
            .logs()
            .lines()
            .filter_map(|l| l.split_once("observe {").map(|(_, rest)| format!("{{{rest}")))
            .filter_map(|j| serde_json::Deserializer::from_str(&j).into_iter::<Value>().next()?.ok())
            .filter(|v| v["sdk"] == sdk.name())
            .map(|v| (v["check"].as_str().unwrap_or("").to_owned(), v["value"].as_str().unwrap_or("").to_owned()))
            .collect()
    }

    /// The values observed for `check`, in order.
    pub fn values(&self, sdk: Sdk, check: &str) -> Vec<String> {
        self.observed(sdk).into_iter().filter(|(c, _)| c == check).map(|(_, v)| v).collect()
    }

    /// The first value observed for `check`; waits for it (callbacks after the response, such
    /// as `on_log`, run once the client already has its answer).
    pub async fn value(&self, sdk: Sdk, check: &str) -> String {
        let found = eventually(async || !self.values(sdk, check).is_empty()).await;
        assert!(
            found,
            "{sdk:?} probe never observed {check}; observed {:#?}\n{}",
            self.observed(sdk),
            self.weir.logs()
        );
        self.values(sdk, check).remove(0)
    }
}

impl Drop for Proxy {
    /// A failing test shows what weir logged: its requests, the filters' lines, any failure.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- weir's log ---\n{}--- end of weir's log ---", self.weir.logs());
        }
    }
}

/// The JSON the demo origin answered with.
pub async fn origin_saw(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "expected the origin's answer");
    resp.json().await.expect("the demo origin's JSON")
}

/// A raw probe configuration with only `steps`.
pub fn steps(steps: Value) -> Value {
    json!({ "steps": steps })
}

/// `status` of every line, in order.
pub fn statuses(lines: &[Value]) -> Vec<i64> {
    lines.iter().map(|l| l["status"].as_i64().unwrap_or(-1)).collect()
}

/// The hostcalls every `phase_*` file tries in its phase: each asks "is this map, buffer or
/// property available here?". The phase files assert Envoy's answer for each, by index.
pub const BATTERY: &[&str] = &[
    "get request header :method",
    "add request header",
    "get response header :status",
    "add response header",
    "get request body",
    "get response body",
    "get property request.method",
    "get property response.code",
    "get property upstream.address",
    "get plugin configuration",
    "get call response body",
    "get call response headers",
    "send local response",
    "continue request",
];

fn battery_ops() -> Value {
    json!([
        ["get_header", 0, ":method"],
        ["add_header", 0, "x-phase", "1"],
        ["get_header", 2, ":status"],
        ["add_header", 2, "x-phase", "1"],
        ["get_buffer", 0, 0, 1024],
        ["get_buffer", 1, 0, 1024],
        ["get_property", ["request", "method"]],
        ["get_property", ["response", "code"]],
        ["get_property", ["upstream", "address"]],
        ["get_buffer", 7, 0, 1024],
        ["get_buffer", 4, 0, 1024],
        ["get_header", 6, ":status"],
    ])
}

/// Runs [`BATTERY`] in `callback` of a POST with body `hello` and returns one line per entry.
/// The last two entries (a local reply and a resume) only run where they cannot change the
/// request's course: in root callbacks and in `on_log`.
pub async fn run_battery(mode: Mode, callback: &str) -> Vec<Value> {
    let mut ops = battery_ops();
    let harmless = matches!(callback, "configure" | "vm_start" | "log" | "tick");
    if harmless {
        let ops = ops.as_array_mut().unwrap();
        ops.push(json!(["local_response", 418, "", "", [], -1]));
        ops.push(json!(["continue_stream", 0]));
    }
    let n = ops.as_array().unwrap().len();
    let proxy = Proxy::raw(mode, json!({ "steps": { callback: ops } }));
    if callback != "configure" {
        let resp = proxy.send(proxy.http1().post(proxy.url("/phase")).body("hello")).await;
        assert_eq!(resp.status(), 200);
    }
    let lines = proxy.wait_lines(callback, n).await;
    lines[..n].to_vec()
}

/// Compares a battery run with the expected statuses, naming the hostcall that differs.
pub fn assert_battery(callback: &str, lines: &[Value], expected: &[i64]) {
    for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(line["status"].as_i64(), Some(*want), "{callback}: {}: {line}", BATTERY[i]);
    }
    assert_eq!(lines.len(), expected.len(), "{callback}: {lines:#?}");
}
