//! Stopping weir as operators do (SIGTERM from systemd or the kubelet, SIGINT from a terminal):
//! requests in flight finish, the process exits as soon as none is left rather than after the
//! whole grace period, a second signal exits at once, and no stage of a start or a shutdown
//! makes weir spin or flood its log (it once wrote 48 GB of log in 20 minutes after a SIGINT).
//! Ports that are taken fail the start with status 1 and the address named.
//!
//! The exit-time bounds below are several times what the sequences need (they separate
//! "exits when done" from "waits out a 30 s grace period"), not performance figures.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Far more than any shutdown logs (a few dozen lines), far less than a logging loop writes.
const LOG_BOUND: u64 = 256 * 1024;

fn slow_config(slow: std::net::SocketAddr, server: &str) -> String {
    format!(
        "server: {{ grace_period_seconds: 30{server} }}\nclusters:\n  slow: {{ endpoints: [\"{slow}\"], read_timeout: 60s }}\nroutes:\n  - cluster: slow\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_requests_in_flight_then_exits() {
    let (slow, seen) = slow_server(Duration::from_millis(1500));
    let mut weir = Weir::start(&slow_config(slow, ""));
    let c = client();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (c.clone(), weir.url("/"));
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    assert!(eventually(async || seen.load(Ordering::SeqCst) == 20).await, "20 requests in flight");
    let sent = Instant::now();
    weir.signal("TERM");
    let proxy = weir.proxy;
    assert!(eventually(async || std::net::TcpStream::connect(proxy).is_err()).await, "the listeners close");
    for r in requests {
        assert_eq!(r.await.unwrap().expect("a request in flight is answered"), 200);
    }
    let (status, _) = weir.wait_exit(Duration::from_secs(20)).expect("weir exits");
    let took = sent.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "exits once the requests are done, not after the grace period: {took:?}");
    assert!(weir.log_size() < LOG_BOUND, "{} bytes of log", weir.log_size());
}

