//! A generation: everything one version of the configuration needs to serve requests —
//! routes with their filter chains, clusters, and the validated plugins. Built off the request
//! path (compile or take from the module cache, instantiate a validation VM, run
//! `on_vm_start` and `on_configure` for every new filter) and published only when all
//! succeeded.
//!
//! VMs and plugins are keyed as Envoy keys them (`makeVmKey`, `makePluginKey` in
//! proxy-wasm-cpp-host): plugins whose VM key matches share one VM per worker, each a root
//! context; a reload keeps every VM whose key it still uses (with its globals) and every plugin
//! whose key is unchanged (with its root contexts). A plugin whose configuration changed is a
//! new root context in the kept VM; the old root gets `proxy_on_done` once nothing uses it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use weir_abi::{
    CalloutClusters, FailurePolicy, Limits, PluginConfig, PluginSpec, Runtime, TierUp, Vm, VmConfig, VmSpec,
};

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
    /// The access log's `filters` field for a request every filter passed.
    pub passed_summary: String,
    /// How long a request may go without progress (a pause, an upstream read).
    pub idle_timeout: std::time::Duration,
    /// The longest from the first try upstream to the end of the response.
    pub timeout: Option<std::time::Duration>,
    /// Its metadata (`xds.route_metadata`).
    pub metadata: Arc<weir_abi::Metadata>,
    /// Its own retry policy (else its cluster's).
    pub retry_policy: Option<Arc<crate::retry::Policy>>,
    /// Forward (and how), answer directly, or redirect.
    pub action: crate::route_action::Action,
    /// Its metrics, looked up at its first request.
    pub metrics: std::sync::OnceLock<crate::metrics::RouteMetrics>,
}

/// What makes two VMs the same VM (Envoy's vm key: vm_id, VM configuration and code, plus
/// weir's per-VM settings).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmKey {
    vm_id: String,
    sha256: String,
    configuration: Bytes,
    environment: Vec<(String, String)>,
    memory: usize,
    deadline: std::time::Duration,
    capabilities: Option<Vec<String>>,
}

/// What makes two plugins the same root context (Envoy's plugin key: root_id, configuration
/// and name; weir adds the failure policy, which Envoy keeps beside the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PluginKey {
    vm: u64,
    name: String,
    root_id: String,
    configuration: Bytes,
    failure_policy: FailurePolicy,
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
    /// Its VM's key.
    pub key: VmKey,
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Generation {
    /// Increases with every published generation.
    pub id: u64,
    /// Routes, in order.
    pub routes: Vec<Route>,
    /// Clusters by name.
    pub clusters: crate::FastMap<String, Arc<Cluster>>,
    /// Cluster metadata by cluster name (`xds.cluster_metadata`).
    pub cluster_metadata: crate::FastMap<String, Arc<weir_abi::Metadata>>,
    /// What filters read as `xds.node`.
    pub node: weir_abi::Node,
    /// Plugins by name.
    pub plugins: BTreeMap<String, PluginInfo>,
    /// Every root context every worker runs: route filters and per-worker services, once each.
    pub root_plugins: Vec<Arc<PluginSpec>>,
    /// Singleton services: run once, on the services thread.
    pub singletons: Vec<Arc<PluginSpec>>,
    /// Server certificates by listener (`None` for plaintext listeners).
    pub tls: Vec<Option<crate::tls::ListenerCerts>>,
    /// How `/metrics` names the metrics filters define.
    pub metric_naming: crate::metrics::filters::Naming,
    /// The configuration it was built from.
    pub loaded: Loaded,
    vms: HashMap<VmKey, Arc<VmSpec>>,
    specs: HashMap<PluginKey, Arc<PluginSpec>>,
}

impl Generation {
    /// The first route matching the request headers.
    pub fn route(&self, request: &impl crate::routes::RequestView) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(request))
    }

    /// Largest body a filter may buffer.
    pub fn max_buffered_body(&self) -> usize {
        self.loaded.config.server.max_buffered_body.0
    }

    /// Marks this generation's VMs that `next` does not use as replaced: each thread drops
    /// them when their last request ends.
    pub fn retire(&self, next: &Generation) {
        for vm in self.vms.values() {
            if !next.vms.values().any(|v| Arc::ptr_eq(v, vm)) {
                vm.retire();
            }
        }
    }

    /// Makes this generation's cluster names the ones its plugins' callouts may target (kept
    /// plugins had the previous generation's).
    pub fn own_clusters(&self) {
        let names: Vec<String> = self.clusters.keys().cloned().collect();
        for p in self.specs.values() {
            if let Some(c) = &p.config.clusters {
                c.set(names.iter().cloned());
            }
        }
    }
}

