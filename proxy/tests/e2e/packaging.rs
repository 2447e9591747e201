//! The shipped packaging, run as shipped: the systemd unit's commands as written (with only the
//! binary, configuration and runtime-directory paths pointed at the test's), and the
//! Kubernetes manifest's configuration, arguments, probes and termination.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

fn packaging(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging").join(file)).unwrap()
}

/// The unit with its paths pointed at the test's: the binary, the configuration, `/run/weir`.
struct Unit {
    text: String,
}

impl Unit {
    fn load(config: &Path, runtime_dir: &Path) -> Unit {
        let text = packaging("weir.service")
            .replace("/usr/local/bin/weir", env!("CARGO_BIN_EXE_weir"))
            .replace("/etc/weir/weir.yaml", &config.display().to_string())
            .replace("/run/weir", &runtime_dir.display().to_string());
        Unit { text }
    }

    /// The values of `key=` lines, in order.
    fn values(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}=");
        self.text.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
    }

    fn value(&self, key: &str) -> String {
        self.values(key).pop().unwrap_or_else(|| panic!("the unit has no {key}="))
    }

    /// Runs one `Exec*=` command line as systemd would, with `$MAINPID` and the unit's
    /// `RUNTIME_DIRECTORY`; its stderr goes to `log`.
    fn run(&self, line: &str, main_pid: Option<u32>, runtime_dir: &Path, log: &Path) -> std::process::ExitStatus {
        let line = line.replace("$MAINPID", &main_pid.map(|p| p.to_string()).unwrap_or_default());
        let words: Vec<&str> = line.split_whitespace().collect();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Command::new(words[0])
            .args(&words[1..])
            .env("RUNTIME_DIRECTORY", runtime_dir)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .unwrap()
    }
}

fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// Stops whatever process the pid file names when the test ends, however it ends.
struct StopAtEnd(PathBuf);

