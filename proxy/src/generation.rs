//! A generation: everything one version of the configuration needs to serve requests —
//! routes with their filter chains, clusters, and the validated plugins. Built off the request
//! path (compile or take from the module cache, instantiate a validation VM, run
//! `on_vm_start` and `on_configure` for every filter) and published only when all succeeded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use weir_abi::{FailurePolicy, Limits, PluginConfig, PluginSpec, Runtime, Vm, VmConfig, VmSpec};

use crate::clusters::Cluster;
use crate::config::{self, ConfigError, Loaded};
use crate::routes::Matcher;

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Its conditions.
    pub matcher: Matcher,
    /// The default cluster.
    pub cluster: String,
    /// Its filters, in request order.
    pub chain: Vec<Arc<PluginSpec>>,
}

/// A plugin as loaded, for the admin listing.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// sha256 of the module.
    pub sha256: String,
    /// ABI version.
    pub abi: String,
    /// The VM (shared by every route filter using the plugin).
    pub vm: Arc<VmSpec>,
    /// Failure policy.
    pub failure_policy: FailurePolicy,
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Generation {
    /// Increases with every published generation.
    pub id: u64,
    /// Routes, in order.
    pub routes: Vec<Route>,
    /// Clusters by name.
    pub clusters: HashMap<String, Arc<Cluster>>,
    /// Plugins by name.
    pub plugins: BTreeMap<String, PluginInfo>,
    /// The configuration it was built from.
    pub loaded: Loaded,
}

impl Generation {
    /// The first route matching the request headers.
    pub fn route(&self, headers: &weir_abi::HeaderMap) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(headers))
    }

    /// Largest body a filter may buffer.
    pub fn max_buffered_body(&self) -> usize {
        self.loaded.config.server.max_buffered_body.0
    }

    /// Marks this generation's VMs as replaced: each thread drops them when their last request
    /// ends.
    pub fn retire(&self) {
        for p in self.plugins.values() {
            p.vm.retire();
        }
    }
}

