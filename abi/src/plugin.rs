//! What the host runs: a compiled module with its VM configuration ([`VmSpec`], one instance
//! per thread) and the filter configurations that share that VM ([`PluginSpec`], one root
//! context each). Both are immutable and shared with `Arc`; a reload builds new ones.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::limits::Limits;
use crate::module::CompiledModule;
use crate::runtime::Runtime;
use crate::types::FailurePolicy;

static NEXT_SPEC_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_SPEC_ID.fetch_add(1, Ordering::Relaxed)
}

/// How a VM is set up (Envoy's `vm_config`).
#[derive(Debug, Clone, Default)]
pub struct VmConfig {
    /// Names the VM: shared data and shared queues are namespaced by it (`plugin_vm_id`).
    pub vm_id: String,
    /// Passed to `proxy_on_vm_start` (buffer VM_CONFIGURATION).
    pub configuration: Bytes,
    /// The only environment variables WASI `environ_get` shows.
    pub environment: Vec<(String, String)>,
    /// Memory and CPU limits.
    pub limits: Limits,
    /// Envoy's `capability_restriction_config`: when set, the only hostcalls and callbacks the
    /// module may use. A hostcall not listed answers INTERNAL_FAILURE (a WASI call errno 76,
    /// NOTCAPABLE) and a callback not listed is never called. `None`: no restriction.
    pub allowed_capabilities: Option<Arc<std::collections::HashSet<String>>>,
}

impl VmConfig {
    /// False when an allow-list is set and does not name `capability`.
    pub fn allows(&self, capability: &str) -> bool {
        self.allowed_capabilities.as_ref().is_none_or(|allowed| allowed.contains(capability))
    }
}

/// A module plus its VM configuration: the unit that is instantiated once per thread.
#[derive(Debug)]
pub struct VmSpec {
    pub(crate) id: u64,
    /// The compiled module.
    pub module: Arc<CompiledModule>,
    /// The VM configuration.
    pub config: VmConfig,
    pub(crate) runtime: Runtime,
    pub(crate) retired: std::sync::atomic::AtomicBool,
    pub(crate) stats: Arc<VmStats>,
}

/// Live counts of one [`VmSpec`]'s instances, over all threads.
#[derive(Debug, Default)]
pub struct VmStats {
    /// Instances alive.
    pub instances: AtomicU64,
    /// Of those, instances running Winch's code ([`crate::CodeTier::Baseline`]).
    pub baseline_instances: AtomicU64,
    /// Linear memory of the live instances, in bytes.
    pub memory_bytes: AtomicU64,
    /// Instances that failed (trap, deadline, memory limit).
    pub failures: AtomicU64,
    /// Each live instance's linear memory (base address, length), for [`VmStats::resident_bytes`].
    pub(crate) regions: std::sync::Mutex<std::collections::HashMap<u64, (usize, usize)>>,
}

impl VmStats {
    /// Bytes of the live instances' linear memory that are in RAM now (pages the guest
    /// touched), as the kernel reports them (`mincore`): what the VMs cost, where
    /// `memory_bytes` is what they could touch. A region that is not mapped counts 0.
    pub fn resident_bytes(&self) -> u64 {
        let regions: Vec<(usize, usize)> =
            self.regions.lock().map(|r| r.values().copied().collect()).unwrap_or_default();
        regions.into_iter().map(|(base, len)| crate::resident::resident_bytes(base, len)).sum()
    }
}

impl VmSpec {
    /// A process-unique id, used to key per-thread instances.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Marks the spec as replaced: each thread drops its instance once no request uses it.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// True after [`VmSpec::retire`].
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// True when some of its instances run Winch's code while the module's optimized code is
    /// ready: new instances would run faster code (`server.compiler: tiered`).
    pub fn behind_its_module(&self) -> bool {
        self.stats.baseline_instances.load(Ordering::Relaxed) > 0 && self.module.tier() == crate::CodeTier::Optimized
    }

    /// Live counts of this spec's instances.
    pub fn stats(&self) -> &VmStats {
        &self.stats
    }

    /// The runtime this VM belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

/// How one filter is configured (Envoy's `PluginConfig` minus the VM part).
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The filter's name (`plugin_name`), shown in logs and metrics.
    pub name: String,
    /// Selects the root implementation in multi-root SDKs (`plugin_root_id`); empty by default.
    pub root_id: String,
    /// Passed to `proxy_on_configure` (buffer PLUGIN_CONFIGURATION).
    pub configuration: Bytes,
    /// What happens to requests when the VM fails.
    pub failure_policy: FailurePolicy,
    /// With [`FailurePolicy::Reload`]: the wait before the first fresh VM; it doubles after
    /// each failure in a row, up to 30 s. Default 1 s (Envoy's default base interval).
    pub reload_backoff: Duration,
    /// The clusters its callouts may target (those of the configuration it serves in);
    /// `None`: the runtime's list ([`crate::Runtime::set_clusters`]).
    pub clusters: Option<Arc<CalloutClusters>>,
}

/// The cluster names a plugin's callouts may target. A reload that keeps the plugin (and its
/// root contexts) gives it the new configuration's names when that configuration is published.
#[derive(Debug, Default)]
pub struct CalloutClusters(std::sync::RwLock<Arc<HashSet<String>>>);

impl CalloutClusters {
    /// A list of `names`.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self(std::sync::RwLock::new(Arc::new(names.into_iter().collect())))
    }

    /// Replaces the names.
    pub fn set(&self, names: impl IntoIterator<Item = String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(names.into_iter().collect());
    }

    /// True when `name` is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).contains(name)
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            root_id: String::new(),
            configuration: Bytes::new(),
            failure_policy: FailurePolicy::FailClosed,
            reload_backoff: Duration::from_secs(1),
            clusters: None,
        }
    }
}

/// One filter: a root context with its configuration inside the VM of [`PluginSpec::vm`].
#[derive(Debug)]
pub struct PluginSpec {
    pub(crate) id: u64,
    /// The VM it runs in.
    pub vm: Arc<VmSpec>,
    /// Its configuration.
    pub config: PluginConfig,
}

impl PluginSpec {
    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The filter's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}
