//! `/server_info` and `/clusters`.

use serde_json::{Value, json};

use crate::build_info;
use crate::generation::Generation;
use crate::state::State;

/// What this process is and how long it has run (Envoy's `/server_info`).
pub fn server_info(state: &State, generation: &Generation) -> Value {
    let (started, started_at) = state.started;
    let started_at = started_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "version": build_info::VERSION,
        "commit": build_info::COMMIT,
        "wasmtime": build_info::WASMTIME,
        "pingora": build_info::PINGORA,
        "proxy_wasm_abi": build_info::abi_versions(),
        "pid": std::process::id(),
        "started_at_unix": started_at,
        "uptime_seconds": started.elapsed().as_secs(),
        "generation": generation.id,
        "config_file": generation.loaded.path.as_ref().map(|p| p.display().to_string()),
        "workers": state.workers,
        "ready": state.lifecycle.ready(),
        "draining": state.lifecycle.draining(),
    })
}

/// Every cluster: its policy, its endpoints and their health, its counters.
pub fn clusters(state: &State, generation: &Generation) -> Value {
    let mut clusters = serde_json::Map::new();
    for (name, cluster) in &generation.clusters {
        let endpoints: Vec<Value> = cluster
            .endpoint_health()
            .into_iter()
            .map(|(address, healthy, outlier)| {
                let mut e = json!({ "address": address, "healthy": healthy });
                if let Some(o) = outlier {
                    e["ejected"] = json!(o.ejected);
                    e["ejections"] = json!(o.ejections);
                }
                e
            })
            .collect();
        clusters.insert(
            name.clone(),
            json!({
                "lb": if cluster.hashes() { "hash" } else { "round_robin" },
                "health_check": cluster.health_check_summary(),
                "outlier_detection": cluster.outlier_detection_summary(),
                "endpoints": endpoints,
                "stats": cluster.metrics(&state.metrics).counts(),
            }),
        );
    }
    json!({ "generation": generation.id, "clusters": clusters })
}