/// Builds and validates a generation from `loaded`. Runs the filters' start-up callbacks on
/// the calling thread (in a throw-away VM), so call it off the request path.
///
/// # Errors
///
/// Every problem found, each naming the file, line and field.
pub fn build(runtime: &Runtime, loaded: Loaded) -> Result<Generation, Vec<ConfigError>> {
    let c = &loaded.config;
    let mut errors = Vec::new();
    // Filters may start callouts while they are validated: let them reach the new clusters.
    runtime.add_clusters(c.clusters.keys().cloned());

    let mut clusters = HashMap::new();
    for (name, cc) in &c.clusters {
        match Cluster::new(name, cc) {
            Ok(cl) => {
                clusters.insert(name.clone(), Arc::new(cl));
            }
            Err(e) => errors.push(loaded.error(format!("clusters.{name}"), name, "", e.to_string())),
        }
    }

    let mut plugins = BTreeMap::new();
    for (name, p) in &c.plugins {
        match load_plugin(runtime, &loaded, name, p) {
            Ok(info) => {
                plugins.insert(name.clone(), info);
            }
            Err(e) => errors.push(e),
        }
    }

    let mut routes = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("route-{i}"));
        let mut chain = Vec::new();
        for f in &r.filters {
            let Some(info) = plugins.get(&f.plugin) else { continue };
            let plugin_cfg = &c.plugins[&f.plugin];
            chain.push(runtime.plugin(
                &info.vm,
                PluginConfig {
                    name: f.plugin.clone(),
                    root_id: plugin_cfg.root_id.clone(),
                    configuration: Bytes::from(config::value_bytes(&f.config)),
                    failure_policy: info.failure_policy,
                    ..Default::default()
                },
            ));
        }
        routes.push(Route { name, matcher: Matcher::new(&r.matcher), cluster: r.cluster.clone(), chain });
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Validate every filter configuration in a canary VM per plugin, as Envoy does.
    for (i, r) in routes.iter().enumerate() {
        for (j, spec) in r.chain.iter().enumerate() {
            if let Err(e) = validate(spec) {
                errors.push(loaded.error(
                    format!("routes[{i}].filters[{j}] (plugin `{}`)", spec.name()),
                    "plugin",
                    spec.name(),
                    e,
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Generation { id: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed), routes, clusters, plugins, loaded })
}

fn validate(spec: &Arc<PluginSpec>) -> Result<(), String> {
    let mut vm = Vm::new(&spec.vm).map_err(|e| e.to_string())?;
    vm.start_plugin(spec).map_err(|e| e.to_string())?;
    vm.stop_plugin(spec);
    Ok(())
}

fn load_plugin(runtime: &Runtime, loaded: &Loaded, name: &str, p: &config::Plugin) -> Result<PluginInfo, ConfigError> {
    let field = format!("plugins.{name}");
    let bytes: Vec<u8> = match (&p.builtin, &p.module) {
        (Some(b), _) => crate::builtin::module(b)
            .ok_or_else(|| {
                loaded.error(
                    format!("{field}.builtin"),
                    "builtin",
                    b,
                    "this weir binary was built without its built-in filters (WEIR_NO_BUILTINS was set at build time)",
                )
            })?
            .to_vec(),
        (None, Some(path)) => {
            let full = loaded.base_dir().join(path);
            std::fs::read(&full).map_err(|e| {
                loaded.error(
                    format!("{field}.module"),
                    "module",
                    &path.display().to_string(),
                    format!("cannot read {}: {e}", full.display()),
                )
            })?
        }
        (None, None) => return Err(loaded.error(field, name, "", "needs `builtin` or `module`")),
    };
    if let Some(expected) = &p.sha256 {
        let actual = hex(&Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(loaded.error(
                format!("{field}.sha256"),
                "sha256",
                expected,
                format!("the module's sha256 is {actual}, not {expected}"),
            ));
        }
    }
    let module = runtime
        .load_module(&bytes)
        .map_err(|e| loaded.error(format!("{field}.module"), name, "", format!("cannot load the module: {e}")))?;
    let allowed_capabilities = match &p.allowed_capabilities {
        None => None,
        Some(names) => Some(Arc::new(capabilities(runtime, loaded, &field, names)?)),
    };
    let vm_config = VmConfig {
        allowed_capabilities,
        vm_id: p.vm_id.clone().unwrap_or_else(|| name.to_owned()),
        configuration: Bytes::from(config::value_bytes(&p.vm_config)),
        environment: p.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        limits: Limits {
            memory_bytes: p.limits.memory.0,
            callback_deadline: p.limits.deadline.0,
            ..Default::default()
        },
    };
    let vm = runtime
        .vm(module.clone(), vm_config)
        .map_err(|e| loaded.error(format!("{field}.limits"), "memory", "", e.to_string()))?;
    let failure_policy = match p.failure_policy {
        config::FailurePolicy::FailClosed => FailurePolicy::FailClosed,
        config::FailurePolicy::FailOpen => FailurePolicy::FailOpen,
        config::FailurePolicy::Reload => FailurePolicy::Reload,
    };
    Ok(PluginInfo { sha256: module.sha256_hex(), abi: module.abi.to_string(), vm, failure_policy })
}

/// An allow-list of capabilities, each a hostcall weir provides or a callback it knows (a
/// misspelt name would otherwise silently disable what it meant to allow).
fn capabilities(
    runtime: &Runtime,
    loaded: &Loaded,
    field: &str,
    names: &[String],
) -> Result<std::collections::HashSet<String>, ConfigError> {
    for n in names {
        let known = runtime.provides("env", n)
            || runtime.provides("wasi_snapshot_preview1", n)
            || weir_abi::CALLBACKS.contains(&n.as_str());
        if !known {
            return Err(loaded.error(
                format!("{field}.allowed_capabilities"),
                n,
                "",
                format!("unknown capability `{n}`: not a hostcall or callback weir knows (see docs/COMPATIBILITY.md)"),
            ));
        }
    }
    Ok(names.iter().cloned().collect())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
