//! Each worker thread's VM host: one task per proxy worker that keeps that worker's VMs and
//! root contexts in step with the published generation and runs their root-context work.
//!
//! - When a generation is published, every worker creates the VMs it names and starts each
//!   plugin's root context at once (`proxy_on_vm_start`, `proxy_on_configure`), as Envoy does
//!   on every worker when a configuration arrives: timers, queue receivers and root callouts
//!   work before the first request.
//! - Root contexts whose plugin no configuration and no request holds any more get
//!   `proxy_on_done`; VMs no generation uses are dropped once idle.
//! - Timers, shared-queue notifications and the callouts root contexts start are driven by
//!   [`weir_abi::Vm::poll`]; this task only sleeps until the next wake-up, and runs callouts.
//!
//! Pingora spawns each connection on a random worker of its no-steal runtime and gives no list
//! of them, so [`start_on_every_worker`] reaches each one by spawning on random workers until
//! all have answered.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use weir_abi::{PluginSpec, pool};

use crate::state::State;

/// Longest sleep of a worker's host task: how soon idle VMs and orphaned roots are noticed.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

thread_local! {
    /// Wakes this thread's host task (set once it runs).
    static WAKE: RefCell<Option<Arc<Notify>>> = const { RefCell::new(None) };
}

/// Wakes this thread's host task: a VM here has root-context work (a callout answered).
pub fn wake_this_thread() {
    WAKE.with(|w| {
        if let Some(n) = w.borrow().as_ref() {
            n.notify_one();
        }
    });
}

/// Starts the host task on each of the `threads` workers of the runtime this is called from.
/// Returns when every worker runs one.
pub async fn start_on_every_worker(state: &Arc<State>, threads: usize) {
    let mut seen = HashSet::new();
    // Coupon collecting: about threads × ln(threads) draws; bounded for safety.
    for _ in 0..threads.max(1) * 1000 {
        if seen.len() >= threads {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = state.clone();
        pingora_runtime::current_handle().spawn(async move {
            let fresh = WAKE.with(|w| w.borrow().is_none());
            if fresh {
                let wake = Arc::new(Notify::new());
                WAKE.with(|w| *w.borrow_mut() = Some(wake.clone()));
                tokio::spawn(host(state, wake, Role::Worker));
            }
            let _ = tx.send(std::thread::current().id());
        });
        if let Ok(id) = rx.await {
            seen.insert(id);
        }
    }
    tracing::warn!(target: "weir::vm", reached = seen.len(), threads, "not every worker thread could be reached; root contexts start there with the first request");
}

/// Which plugins a VM host runs.
#[derive(Clone, Copy)]
enum Role {
    /// A proxy worker: route filters and per-worker services.
    Worker,
    /// The services thread: singleton services.
    Singletons,
}

async fn host(state: Arc<State>, wake: Arc<Notify>, role: Role) {
    let mut published = state.subscribe();
    let (mut adopted, mut housekept) = (0, Instant::now());
    loop {
        let generation = state.current.load_full();
        // Wake-ups for root work (a notification, an answer) do not walk every plugin.
        if generation.id != adopted || housekept.elapsed() >= HOUSEKEEPING {
            let plugins = match role {
                Role::Worker => &generation.root_plugins,
                Role::Singletons => &generation.singletons,
            };
            adopt(plugins, &wake);
            (adopted, housekept) = (generation.id, Instant::now());
        }
        let next = run_root_work(&state, &generation).min(housekept + HOUSEKEEPING);
        tokio::select! {
            _ = published.changed() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
}

/// Makes this thread's VMs match `plugins`: a root context for each, started if missing; roots
/// nothing holds any more stopped; VMs nothing uses dropped.
fn adopt(plugins: &[Arc<PluginSpec>], wake: &Arc<Notify>) {
    for p in plugins {
        let backoff = (p.config.failure_policy == weir_abi::FailurePolicy::Reload).then_some(p.config.reload_backoff);
        pool::with_vm(&p.vm, backoff, |vm| {
            let Ok((vm, _)) = vm else { return };
            let waker = wake.clone();
            vm.inbox().set_waker(Arc::new(move || waker.notify_one()));
            if vm.root_of(p).is_none()
                && let Err(e) = vm.start_plugin(p)
            {
                tracing::warn!(target: "weir::vm", plugin = p.name(), error = %weir_abi::Chain(&e), "the plugin's root context did not start on this worker");
            }
        });
    }
    for spec in pool::specs() {
        pool::with_vm(&spec, None, |vm| {
            if let Ok((vm, _)) = vm {
                for orphan in vm.orphaned_plugins() {
                    vm.stop_plugin(&orphan);
                }
            }
        });
    }
    pool::sweep();
}

/// Runs every VM's due root work; returns when the next is due.
fn run_root_work(state: &Arc<State>, generation: &Arc<crate::generation::Generation>) -> Instant {
    let now = Instant::now();
    let mut next = now + HOUSEKEEPING;
    for spec in pool::specs() {
        let work = pool::with_vm(&spec, None, |vm| vm.ok().map(|(vm, _)| vm.poll(now)));
        let Some(work) = work else { continue };
        if let Some(f) = &work.failure {
            tracing::warn!(target: "weir::vm", vm_id = spec.config.vm_id, failure = %f, "a filter failed in a root callback");
        }
        if let Some(at) = work.next_wake {
            next = next.min(at);
        }
        for (_, c) in work.callouts {
            let Some(call) = crate::callout::start(state, generation, c, None) else { continue };
            tokio::spawn(crate::callout::deliver(spec.clone(), call));
        }
    }
    next
}

/// Prepares the proxy service's workers before it listens: the epoch ticker (the serving
/// process may be a forked daemon), a VM host on each of its `threads` workers, and the task
/// that marks the process serving once every plaintext listener accepts.
pub async fn start_vm_hosts(state: &Arc<State>, threads: usize, listeners: Vec<std::net::SocketAddr>) {
    state.runtime.ensure_ticker();
    start_on_every_worker(state, threads).await;
    tokio::spawn(await_listeners(state.clone(), listeners));
}

/// Runs the singleton services (Envoy's bootstrap `WasmService` with `singleton: true`) on
/// the one thread of its own background service, as Envoy runs them on its main thread.
pub struct Singletons {
    /// Shared state.
    pub state: Arc<State>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Singletons {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let wake = Arc::new(Notify::new());
        WAKE.with(|w| *w.borrow_mut() = Some(wake.clone()));
        tokio::select! {
            _ = host(self.state.clone(), wake, Role::Singletons) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// How long the listeners may take to accept before weir says so.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// Marks the process ready once every listener accepts a connection (the service binds them
/// after this task starts).
async fn await_listeners(state: Arc<State>, listeners: Vec<std::net::SocketAddr>) {
    let started = Instant::now();
    for addr in listeners {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if started.elapsed() > LISTEN_DEADLINE {
                state.lifecycle.fail(format!("the proxy listener {addr} does not accept connections"));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    state.lifecycle.set_serving();
}
