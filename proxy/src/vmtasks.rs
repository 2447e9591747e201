//! Root-context work of each worker's VMs: timers (`proxy_on_tick` at the period each root
//! asked for), shared-queue notifications (`proxy_on_queue_ready`) and the callouts root
//! contexts start. One task per (worker thread, VM), started when the VM first serves a request
//! on that thread, ended when its generation is retired.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_abi::{PluginSpec, VmSpec, pool};

use crate::state::State;

/// How often a VM's task looks for new or changed tick periods.
const POLL: Duration = Duration::from_millis(200);

thread_local! {
    static RUNNING: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Starts the task of each VM of `plugins` on this thread, if not running yet.
pub fn ensure(state: &Arc<State>, plugins: &[Arc<PluginSpec>]) {
    for p in plugins {
        let started = RUNNING.with(|r| r.borrow_mut().insert(p.vm.id()));
        if started {
            tokio::spawn(run(state.clone(), p.vm.clone()));
        }
    }
}

async fn run(state: Arc<State>, spec: Arc<VmSpec>) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let waker = wake.clone();
    pool::with_vm(&spec, None, |vm| {
        if let Ok((vm, _)) = vm {
            vm.inbox().set_waker(Arc::new(move || waker.notify_one()));
        }
    });
    let mut due: HashMap<u32, Instant> = HashMap::new();
    while !spec.is_retired() {
        let now = Instant::now();
        let mut next = now + POLL;
        let callouts = pool::with_vm(&spec, None, |vm| {
            let Ok((vm, _)) = vm else { return Vec::new() };
            if let Err(f) = vm.deliver_queue_ready() {
                tracing::warn!(target: "weir::vm", failure = %f, "filter failed in proxy_on_queue_ready");
            }
            for (_, root) in vm.roots() {
                let Some(period) = vm.tick_period(root) else {
                    due.remove(&root);
                    continue;
                };
                let at = *due.entry(root).or_insert(now + period);
                if at <= now {
                    if let Err(f) = vm.on_tick(root) {
                        tracing::warn!(target: "weir::vm", failure = %f, "filter failed in proxy_on_tick");
                    }
                    due.insert(root, Instant::now() + period);
                }
                next = next.min(due[&root]);
            }
            vm.take_callouts()
        });
        if !callouts.is_empty() {
            let generation = state.current.load_full();
            for (_, c) in callouts {
                let Some(work) = crate::callout::start(&state, &generation, c) else { continue };
                tokio::spawn(crate::callout::deliver(spec.clone(), work));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = wake.notified() => {}
        }
    }
    RUNNING.with(|r| r.borrow_mut().remove(&spec.id()));
    pool::sweep();
}
