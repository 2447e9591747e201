//! Route matching: host, exact path, prefix or regular expression, methods, headers and query
//! parameters (exact, prefix, suffix, contains, regex, presence, inverted). The first
//! matching route wins.

use crate::config::{Match, ValueMatch};
use weir_abi::HeaderMap;

/// What route matching reads of a request: Pingora's request head (routes without filters
/// never build weir-abi's map) or, once filters ran, weir-abi's map.
pub trait RequestView {
    fn method(&self) -> &str;
    /// The path with its query.
    fn path(&self) -> &str;
    fn authority(&self) -> &str;
    /// Whether header `name` (lowercase; pseudo-headers included) has a value for which
    /// `test` holds.
    fn any_value(&self, name: &str, test: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

impl RequestView for HeaderMap {
    fn method(&self) -> &str {
        self.get_str(":method").unwrap_or("")
    }

    fn path(&self) -> &str {
        self.get_str(":path").unwrap_or("/")
    }

    fn authority(&self) -> &str {
        self.get_str(":authority").unwrap_or("")
    }

    fn any_value(&self, name: &str, test: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.get_all(name.as_bytes()).any(|got| test(got.as_ref()))
    }
}

/// A request head as Pingora holds it, seen as filters would see it (see
/// [`crate::convert::request_headers`]): `host` is `:authority`, hop-by-hop headers are not
/// there.
pub struct Head<'a> {
    pub req: &'a pingora::http::RequestHeader,
    pub tls: bool,
}

impl RequestView for Head<'_> {
    fn method(&self) -> &str {
        self.req.method.as_str()
    }

    fn path(&self) -> &str {
        self.req.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    fn authority(&self) -> &str {
        crate::convert::authority(self.req)
    }

    fn any_value(&self, name: &str, test: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let mut pseudo = |got: &str| test(got.as_bytes());
        match name {
            ":method" => pseudo(self.method()),
            ":path" => pseudo(self.path()),
            ":authority" => pseudo(self.authority()),
            ":scheme" => pseudo(if self.tls { "https" } else { "http" }),
            "host" => false,
            _ => {
                let headers = &self.req.headers;
                let upgrade = crate::convert::is_upgrade(headers);
                headers.get_all(name).iter().any(|got| {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .is_ok_and(|n| !crate::convert::is_hop_by_hop(&n, got, upgrade))
                        && test(got.as_bytes())
                })
            }
        }
    }
}

/// A route's conditions, prepared for matching.
#[derive(Debug, Clone)]
pub struct Matcher {
    host: Option<HostMatch>,
    path: Option<String>,
    prefix: Option<String>,
    path_regex: Option<regex::Regex>,
    methods: Vec<String>,
    headers: Vec<(String, Rule)>,
    query: Vec<(String, Rule)>,
}

/// A condition on a value, prepared.
#[derive(Debug, Clone)]
struct Rule {
    test: Test,
    invert: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(regex::Regex),
    Present(bool),
}

impl Rule {
    /// `None` for a rule the configuration check refuses (no condition, a bad regex).
    fn new(m: &ValueMatch) -> Option<Rule> {
        let r = match m {
            ValueMatch::Exact(v) => return Some(Rule { test: Test::Exact(v.clone()), invert: false }),
            ValueMatch::Rule(r) => r,
        };
        let test = if let Some(v) = &r.exact {
            Test::Exact(v.clone())
        } else if let Some(v) = &r.prefix {
            Test::Prefix(v.clone())
        } else if let Some(v) = &r.suffix {
            Test::Suffix(v.clone())
        } else if let Some(v) = &r.contains {
            Test::Contains(v.clone())
        } else if let Some(v) = &r.regex {
            Test::Regex(whole(v).ok()?)
        } else {
            Test::Present(r.present?)
        };
        Some(Rule { test, invert: r.invert })
    }