/// Builds and validates a generation from `loaded`, keeping what it can of `previous` (the
/// running generation). Runs the new filters' start-up callbacks on the calling thread (in a
/// throw-away VM, Envoy's canary), so call it off the request path.
///
/// # Errors
///
/// Every problem found, each naming the file, line and field.
/// Refuses a configuration whose VMs cannot all exist at once: every worker runs each VM, and
/// the running configuration's VMs that this one does not keep stay until their requests end.
/// Without this check the pool runs out silently and the routes of the VMs it cannot create
/// answer 503.
fn check_capacity(
    runtime: &Runtime,
    loaded: &Loaded,
    vms: &HashMap<VmKey, Arc<VmSpec>>,
    previous: Option<&Generation>,
) -> Option<ConfigError> {
    let workers = loaded.config.server.workers();
    let draining =
        previous.map_or(0, |g| g.vms.values().filter(|old| !vms.values().any(|new| Arc::ptr_eq(old, new))).count());
    // One more for the validation VM a reload instantiates.
    let needed = (vms.len() + draining) * workers + 1;
    let Some(slots) = runtime.instance_slots() else {
        // VMs made on demand: each reserves its address space when it is made.
        let fits = crate::address_space::instances_that_fit();
        return fits.filter(|fits| needed > *fits).map(|fits| {
            loaded.error(
                "server.vm_slots",
                format!(
                    "{needed} VM instances are needed but the process's address-space limit (RLIMIT_AS, `ulimit -v`) \
                     leaves room for about {fits}: each VM reserves about 4 GiB of address space (not memory). Remove \
                     the limit (`ulimit -v unlimited`; `LimitAS=infinity` under systemd)"
                ),
            )
        });
    };
    let slots = slots as usize;
    if needed <= slots {
        return None;
    }
    let running = if draining > 0 {
        format!(", plus {draining} VM(s) of the running configuration on each worker until their requests end")
    } else {
        String::new()
    };
    Some(loaded.error(
        "server.vm_slots",
        format!(
            "{needed} VM instances are needed ({} VM(s) on each of {workers} workers{running}, and one to validate a \
             module) but server.vm_slots is {slots}: raise server.vm_slots (each slot reserves address space for a \
             VM's memory; it applies at the next start), or run fewer workers or VMs (plugins that share a vm_id \
             share a VM)",
            vms.len()
        ),
    ))
}

