//! Route matching: host, exact path or prefix, methods, headers. The first matching route
//! wins.

use crate::config::Match;
use weir_abi::HeaderMap;

/// A route's conditions, prepared for matching.
#[derive(Debug, Clone)]
pub struct Matcher {
    host: Option<HostMatch>,
    path: Option<String>,
    prefix: Option<String>,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum HostMatch {
    Exact(String),
    Suffix(String),
}

impl Matcher {
    /// Prepares `m`.
    pub fn new(m: &Match) -> Self {
        let host = m.host.as_ref().map(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_owned()),
                None => HostMatch::Exact(h),
            }
        });
        Self {
            host,
            path: m.path.clone(),
            prefix: m.path_prefix.clone(),
            methods: m.methods.iter().map(|s| s.to_ascii_uppercase()).collect(),
            headers: m.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
        }
    }

    /// True when the request (headers with pseudo-headers) matches.
    pub fn matches(&self, h: &HeaderMap) -> bool {
        let path = h.get_str(":path").unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(p) = &self.path
            && p != path
        {
            return false;
        }
        if let Some(p) = &self.prefix
            && !path.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(host) = &self.host {
            let authority = h.get_str(":authority").unwrap_or("").to_ascii_lowercase();
            let is = |name: &str| match host {
                HostMatch::Exact(e) => name == e,
                HostMatch::Suffix(s) => name.ends_with(s.as_str()) && name.len() > s.len(),
            };
            // The host without its port, or the whole value (Envoy matches domains against the
            // whole Host, so `*-canary` takes `host:80-canary`).
            if !is(strip_port(&authority)) && !is(&authority) {
                return false;
            }
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| Some(m.as_str()) == h.get_str(":method")) {
            return false;
        }
        self.headers.iter().all(|(k, v)| h.get_all(k.as_bytes()).any(|got| got.as_ref() == v.as_bytes()))
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // An IPv6 literal keeps its brackets; without a closing one it is taken as it is.
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, host: &str) -> HeaderMap {
        HeaderMap::from_pairs([(":method", method), (":path", path), (":authority", host), ("x-v", "2")])
    }

    #[test]
    fn unbalanced_ipv6_hosts_do_not_panic() {
        for host in ["[", "[abc", "[::1", "[::1]", "[::1]:80", "]", ":"] {
            let _ = strip_port(host);
        }
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[abc"), "[abc");
    }

    #[test]
    fn a_host_matches_with_or_without_its_port() {
        let m = |y: &str| Matcher::new(&serde_yaml::from_str(y).unwrap());
        // Envoy matches domains against the whole Host: `*-canary` takes `host:port-canary`.
        assert!(m("host: '*-canary'").matches(&req("GET", "/", "localhost:18000-canary")));
        assert!(m("host: example.com").matches(&req("GET", "/", "example.com:8080")));
        assert!(!m("host: '*-canary'").matches(&req("GET", "/", "localhost:18000")));
    }

    #[test]
    fn conditions() {
        let m = |y: &str| Matcher::new(&serde_yaml::from_str(y).unwrap());
        assert!(m("path_prefix: /api").matches(&req("GET", "/api/x?y", "a")));
        assert!(!m("path: /api").matches(&req("GET", "/api/x", "a")));
        assert!(m("path: /api").matches(&req("GET", "/api?q=1", "a")));
        assert!(m("host: Example.com").matches(&req("GET", "/", "example.com:8080")));
        assert!(m("host: '*.example.com'").matches(&req("GET", "/", "a.example.com")));
        assert!(!m("host: '*.example.com'").matches(&req("GET", "/", "example.com")));
        assert!(!m("methods: [POST]").matches(&req("GET", "/", "a")));
        assert!(m("headers: { x-v: '2' }").matches(&req("GET", "/", "a")));
        assert!(!m("headers: { x-v: '3' }").matches(&req("GET", "/", "a")));
    }
}