impl Drop for StopAtEnd {
    fn drop(&mut self) {
        if let Some(pid) = pid_in(&self.0) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

async fn load(url: String, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let c = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        match c.get(&url).send().await {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => failed.push(format!("status {}", r.status())),
            Err(e) => failed.push(format!("{e}")),
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_systemd_unit_starts_upgrades_and_stops_weir_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let runtime_dir = dir.path().join("run");
    std::fs::create_dir(&runtime_dir).unwrap();
    let origin = origin("o");
    let (proxy, _p) = reserve();
    let (admin, _a) = reserve();
    let config = dir.path().join("weir.yaml");
    // No pid_file or upgrade_sock: the unit relies on the defaults under $RUNTIME_DIRECTORY.
    std::fs::write(
        &config,
        format!("listeners: [{{ address: {proxy} }}]\nadmin: {{ address: {admin} }}\nserver: {{ threads: 2, grace_period_seconds: 5 }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: o\n"),
    )
    .unwrap();
    let unit = Unit::load(&config, &runtime_dir);
    let log = dir.path().join("weir.log");
    let pid_file = PathBuf::from(unit.value("PIDFile"));
    assert!(pid_file.starts_with(&runtime_dir), "PIDFile under RuntimeDirectory");
    let _stop = StopAtEnd(pid_file.clone());

    // systemctl start: ExecStartPre, then ExecStart, which returns once the daemon serves.
    for line in unit.values("ExecStartPre").iter().chain(&unit.values("ExecStart")) {
        let status = unit.run(line, None, &runtime_dir, &log);
        assert!(status.success(), "{line}: {status}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let first = pid_in(&pid_file).expect("the daemon wrote the PIDFile systemd reads");
    let c = client();
    let ready = c.get(format!("http://{admin}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "`weir -d` returns once the daemon serves");
    assert_eq!(c.get(format!("http://{proxy}/")).send().await.unwrap().status(), 200);

    // systemctl reload, under load: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4).map(|_| tokio::spawn(load(format!("http://{proxy}/"), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for line in unit.values("ExecReload") {
        let status = tokio::task::spawn_blocking({
            let (unit_text, runtime_dir, log) = (unit.text.clone(), runtime_dir.clone(), log.clone());
            move || Unit { text: unit_text }.run(&line, Some(first), &runtime_dir, &log)
        })
        .await
        .unwrap();
        assert!(status.success(), "ExecReload: {status}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let second = pid_in(&pid_file).expect("PIDFile after the upgrade");
    assert_ne!(second, first, "the new process wrote its pid for systemd to follow");
    let started = Instant::now();
    while alive(first) && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(first), "the old process exits after its drain");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for l in loaders {
        let (o, f) = l.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 0 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    assert_eq!(pid_in(&pid_file), Some(second), "the old process leaves the new one's PIDFile alone");

    // systemctl stop: KillSignal to the main process, which exits within TimeoutStopSec.
    let timeout = Duration::from_secs(unit.value("TimeoutStopSec").parse().unwrap());
    let signal = unit.value("KillSignal");
    let sent = Instant::now();
    let _ = Command::new("kill").arg(format!("-{}", signal.trim_start_matches("SIG"))).arg(second.to_string()).status();
    while alive(second) && sent.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(second), "stopped within TimeoutStopSec");
    assert!(!pid_file.exists(), "the PIDFile is removed on exit");
    // Bounded: an access line per request served, and little else.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let (access, other): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains("weir::access"));
    assert!(access.len() as u64 <= ok + 10, "{} access lines for {ok} requests", access.len());
    let other: usize = other.iter().map(|l| l.len() + 1).sum();
    assert!(other < 1 << 20, "{other} bytes of log besides the access log");
}

/// `systemd-analyze verify` accepts the unit (when this machine has systemd; `.ci/run`
/// installs it).
#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: skipped");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    // Only the binary's path changes, so the unit's commands exist on this machine.
    let unit = packaging("weir.service").replace("/usr/local/bin/weir", env!("CARGO_BIN_EXE_weir"));
    let path = dir.path().join("weir.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // Complaints about the machine (no `weir` user here) are not about the unit.
    let about_the_unit: Vec<&str> =
        said.lines().filter(|l| l.contains("weir.service") && !l.contains("user") && !l.contains("group")).collect();
    assert!(about_the_unit.is_empty(), "{said}");
}

/// A port reserved for the test (bound, not listening) so the unit's weir can use a fixed one.
fn reserve() -> (std::net::SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// The documents of `packaging/kubernetes.yaml`.
fn manifest() -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(&packaging("kubernetes.yaml"))
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifest_runs_weir_with_truthful_probes_and_a_drained_termination() {
    let docs = manifest();
    let find =
        |kind: &str| docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"));
    let pod = &find("Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let port = |name: &str| -> u64 {
        let ports = container["ports"].as_sequence().unwrap();
        ports.iter().find(|p| p["name"].as_str() == Some(name)).unwrap()["containerPort"].as_u64().unwrap()
    };
    let mount = |volume: &str| -> String {
        let mounts = container["volumeMounts"].as_sequence().unwrap();
        mounts.iter().find(|m| m["name"].as_str() == Some(volume)).unwrap()["mountPath"].as_str().unwrap().to_owned()
    };
    let (http, admin_port) = (port("http"), port("admin"));
    let (config_dir, token_dir) = (mount("config"), mount("admin-token"));

    // The pod's file system: the ConfigMap and the Secret mounted where the manifest mounts them.
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p.trim_start_matches('/'));
    std::fs::create_dir_all(at(&config_dir)).unwrap();
    std::fs::create_dir_all(at(&token_dir)).unwrap();
    std::fs::write(at(&token_dir).join("token"), "k8s-token\n").unwrap();
    let origin = origin("o");
    let (proxy, _p) = reserve();
    let (admin, _a) = reserve();
    let config = find("ConfigMap")["data"]["weir.yaml"].as_str().unwrap();
    assert!(config.contains("token_file"), "the admin listener on 0.0.0.0 needs a token");
    let config = config
        .replace("origin:80", &origin.to_string())
        .replace(&format!("0.0.0.0:{http}"), &proxy.to_string())
        .replace(&format!("0.0.0.0:{admin_port}"), &admin.to_string())
        .replace(&token_dir, &at(&token_dir).display().to_string());
    std::fs::write(at(&config_dir).join("weir.yaml"), config).unwrap();
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace(&config_dir, &at(&config_dir).display().to_string()))
        .collect();
    let log = root.path().join("weir.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(&args)
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _stop = KillAtEnd(child.id());

    // The readiness probe, as the kubelet sends it: no token.
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(readiness["port"].as_str(), Some("admin"));
    let ready_url = format!("http://{admin}{}", readiness["path"].as_str().unwrap());
    let c = client();
    // The start compiles the built-in filter: allow for a loaded CI machine.
    let started = Instant::now();
    while !c.get(&ready_url).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(60), "not ready after 60 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The liveness probe: the proxy port accepts.
    assert_eq!(container["livenessProbe"]["tcpSocket"]["port"].as_str(), Some("http"));
    assert!(std::net::TcpStream::connect(proxy).is_ok());
    // Everything else on the admin listener needs the token.
    assert_eq!(c.get(format!("http://{admin}/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("http://{admin}/metrics")).bearer_auth("k8s-token").send().await.unwrap().status(), 200);

    // Termination: the kubelet sends SIGTERM and waits terminationGracePeriodSeconds.
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let sent = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    // The readiness probe fails at once, so the endpoint leaves the Service ...
    assert!(eventually(async || c.get(&ready_url).send().await.is_ok_and(|r| r.status() == 503)).await);
    // ... while the listeners still take what is already on its way (drain_delay).
    let late = c.get(format!("http://{proxy}/")).send().await.expect("served during the drain delay");
    assert_eq!(late.status(), 200);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < grace, "still running after terminationGracePeriodSeconds");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert!(size < 1 << 20, "{size} bytes of log");
}

/// SIGKILLs a process when the test ends, however it ends.
struct KillAtEnd(u32);

impl Drop for KillAtEnd {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}

/// The image's HEALTHCHECK command, run as Docker runs it, says healthy only while weir is
/// ready; the image ships a stripped binary.
#[test]
fn the_docker_healthcheck_tells_ready_from_not() {
    let dockerfile = packaging("Dockerfile");
    assert!(dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"), "the image's binary is stripped");
    let line = dockerfile
        .lines()
        .find(|l| l.trim_start().starts_with("CMD [\"/usr/local/bin/weir\", \"probe\""))
        .expect("a HEALTHCHECK running weir probe");
    let command: Vec<String> = serde_json::from_str(line.trim_start().trim_start_matches("CMD").trim()).unwrap();
    assert_eq!(command[2], "127.0.0.1:9901", "the admin listener's default address");
    let run = |admin: &str| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg(&command[1])
            .arg(admin)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let (slow, _) = slow_server(Duration::from_secs(30));
    let mut weir = Weir::start(&format!(
        "server: {{ drain_delay: 5s }}\nclusters:\n  o: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - cluster: o\n"
    ));
    assert!(run(&weir.admin.to_string()), "healthy when ready");
    weir.signal("TERM");
    let started = Instant::now();
    while run(&weir.admin.to_string()) && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!run(&weir.admin.to_string()), "unhealthy once draining");
    let (closed, _socket) = closed_port();
    assert!(!run(&closed.to_string()), "unhealthy when nothing listens");
    assert!(weir.wait_exit(Duration::from_secs(20)).is_some());
}
