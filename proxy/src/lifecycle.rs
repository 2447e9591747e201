//! The serving process's life after start: readiness, the requests in flight, and the
//! shutdown sequence weir runs on SIGINT, SIGTERM and SIGQUIT instead of Pingora's.
//!
//! Pingora's own sequence sleeps the whole grace period even when nothing is in flight, and on
//! SIGINT shuts its runtimes down while accept loops still run, which can leave a loop polling
//! a listener whose runtime is gone, logging an error per iteration forever. weir's sequence:
//!
//! 1. The first SIGINT or SIGTERM marks the process draining: `/ready` answers 503 and
//!    responses carry `connection: close`. The listeners stay open for `server.drain_delay`,
//!    so a load balancer (or Kubernetes' endpoint removal) can stop sending first.
//! 2. The proxy's listeners close (it runs on a shutdown watch of weir's own, separate from
//!    Pingora's); idle keep-alive connections close with them.
//! 3. weir waits until no request is in flight, at most `server.grace_period_seconds`, then
//!    hands over to Pingora with a zero grace period: every accept loop is gone by then.
//!
//! SIGQUIT (graceful upgrade) sends the listening sockets to the new process, keeps accepting
//! beside it for [`UPGRADE_OVERLAP`], then drains as above. A second SIGINT or SIGTERM at any
//! point exits at once, and once the drain is done, background work that still runs (a
//! reload compiling its modules) gets [`AFTER_DRAIN`] before the process exits anyway. A service that cannot start ([`Lifecycle::fail`]) ends the
//! process with status 1 the same way.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use pingora::server::{ListenFds, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

/// How long the old process keeps accepting beside the new one after handing its listening
/// sockets over (Pingora's `CLOSE_TIMEOUT`): time for the new process to start accepting.
pub const UPGRADE_OVERLAP: Duration = Duration::from_secs(5);

/// How long the old process of an upgrade keeps trying to hand its sockets over.
pub const UPGRADE_WAIT: Duration = Duration::from_secs(30);

/// How long stopping may take once the drain is done, whatever still runs.
const AFTER_DRAIN: Duration = Duration::from_secs(2);

/// Removes the pid file if it still names this process (a newer process of an upgrade may
/// have written its own).
pub fn remove_own_pid_file(path: &str) {
    let ours = std::fs::read_to_string(path).is_ok_and(|t| t.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// How long Pingora may take to stop its runtimes once weir's sequence is done.
pub const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

/// The process's serving state, shared through [`crate::state::State`].
pub struct Lifecycle {
    /// Every worker runs its VMs and the proxy listeners accept.
    serving: AtomicBool,
    /// A shutdown started: `/ready` is false and connections are not kept alive.
    draining: AtomicBool,
    /// Closes the proxy's listeners (the proxy service's shutdown watch).
    stop_accepting: watch::Sender<bool>,
    /// Requests between their first header and the end of their log phase.
    in_flight: AtomicUsize,
    /// Wakes whoever waits on the state: a request or a connection ended, serving started.
    pub(crate) changed: Notify,
    /// Proxy connections open (idle keep-alive ones and fresh ones included).
    pub(crate) connections: AtomicUsize,
    /// The proxy service ended: its accept loops and its idle connections are gone.
    proxy_stopped: AtomicBool,
    /// The listening sockets, for a graceful upgrade.
    fds: Mutex<Option<ListenFds>>,
    /// Why the process cannot serve, once a service failed to start.
    failure: Mutex<Option<String>>,
    failed: Notify,
    /// The process's exit status.
    exit_code: AtomicI32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            serving: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            stop_accepting: watch::channel(false).0,
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
            connections: AtomicUsize::new(0),
            proxy_stopped: AtomicBool::new(false),
            fds: Mutex::new(None),
            failure: Mutex::new(None),
            failed: Notify::new(),
            exit_code: AtomicI32::new(0),
        }
    }
}

