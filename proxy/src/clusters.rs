//! Upstream clusters: endpoints behind a pingora load balancer, and the peers requests and
//! callouts connect to.

use std::sync::Arc;

use pingora::lb::LoadBalancer;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Cluster as ClusterConfig, HealthCheck, LbPolicy};
use crate::outlier::Outliers;
use crate::retry::{Budget, Policy};

enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// A cluster ready to pick endpoints.
pub struct Cluster {
    /// Its name.
    pub name: String,
    config: ClusterConfig,
    balancer: Balancer,
    /// Each endpoint's host name, by resolved address (the default TLS server name).
    hosts: crate::FastMap<std::net::SocketAddr, String>,
    /// Its metrics, looked up at its first request.
    metrics: std::sync::OnceLock<crate::metrics::ClusterMetrics>,
    /// The retry policy of routes to it that have none.
    pub retry_policy: Arc<Policy>,
    /// Requests and retries under way.
    pub budget: Arc<Budget>,
    /// Endpoints ejected for failing, when outlier detection is on.
    outliers: Option<Outliers>,
    /// The cluster's one endpoint when it has one and no health check: every pick would
    /// return it (nothing marks it unready), so it is returned without the balancer's
    /// selection, which hashes the endpoint twice per request (~1,700 instructions).
    only_endpoint: Option<pingora::lb::Backend>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Selection tries before giving up on unhealthy endpoints.
const MAX_SELECT_TRIES: usize = 256;

impl Cluster {
    /// Builds the balancer (endpoints were resolved when the config was validated).
    ///
    /// # Errors
    ///
    /// When an endpoint cannot be resolved.
    pub fn new(name: &str, config: &ClusterConfig) -> std::io::Result<Self> {
        let endpoints = config.endpoints.iter().map(String::as_str);
        let first_host = config.endpoints.first().map(|e| host_of(e)).unwrap_or_default();
        let check = || config.health_check.as_ref().map(|h| health_check(h, &first_host, config.tls.is_some()));
        let only = |backends: &pingora::lb::Backends| {
            let all = backends.get_backend();
            (config.health_check.is_none() && all.len() == 1).then(|| all.iter().next().cloned()).flatten()
        };
        let only_endpoint;
        let balancer = match config.lb {
            LbPolicy::RoundRobin => {
                let mut lb = LoadBalancer::try_from_iter(endpoints)?;
                if let Some(c) = check() {
                    lb.set_health_check(c);
                }
                only_endpoint = only(lb.backends());
                Balancer::RoundRobin(Arc::new(lb))
            }
            LbPolicy::Hash => {
                let mut lb = LoadBalancer::try_from_iter(endpoints)?;
                if let Some(c) = check() {
                    lb.set_health_check(c);
                }
                only_endpoint = only(lb.backends());
                Balancer::Hash(Arc::new(lb))
            }
        };
        let mut hosts = crate::FastMap::default();
        for ep in &config.endpoints {
            for addr in std::net::ToSocketAddrs::to_socket_addrs(ep.as_str())? {
                hosts.insert(addr, host_of(ep));
            }
        }
        let outliers = config.outlier_detection.as_ref().map(|o| Outliers::new(o, hosts.keys().copied()));
        Ok(Self {
            name: name.to_owned(),
            retry_policy: Arc::new(Policy::new(&config.retry_policy.clone().unwrap_or_default())),
            budget: Budget::new(&config.retry_budget),
            outliers,
            config: config.clone(),
            balancer,
            hosts,
            metrics: Default::default(),
            only_endpoint,
        })
    }

    /// The request header whose value is hashed (hash policy), if any.
    pub fn hash_header(&self) -> Option<&str> {
        self.config.hash_on.as_deref()
    }

    /// Whether endpoints are picked by a hash of a key (else `key` is ignored).
    pub fn hashes(&self) -> bool {
        matches!(self.balancer, Balancer::Hash(_))
    }

