//! The proxy's downstream connections: counted (for the drain and the connection cap), capped,
//! and closed when they carry no request for too long, as Envoy's `idle_timeout` and
//! `max_connection_duration` and nginx's `keepalive_timeout` and `keepalive_requests` do.
//!
//! An HTTP/1 connection runs in one task from accept to close, and its requests run in that
//! task too: a task-local [`Connection`] lets the request path mark when a request is in
//! flight, and a watchdog beside the connection closes it once it has been without a request
//! for `idle_timeout`. That bounds a client that sends nothing, one that sends its request head
//! a byte at a time (the head is not a request until it is complete), and an idle keep-alive
//! connection alike. HTTP/2 connections (their streams run in tasks of their own) use
//! Pingora's HTTP/2 idle timeout, which counts open streams.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::apps::ServerApp;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;

use crate::state::State;

mod own_replies;

/// The downstream limits, from `server:`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time a connection may be open without a request in flight.
    pub idle_timeout: Duration,
    /// Connections older than this close after their current request.
    pub max_duration: Option<Duration>,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Whether plaintext connections may speak HTTP/2 (h2c).
    pub h2c: bool,
}

/// How long the proxy's connections that carry no request may stay open once the listeners
/// closed: a connection accepted just before may not have delivered its first request yet.
pub const CONNECTION_SETTLE: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/1 connection, as its requests see it. Requests only store their start and end:
/// the watchdog reads them when its deadline comes (waking it on every request would poll the
/// whole connection's future each time).
struct Connection {
    opened: Instant,
    in_request: AtomicBool,
    idle_since: Mutex<Instant>,
}

tokio::task_local! {
    static CONNECTION: Arc<Connection>;
}

/// A request on this task's connection has its head: the connection is not idle.
pub fn request_started() {
    let _ = CONNECTION.try_with(|c| c.in_request.store(true, Ordering::Release));
}

/// The request on this task's connection ended: the connection is idle from now.
pub fn request_ended() {
    let _ = CONNECTION.try_with(|c| {
        *c.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        c.in_request.store(false, Ordering::Release);
    });
}

/// Whether this task's connection has lived longer than `max`: its response closes it.
pub fn expired(max: Option<Duration>) -> bool {
    max.is_some_and(|max| CONNECTION.try_with(|c| c.opened.elapsed() >= max).unwrap_or(false))
}

/// Whether the connection opens with the HTTP/2 preface, reading only as far as needed to tell:
/// every HTTP/1 method differs from `PRI` within three bytes. The bytes stay in the stream.
async fn starts_with_preface(session: &mut Stream) -> std::io::Result<bool> {
    for n in 1..=H2_PREFACE.len() {
        let mut head = vec![0u8; n];
        if !session.try_peek(&mut head).await? || head[n - 1] != H2_PREFACE[n - 1] {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Resolves when `c` has been without a request for `idle_timeout`, or is idle past its
/// `max_duration`. Sleeps until the deadline the last idle time gives, then looks again: a
/// request since moved the deadline later (or is still running).
async fn idle_out(c: &Connection, limits: &Limits) {
    loop {
        let since = *c.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        let mut deadline = since + limits.idle_timeout;
        if let Some(max) = limits.max_duration {
            deadline = deadline.min(c.opened + max);
        }
        tokio::time::sleep_until(deadline.into()).await;
        let busy = c.in_request.load(Ordering::Acquire);
        let moved = *c.idle_since.lock().unwrap_or_else(|p| p.into_inner()) != since;
        if !busy && !moved {
            return;
        }
        if busy {
            // Looked at again an idle period after the request ends at the latest.
            tokio::time::sleep(limits.idle_timeout.min(Duration::from_secs(1))).await;
        }
    }
}

/// The proxy application with its connections counted, capped and timed (see the module
/// docs), and its clean-up on shutdown (which closes every connection waiting for a request)
/// held back until connections without a request in flight had [`CONNECTION_SETTLE`] to send
/// one: otherwise a connection accepted just before the listeners closed would be dropped with
/// its request on the way.
pub struct ProxyApp<A> {
    /// Pingora's HTTP proxy, with h2c on when a listener allows it: it serves HTTP/2.
    pub inner: Arc<A>,
    /// The same proxy with h2c off: it serves HTTP/1 without peeking for a preface (Pingora
    /// waits for 24 bytes, which a short HTTP/1.0 request such as a load balancer's
    /// `OPTIONS / HTTP/1.0` health check never sends).
    pub http1: Arc<A>,
    /// Shared state.
    pub state: Arc<State>,
    /// The limits.
    pub limits: Limits,
    /// When the cap was last reported (one warning per second at most).
    last_refusal_report: Mutex<Option<Instant>>,
}

impl<A> ProxyApp<A> {
    /// `inner` (h2c as configured) and `http1` (h2c off) with `limits`.
    pub fn new(inner: A, http1: A, state: Arc<State>, limits: Limits) -> Self {
        Self { inner: Arc::new(inner), http1: Arc::new(http1), state, limits, last_refusal_report: Mutex::new(None) }
    }

    fn report_refusal(&self, open: usize) {
        self.state.metrics.downstream_refused();
        let mut last = self.last_refusal_report.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::warn!(target: "weir::proxy", open, limit = self.limits.max_connections, "server.max_connections reached: closing new connections (counted in weir_downstream_connections_refused_total)");
        }
    }
}

/// A proxy connection: counted while it is open.
struct OpenConnection(Arc<State>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let lifecycle = &self.0.lifecycle;
        lifecycle.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.downstream_connections(-1);
        if lifecycle.draining() {
            lifecycle.changed.notify_waiters();
        }
    }
}

#[async_trait::async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ProxyApp<A> {
    async fn process_new(self: &Arc<Self>, mut session: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let open = self.state.lifecycle.connections.fetch_add(1, Ordering::AcqRel) + 1;
        self.state.metrics.downstream_connections(1);
        let _open = OpenConnection(self.state.clone());
        if open > self.limits.max_connections {
            self.report_refusal(open);
            return None;
        }
        let http2 = match session.selected_alpn_proto() {
            Some(ALPN::H2) => true,
            _ if self.limits.h2c && session.get_ssl_digest().is_none() => {
                // The wait for the first bytes is bounded by the idle timeout.
                match tokio::time::timeout(self.limits.idle_timeout, starts_with_preface(&mut session)).await {
                    Ok(Ok(preface)) => preface,
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        self.state.metrics.downstream_idle_timeout();
                        return None;
                    }
                }
            }
            _ => false,
        };
        if http2 {
            return self.inner.process_new(session, shutdown).await;
        }
        let now = Instant::now();
        let connection =
            Arc::new(Connection { opened: now, in_request: AtomicBool::new(false), idle_since: Mutex::new(now) });
        let session = own_replies::Watched::boxed(session, connection.clone(), self.state.clone());
        let serve = CONNECTION.scope(connection.clone(), self.http1.process_new(session, shutdown));
        tokio::select! {
            reusable = serve => reusable,
            _ = idle_out(&connection, &self.limits) => {
                self.state.metrics.downstream_idle_timeout();
                None
            }
        }
    }

    async fn cleanup(&self) {
        let lifecycle = &self.state.lifecycle;
        // Every open connection either carries a request (counted in flight) or may be
        // about to: give the latter the settle time.
        let settled = lifecycle.wait_until(|l| l.connections.load(Ordering::Acquire) <= l.in_flight());
        let _ = tokio::time::timeout(CONNECTION_SETTLE, settled).await;
        self.inner.cleanup().await;
        self.http1.cleanup().await;
    }
}