/// A request in flight: counted from creation until dropped.
pub struct InFlight(Arc<crate::state::State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let lifecycle = &self.0.lifecycle;
        lifecycle.in_flight.fetch_sub(1, Ordering::AcqRel);
        crate::connections::request_ended();
        // Only a drain waits on these counts.
        if lifecycle.draining() {
            lifecycle.changed.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// What `/ready` reports: serving and not draining.
    pub fn ready(&self) -> bool {
        self.serving.load(Ordering::Acquire) && !self.draining()
    }

    /// Marks the process as serving (every listener accepts, every worker runs its VMs).
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// A shutdown started: new responses close their connection.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn enter(state: &Arc<crate::state::State>) -> InFlight {
        state.lifecycle.in_flight.fetch_add(1, Ordering::AcqRel);
        crate::connections::request_started();
        InFlight(state.clone())
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The shutdown watch the proxy service runs on instead of Pingora's.
    pub fn proxy_shutdown_watch(&self) -> ShutdownWatch {
        let mut watch = self.stop_accepting.subscribe();
        if *watch.borrow() {
            // The drain started before the proxy listened: its accept loops end at once.
            watch.mark_changed();
        }
        watch
    }

    /// Keeps the listening sockets for a graceful upgrade.
    pub fn keep_listen_fds(&self, fds: Option<ListenFds>) {
        *self.fds.lock().unwrap_or_else(|p| p.into_inner()) = fds;
    }

    /// A service cannot start: the process logs `reason` once and exits with status 1.
    pub fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if failure.is_none() {
            tracing::error!(target: "weir::server", "{reason}; exiting");
            *failure = Some(reason);
            self.exit_code.store(1, Ordering::Release);
            self.failed.notify_one();
        }
    }

    /// The status the process exits with.
    pub fn exit_code(&self) -> i32 {
        self.exit_code.load(Ordering::Acquire)
    }

    async fn wait_failed(&self) {
        loop {
            let notified = self.failed.notified();
            if self.failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when `done` holds, checked whenever a request or connection ends.
    pub(crate) async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
    }

    /// The proxy service ended (after its listeners closed and its idle connections were told
    /// to close).
    pub fn set_proxy_stopped(&self) {
        self.proxy_stopped.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Sends the listening sockets to the process started with `--upgrade`, trying for up to
    /// [`UPGRADE_WAIT`]: the new process may still be compiling its modules, and the shipped
    /// systemd unit signals the old process before it starts the new one.
    fn hand_over_sockets(&self, upgrade_sock: &str) -> bool {
        let fds = self.fds.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(fds) = fds else { return false };
        let fds = fds.lock();
        if fds.is_empty() {
            return false;
        }
        let started = std::time::Instant::now();
        loop {
            // Each attempt waits a few seconds for the new process to listen.
            match fds.send_to_sock(upgrade_sock) {
                Ok(_) => {
                    tracing::info!(target: "weir::server", upgrade_sock, "listening sockets sent to the new process");
                    return true;
                }
                Err(e) if started.elapsed() >= UPGRADE_WAIT => {
                    tracing::error!(target: "weir::server", upgrade_sock, error = %e, "no new process took the listening sockets; draining anyway");
                    return false;
                }
                Err(e) => {
                    tracing::info!(target: "weir::server", upgrade_sock, error = %e, "waiting for the new process to take the listening sockets");
                }
            }
        }
    }
}

/// weir's shutdown timings, from `server:`.
#[derive(Clone)]
pub struct ShutdownSettings {
    /// Longest wait for requests in flight.
    pub grace: Duration,
    /// How long listeners stay open once draining starts.
    pub drain_delay: Duration,
    /// Where a graceful upgrade sends the listening sockets.
    pub upgrade_sock: String,
    /// The pid file, removed on exit.
    pub pid_file: String,
}

/// The signals that end the process, and the sequence each starts (see the module docs).
pub struct Signals {
    /// Shared state.
    pub state: Arc<crate::state::State>,
    /// Timings.
    pub settings: ShutdownSettings,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let lifecycle = &self.state.lifecycle;
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
        else {
            lifecycle.fail("cannot install the signal handlers".into());
            return ShutdownSignal::FastShutdown;
        };
        let upgrade = tokio::select! {
            _ = term.recv() => { tracing::info!(target: "weir::server", "SIGTERM: draining"); false }
            _ = int.recv() => { tracing::info!(target: "weir::server", "SIGINT: draining"); false }
            _ = quit.recv() => { tracing::info!(target: "weir::server", "SIGQUIT: graceful upgrade"); true }
            _ = lifecycle.wait_failed() => false,
        };
        lifecycle.draining.store(true, Ordering::Release);
        // Any later SIGINT or SIGTERM ends the process at once, whatever the sequence waits on.
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!(target: "weir::server", "second signal: exiting without waiting for requests in flight");
            crate::access_log::flush();
            crate::traces::flush();
            std::process::exit(1);
        });
        let failed = lifecycle.exit_code() != 0;
        // Sending retries until the new process listens: off this runtime's only thread.
        let handed_over = upgrade && {
            let (state, sock) = (self.state.clone(), self.settings.upgrade_sock.clone());
            tokio::task::spawn_blocking(move || state.lifecycle.hand_over_sockets(&sock)).await.unwrap_or(false)
        };
        if handed_over {
            tokio::time::sleep(UPGRADE_OVERLAP).await;
        } else if !failed && !self.settings.drain_delay.is_zero() {
            tracing::info!(target: "weir::server", delay = ?self.settings.drain_delay, "listeners stay open for the drain delay");
            tokio::time::sleep(self.settings.drain_delay).await;
        }
        lifecycle.stop_accepting.send_replace(true);
        let started = std::time::Instant::now();
        let drained = async {
            // The proxy service ends once its idle connections closed (see crate::connections);
            // then only requests in flight remain.
            lifecycle.wait_until(|l| l.proxy_stopped.load(Ordering::Acquire)).await;
            lifecycle.wait_until(|l| l.in_flight() == 0).await;
        };
        if !failed && tokio::time::timeout(self.settings.grace, drained).await.is_err() {
            tracing::warn!(target: "weir::server", in_flight = lifecycle.in_flight(), grace = ?self.settings.grace, "requests still in flight at the end of the grace period are cut off");
        } else {
            tracing::info!(target: "weir::server", waited = ?started.elapsed(), "no request in flight; stopping");
        }
        // No client work is left: what remains is Pingora stopping its runtimes, which a
        // background task (a reload compiling its modules) can hold up. Bounded here.
        let (state, pid_file) = (self.state.clone(), self.settings.pid_file.clone());
        std::thread::spawn(move || {
            std::thread::sleep(AFTER_DRAIN);
            tracing::warn!(target: "weir::server", bound = ?AFTER_DRAIN, "background work still running after the drain; exiting without it");
            remove_own_pid_file(&pid_file);
            crate::access_log::flush();
            crate::traces::flush();
            std::process::exit(state.lifecycle.exit_code());
        });
        ShutdownSignal::GracefulTerminate
    }
}