    /// Picks an endpoint; `key` matters for the hash policy. A healthy endpoint that is not
    /// ejected and not in `tried` if there is one, else one that is only not ejected, else any
    /// healthy one (an ejection never leaves a cluster with no endpoint at all).
    pub fn peer(&self, key: &[u8], tried: &[std::net::SocketAddr]) -> Option<HttpPeer> {
        let ejected = |b: &pingora::lb::Backend| {
            self.outliers.as_ref().is_some_and(|o| b.addr.as_inet().is_some_and(|a| o.ejected(a)))
        };
        let was_tried = |b: &pingora::lb::Backend| b.addr.as_inet().is_some_and(|a| tried.contains(a));
        let select = |accept: &dyn Fn(&pingora::lb::Backend, bool) -> bool| match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, MAX_SELECT_TRIES, accept),
            Balancer::Hash(lb) => lb.select_with(key, MAX_SELECT_TRIES, accept),
        };
        let backend = match &self.only_endpoint {
            Some(only) => only.clone(),
            None => select(&|b, healthy| healthy && !ejected(b) && !was_tried(b))
                .or_else(|| select(&|b, healthy| healthy && !ejected(b)))
                .or_else(|| select(&|_, healthy| healthy))?,
        };
        let tls = self.config.tls.as_ref();
        let endpoint_host = backend.addr.as_inet().and_then(|a| self.hosts.get(a)).cloned().unwrap_or_default();
        let sni = tls.and_then(|t| t.sni.clone()).unwrap_or(endpoint_host);
        let mut peer = HttpPeer::new(backend.addr, tls.is_some(), sni);
        peer.options.connection_timeout = Some(self.config.connect_timeout.0);
        peer.options.read_timeout = Some(self.config.read_timeout.0);
        if let Some(t) = tls {
            peer.options.verify_cert = t.verify;
            peer.options.verify_hostname = t.verify;
        }
        if self.config.http2 {
            peer.options.alpn = ALPN::H2;
        }
        Some(peer)
    }

    /// Its metrics.
    pub fn metrics(&self, all: &crate::metrics::Metrics) -> &crate::metrics::ClusterMetrics {
        self.metrics.get_or_init(|| all.cluster(&self.name))
    }

    /// Each endpoint (`ip:port`), whether its health check passes (or it has none), and its
    /// outlier state when outlier detection is on.
    pub fn endpoint_health(&self) -> Vec<(String, bool, Option<crate::outlier::State>)> {
        let backends = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        };
        let outlier =
            |b: &pingora::lb::Backend| self.outliers.as_ref().and_then(|o| b.addr.as_inet().and_then(|a| o.state(a)));
        backends.get_backend().iter().map(|b| (b.addr.to_string(), backends.ready(b), outlier(b))).collect()
    }

    /// Records how a try at `endpoint` ended (its status; failures count as 503) for outlier
    /// detection; logs and counts an ejection.
    pub fn record_outcome(&self, endpoint: std::net::SocketAddr, status: u16, all: &crate::metrics::Metrics) {
        let Some(ejected_for) = self.outliers.as_ref().and_then(|o| o.record(&endpoint, status)) else { return };
        self.metrics(all).ejection();
        tracing::warn!(
            target: "weir::upstream",
            cluster = %self.name,
            endpoint = %endpoint,
            seconds = ejected_for.as_secs(),
            "endpoint ejected: it failed too many times in a row (outlier_detection)"
        );
    }

    /// The health check as `/clusters` shows it.
    pub fn health_check_summary(&self) -> Option<serde_json::Value> {
        let h = self.config.health_check.as_ref()?;
        let mut v = serde_json::json!({
            "type": if h.http.is_some() { "http" } else { "tcp" },
            "interval_ms": h.interval.0.as_millis() as u64,
            "timeout_ms": h.timeout.0.as_millis() as u64,
            "healthy_threshold": h.healthy_threshold,
            "unhealthy_threshold": h.unhealthy_threshold,
        });
        if let Some(http) = &h.http {
            v["path"] = http.path.clone().into();
            v["expected_statuses"] = http.expected_statuses.clone().into();
        }
        Some(v)
    }

    /// Outlier detection as `/clusters` shows it.
    pub fn outlier_detection_summary(&self) -> Option<serde_json::Value> {
        let o = self.config.outlier_detection.as_ref()?;
        Some(serde_json::json!({
            "consecutive_5xx": o.consecutive_5xx,
            "consecutive_gateway_failure": o.consecutive_gateway_failure,
            "base_ejection_time_ms": o.base_ejection_time.0.as_millis() as u64,
            "max_ejection_time_ms": o.max_ejection_time.0.as_millis() as u64,
            "max_ejection_percent": o.max_ejection_percent,
        }))
    }

    /// How often this cluster's endpoints are checked, if they are.
    pub fn health_interval(&self) -> Option<std::time::Duration> {
        self.config.health_check.as_ref().map(|h| h.interval.0)
    }

    /// Checks every endpoint once.
    pub async fn check_health(&self) {
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends().run_health_check(true).await,
            Balancer::Hash(lb) => lb.backends().run_health_check(true).await,
        }
    }
}

/// The configured check: a TCP connect, or an HTTP GET that must answer an expected status.
fn health_check(
    h: &HealthCheck,
    host: &str,
    tls: bool,
) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
    let timeout = Some(h.timeout.0);
    let (up, down) = (h.healthy_threshold.max(1) as usize, h.unhealthy_threshold.max(1) as usize);
    let Some(http) = &h.http else {
        let mut tcp = TcpHealthCheck::new();
        tcp.consecutive_success = up;
        tcp.consecutive_failure = down;
        tcp.peer_template.options.connection_timeout = timeout;
        return tcp;
    };
    let host = http.host.as_deref().unwrap_or(host);
    let mut check = HttpHealthCheck::new(host, tls);
    check.consecutive_success = up;
    check.consecutive_failure = down;
    check.peer_template.options.connection_timeout = timeout;
    check.peer_template.options.read_timeout = timeout;
    check.peer_template.options.total_connection_timeout = timeout;
    if let Ok(mut req) = pingora::http::RequestHeader::build("GET", http.path.as_bytes(), None) {
        let _ = req.insert_header(http::header::HOST, host);
        let _ = req.insert_header(http::header::USER_AGENT, "weir-health-check");
        check.req = req;
    }
    let expected = http.expected_statuses.clone();
    check.validator = Some(Box::new(move |resp: &pingora::http::ResponseHeader| {
        let status = resp.status.as_u16();
        if expected.contains(&status) {
            Ok(())
        } else {
            pingora::Error::e_explain(pingora::ErrorType::HTTPStatus(status), "not an expected status")
        }
    }));
    Box::new(check)
}

fn host_of(endpoint: &str) -> String {
    endpoint.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(endpoint).to_owned()
}
