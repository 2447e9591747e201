//! Live reload (issue 5): configs and modules swapped under load, through `POST /reload`,
//! file changes and SIGHUP. Nothing is dropped; every response comes from exactly one version.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::FetchJson;
use crate::harness::*;

fn config(origin: std::net::SocketAddr, module: &str, version: &str) -> String {
    format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nserver: {{ threads: 2 }}\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  v: {{ module: {module}, vm_id: swap }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: v, config: {{ steps: {{ response_headers: [[add_header, 2, x-version, {version}]] }} }} }}]\n"
    )
}

fn write(dir: &Path, text: &str) {
    // Write then rename, as deploy tools do, so weir never reads half a file.
    let tmp = dir.join("weir.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("weir.yaml")).unwrap();
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
}

async fn load(url: String, h2: bool, stop: Arc<AtomicBool>) -> Tally {
    let c = if h2 { h2_client() } else { client() };
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        match c.get(&url).send().await {
            Ok(r) if r.status() == 200 => {
                let versions: Vec<_> = r.headers().get_all("x-version").iter().collect();
                if versions.len() == 1 && ["A", "B"].contains(&versions[0].to_str().unwrap_or("")) {
                    t.ok += 1;
                } else {
                    t.failed.push(format!("versions {versions:?}"));
                }
                let _ = r.bytes().await;
            }
            Ok(r) => t.failed.push(format!("status {}", r.status())),
            Err(e) => t.failed.push(format!("error {e}")),
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_under_load_drop_nothing() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
    std::fs::write(&a, probe_variant("a")).unwrap();
    std::fs::write(&b, probe_variant("b")).unwrap();
    let path = dir.path().to_path_buf();
    let weir = Weir::start_in(dir, &config(origin, a.to_str().unwrap(), "A"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for i in 0..6 {
        loaders.push(tokio::spawn(load(weir.url("/"), i >= 4, stop.clone())));
    }
    let admin = client();
    let probe_client = client();
    let (mut valid, mut refused) = (0, 0);
    let mut to_first = Vec::new();
    let started = Instant::now();
    for i in 0..125 {
        if i % 5 == 4 {
            // Invalid: a module that does not exist, or a filter that refuses its config.
            let bad = if i % 10 == 4 {
                config(origin, "/nonexistent/filter.wasm", "X")
            } else {
                config(origin, a.to_str().unwrap(), "A").replace("steps:", "configure: false, steps:")
            };
            write(&path, &bad);
            let r = admin.post(weir.admin_url("/reload")).send().await.unwrap();
            assert_eq!(r.status(), 422, "an invalid config is refused");
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(!body["errors"].as_array().unwrap().is_empty());
            refused += 1;
            continue;
        }
        let (module, version) = if valid % 2 == 0 { (&b, "B") } else { (&a, "A") };
        write(&path, &config(origin, module.to_str().unwrap(), version));
        let swapped = Instant::now();
        let r = admin.post(weir.admin_url("/reload")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        valid += 1;
        // The next request sees the new version.
        let deadline = swapped + Duration::from_secs(2);
        loop {
            let r = probe_client.get(weir.url("/")).send().await.unwrap();
            if r.headers()["x-version"] == version {
                to_first.push(swapped.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "version {version} not served 2 s after the reload");
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for l in loaders {
        let t = l.await.unwrap();
        assert!(t.failed.is_empty(), "failed requests during swaps: {:?}", &t.failed[..t.failed.len().min(5)]);
        ok += t.ok;
    }
    to_first.sort();
    let p99 = to_first[(to_first.len() * 99 / 100).min(to_first.len() - 1)];
    eprintln!(
        "swaps: {valid} valid, {refused} refused, in {elapsed:?}; {ok} requests under load, none failed; \
         reload to first new response: median {:?}, p99 {p99:?}",
        to_first[to_first.len() / 2]
    );
    assert!(valid + refused >= 100);

    // Old VMs go once their generation is retired and idle.
    assert!(
        eventually(async || {
            let body: serde_json::Value = client().get(weir.admin_url("/plugins")).fetch_json().await;
            body["vms_live"].as_u64().unwrap() <= 2
        })
        .await,
        "retired VMs were not released"
    );
}

#[tokio::test]
async fn file_changes_and_sighup_reload() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.wasm");
    std::fs::write(&a, probe_variant("a")).unwrap();
    let path = dir.path().to_path_buf();
    let weir = Weir::start_in(dir, &config(origin, a.to_str().unwrap(), "A"));
    let c = client();
    write(&path, &config(origin, a.to_str().unwrap(), "B"));
    assert!(
        eventually(async || c
            .get(weir.url("/"))
            .send()
            .await
            .map(|r| r.headers()["x-version"] == "B")
            .unwrap_or(false))
        .await,
        "a changed config file is picked up:\n{}",
        weir.logs()
    );
    // A changed module file is picked up too (same path, new bytes).
    std::fs::write(&a, probe_variant("a2")).unwrap();
    let sha_changed = eventually(async || {
        let body: serde_json::Value = c.get(weir.admin_url("/plugins")).fetch_json().await;
        body["generation"].as_u64().unwrap() >= 3
    })
    .await;
    assert!(sha_changed, "a changed module file triggers a reload");
    // SIGHUP.
    let before: serde_json::Value = c.get(weir.admin_url("/ready")).fetch_json().await;
    weir.signal("HUP");
    assert!(
        eventually(async || {
            let now: serde_json::Value = c.get(weir.admin_url("/ready")).fetch_json().await;
            now["generation"].as_u64() > before["generation"].as_u64()
        })
        .await,
        "SIGHUP reloads"
    );
}

#[tokio::test]
async fn a_module_directory_that_comes_back_is_watched_again() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("target").join("release");
    std::fs::create_dir_all(&build).unwrap();
    let module = build.join("filter.wasm");
    std::fs::write(&module, probe_variant("v1")).unwrap();
    let weir = Weir::start_in(dir, &config(origin, module.to_str().unwrap(), "A"));
    let c = client();
    let generation = async || -> u64 {
        let body: serde_json::Value = c.get(weir.admin_url("/ready")).fetch_json().await;
        body["generation"].as_u64().unwrap()
    };
    let before = generation().await;
    // As `cargo clean` then a rebuild do.
    std::fs::remove_dir_all(build.parent().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(&module, probe_variant("v2")).unwrap();
    assert!(
        eventually(async || generation().await > before).await,
        "the rebuilt module was picked up:\n{}",
        weir.logs()
    );
}

/// A reload whose VMs cannot exist beside the running configuration's (those stay until their
/// requests end) is refused with the limit to raise, and the running configuration serves on;
/// without the check the pool ran out silently and the new routes answered 503.
#[tokio::test]
async fn a_reload_beyond_the_vm_slots_is_refused_naming_the_limit() {
    let o = origin("o");
    let config = |plugins: &[&str]| {
        let defs: String = plugins.iter().map(|p| format!("  {p}: {{ module: {} }}\n", trivial())).collect();
        let uses: Vec<String> = plugins.iter().map(|p| format!("{{ plugin: {p} }}")).collect();
        format!(
            "server: {{ threads: 1, vm_slots: 4 }}\nclusters:\n  o: {{ endpoints: [\"{o}\"] }}\nplugins:\n{defs}routes:\n  - cluster: o\n    filters: [{}]\n",
            uses.join(", ")
        )
    };
    let weir = Weir::start(&config(&["a"]));
    weir.rewrite(&config(&["b", "c", "d"]));
    let r = client().post(weir.admin_url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("server.vm_slots") && body.contains("5 VM instances are needed"), "{body}");
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200, "the running configuration serves");
    weir.rewrite(&config(&["b", "c"]));
    let r = client().post(weir.admin_url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200, "(2 new + 1 draining) VMs and a validation VM fit in 4: {}", r.text().await.unwrap());
}
