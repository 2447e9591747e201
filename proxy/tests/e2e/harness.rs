//! Starts real parts for end-to-end tests: demo origins on `127.0.0.1:0`, and the real `weir`
//! binary with a test configuration, whose ports are read back from its `weir ready:` line.
//! Readiness is awaited by polling `/ready`, never by fixed sleeps.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A demo origin (answers with a JSON description of the request) on a free port.
pub fn origin(name: &str) -> SocketAddr {
    weir::demo::spawn("127.0.0.1:0".parse().unwrap(), name).expect("origin")
}

/// Starts the weir binary with `-c config` and `args`, logging to `log`, and waits for its
/// `weir ready:` line, which it returns.
pub fn launch(config: &std::path::Path, args: &[&str], log: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info,weir::reload=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start weir");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    while !line.starts_with("weir ready:") {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.wait();
            panic!("weir exited before it was ready:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, line)
}

/// The admin and proxy addresses (`host:port`) from the `weir ready:` line of a weir started
/// with a piped stdout.
pub fn read_ready(child: &mut Child) -> (String, String) {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let field = |key: &str| {
        let at = line.find(key).unwrap_or_else(|| panic!("{line}")) + key.len();
        line[at..].split_whitespace().next().unwrap().to_owned()
    };
    (field("admin http://"), field("proxy http://"))
}

/// A running weir.
pub struct Weir {
    child: Child,
    /// The proxy listener.
    pub proxy: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// weir's stderr (logs, including filter logs).
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

/// The probe fixture's path.
pub fn probe() -> &'static str {
    weir_test_fixtures::PROBE
}

/// A different module with the same behaviour: the probe plus a custom section.
pub fn probe_variant(tag: &str) -> Vec<u8> {
    let mut wasm = std::fs::read(probe()).unwrap();
    let name = b"weir-test";
    let payload_len = 1 + name.len() + tag.len();
    wasm.push(0);
    wasm.push(payload_len as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(tag.as_bytes());
    wasm
}

/// The trivial fixture's path.
pub fn trivial() -> &'static str {
    weir_test_fixtures::TRIVIAL
}

impl Weir {
    /// Starts weir with `config` (YAML; listeners and admin on port 0 are filled in when the
    /// config has no `listeners:` / `admin:`).
    pub fn start(config: &str) -> Weir {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config)
    }

    /// Like [`Weir::start`], with the config written as `weir.yaml` in `dir`.
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Weir {
        Self::start_with_args(dir, config, &[])
    }

    /// Like [`Weir::start_in`], with command-line arguments after `-c`.
    pub fn start_with_args(dir: tempfile::TempDir, config: &str, args: &[&str]) -> Weir {
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, with_addresses(config)).unwrap();
        let log = dir.path().join("weir.log");
        let (child, line) = launch(&path, args, &log);
        let addr = |key: &str| -> SocketAddr {
            let at = line.find(key).unwrap() + key.len();
            line[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .parse()
                .unwrap()
        };
        let weir = Weir { proxy: addr("proxy "), admin: addr("admin "), child, log, dir };
        weir.wait_ready();
        weir
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(self.admin) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /ready HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") && std::net::TcpStream::connect(self.proxy).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("weir did not become ready:\n{}", self.logs());
    }

    /// Replaces the configuration file (a reload applies it; listener addresses stay).
    pub fn rewrite(&self, config: &str) {
        std::fs::write(self.dir.path().join("weir.yaml"), with_addresses(config)).unwrap();
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Everything weir logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Probe observations logged so far (the JSON after `probe `).
    pub fn probe_lines(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| l.split_once("probe {").map(|(_, rest)| format!("{{{rest}")))
            // The JSON is followed by the log line's fields: read only the first value.
            .filter_map(|j| serde_json::Deserializer::from_str(&j).into_iter::<serde_json::Value>().next()?.ok())
            .collect()
    }

    /// Sends a signal (`HUP`, `QUIT`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
    }

    /// Waits (at most `within`) for the process to exit: its status and how long it took.
    pub fn wait_exit(&mut self, within: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// The log's size in bytes.
    pub fn log_size(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

/// `config` with listeners and admin on port 0 when it names none.
fn with_addresses(config: &str) -> String {
    let mut text = String::new();
    if !config.contains("listeners:") {
        text.push_str("listeners: [{ address: 127.0.0.1:0 }]\n");
    }
    if !config.contains("admin:") {
        text.push_str("admin: { address: 127.0.0.1:0 }\n");
    }
    text.push_str(config);
    text
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 client (no pooling surprises: keep-alive on, no proxy from the environment).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().http2_prior_knowledge().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Polls `check` until it is true or 10 s passed.
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// An authorization service: 200 with `x-tenant: acme` for `authorization: Bearer allow`,
/// 403 otherwise. Counts the checks it answered.
pub fn authz_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, Write};
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut allow = false;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        if line.to_ascii_lowercase().starts_with("authorization: bearer allow") {
                            allow = true;
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let resp = if allow {
                        "HTTP/1.1 200 OK\r\nx-tenant: acme\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
                    };
                    if stream.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

/// Sends a request and reads the answer's body as JSON (the demo origin echoes what it got).
pub trait FetchJson {
    async fn fetch_json(self) -> serde_json::Value;
}

impl FetchJson for reqwest::RequestBuilder {
    async fn fetch_json(self) -> serde_json::Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

/// The value of request header `name` as the demo origin saw it, from its JSON answer.
pub fn seen(body: &serde_json::Value, name: &str) -> Option<String> {
    body["headers"].as_array()?.iter().find(|h| h[0] == name).map(|h| h[1].as_str().unwrap_or("").to_owned())
}

/// True when `n` requests in a row to `url` answer 200.
pub async fn all_ok(c: &reqwest::Client, url: &str, n: usize) -> bool {
    for _ in 0..n {
        match c.get(url).send().await {
            Ok(r) if r.status() == 200 => {}
            _ => return false,
        }
    }
    true
}

/// A gRPC server (h2c) answering every unary call with the message `pong:<path>:<request
/// message>`, except method `Fail`, answered with `grpc-status: 5` (NOT_FOUND), `grpc-message: nope`.
pub fn grpc_server() -> std::net::SocketAddr {
    h2_server(|req, mut respond| async move {
        let path = req.uri().path().to_owned();
        let mut body = req.into_body();
        let mut data = Vec::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        if path.ends_with("/Fail") {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "5")
                .header("grpc-message", "nope")
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
            return;
        }
        let message = format!("pong:{}:{}", path, String::from_utf8_lossy(data.get(5..).unwrap_or(&[])));
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message.as_bytes());
        let resp = http::Response::builder().status(200).header("content-type", "application/grpc").body(()).unwrap();
        let mut send = respond.send_response(resp, false).unwrap();
        send.send_data(framed.into(), false).unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        send.send_trailers(trailers).unwrap();
    })
}

/// An HTTP/2 (h2c) server on its own thread that hands each stream to `handle`.
pub fn h2_server<F, Fut>(handle: F) -> std::net::SocketAddr
where
    F: Fn(http::Request<h2::RecvStream>, h2::server::SendResponse<bytes::Bytes>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let handle = handle.clone();
                tokio::task::spawn_local(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else { return };
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        tokio::task::spawn_local(handle(req, respond));
                    }
                });
            }
        });
    });
    addr
}