#[tokio::test]
async fn an_idle_weir_exits_at_once_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let (slow, _) = slow_server(Duration::ZERO);
        let mut weir = Weir::start(&slow_config(slow, ""));
        // A kept-alive idle connection does not hold the shutdown up.
        let c = client();
        assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
        weir.signal(signal);
        let (status, took) = weir.wait_exit(Duration::from_secs(20)).expect("weir exits");
        assert!(status.success(), "SIG{signal}: {status}");
        assert!(took < Duration::from_secs(5), "SIG{signal}: nothing in flight, yet it took {took:?}");
        assert!(weir.log_size() < LOG_BOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_keeps_serving_while_ready_says_no_and_a_second_signal_exits_at_once() {
    let (slow, seen) = slow_server(Duration::from_secs(60));
    let (fast, _) = slow_server(Duration::ZERO);
    let mut weir = Weir::start(&format!(
        "server: {{ grace_period_seconds: 30, drain_delay: 3s }}\nclusters:\n  slow: {{ endpoints: [\"{slow}\"], read_timeout: 60s }}\n  fast: {{ endpoints: [\"{fast}\"] }}\nroutes:\n  - {{ match: {{ path: /stuck }}, cluster: slow }}\n  - cluster: fast\n"
    ));
    let c = client();
    let stuck = {
        let (c, url) = (c.clone(), weir.url("/stuck"));
        tokio::spawn(async move { c.get(url).send().await.map(|r| r.status()) })
    };
    assert!(eventually(async || seen.load(Ordering::SeqCst) == 1).await);
    weir.signal("TERM");
    let ready_url = weir.admin_url("/ready");
    let draining = eventually(async || {
        let Ok(ready) = c.get(&ready_url).send().await else { return false };
        let status = ready.status();
        let body: serde_json::Value = ready.json().await.unwrap_or_default();
        status == 503 && body["draining"] == true
    })
    .await;
    assert!(draining, "draining is not ready");
    // During the drain delay the listeners still accept, and answers close their connection.
    let resp = c.get(weir.url("/")).send().await.expect("still served during the drain delay");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    assert!(weir.alive());
    // The stuck request would hold the shutdown for the grace period; a second signal does not wait.
    weir.signal("TERM");
    let (status, took) = weir.wait_exit(Duration::from_secs(10)).expect("the second signal ends weir");
    assert_eq!(status.code(), Some(1), "a forced exit is not a clean one");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(stuck.await.unwrap().is_err(), "the cut-off request fails, it is not answered as a success");
    assert!(weir.log_size() < LOG_BOUND);
}

/// A configuration whose plugins take a while to compile and whose filters loop until their
/// deadline: SIGINT lands while the start compiles, while workers run looping filters, and
/// during a reload.
fn busy_config(dir: &std::path::Path) -> String {
    let looping = serde_json::json!({ "steps": { "request_headers": [["loop"]] } });
    format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\n\
         server: {{ threads: 2, pid_file: {0}/weir.pid, upgrade_sock: {0}/upgrade.sock }}\n\
         clusters:\n  origin: {{ endpoints: [\"{1}\"] }}\n\
         plugins:\n  a: {{ module: {2}, limits: {{ deadline: 100ms }} }}\n  b: {{ module: {2}, vm_id: other, limits: {{ deadline: 100ms }} }}\n\
         routes:\n  - {{ match: {{ path: /loop }}, cluster: origin, filters: [{{ plugin: a, config: {looping} }}, {{ plugin: b }}] }}\n  - {{ cluster: origin, filters: [{{ plugin: b }}] }}\n",
        dir.display(),
        origin("o"),
        probe(),
    )
}

/// Starts weir on `busy_config`, returning the process and its log path, without waiting.
fn spawn_busy(dir: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
    let config = dir.join("weir.yaml");
    std::fs::write(&config, busy_config(dir)).unwrap();
    let log = dir.join("weir.log");
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// Sends `signal` to `child` and waits (bounded) for it to exit; kills it if it does not.
fn stop(child: &mut std::process::Child, signal: &str, log: &std::path::Path) -> Duration {
    let sent = Instant::now();
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
    while sent.elapsed() < Duration::from_secs(20) {
        if child.try_wait().unwrap().is_some() {
            let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
            assert!(size < LOG_BOUND, "{size} bytes of log:\n{}", tail(log));
            return sent.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("weir did not exit within 20 s of SIG{signal}:\n{}", tail(log));
}

fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_at_every_stage_of_a_run_exits_promptly_without_flooding_the_log() {
    // While the modules compile (before the `weir ready:` line).
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = spawn_busy(dir.path());
    std::thread::sleep(Duration::from_millis(50));
    stop(&mut child, "INT", &log);

    // Just after the ready line, while workers start their VMs.
    let (mut child, log) = spawn_busy(dir.path());
    read_ready(&mut child);
    stop(&mut child, "INT", &log);

    // Under load: filters looping until their deadline on every worker.
    let (mut child, log) = spawn_busy(dir.path());
    let (admin, proxy) = read_ready(&mut child);
    let c = client();
    assert!(
        eventually(async || c.get(format!("http://{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200)).await
    );
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (c, url) = (c.clone(), format!("http://{proxy}/loop"));
            tokio::spawn(async move {
                for _ in 0..20 {
                    let _ = c.get(&url).send().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&mut child, "INT", &log);
    for l in load {
        l.abort();
    }

    // During a reload (SIGHUP, then SIGINT while it compiles).
    let (mut child, log) = spawn_busy(dir.path());
    let (admin, _) = read_ready(&mut child);
    assert!(
        eventually(async || c.get(format!("http://{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200)).await
    );
    std::fs::write(dir.path().join("weir.yaml"), busy_config(dir.path()).replace("vm_id: other", "vm_id: third"))
        .unwrap();
    let _ = Command::new("kill").arg("-HUP").arg(child.id().to_string()).status();
    stop(&mut child, "INT", &log);
}

#[test]
fn sighup_while_starting_does_not_end_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log) = spawn_busy(dir.path());
    std::thread::sleep(Duration::from_millis(50));
    let _ = Command::new("kill").arg("-HUP").arg(child.id().to_string()).status();
    let (admin, _) = read_ready(&mut child);
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP during start-up ended weir:\n{}", tail(&log));
    assert!(!admin.is_empty());
    let took = stop(&mut child, "TERM", &log);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_taken_port_fails_the_start_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let origin = origin("o");
    for (listener, admin) in
        [(addr.to_string(), "127.0.0.1:0".to_owned()), ("127.0.0.1:0".to_owned(), addr.to_string())]
    {
        let path = dir.path().join("weir.yaml");
        std::fs::write(
            &path,
            format!("listeners: [{{ address: {listener} }}]\nadmin: {{ address: {admin} }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: o\n"),
        )
        .unwrap();
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_weir")).arg("-c").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(&format!("cannot listen on {addr}")), "{said}");
        assert!(started.elapsed() < Duration::from_secs(10), "no retrying for half a minute");
    }
}
