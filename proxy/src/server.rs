//! Starting weir: load and validate the configuration, build the first generation, start the
//! demo origins of the quick start, then run Pingora with the proxy and admin services.

use std::net::SocketAddr;

use pingora::apps::HttpServerOptions;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::listening::Service;
use weir_abi::{Runtime, RuntimeConfig};

use crate::cli::Cli;
use crate::config::{self, Loaded};
use crate::lifecycle::{Role, Supervised};
use crate::startup_error::StartupError;
use crate::state::State;

/// The quick-start configuration, used when no `-c` is given.
pub const QUICKSTART: &str = include_str!("../quickstart.yaml");

/// The wasm runtime's settings from `server:` (fixed at start, like the other `server` keys).
fn runtime_config(loaded: &config::Loaded) -> RuntimeConfig {
    let server = &loaded.config.server;
    let pooling =
        (server.vm_slots > 0).then(|| weir_abi::PoolingLimits { max_instances: server.vm_slots, ..Default::default() });
    // Without a cache weir compiles every module at each start: slower, never wrong.
    let cache_dir = crate::module_cache::directory(&server.module_cache, &loaded.base_dir()).unwrap_or_else(|e| {
        // The automatic place may simply not exist here (a container without a home).
        if server.module_cache == "auto" {
            tracing::info!(target: "weir::server", "module cache: {}; compiled modules are not kept between runs", weir_abi::Chain(&e));
        } else {
            tracing::warn!(target: "weir::server", "server.module_cache: {}; compiled modules are not kept between runs", weir_abi::Chain(&e));
        }
        None
    });
    // For profiling filters (docs/operations.md#profiling-filters): an environment variable,
    // not a configuration key, as it serves whoever runs a profiler, not the deployment.
    let perf_map = std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1");
    RuntimeConfig {
        pooling,
        cache_dir,
        log_sink: crate::filter_log::levels().clone(),
        perf_map,
        compiler: server.compiler,
        ..Default::default()
    }
}

