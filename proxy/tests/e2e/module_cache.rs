//! Compiled modules are kept between runs (`server.module_cache`): a restart loads them instead
//! of compiling again, and a cache directory other users may write to is not trusted.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

fn config(cache: &std::path::Path) -> String {
    format!(
        "server: {{ module_cache: {} }}\nclusters:\n  o: {{ endpoints: [\"{}\"] }}\nplugins:\n  t: {{ module: {} }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: t }}]\n",
        cache.display(),
        origin("o"),
        trivial()
    )
}

fn compiled_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "cwasm")).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_restart_loads_compiled_modules_from_the_cache() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("modules");
    {
        let weir = Weir::start(&config(&cache));
        assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
        assert!(weir.logs().contains("module compiled"), "{}", weir.logs());
        assert_eq!(compiled_files(&cache), 1, "the trivial filter's code is kept");
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the cache is private");
    }
    let weir = Weir::start(&config(&cache));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let logs = weir.logs();
    assert!(logs.contains("module loaded from the module cache") && !logs.contains("module compiled"), "{logs}");
}

#[tokio::test]
async fn a_cache_others_may_write_is_not_used() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("modules");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let weir = Weir::start(&config(&cache));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let logs = weir.logs();
    assert!(logs.contains("is writable by other users") && logs.contains("module compiled"), "{logs}");
    assert_eq!(compiled_files(&cache), 0, "nothing is written to an untrusted directory");
}

/// `server.compiler: baseline` compiles modules with Winch: its filters run (a probe's header
/// reaches the client), and its code is not Cranelift's: the next start with the default
/// compiler compiles the module again (and keeps only its own compiler's code).
#[tokio::test]
async fn the_baseline_compiler_runs_filters_and_caches_its_own_code() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("modules");
    let script = serde_json::json!({ "steps": { "response_headers": [["add_header", 2, "x-compiled", "yes"]] } });
    let config = |compiler: &str| {
        format!(
            "server: {{ module_cache: {}{compiler} }}\nclusters:\n  o: {{ endpoints: [\"{}\"] }}\nplugins:\n  p: {{ module: {} }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: p, config: {script} }}]\n",
            cache.display(),
            origin("o"),
            probe()
        )
    };
    for compiler in [", compiler: baseline", ""] {
        let weir = Weir::start(&config(compiler));
        let resp = client().get(weir.url("/")).send().await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), resp.headers().get("x-compiled").map(|v| v.as_bytes())),
            (200, Some(&b"yes"[..]))
        );
        let logs = weir.logs();
        assert!(logs.contains("module compiled") && !logs.contains("from the module cache"), "{compiler:?}: {logs}");
        assert_eq!(compiled_files(&cache), 1, "{compiler:?}");
    }
}

/// `server.compiler: tiered`, the default (docs/configuration.md, `compiler`): a start waits
/// for Cranelift; a reload serves a never-seen module at once on Winch's code, Cranelift's
/// code reaches the module cache in the background, and then the plugin's VMs move to it as a
/// reload of the same configuration would move them.
#[tokio::test]
async fn a_reload_serves_a_new_module_at_once_and_optimizes_it_in_the_background() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("modules");
    let new_module = scratch.path().join("new.wasm");
    let unique = format!("tiered-{}-{:?}", std::process::id(), std::time::SystemTime::now());
    std::fs::write(&new_module, probe_variant(&unique)).unwrap();
    let config = |module: &str, version: &str| {
        let script = serde_json::json!({ "steps": { "response_headers": [["add_header", 2, "x-version", version]] } });
        format!(
            "server: {{ module_cache: {} }}\nclusters:\n  o: {{ endpoints: [\"{}\"] }}\nplugins:\n  p: {{ module: {module} }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: p, config: {script} }}]\n",
            cache.display(),
            origin("o"),
        )
    };
    let c = client();
    let weir = Weir::start(&config(probe(), "A"));
    let plugins = async || -> serde_json::Value { c.get(weir.admin_url("/plugins")).fetch_json().await };
    let served = async || {
        let resp = c.get(weir.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.headers().get("x-version").map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(served().await.as_deref(), Some("A"));
    assert_eq!(plugins().await["plugins"]["p"]["code"], "optimized", "a start waits for Cranelift");

    weir.rewrite(&config(new_module.to_str().unwrap(), "B"));
    let r: serde_json::Value = c.post(weir.admin_url("/reload")).fetch_json().await;
    let reloaded = r["generation"].as_u64().unwrap();
    assert_eq!(served().await.as_deref(), Some("B"), "the new module serves as soon as the reload answered");
    let logs = weir.logs();
    assert!(logs.contains("module compiled") && logs.contains("baseline"), "{logs}");

    // Then, without another reload: optimized code, in the cache, and every VM on it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = plugins().await;
        let p = &now["plugins"]["p"];
        if p["code"] == "optimized" && p["vms_on_baseline_code"] == 0 && p["vms_alive"].as_u64() >= Some(1) {
            assert!(now["generation"].as_u64() > Some(reloaded), "the VMs moved with a new generation: {now}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never optimized: {now}\n{}", weir.logs());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = weir.logs();
    assert!(logs.contains("module optimized") && logs.contains("optimized code ready"), "{logs}");
    assert_eq!(compiled_files(&cache), 2, "Cranelift's code of both modules is kept");
    assert_eq!(served().await.as_deref(), Some("B"));
}