/// Sends `request` as is on a new connection to `addr` and reads until the connection closes
/// (bounded by a 10 s read timeout): for requests an HTTP client library would not send.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// An upstream that answers every request head it reads with `response`, as is, and closes the
/// connection after it when `close` (a body delimited by the end of the connection).
pub fn canned_server(response: &'static [u8], close: bool) -> SocketAddr {
    answering_server(response, close, Duration::ZERO).0
}

/// An upstream that answers every request `200` after `delay`; counts the requests it read.
pub fn slow_server(delay: Duration) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    answering_server(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow", false, delay)
}

/// Answers each request head with `response` after `delay`, counting the heads.
fn answering_server(
    response: &'static [u8],
    close: bool,
    delay: Duration,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(delay);
                        if conn.write_all(response).is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, count)
}

/// A server that accepts connections and never answers.
pub fn silent_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let _held: Vec<_> = listener.incoming().flatten().collect();
    });
    addr
}

/// An address that refuses connections: a socket bound to it that never listens, so no other
/// test can take the port while the returned socket lives.
pub fn closed_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// `weir -t -c FILE` on `yaml` (written as a file named `bad.yaml`): whether it passed, and
/// its output with the file's path shown as `FILE`.
pub fn check_config(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir")).arg("-t").arg("-c").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.replace(&path.display().to_string(), "FILE"))
}