/// How long `weir probe` waits for each step (connect, write, read).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /ready` on the admin listener at `admin`: `Ok` when it answers 200.
///
/// # Errors
///
/// What went wrong: no connection, a timeout, or the status it answered.
pub fn probe(admin: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&admin, PROBE_TIMEOUT).map_err(|e| format!("{admin}: {e}"))?;
    conn.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    conn.write_all(format!("GET /ready HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("{admin}: {e}"))?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).map_err(|e| format!("{admin}: {e}"))?;
    match &head {
        b"HTTP/1.1 200" => Ok(()),
        other => Err(format!("{admin} answered `{}`", String::from_utf8_lossy(other))),
    }
}

/// A listening service the process cannot run without: if it cannot start (a port taken since
/// weir checked it, a certificate that stopped loading), the process exits with status 1
/// instead of running on without it.
pub struct Supervised<S> {
    /// The service.
    pub inner: S,
    /// Shared state.
    pub state: Arc<crate::state::State>,
    /// What the service is to the process.
    pub role: Role,
}

/// The two listening services.
pub enum Role {
    /// The proxy: it starts each worker's VM host first (see [`crate::workers`]), runs on
    /// weir's own shutdown watch (closed by the drain, not by Pingora), and hands its listening
    /// sockets to the lifecycle for upgrades.
    Proxy {
        /// Its worker threads.
        threads: usize,
        /// Its plaintext listeners: the process serves once each accepts a connection.
        listeners: Vec<std::net::SocketAddr>,
    },
    /// The admin listener.
    Admin,
}

#[async_trait::async_trait]
impl<S: pingora::services::Service> pingora::services::Service for Supervised<S> {
    async fn start_service(&mut self, fds: Option<ListenFds>, shutdown: ShutdownWatch, listeners_per_fd: usize) {
        use futures::FutureExt;
        let proxy = matches!(self.role, Role::Proxy { .. });
        let shutdown = match &self.role {
            Role::Proxy { threads, listeners } => {
                // Watched from now: a drain that starts while the VM hosts start is not missed.
                let watch = self.state.lifecycle.proxy_shutdown_watch();
                crate::workers::start_vm_hosts(&self.state, *threads, listeners.clone()).await;
                self.state.lifecycle.keep_listen_fds(fds.clone());
                watch
            }
            Role::Admin => shutdown,
        };
        let name = self.inner.name().to_owned();
        let run = std::panic::AssertUnwindSafe(self.inner.start_service(fds, shutdown, listeners_per_fd));
        let result = run.catch_unwind().await;
        if proxy {
            self.state.lifecycle.set_proxy_stopped();
        }
        if let Err(panic) = result {
            let what = crate::logging::panic_message(panic.as_ref());
            self.state.lifecycle.fail(format!("the {name} service stopped: {what}"));
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}
