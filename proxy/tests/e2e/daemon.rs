//! weir run as the shipped systemd unit runs it: `weir -d`, a relative `-c`, found again by its
//! pid file. What the serving process needs (the epoch ticker behind callback deadlines, the
//! file watcher) must run in the daemon, not only in the process that forked it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

fn config(dir: &Path, origin: std::net::SocketAddr, version: &str, pid_file: &str) -> String {
    let tag = json!({ "steps": { "response_headers": [["add_header", 2, "x-version", version]] } });
    let looping = json!({ "steps": { "request_headers": [["loop"]] } });
    format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\n\
         server: {{ threads: 1, pid_file: {pid_file}, upgrade_sock: {} }}\n\
         clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n\
         plugins:\n  probe: {{ module: {}, limits: {{ deadline: 100ms }} }}\n\
         routes:\n  - {{ match: {{ path: /loop }}, cluster: origin, filters: [{{ plugin: probe, config: {looping} }}] }}\n  \
         - {{ cluster: origin, filters: [{{ plugin: probe, config: {tag} }}] }}\n",
        dir.join("upgrade.sock").display(),
        probe(),
    )
}

/// The daemon's pid, once its pid file holds one.
fn daemon_pid(pid_file: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<u32>().ok()) {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no pid in {}", pid_file.display());
}

