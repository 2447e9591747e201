//! One VM per (thread, [`VmSpec`]), as Envoy keeps one instance per worker. A VM never leaves
//! the thread that created it; requests reach it through [`crate::FilterChain`], timers and
//! queues through [`with_vm`]. A failed VM stays failed until a plugin with the reload policy
//! asks for a fresh one after its backoff.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Failure, FailureKind};
use crate::plugin::VmSpec;
use crate::vm::Vm;

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// Longest wait between two reload attempts.
const MAX_RELOAD_BACKOFF: Duration = Duration::from_secs(30);

struct Slot {
    spec: Arc<VmSpec>,
    vm: Option<Vm>,
    /// Process-unique id of the current instance: contexts made in another instance are gone.
    instance: u64,
    failure: Option<Failure>,
    failed_at: Option<Instant>,
    failures_in_a_row: u32,
    users: usize,
}

thread_local! {
    static SLOTS: RefCell<crate::FastMap<u64, Slot>> = RefCell::new(Default::default());
}

/// A VM ready for a call, or why there is none.
pub(crate) type VmRef<'a> = Result<(&'a mut Vm, u64), Failure>;

/// Runs `f` with this thread's VM for `spec`, creating it if needed. With `reload_backoff`
/// (the caller's policy is reload), a failed VM is replaced once the backoff has passed.
pub fn with_vm<R>(spec: &Arc<VmSpec>, reload_backoff: Option<Duration>, f: impl FnOnce(VmRef<'_>) -> R) -> R {
    SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        // Every callback comes here: a live VM that has not failed is the whole answer.
        if let Some(slot) = slots.get_mut(&spec.id)
            && slot.failure.is_none()
            && let Some(vm) = slot.vm.as_mut()
            && vm.failure().is_none()
        {
            return f(Ok((vm, slot.instance)));
        }
        let slot = slots.entry(spec.id).or_insert_with(|| Slot {
            spec: spec.clone(),
            vm: None,
            instance: 0,
            failure: None,
            failed_at: None,
            failures_in_a_row: 0,
            users: 0,
        });
        if let Some(vm) = &slot.vm
            && let Some(failure) = vm.failure()
            && slot.failure.is_none()
        {
            slot.failure = Some(failure.clone());
            slot.failed_at = Some(Instant::now());
            slot.failures_in_a_row += 1;
        }
        let due = match (reload_backoff, slot.failed_at) {
            (Some(base), Some(at)) => {
                let backoff =
                    base.saturating_mul(1 << slot.failures_in_a_row.saturating_sub(1).min(16)).min(MAX_RELOAD_BACKOFF);
                at.elapsed() >= backoff
            }
            _ => false,
        };
        if slot.vm.is_none() && slot.failure.is_none() || due {
            slot.vm = None;
            match Vm::new(&slot.spec) {
                Ok(vm) => {
                    slot.vm = Some(vm);
                    slot.instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
                    slot.failure = None;
                    slot.failed_at = None;
                }
                Err(e) => {
                    slot.failure = Some(Failure { kind: FailureKind::Other, message: crate::Chain(&e).to_string() });
                    slot.failed_at = Some(Instant::now());
                    slot.failures_in_a_row += 1;
                }
            }
        }
        if let Some(failure) = &slot.failure {
            return f(Err(failure.clone()));
        }
        let instance = slot.instance;
        match slot.vm.as_mut() {
            Some(vm) => f(Ok((vm, instance))),
            None => f(Err(Failure { kind: FailureKind::Other, message: "no VM".into() })),
        }
    })
}

/// Runs `f` with this thread's instance `instance` of `spec`, failed or not; `None` when that
/// instance is gone (replaced or dropped).
pub(crate) fn with_instance<R>(spec: &Arc<VmSpec>, instance: u64, f: impl FnOnce(Option<&mut Vm>) -> R) -> R {
    SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let vm = slots.get_mut(&spec.id).filter(|s| s.instance == instance).and_then(|s| s.vm.as_mut());
        f(vm)
    })
}

/// The specs of this thread's VMs (live or failed).
pub fn specs() -> Vec<Arc<VmSpec>> {
    SLOTS.with(|s| s.borrow().values().map(|slot| slot.spec.clone()).collect())
}

/// Counts a request that uses `spec` on this thread.
pub(crate) fn acquire(spec: &Arc<VmSpec>) {
    let counted = SLOTS.with(|s| match s.borrow_mut().get_mut(&spec.id) {
        Some(slot) => {
            slot.users += 1;
            true
        }
        None => false,
    });
    if !counted {
        // The thread's first request for this VM: make it, then count.
        with_vm(spec, None, |_| ());
        SLOTS.with(|s| {
            if let Some(slot) = s.borrow_mut().get_mut(&spec.id) {
                slot.users += 1;
            }
        });
    }
}

/// Ends a request's use of `spec`; drops the VM when its spec was retired and nobody uses it
/// (other retired VMs go at the worker's next [`sweep`]).
pub(crate) fn release(spec_id: u64) {
    let unused_and_retired = SLOTS.with(|s| match s.borrow_mut().get_mut(&spec_id) {
        Some(slot) => {
            slot.users = slot.users.saturating_sub(1);
            slot.users == 0 && slot.spec.is_retired()
        }
        None => false,
    });
    if unused_and_retired {
        sweep();
    }
}

/// Drops this thread's VMs whose spec is retired and no request uses. Returns how many.
pub fn sweep() -> usize {
    SLOTS.with(|s| {
        let mut slots = s.borrow_mut();
        let before = slots.len();
        slots.retain(|_, slot| {
            let keep = !(slot.users == 0 && slot.spec.is_retired());
            if !keep && let Some(vm) = slot.vm.as_mut() {
                // The plugins go before their VM: `proxy_on_done` for every root context.
                for (plugin, _) in vm.roots() {
                    vm.stop_plugin(&plugin);
                }
            }
            keep
        });
        before - slots.len()
    })
}

/// What this thread holds, for metrics and admin listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Live VM instances.
    pub vms: usize,
    /// Failed instances kept for their policy.
    pub failed: usize,
    /// Linear memory of all live instances, in bytes.
    pub memory_bytes: usize,
}

/// This thread's VM counts.
pub fn stats() -> PoolStats {
    SLOTS.with(|s| {
        let slots = s.borrow();
        let mut st = PoolStats::default();
        for slot in slots.values() {
            match &slot.vm {
                Some(vm) if vm.failure().is_none() => {
                    st.vms += 1;
                    st.memory_bytes += vm.memory_bytes();
                }
                _ if slot.failure.is_some() => st.failed += 1,
                _ => {}
            }
        }
        st
    })
}
