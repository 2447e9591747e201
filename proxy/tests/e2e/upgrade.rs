//! Graceful binary upgrade (Pingora's `--upgrade` + SIGQUIT): a new process takes over the
//! listening sockets while the old one finishes its requests; clients see no failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::*;

async fn load(url: String, fresh_connections: bool, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let c = if fresh_connections {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    } else {
        client()
    };
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        // A slow-ish request body keeps requests in flight across the hand-over.
        match c.post(&url).body(vec![b'x'; 64 * 1024]).send().await {
            Ok(r) if r.status() == 200 => {
                let _ = r.bytes().await;
                ok += 1;
            }
            Ok(r) => failed.push(format!("status {}", r.status())),
            Err(e) => failed.push(format!("{e}")),
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_hands_over_without_failing_requests() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let server = format!(
        "server: {{ threads: 2, grace_period_seconds: 1, upgrade_sock: {}, pid_file: {} }}\n",
        d.join("upgrade.sock").display(),
        d.join("weir.pid").display()
    );
    let routes = format!("clusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: origin\n");
    let old = Weir::start_in(dir, &format!("{server}{routes}"));
    let new_config = d.join("new.yaml");
    std::fs::write(
        &new_config,
        format!("listeners: [{{ address: {} }}]\nadmin: {{ address: {} }}\n{server}{routes}", old.proxy, old.admin),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4).map(|i| tokio::spawn(load(old.url("/"), i % 2 == 0, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new process waits on the upgrade socket; SIGQUIT makes the old one hand over.
    let log = d.join("new.log");
    let starting = std::thread::spawn(move || launch(&new_config, &["--upgrade"], &log));
    tokio::time::sleep(Duration::from_millis(300)).await;
    old.signal("QUIT");
    let (mut new, line) = tokio::task::spawn_blocking(move || starting.join().unwrap()).await.unwrap();
    assert!(line.contains(&old.proxy.to_string()), "{line}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for l in loaders {
        let (n, failed) = l.await.unwrap();
        assert!(failed.is_empty(), "requests failed across the upgrade: {:?}", &failed[..failed.len().min(5)]);
        ok += n;
    }
    assert!(ok > 0);
    assert!(
        eventually(async || {
            let _ = client().get(old.url("/")).send().await;
            std::fs::read_to_string(d.join("new.log")).unwrap_or_default().contains("weir::access")
        })
        .await,
        "the new process serves on the handed-over sockets"
    );
    let _ = new.kill();
    let _ = new.wait();
}
