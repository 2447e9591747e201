//! What a matched route does besides choosing filters (Envoy's route actions): forward to a
//! cluster (one, or one of `weighted_clusters` at random by weight) with the path optionally
//! rewritten, answer by itself (`direct_response`), or redirect.

use bytes::Bytes;

use crate::config::{Redirect, Route as RouteConfig};

/// The route's action.
#[derive(Debug, Clone)]
pub enum Action {
    /// To the route's cluster, or one of `weighted`.
    Forward { weighted: Vec<(String, u32)>, rewrite: Option<PathRewrite> },
    /// A reply of the route's own.
    Direct { status: u16, body: Bytes },
    /// A redirect.
    Redirect(Redirect),
}

/// How the path sent upstream is rewritten.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// The matched prefix (`None`: the whole path) becomes `to`.
    Prefix { matched: Option<String>, to: String },
    /// Each match of `pattern` becomes `to` (`$1` names a group).
    Regex { pattern: regex::Regex, to: String },
}

impl Action {
    /// The action of route `r` (its configuration was checked).
    pub fn new(r: &RouteConfig) -> Action {
        if let Some(d) = &r.direct_response {
            return Action::Direct { status: d.status, body: Bytes::from(d.body.clone()) };
        }
        if let Some(redirect) = &r.redirect {
            return Action::Redirect(redirect.clone());
        }
        let rewrite = match (&r.prefix_rewrite, &r.regex_rewrite) {
            (Some(to), _) => Some(PathRewrite::Prefix { matched: r.matcher.path_prefix.clone(), to: to.clone() }),
            (None, Some(re)) => regex::Regex::new(&re.pattern)
                .ok()
                .map(|pattern| PathRewrite::Regex { pattern, to: re.substitution.clone() }),
            (None, None) => None,
        };
        let weighted = r.weighted_clusters.iter().map(|w| (w.name.clone(), w.weight)).collect();
        Action::Forward { weighted, rewrite }
    }
}

/// One of `clusters` at random, in proportion to the weights (none when all weigh 0).
pub fn pick(clusters: &[(String, u32)]) -> Option<&str> {
    let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut at = fastrand::u64(0..total.max(1));
    clusters.iter().find_map(|(name, w)| match at.checked_sub(u64::from(*w)) {
        Some(rest) => {
            at = rest;
            None
        }
        None => Some(name.as_str()),
    })
}

impl PathRewrite {
    /// `path_and_query` rewritten; the query is kept as it is.
    pub fn apply(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = match self {
            PathRewrite::Prefix { matched: Some(prefix), to } => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => format!("{to}{rest}"),
                None => path.to_owned(),
            },
            PathRewrite::Prefix { matched: None, to } => to.clone(),
            PathRewrite::Regex { pattern, to } => pattern.replace_all(path, to.as_str()).into_owned(),
        };
        match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    }
}

/// The `location` of a redirect from the request at `scheme://authority` + `path_and_query`,
/// the route's `path_prefix` being `prefix`.
pub fn location(r: &Redirect, scheme: &str, authority: &str, path_and_query: &str, prefix: Option<&str>) -> String {
    let scheme = match (&r.scheme_redirect, r.https_redirect) {
        (Some(s), _) => s.as_str(),
        (None, true) => "https",
        (None, false) => scheme,
    };
    let (host, port) = split_authority(authority);
    let host = r.host_redirect.as_deref().unwrap_or(host);
    // A scheme change drops the old port unless one is given.
    let scheme_changed = r.https_redirect || r.scheme_redirect.is_some();
    let port = r.port_redirect.map(|p| p.to_string()).or_else(|| port.filter(|_| !scheme_changed).map(str::to_owned));
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut target = match (&r.path_redirect, &r.prefix_rewrite, prefix) {
        (Some(p), _, _) => p.clone(),
        (None, Some(to), Some(prefix)) => match path.strip_prefix(prefix) {
            Some(rest) => format!("{to}{rest}"),
            None => path.to_owned(),
        },
        _ => path.to_owned(),
    };
    if let Some(q) = query.filter(|_| !r.strip_query && !target.contains('?')) {
        target = format!("{target}?{q}");
    }
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{target}"),
        None => format!("{scheme}://{host}{target}"),
    }
}

fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']')) {
        let (host, rest) = authority.split_at(end + 2);
        return (host, rest.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => (h, Some(p)),
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(yaml: &str) -> Redirect {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn rewrites_keep_the_query() {
        let prefix = PathRewrite::Prefix { matched: Some("/api/".into()), to: "/v2/".into() };
        assert_eq!(prefix.apply("/api/users?id=1"), "/v2/users?id=1");
        assert_eq!(prefix.apply("/other"), "/other");
        let regex = PathRewrite::Regex { pattern: regex::Regex::new("^/users/([0-9]+)$").unwrap(), to: "/u/$1".into() };
        assert_eq!(regex.apply("/users/42?x=y"), "/u/42?x=y");
    }

    #[test]
    fn redirects_replace_what_they_name() {
        let at = |r: &str, authority: &str, path: &str| location(&redirect(r), "http", authority, path, Some("/old/"));
        assert_eq!(at("{ https_redirect: true }", "example.com:8080", "/a?b=c"), "https://example.com/a?b=c");
        assert_eq!(at("{ host_redirect: new.example }", "example.com:8080", "/a"), "http://new.example:8080/a");
        assert_eq!(at("{ prefix_rewrite: /new/ }", "example.com", "/old/x?q"), "http://example.com/new/x?q");
        assert_eq!(
            at("{ path_redirect: /moved, strip_query: true }", "example.com", "/a?b"),
            "http://example.com/moved"
        );
        assert_eq!(at("{ port_redirect: 8443, https_redirect: true }", "[::1]:80", "/"), "https://[::1]:8443/");
    }

    #[test]
    fn weighted_picks_follow_the_weights() {
        let clusters = vec![("a".to_owned(), 90), ("b".to_owned(), 10), ("never".to_owned(), 0)];
        let a = (0..10_000).filter(|_| pick(&clusters) == Some("a")).count();
        assert!((8_500..9_500).contains(&a), "{a}");
        assert!((0..1000).all(|_| pick(&clusters) != Some("never")));
        assert_eq!(pick(&[("z".to_owned(), 0)]), None);
    }
}
