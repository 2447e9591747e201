//! Upstream clusters: endpoints behind a pingora load balancer, and the peers requests and
//! callouts connect to.

use std::sync::Arc;

use pingora::lb::LoadBalancer;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Cluster as ClusterConfig, LbPolicy};

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
        let check = || config.health_check.as_ref().map(|_| pingora::lb::health_check::TcpHealthCheck::new());
        let balancer = match config.lb {
            LbPolicy::RoundRobin => {
                let mut lb = LoadBalancer::try_from_iter(endpoints)?;
                if let Some(c) = check() {
                    lb.set_health_check(c);
                }
                Balancer::RoundRobin(Arc::new(lb))
            }
            LbPolicy::Hash => {
                let mut lb = LoadBalancer::try_from_iter(endpoints)?;
                if let Some(c) = check() {
                    lb.set_health_check(c);
                }
                Balancer::Hash(Arc::new(lb))
            }
        };
        let mut hosts = crate::FastMap::default();
        for ep in &config.endpoints {
            for addr in std::net::ToSocketAddrs::to_socket_addrs(ep.as_str())? {
                hosts.insert(addr, host_of(ep));
            }
        }
        Ok(Self { name: name.to_owned(), config: config.clone(), balancer, hosts, metrics: Default::default() })
    }

    /// The request header whose value is hashed (hash policy), if any.
    pub fn hash_header(&self) -> Option<&str> {
        self.config.hash_on.as_deref()
    }

    /// Whether endpoints are picked by a hash of a key (else `key` is ignored).
    pub fn hashes(&self) -> bool {
        matches!(self.balancer, Balancer::Hash(_))
    }

    /// Picks an endpoint; `key` matters for the hash policy.
    pub fn peer(&self, key: &[u8]) -> Option<HttpPeer> {
        let backend = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select(key, MAX_SELECT_TRIES),
            Balancer::Hash(lb) => lb.select(key, MAX_SELECT_TRIES),
        }?;
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

    /// Each endpoint (`ip:port`) and whether it takes requests: its health check passes, or
    /// it has none.
    pub fn endpoint_health(&self) -> Vec<(String, bool)> {
        let backends = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        };
        backends.get_backend().iter().map(|b| (b.addr.to_string(), backends.ready(b))).collect()
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

fn host_of(endpoint: &str) -> String {
    endpoint.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(endpoint).to_owned()
}