/// Runs weir as the command line says. Returns only for `-t` or on a startup error.
///
/// # Errors
///
/// [`StartupError`]: the configuration's problems, or what failed at startup.
pub fn run(cli: &Cli) -> Result<(), StartupError> {
    let quickstart = cli.config.is_none();
    // Absolute before anything else: a daemon's working directory is not the shell's.
    let config_path = cli.config.as_deref().map(std::path::absolute).transpose().map_err(StartupError::ConfigPath)?;
    let loaded = match &config_path {
        Some(path) => config::load(path),
        None => config::parse(QUICKSTART.to_owned(), None),
    }?;
    let slots = loaded.config.server.vm_slots;
    let runtime = Runtime::new(runtime_config(&loaded)).map_err(|e| StartupError::runtime(e, slots))?;
    if cli.test {
        crate::generation::build(&runtime, loaded, None)?;
        println!("weir: configuration OK");
        return Ok(());
    }
    crate::reload::catch_early_sighup();
    crate::access_log::catch_sigusr1();
    crate::traces::configure(loaded.config.tracing.clone());
    crate::access_log::set_destination(crate::access_log::Destination::parse(
        &loaded.config.access_log.path,
        &loaded.base_dir(),
    ));
    let mut loaded = loaded;
    // Kept until the process ends (`run_forever` never returns).
    let (listeners, admin, _reserved) = resolve_ports(&mut loaded)?;
    // Bound now, served once the process runs (threads started before a fork are lost).
    let demo_origins = if quickstart { bind_demo_origins(&loaded)? } else { Vec::new() };
    let generation = crate::generation::build(&runtime, loaded, None)?;
    let server_cfg = generation.loaded.config.server.clone();
    let http2: Vec<bool> = generation.loaded.config.listeners.iter().map(|l| l.http2).collect();
    let admin_token = generation.loaded.config.admin.token_file.as_ref().map(|f| generation.loaded.base_dir().join(f));
    let tls: Vec<bool> = generation.loaded.config.listeners.iter().map(|l| l.tls.is_some()).collect();
    let state = State::new(runtime, generation);

    if !cli.upgrade {
        // A taken port fails the start here, with its address, before any fork: Pingora would
        // retry for a while, then panic in a service thread while the process stays up.
        check_can_listen(&listeners, admin)?;
    }
    let opt = Opt { upgrade: cli.upgrade, daemon: cli.daemon, ..Opt::default() };
    let conf = ServerConf {
        threads: server_cfg.workers(),
        work_stealing: false,
        // weir's own shutdown sequence drains (crate::lifecycle); Pingora then only stops its
        // runtimes.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(crate::lifecycle::RUNTIME_SHUTDOWN.as_secs()),
        upgrade_sock: server_cfg.upgrade_sock.clone(),
        pid_file: server_cfg.pid_file.clone(),
        daemon: cli.daemon,
        // The launching `weir -d` exits only once the daemon is up, and non-zero if it is not.
        daemon_wait_for_ready: cli.daemon,
        daemon_ready_timeout_seconds: std::num::NonZeroU64::new(DAEMON_READY_TIMEOUT_SECONDS),
        // Relative paths (modules, TLS files, pid file, upgrade socket) keep meaning the same.
        working_directory: std::env::current_dir().ok(),
        ..ServerConf::default()
    };
    if cli.daemon {
        // A daemon that cannot write its pid file dies after the fork, where nobody hears it.
        writable_dir("pid file", &server_cfg.pid_file)?;
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // In the serving process (after a fork): taking over the listening sockets of an upgrade
    // (before the listeners start), and telling a `weir -d` launcher the daemon is up.
    let bootstrap = server.bootstrap_as_a_service();
    if cli.daemon {
        let signal = LauncherSignal { state: state.clone(), wait_for_serving: !cli.upgrade };
        bootstrap.add_dependency(server.add_service(signal));
    }

    let open_files = raise_open_file_limit();
    let limits = crate::connections::Limits {
        idle_timeout: server_cfg.idle_timeout.0,
        max_duration: server_cfg.max_connection_duration.map(|d| d.0),
        // By default half the open files: each client connection may need an upstream one too,
        // and the admin listener, modules and logs need descriptors when the cap is reached.
        max_connections: server_cfg.max_connections.unwrap_or((open_files / 2).max(64)),
        h2c: http2.iter().any(|h| *h),
    };
    let proxy_app = |h2c: bool| {
        let weir = crate::service::WeirProxy { state: state.clone(), limits };
        let mut app = pingora::proxy::http_proxy(&server.configuration, weir);
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        // Pingora counts reuses: the first request is not one.
        let max_requests = server_cfg.max_requests_per_connection;
        options.keepalive_request_limit = (max_requests > 0).then(|| max_requests - 1);
        options.h2_idle_timeout = Some(limits.idle_timeout);
        // CONNECT reaches weir's routing, which answers it as Envoy does without a CONNECT
        // route (404 route_not_found) instead of Pingora's bare 405.
        options.allow_connect_method_proxying = true;
        app.server_options = Some(options);
        app
    };
    let app = crate::connections::ProxyApp::new(proxy_app(limits.h2c), proxy_app(false), state.clone(), limits);
    let mut proxy = Service::new("weir".into(), app);
    for (i, ((addr, tls), h2)) in listeners.iter().zip(&tls).zip(&http2).enumerate() {
        if *tls {
            // Certificates come from the current generation at each handshake (by SNI), so a
            // reload renews them.
            let mut settings =
                pingora::listeners::tls::TlsSettings::intermediate("", "").map_err(|e| StartupError::Tls(*addr, e))?;
            settings.set_cert_resolver(std::sync::Arc::new(crate::tls::Resolver { state: state.clone(), listener: i }));
            if *h2 {
                settings.enable_h2();
            }
            proxy.add_tls_with_settings(&addr.to_string(), None, settings);
        } else {
            proxy.add_tcp(&addr.to_string());
        }
    }
    let reloader = crate::reload::Reloader::new(state.clone(), config_path.clone());
    let mut admin_service = Service::new(
        "weir admin".into(),
        crate::admin::Admin {
            state: state.clone(),
            listeners: listeners.iter().map(ToString::to_string).collect(),
            reloader: reloader.clone(),
            token_file: admin_token,
        },
    );
    admin_service.add_tcp(&admin.to_string());
    // One thread: its accept loop and listener share a runtime, so stopping runtimes in any
    // order never leaves the loop polling a listener whose runtime is gone.
    admin_service.threads = Some(1);

    let threads = server.configuration.threads;
    // TLS listeners are not probed (a bare connection would only log a failed handshake).
    let plaintext = listeners.iter().zip(&tls).filter(|(_, t)| !**t).map(|(a, _)| *a).collect();
    let proxy = Supervised { inner: proxy, state: state.clone(), role: Role::Proxy { threads, listeners: plaintext } };
    let admin_service = Supervised { inner: admin_service, state: state.clone(), role: Role::Admin };
    let mut singletons = pingora::services::background::background_service(
        "wasm services",
        crate::workers::Singletons { state: state.clone() },
    );
    singletons.threads = Some(1);
    let hc_state = state.clone();
    let health = pingora::services::background::background_service("health checks", HealthChecks { state: hc_state });
    let proxy = server.add_service(proxy);
    let admin_service = server.add_service(admin_service);
    if cli.upgrade {
        // The listening sockets come from the old process, through the bootstrap.
        proxy.add_dependency(&bootstrap);
        admin_service.add_dependency(&bootstrap);
    }
    server.add_service(health);
    server.add_service(singletons);
    server
        .add_service(pingora::services::background::background_service("reload triggers", ReloadTriggers { reloader }));
    if !demo_origins.is_empty() {
        server.add_service(pingora::services::background::background_service(
            "demo origins",
            DemoOrigins(std::sync::Mutex::new(demo_origins)),
        ));
    }
    let proxy_list: Vec<String> = listeners
        .iter()
        .zip(&tls)
        .map(|(a, t)| if *t { format!("https://{a}") } else { format!("http://{a}") })
        .collect();
    println!("weir ready: proxy {} admin http://{admin}", proxy_list.join(" "));
    if quickstart {
        println!("weir quick start: try `curl -s -H 'x-api-key: demo-key' http://{}/hello`", listeners[0]);
    }
    let signals = crate::lifecycle::Signals {
        state: state.clone(),
        settings: crate::lifecycle::ShutdownSettings {
            grace: std::time::Duration::from_secs(server_cfg.grace_period_seconds),
            drain_delay: server_cfg.drain_delay.0,
            upgrade_sock: server_cfg.upgrade_sock.clone(),
            pid_file: server_cfg.pid_file.clone(),
        },
    };
    server.run(pingora::server::RunArgs { shutdown_signal: Box::new(signals) });
    crate::lifecycle::remove_own_pid_file(&server_cfg.pid_file);
    let code = state.lifecycle.exit_code();
    tracing::info!(target: "weir::server", code, "exiting");
    crate::access_log::flush();
    crate::traces::flush();
    std::process::exit(code)
}

/// Fails unless every listener address can be bound now.
fn check_can_listen(listeners: &[SocketAddr], admin: SocketAddr) -> Result<(), StartupError> {
    for (what, addr) in listeners.iter().map(|a| ("proxy listener", *a)).chain([("admin listener", admin)]) {
        // std binds with SO_REUSEADDR, as Pingora does: ports picked for `:0` (held by weir
        // itself, bound but not listening) and ports in TIME_WAIT are free.
        std::net::TcpListener::bind(addr).map_err(|source| StartupError::Listen { addr, what, source })?;
    }
    Ok(())
}

/// How long `weir -d` waits for its daemon to report that it started.
const DAEMON_READY_TIMEOUT_SECONDS: u64 = 60;

/// The least time the daemon waits before its bootstrap reports readiness to the launcher.
const LAUNCHER_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Holds the daemon's bootstrap, whose end signals the `weir -d` launcher (SIGUSR1) that the
/// daemon is up, until the daemon serves: the launcher then exits 0 only once the listeners
/// accept, and 1 if the daemon dies first. With `--upgrade` the bootstrap must run first (it
/// receives the listening sockets the listeners need), so the signal means "waiting for the
/// old process's sockets", as Pingora intends: the caller then sends the old process SIGQUIT.
///
/// At least [`LAUNCHER_GRACE`] passes either way: Pingora's launcher installs its handler only
/// after the fork, and a SIGUSR1 that arrives first kills it with the default action.
struct LauncherSignal {
    state: std::sync::Arc<State>,
    wait_for_serving: bool,
}

#[async_trait::async_trait]
impl pingora::services::ServiceWithDependents for LauncherSignal {
    async fn start_service(
        &mut self,
        _fds: Option<pingora::server::ListenFds>,
        mut shutdown: pingora::server::ShutdownWatch,
        _listeners_per_fd: usize,
        ready: pingora::services::ServiceReadyNotifier,
    ) {
        tokio::time::sleep(LAUNCHER_GRACE).await;
        if self.wait_for_serving {
            // A daemon that fails to serve exits (crate::lifecycle), which the launcher sees.
            self.state.lifecycle.wait_until(crate::lifecycle::Lifecycle::ready).await;
        }
        ready.notify_ready();
        let _ = shutdown.changed().await;
    }

    fn name(&self) -> &str {
        "launcher signal"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

/// Fails unless a file can be created beside `path`.
fn writable_dir(what: &'static str, path: &str) -> Result<(), StartupError> {
    let dir = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(std::path::Path::new("."));
    let probe = dir.join(format!(".weir-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|source| StartupError::Write { what, path: path.to_owned(), source })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Raises the open-file limit to its hard limit (as nginx's `worker_rlimit_nofile` and Go's
/// runtime do) and returns it.
fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    let files = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    if files == libc::RLIM_INFINITY { 1 << 20 } else { files as usize }
}

/// Ports picked for `:0` addresses, held until the process ends.
///
/// Each is a socket bound (with `SO_REUSEADDR`) but never listening: Pingora binds and listens
/// on the same address beside it, while no other process asking the kernel for a free port can
/// be given it in between (which a bind-and-release would allow).
struct ReservedPorts(#[allow(dead_code, reason = "held only to keep the ports")] Vec<tokio::net::TcpSocket>);

/// Replaces port 0 with a free port, reserved, so weir can report where it listens.
fn resolve_ports(loaded: &mut Loaded) -> Result<(Vec<SocketAddr>, SocketAddr, ReservedPorts), StartupError> {
    let mut held = Vec::new();
    let mut free = |a: SocketAddr| -> Result<SocketAddr, StartupError> {
        if a.port() != 0 {
            return Ok(a);
        }
        let reserve = || -> std::io::Result<(SocketAddr, tokio::net::TcpSocket)> {
            let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.set_reuseaddr(true)?;
            socket.bind(a)?;
            Ok((socket.local_addr()?, socket))
        };
        let (addr, socket) = reserve().map_err(|e| StartupError::Reserve(a, e))?;
        held.push(socket);
        Ok(addr)
    };
    let c = &mut loaded.config;
    for l in &mut c.listeners {
        l.address = free(l.address)?;
    }
    c.admin.address = free(c.admin.address)?;
    Ok((c.listeners.iter().map(|l| l.address).collect(), c.admin.address, ReservedPorts(held)))
}

/// The quick start's clusters point at demo origins weir serves itself.
fn bind_demo_origins(loaded: &Loaded) -> Result<Vec<(std::net::TcpListener, String)>, StartupError> {
    let mut bound = Vec::new();
    for (name, cluster) in &loaded.config.clusters {
        for ep in &cluster.endpoints {
            let addr: SocketAddr = ep.parse().map_err(|e| StartupError::DemoAddress(ep.clone(), e))?;
            let listener = crate::demo::bind(addr).map_err(|e| StartupError::Demo(addr, e))?;
            bound.push((listener, name.clone()));
        }
    }
    Ok(bound)
}

/// Serves the quick start's demo origins once the process runs (after daemonizing).
struct DemoOrigins(std::sync::Mutex<Vec<(std::net::TcpListener, String)>>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for DemoOrigins {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let bound = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for (listener, name) in bound {
            if let Err(e) = crate::demo::serve_on_thread(listener, name) {
                tracing::error!(target: "weir::demo", error = %e, "cannot serve a demo origin");
            }
        }
    }
}

/// Runs the health checks of the current generation's clusters (a reload brings new ones).
struct HealthChecks {
    state: std::sync::Arc<State>,
}

/// How often the health-check loop looks for due clusters.
const HEALTH_TICK: std::time::Duration = std::time::Duration::from_millis(50);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut last: std::collections::HashMap<usize, std::time::Instant> = std::collections::HashMap::new();
        loop {
            let generation = self.state.current.load_full();
            let due: Vec<_> = generation
                .clusters
                .values()
                .filter(|c| {
                    let Some(every) = c.health_interval() else { return false };
                    // Keyed by the cluster object: a reload's new clusters are checked at once.
                    let key = std::sync::Arc::as_ptr(c) as usize;
                    let is_due = last.get(&key).is_none_or(|t| t.elapsed() >= every);
                    if is_due {
                        last.insert(key, std::time::Instant::now());
                    }
                    is_due
                })
                .cloned()
                .collect();
            // Clusters of retired generations are forgotten.
            last.retain(|key, _| generation.clusters.values().any(|c| std::sync::Arc::as_ptr(c) as usize == *key));
            let checks = futures::future::join_all(due.iter().map(|c| c.check_health()));
            tokio::select! {
                _ = checks => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(HEALTH_TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Reloads on SIGHUP, on changes to the configuration or its modules, and when a module's
/// optimized code is ready.
struct ReloadTriggers {
    reloader: std::sync::Arc<crate::reload::Reloader>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ReloadTriggers {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        // Started here, in the serving process: a watcher's thread would not survive the fork
        // of daemon mode.
        let watch = self.reloader.watch().map(std::sync::Arc::new);
        let files = async {
            match &watch {
                Some(w) => self.reloader.clone().on_file_change(w.clone()).await,
                None => std::future::pending().await,
            }
        };
        let sighup = async {
            self.reloader.clone().on_sighup().await;
            std::future::pending::<()>().await
        };
        let optimized = self.reloader.clone().on_optimized_code();
        tokio::select! {
            _ = sighup => {}
            _ = files => {}
            _ = optimized => {}
            _ = shutdown.changed() => {}
        }
    }
}