    /// Whether the values (each header line or parameter of the name) satisfy the rule.
    fn holds(&self, mut any: impl FnMut(&mut dyn FnMut(&[u8]) -> bool) -> bool) -> bool {
        let found = match &self.test {
            Test::Present(want) => any(&mut |_| true) == *want,
            Test::Exact(e) => any(&mut |v| v == e.as_bytes()),
            Test::Prefix(p) => any(&mut |v| v.starts_with(p.as_bytes())),
            Test::Suffix(p) => any(&mut |v| v.ends_with(p.as_bytes())),
            Test::Contains(p) => any(&mut |v| v.windows(p.len().max(1)).any(|w| w == p.as_bytes()) || p.is_empty()),
            Test::Regex(r) => any(&mut |v| std::str::from_utf8(v).is_ok_and(|t| r.is_match(t))),
        };
        found != self.invert
    }
}

/// A regular expression that must match the whole text (Envoy's `safe_regex` in routes).
///
/// # Errors
///
/// The pattern is not a valid regular expression.
pub fn whole(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
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
        let rules = |map: &std::collections::BTreeMap<String, ValueMatch>, lower: bool| {
            map.iter()
                .filter_map(|(k, v)| Some((if lower { k.to_ascii_lowercase() } else { k.clone() }, Rule::new(v)?)))
                .collect()
        };
        Self {
            host,
            path: m.path.clone(),
            prefix: m.path_prefix.clone(),
            path_regex: m.path_regex.as_deref().and_then(|r| whole(r).ok()),
            methods: m.methods.iter().map(|s| s.to_ascii_uppercase()).collect(),
            headers: rules(&m.headers, true),
            query: rules(&m.query_params, false),
        }
    }

    /// The `path_prefix` condition, if the route has one.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The exact `path` condition, if the route has one.
    pub fn exact_path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// True when the request matches.
    pub fn matches(&self, r: &impl RequestView) -> bool {
        let full = r.path();
        let (path, query) = full.split_once('?').unwrap_or((full, ""));
        if let Some(re) = &self.path_regex
            && !re.is_match(path)
        {
            return false;
        }
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
            let authority = r.authority();
            let is = |name: &str| match host {
                HostMatch::Exact(e) => name.eq_ignore_ascii_case(e),
                HostMatch::Suffix(s) => {
                    name.len() > s.len() && name.as_bytes()[name.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
                }
            };
            // The host without its port, or the whole value (Envoy matches domains against the
            // whole Host, so `*-canary` takes `host:80-canary`).
            if !is(strip_port(authority)) && !is(authority) {
                return false;
            }
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == r.method()) {
            return false;
        }
        let params = || form_urlencoded::parse(query.as_bytes());
        self.headers.iter().all(|(name, rule)| rule.holds(|test| r.any_value(name, test)))
            && self
                .query
                .iter()
                .all(|(name, rule)| rule.holds(|test| params().any(|(k, v)| k == name.as_str() && test(v.as_bytes()))))
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
        let m = |y: &str| Matcher::new(&serde_yaml_ng::from_str(y).unwrap());
        // Envoy matches domains against the whole Host: `*-canary` takes `host:port-canary`.
        assert!(m("host: '*-canary'").matches(&req("GET", "/", "localhost:18000-canary")));
        assert!(m("host: example.com").matches(&req("GET", "/", "example.com:8080")));
        assert!(!m("host: '*-canary'").matches(&req("GET", "/", "localhost:18000")));
    }

    #[test]
    fn conditions() {
        let m = |y: &str| Matcher::new(&serde_yaml_ng::from_str(y).unwrap());
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

    /// Routes are matched on Pingora's head before filters run and on weir-abi's map after:
    /// both views must agree.
    #[test]
    fn the_head_and_the_filters_view_match_alike() {
        let mut head = pingora::http::RequestHeader::build("GET", b"/api/x?y=1", None).unwrap();
        head.insert_header("host", "Example.com:8080").unwrap();
        head.insert_header("x-v", "2").unwrap();
        head.insert_header("connection", "keep-alive, x-hop").unwrap();
        head.insert_header("x-hop", "1").unwrap();
        let map = crate::convert::request_headers(&head, false);
        let view = Head { req: &head, tls: false };
        for y in [
            "path_prefix: /api",
            "path: /api/x",
            "path: /api",
            "host: example.com",
            "host: '*.com'",
            "methods: [GET]",
            "methods: [POST]",
            "headers: { x-v: '2' }",
            "headers: { x-hop: '1' }",
            "headers: { host: 'Example.com:8080' }",
            "headers: { ':authority': 'Example.com:8080' }",
            "headers: { ':method': GET, ':scheme': http }",
        ] {
            let m = Matcher::new(&serde_yaml_ng::from_str(y).unwrap());
            assert_eq!(m.matches(&view), m.matches(&map), "{y}");
        }
        assert!(Matcher::new(&serde_yaml_ng::from_str("host: example.com").unwrap()).matches(&view));
    }
}