/// Stops the daemon with SIGINT and waits (bounded) until it is gone.
struct Daemon(u32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
        let _ = Command::new("kill").args(["-INT", &self.0.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(self.0) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}

/// A daemon started as the unit starts it (`weir -d -c weir.yaml` in `dir`, its log in
/// `weir.log`), once its launcher reported it up; stopped when dropped.
struct Started {
    _daemon: Daemon,
    proxy: String,
    admin: String,
}

fn start_daemon(dir: &Path, pid_file: &Path) -> Started {
    let log = std::fs::File::create(dir.join("weir.log")).unwrap();
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["-d", "-c", "weir.yaml"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(launcher.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let status = launcher.wait().unwrap();
    // Stopped at the end whatever happens below.
    let daemon = Daemon(daemon_pid(pid_file));
    assert!(status.success(), "the launcher exits 0 once the daemon is up: {status}");
    let address = |what: &str| {
        let at = ready.find(what).expect(&ready) + what.len();
        ready[at..].split_whitespace().next().unwrap().to_owned()
    };
    Started { proxy: address("proxy http://"), admin: address("admin http://"), _daemon: daemon }
}

#[tokio::test]
async fn a_daemon_keeps_deadlines_and_reloads_with_a_relative_config() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin("o");
    let pid_file = dir.path().join("weir.pid");
    std::fs::write(dir.path().join("weir.yaml"), config(dir.path(), origin, "1", "weir.pid")).unwrap();
    let daemon = start_daemon(dir.path(), &pid_file);
    let (proxy, admin) = (&daemon.proxy, &daemon.admin);
    let url = |path: &str| format!("http://{proxy}{path}");
    let c = client();
    // `/ready` tells the truth: once it says so, the proxy serves (no retry below).
    let is_ready =
        eventually(async || c.get(format!("http://{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200)).await;
    assert!(is_ready, "the daemon becomes ready");
    let resp = c.get(url("/")).send().await.expect("ready means serving");
    assert_eq!(resp.headers()["x-version"], "1");
    // The epoch ticker runs in the daemon: a looping filter is stopped at its deadline.
    let started = Instant::now();
    let resp = c.get(url("/loop")).send().await.expect("the loop is cut off, the request answered");
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The file watcher runs in the daemon, and the relative -c still names the file.
    std::fs::write(dir.path().join("weir.yaml"), config(dir.path(), origin, "2", "weir.pid")).unwrap();
    let reloaded = eventually(async || {
        c.get(url("/")).send().await.is_ok_and(|r| r.headers().get("x-version").is_some_and(|v| v == "2"))
    })
    .await;
    assert!(reloaded, "{}", std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default());

    // SIGUSR1 (logrotate's "reopen the access log") does not end the daemon: its handler
    // survives the fork.
    let pid = daemon_pid(&pid_file);
    let _ = Command::new("kill").args(["-USR1", &pid.to_string()]).status();
    assert_eq!(c.get(url("/")).send().await.expect("still serving after SIGUSR1").status(), 200);
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the daemon outlives SIGUSR1");

    // SIGTERM stops the daemon promptly (its file watcher and VM hosts included) and removes
    // its pid file.
    let sent = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    while Path::new(&format!("/proc/{pid}")).exists() && sent.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the daemon is still running 20 s after SIGTERM");
    assert!(sent.elapsed() < Duration::from_secs(5), "idle, it exits at once: {:?}", sent.elapsed());
    assert!(!pid_file.exists(), "the pid file is removed");
    // The access log's writer thread runs in the daemon (it starts after the fork), and what
    // it had not written yet is flushed at exit.
    let logs = std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default();
    let access: Vec<&str> = logs.lines().filter(|l| l.contains("weir::access")).collect();
    assert!(access.iter().any(|l| l.contains("path=\"/loop\"") && l.contains("status=503")), "{logs}");
    assert!(access.len() >= 3, "every request is logged: {logs}");
}

/// A module compiled before the fork (no module cache) used threads the daemon does not have:
/// a reload that compiles a new module must not wait for them.
#[tokio::test]
async fn a_daemon_compiles_a_new_module_on_reload_after_compiling_before_its_fork() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin("o");
    let write = |module: &str, version: &str| {
        let tag = json!({ "steps": { "response_headers": [["add_header", 2, "x-version", version]] } });
        let text = format!(
            "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\n\
             server: {{ threads: 1, pid_file: weir.pid, module_cache: off }}\n\
             clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n\
             plugins:\n  probe: {{ module: {module} }}\n\
             routes:\n  - {{ cluster: origin, filters: [{{ plugin: probe, config: {tag} }}] }}\n"
        );
        std::fs::write(dir.path().join("weir.yaml"), text).unwrap();
    };
    write(probe(), "1");
    let daemon = start_daemon(dir.path(), &dir.path().join("weir.pid"));
    let (proxy, admin) = (&daemon.proxy, &daemon.admin);

    std::fs::write(dir.path().join("variant.wasm"), probe_variant("after the fork")).unwrap();
    write("variant.wasm", "2");
    let c = client();
    let reload = c.post(format!("http://{admin}/reload")).timeout(Duration::from_secs(60)).send().await;
    let log = || std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default();
    assert!(reload.as_ref().is_ok_and(|r| r.status() == 200), "{reload:?}\n{}", log());
    let resp = c.get(format!("http://{proxy}/")).send().await.expect("serving");
    assert_eq!(resp.headers()["x-version"], "2", "{}", log());
}

#[tokio::test]
async fn a_daemon_that_cannot_start_fails_its_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin("o");
    let text = config(dir.path(), origin, "1", "/nonexistent-weir-dir/weir.pid");
    std::fs::write(dir.path().join("weir.yaml"), text).unwrap();
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["-d", "-c", "weir.yaml"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "an unwritable pid file fails `weir -d`");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn under_a_unit_with_a_runtime_directory_the_pid_file_goes_there() {
    // What the shipped unit gives weir: `RuntimeDirectory=weir` (so $RUNTIME_DIRECTORY) and a
    // configuration without `server.pid_file`; its `PIDFile=` names the file in that directory.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let origin = origin("o");
    let text = format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nserver: {{ threads: 1 }}\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: origin\n"
    );
    std::fs::write(dir.path().join("weir.yaml"), text).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["-d", "-c", "weir.yaml"])
        .current_dir(dir.path())
        .env("RUNTIME_DIRECTORY", &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _daemon = Daemon(daemon_pid(&run.join("weir.pid")));
    assert!(status.success(), "{status}");
}
