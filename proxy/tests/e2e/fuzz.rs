//! A filter that makes random hostcalls with random arguments (the probe's `fuzz` op: bad
//! pointers and lengths, out-of-range enums, lying header maps) on every phase of every
//! request, driven through the real binary: no request may hang, weir must not panic or stop
//! serving, and what the filter logs stays bounded. `WEIR_FUZZ_REQUESTS` sets the number of
//! requests (20,000 by default; `bench/fuzz.sh` runs a longer one).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_hostcalls_never_crash_hang_or_stall_weir() {
    let requests: usize = std::env::var("WEIR_FUZZ_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let origin = origin("o");
    let fuzz = |seed: u64| json!([["fuzz", seed, 12]]);
    let script = json!({ "steps": {
        "request_headers": fuzz(1), "request_body": fuzz(2), "response_headers": fuzz(3), "response_body": fuzz(4),
    }});
    let config = dir.path().join("weir.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nserver: {{ threads: 2 }}\n\
             clusters:\n  o: {{ endpoints: [\"{origin}\"] }}\n\
             plugins:\n  fuzz: {{ module: {}, failure_policy: reload, limits: {{ deadline: 100ms }} }}\n\
             routes:\n  - {{ match: {{ path: /ok }}, cluster: o }}\n  - {{ cluster: o, idle_timeout: 2s, filters: [{{ plugin: fuzz, config: {script} }}] }}\n",
            probe()
        ),
    )
    .unwrap();
    let log = dir.path().join("weir.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(&config)
        // The filter's own log lines (random bytes, up to 1 MiB each) are not what is tested.
        .env("RUST_LOG", "info,weir::filter=off")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (admin, proxy) = read_ready(&mut child);
    let _stop = KillOnDrop(child);
    let c = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().unwrap();
    assert!(
        eventually(async || c.get(format!("http://{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200)).await
    );

    let next = Arc::new(AtomicUsize::new(0));
    let hung = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // Eight at a time: enough to keep both workers busy, not so many that the rest of the
    // suite, running beside it, starves.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (c, next, hung, answered, url) =
                (c.clone(), next.clone(), hung.clone(), answered.clone(), format!("http://{proxy}/fuzz"));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let i = next.load(Ordering::Relaxed);
                    let request = if i % 2 == 0 { c.get(&url) } else { c.post(&url).body(vec![b'b'; i % 3000]) };
                    match request.send().await {
                        Ok(r) => {
                            // A body may be cut off by a filter's reset: that is an answer too.
                            let _ = r.bytes().await;
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.is_timeout() => {
                            eprintln!("fuzz: request {i} hung: {e}");
                            hung.fetch_add(1, Ordering::Relaxed);
                        }
                        // A filter may reset the stream (proxy_close_stream): also an answer.
                        Err(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    if std::env::var_os("WEIR_FUZZ_KEEP_LOG").is_some() {
        let _ = std::fs::copy(&log, "/tmp/weir-fuzz.log");
    }
    let ran = logs.matches("filters=\"fuzz:").count() - logs.matches("filters=\"fuzz:failed\"").count();
    eprintln!(
        "fuzz: {requests} requests in {took:?}: {} answered, {} hung, {ran} ran the filter; {} bytes of log",
        answered.load(Ordering::Relaxed),
        hung.load(Ordering::Relaxed),
        logs.len()
    );
    if hung.load(Ordering::Relaxed) > 0 {
        // What the log says most often, to see what the hung requests met.
        let mut counts = std::collections::HashMap::<String, usize>::new();
        for l in logs.lines() {
            let key: String = l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ").chars().take(160).collect();
            *counts.entry(key).or_default() += 1;
        }
        let mut top: Vec<_> = counts.into_iter().collect();
        top.sort_by_key(|t| std::cmp::Reverse(t.1));
        eprintln!("fuzz: most frequent log lines: {:#?}", &top[..top.len().min(8)]);
        let slow: Vec<&str> = logs
            .lines()
            .filter(|l| {
                l.contains("weir::access")
                    && l.split("duration_us=")
                        .nth(1)
                        .and_then(|d| d.split_whitespace().next()?.parse::<u64>().ok())
                        .is_some_and(|us| us > 5_000_000)
            })
            .collect();
        eprintln!("fuzz: requests that took over 5 s: {slow:#?}");
    }
    // How the filter's VMs failed (it corrupts or outruns itself; weir must only survive it).
    if let Ok(resp) = c.get(format!("http://{admin}/metrics")).send().await {
        let text = resp.text().await.unwrap_or_default();
        let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("weir_filter_failures_total{")).collect();
        eprintln!("fuzz: VM failures {failures:?}");
    }
    assert_eq!(hung.load(Ordering::Relaxed), 0, "no request hangs");
    // weir's panics are logged under `weir::panic` (the guest's own panics, reported with its
    // VM failures, are not weir's).
    let panics: Vec<&str> = logs.lines().filter(|l| l.contains("weir::panic")).take(5).collect();
    assert!(panics.is_empty(), "weir panicked: {panics:#?}");
    let ok = c.get(format!("http://{proxy}/ok")).send().await.expect("weir still serves");
    assert_eq!(ok.status(), 200);
}

/// Kills the process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