pub fn build(runtime: &Runtime, loaded: Loaded, previous: Option<&Generation>) -> Result<Generation, Vec<ConfigError>> {
    let c = &loaded.config;
    let mut errors = Vec::new();
    let cluster_names: Vec<String> = c.clusters.keys().cloned().collect();

    let mut clusters = crate::FastMap::default();
    for (name, cc) in &c.clusters {
        match Cluster::new(name, cc) {
            Ok(cl) => {
                clusters.insert(name.clone(), Arc::new(cl));
            }
            Err(e) => errors.push(loaded.error(format!("clusters.{name}"), e.to_string())),
        }
    }

    let tls = load_certificates(&loaded, &mut errors);

    let mut vms: HashMap<VmKey, Arc<VmSpec>> = HashMap::new();
    let mut plugins = BTreeMap::new();
    let mut compiled = false;
    for (name, p) in &c.plugins {
        match load_plugin(runtime, &loaded, name, p, &mut vms, previous, &mut compiled) {
            Ok(info) => {
                plugins.insert(name.clone(), info);
            }
            Err(e) => errors.push(e),
        }
    }
    if compiled {
        crate::compile_memory::release();
    }
    if let Some(e) = check_capacity(runtime, &loaded, &vms, previous) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut specs: HashMap<PluginKey, Arc<PluginSpec>> = HashMap::new();
    let mut fresh: Vec<(String, Arc<PluginSpec>)> = Vec::new();
    let mut spec_for = |field: String, plugin: &str, config: &Option<serde_yaml_ng::Value>| -> Arc<PluginSpec> {
        let info = &plugins[plugin];
        let key = PluginKey {
            vm: info.vm.id(),
            name: plugin.to_owned(),
            root_id: c.plugins[plugin].root_id.clone(),
            configuration: Bytes::from(config::value_bytes(config)),
            failure_policy: info.failure_policy,
        };
        let kept = specs.get(&key).or_else(|| previous.and_then(|g| g.specs.get(&key))).cloned();
        if let Some(spec) = kept {
            specs.insert(key, spec.clone());
            return spec;
        }
        let spec = runtime.plugin(
            &info.vm,
            PluginConfig {
                name: key.name.clone(),
                root_id: key.root_id.clone(),
                configuration: key.configuration.clone(),
                failure_policy: info.failure_policy,
                clusters: Some(Arc::new(CalloutClusters::new(cluster_names.iter().cloned()))),
                ..Default::default()
            },
        );
        specs.insert(key, spec.clone());
        fresh.push((field, spec.clone()));
        spec
    };

    let mut routes = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("route-{i}"));
        let chain = r
            .filters
            .iter()
            .enumerate()
            .map(|(j, f)| spec_for(format!("routes[{i}].filters[{j}]"), &f.plugin, &f.config))
            .collect::<Vec<Arc<PluginSpec>>>();
        let passed_summary =
            crate::access_log::filter_summary(chain.iter().map(|p| (p.name(), weir_abi::FilterOutcome::Passed)));
        routes.push(Route {
            name,
            matcher: Matcher::new(&r.matcher),
            cluster: r.cluster.clone(),
            chain,
            passed_summary,
            idle_timeout: r.idle_timeout.0,
            timeout: r.timeout.map(|t| t.0),
            metadata: Arc::new(crate::metadata::metadata(&r.metadata)),
            retry_policy: r.retry_policy.as_ref().map(|p| Arc::new(crate::retry::Policy::new(p))),
            action: crate::route_action::Action::new(r),
            metrics: Default::default(),
        });
    }
    let mut root_plugins: Vec<Arc<PluginSpec>> = Vec::new();
    let mut singletons = Vec::new();
    for (i, svc) in c.services.iter().enumerate() {
        let spec = spec_for(format!("services[{i}]"), &svc.plugin, &svc.config);
        if svc.singleton { singletons.push(spec) } else { root_plugins.push(spec) }
    }
    for spec in routes.iter().flat_map(|r| r.chain.iter()) {
        if !root_plugins.iter().any(|p| Arc::ptr_eq(p, spec)) {
            root_plugins.push(spec.clone());
        }
    }

    // Validate every new filter configuration in a canary VM, as Envoy does; kept plugins
    // were validated when they were new.
    for (field, spec) in &fresh {
        if let Err(e) = validate(spec) {
            errors.push(loaded.error(format!("{field} (plugin `{}`)", spec.name()), weir_abi::Chain(&e).to_string()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let metric_naming = match crate::metrics::filters::Naming::new(&c.metrics) {
        Ok(n) => n,
        // Validation checked every rule; this is a defect, reported as a configuration error.
        Err(e) => return Err(vec![loaded.error("metrics.filter_tags", e)]),
    };
    let cluster_metadata =
        c.clusters.iter().map(|(name, cc)| (name.clone(), Arc::new(crate::metadata::metadata(&cc.metadata)))).collect();
    Ok(Generation {
        id: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
        routes,
        clusters,
        cluster_metadata,
        node: crate::metadata::node(&c.node),
        plugins,
        root_plugins,
        singletons,
        tls,
        metric_naming,
        loaded,
        vms,
        specs,
    })
}

/// Each TLS listener's certificates, read and checked now: a file that is missing, unreadable
/// or does not match its key fails the configuration, not a later handshake.
fn load_certificates(loaded: &Loaded, errors: &mut Vec<ConfigError>) -> Vec<Option<crate::tls::ListenerCerts>> {
    let base = loaded.base_dir();
    let mut all = Vec::new();
    for (i, listener) in loaded.config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else {
            all.push(None);
            continue;
        };
        let pairs = match tls.pairs() {
            Ok(p) => p,
            Err(message) => {
                errors.push(loaded.error(format!("listeners[{i}].tls"), message));
                all.push(None);
                continue;
            }
        };
        let mut certs = Vec::new();
        for (j, pair) in pairs.iter().enumerate() {
            match crate::tls::load(&base.join(&pair.cert), &base.join(&pair.key)) {
                Ok(c) => certs.push(c),
                Err(e) => {
                    let message = weir_abi::Chain(&e).to_string();
                    errors.push(loaded.error(format!("listeners[{i}].tls (certificate {})", j + 1), message));
                }
            }
        }
        all.push(Some(crate::tls::ListenerCerts(certs)));
    }
    all
}

fn validate(spec: &Arc<PluginSpec>) -> Result<(), weir_abi::StartError> {
    let mut vm = Vm::new(&spec.vm)?;
    vm.start_plugin(spec)?;
    vm.stop_plugin(spec);
    Ok(())
}

fn load_plugin(
    runtime: &Runtime,
    loaded: &Loaded,
    name: &str,
    p: &config::Plugin,
    vms: &mut HashMap<VmKey, Arc<VmSpec>>,
    previous: Option<&Generation>,
    compiled: &mut bool,
) -> Result<PluginInfo, ConfigError> {
    let field = format!("plugins.{name}");
    let bytes: Vec<u8> = match (&p.builtin, &p.module) {
        (Some(b), _) => crate::builtin::module(b)
            .ok_or_else(|| {
                loaded.error(
                    format!("{field}.builtin"),
                    "this weir binary was built without its built-in filters (WEIR_NO_BUILTINS was set at build time)",
                )
            })?
            .to_vec(),
        (None, Some(path)) => {
            let full = loaded.base_dir().join(path);
            std::fs::read(&full)
                .map_err(|e| loaded.error(format!("{field}.module"), format!("cannot read {}: {e}", full.display())))?
        }
        (None, None) => return Err(loaded.error(field, "needs `builtin` or `module`")),
    };
    if let Some(expected) = &p.sha256 {
        let actual = hex(&Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(
                loaded.error(format!("{field}.sha256"), format!("the module's sha256 is {actual}, not {expected}"))
            );
        }
    }
    // A start waits for the configured compiler's code (readiness says when it is there); a
    // reload, under `server.compiler: tiered`, serves a new module on baseline code first.
    let loading = if previous.is_some() {
        runtime.load_module_tiered(&bytes)
    } else {
        runtime.load_module(&bytes).map(|m| (m, None))
    };
    let (module, tier_up) = loading.map_err(|e| {
        loaded.error(format!("{field}.module"), format!("cannot load the module: {}", weir_abi::Chain(&e)))
    })?;
    if let Some(job) = tier_up {
        optimize_in_background(name, job);
    }
    match module.origin {
        weir_abi::ModuleOrigin::Compiled(took) => {
            *compiled = true;
            let code = module.tier().name();
            tracing::debug!(target: "weir::reload", plugin = name, code, took_ms = took.as_millis() as u64, "module compiled")
        }
        weir_abi::ModuleOrigin::DiskCache => {
            tracing::debug!(target: "weir::reload", plugin = name, "module loaded from the module cache")
        }
    }
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
    let key = VmKey {
        vm_id: vm_config.vm_id.clone(),
        sha256: module.sha256_hex(),
        configuration: vm_config.configuration.clone(),
        environment: vm_config.environment.clone(),
        memory: vm_config.limits.memory_bytes,
        deadline: vm_config.limits.callback_deadline,
        capabilities: p.allowed_capabilities.as_ref().map(|c| {
            let mut c = c.clone();
            c.sort();
            c
        }),
    };
    // A VM that failed is not kept: a reload is how an operator gets fresh instances. Nor is
    // one with instances on baseline code once its module's optimized code is ready: a reload
    // is also how they move to it.
    let healthy = |vm: &&Arc<VmSpec>| vm.stats().failures.load(Ordering::Relaxed) == 0 && !vm.behind_its_module();
    let kept = vms.get(&key).or_else(|| previous.and_then(|g| g.vms.get(&key)).filter(healthy)).cloned();
    let vm = match kept {
        Some(vm) => vm,
        None => {
            runtime.vm(module.clone(), vm_config).map_err(|e| loaded.error(format!("{field}.limits"), e.to_string()))?
        }
    };
    vms.insert(key.clone(), vm.clone());
    let failure_policy = p.failure_policy;
    Ok(PluginInfo { sha256: module.sha256_hex(), abi: module.abi.to_string(), vm, failure_policy, key })
}

/// Runs a module's Cranelift compile on a thread of its own, so that the reload which brought
/// the module does not wait for it; once it is done, the reloader moves the module's VMs to
/// the optimized code.
fn optimize_in_background(plugin: &str, job: TierUp) {
    let name = plugin.to_owned();
    let spawned = std::thread::Builder::new().name("weir-optimize".into()).spawn(move || match job.run() {
        Ok(took) => {
            tracing::info!(
                target: "weir::reload",
                plugin = name,
                took_ms = took.as_millis() as u64,
                "module optimized: its VMs move to the optimized code"
            );
            crate::reload::optimized_code_ready();
        }
        Err(e) => tracing::warn!(
            target: "weir::reload",
            plugin = name,
            "the module's optimizing compile failed, it keeps its baseline code: {}",
            weir_abi::Chain(&e)
        ),
    });
    if let Err(e) = spawned {
        tracing::warn!(target: "weir::reload", plugin, "cannot start the optimizing compile, the module keeps its baseline code: {e}");
    }
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
                format!("unknown capability `{n}`: not a hostcall or callback weir knows (see docs/COMPATIBILITY.md)"),
            ));
        }
    }
    Ok(names.iter().cloned().collect())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
