//! Checks the types cannot express: references between sections, values in range, files that
//! must be readable; each error names its field and line.

use std::path::{Path, PathBuf};

use super::Millis;
use super::load::{ConfigError, Loaded};
use super::schema::*;

/// Why there is no admin token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} is empty", .0.display())]
    Empty(PathBuf),
}

/// The admin token in `path`, trimmed.
///
/// # Errors
///
/// The file cannot be read, or holds only whitespace.
pub fn read_admin_token(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read(path.to_owned(), e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty(path.to_owned()));
    }
    Ok(token.to_owned())
}

/// Cross-references and values serde cannot check.
pub(super) fn validate(l: &Loaded) -> Vec<ConfigError> {
    let c = &l.config;
    let mut errors = Vec::new();
    if c.listeners.is_empty() {
        errors.push(l.error("listeners", "at least one listener is needed"));
    }
    if let Some(file) = &c.admin.token_file
        && let Err(e) = read_admin_token(&l.base_dir().join(file))
    {
        errors.push(l.error("admin.token_file", weir_abi::Chain(&e).to_string()));
    }
    if c.server.max_connections == Some(0) {
        errors.push(l.error("server.max_connections", "at least 1 connection is needed"));
    }
    if c.server.threads == Some(0) {
        errors.push(l.error("server.threads", "at least 1 worker thread is needed"));
    }
    errors.extend(metrics_errors(l));
    if let Some(t) = &c.tracing {
        if !(0.0..=1.0).contains(&t.sampling) {
            errors.push(l.error("tracing.sampling", "must be between 0 and 1"));
        }
        let scheme = t.endpoint.parse::<http::Uri>().ok().and_then(|u| u.scheme_str().map(str::to_owned));
        match scheme.as_deref() {
            Some("http") => {}
            Some("https") => errors.push(l.error(
                "tracing.endpoint",
                "https is not supported yet: send spans to a collector or agent over http:// (usually local)",
            )),
            _ => errors.push(l.error("tracing.endpoint", "must be a URL: http://HOST:4318/v1/traces")),
        }
    }
    if c.access_log.fields.is_empty() {
        errors.push(l.error("access_log.fields", "at least one field is needed"));
    }
    if let Err(e) = crate::access_log::Destination::parse(&c.access_log.path, &l.base_dir()).check() {
        errors.push(l.error("access_log.path", format!("cannot open it for appending: {e}")));
    }
    for (name, p) in &c.plugins {
        if let Some(level) = p.log_level.as_deref().filter(|l| weir_abi::LogLevel::from_name(l).is_none()) {
            errors.push(l.error(format!("plugins.{name}.log_level"), crate::logging::unknown_level(level)));
        }
    }
    let mut zero = |field: String, d: &Millis| {
        if d.0.is_zero() {
            errors.push(l.error(field, "must be longer than 0 (0 would fail every request at once)"));
        }
    };
    for (name, cluster) in &c.clusters {
        zero(format!("clusters.{name}.connect_timeout"), &cluster.connect_timeout);
        zero(format!("clusters.{name}.read_timeout"), &cluster.read_timeout);
        if let Some(h) = &cluster.health_check {
            zero(format!("clusters.{name}.health_check.interval"), &h.interval);
        }
    }
    for (name, p) in &c.plugins {
        zero(format!("plugins.{name}.limits.deadline"), &p.limits.deadline);
    }
    for (i, r) in c.routes.iter().enumerate() {
        zero(format!("routes[{i}].idle_timeout"), &r.idle_timeout);
        if let Some(t) = &r.timeout {
            zero(format!("routes[{i}].timeout"), t);
        }
    }
    zero("server.idle_timeout".into(), &c.server.idle_timeout);
    if let Some(d) = &c.server.max_connection_duration {
        zero("server.max_connection_duration".into(), d);
    }
    let mut names = std::collections::HashMap::new();
    for (i, r) in c.routes.iter().enumerate() {
        let Some(name) = &r.name else { continue };
        if let Some(first) = names.insert(name.as_str(), i) {
            errors.push(l.error(format!("routes[{i}].name"), format!("route name `{name}` is already the name of routes[{first}]; route names identify routes in logs and metrics")));
        }
    }
    errors.extend(builtin_cluster_references(l));
    errors.extend(resilience_errors(l));
    for (name, cluster) in &c.clusters {
        if cluster.endpoints.is_empty() {
            errors.push(l.error(format!("clusters.{name}.endpoints"), "a cluster needs at least one endpoint"));
        }
        for ep in &cluster.endpoints {
            if std::net::ToSocketAddrs::to_socket_addrs(ep.as_str()).map(|mut a| a.next().is_none()).unwrap_or(true) {
                errors.push(l.error(
                    format!("clusters.{name}.endpoints"),
                    format!("`{ep}` is not a reachable host:port (could not resolve it)"),
                ));
            }
        }
        if cluster.hash_on.is_some() && cluster.lb != LbPolicy::Hash {
            errors.push(l.error(format!("clusters.{name}.hash_on"), "hash_on needs `lb: hash`"));
        }
    }
    for (name, p) in &c.plugins {
        match (&p.builtin, &p.module) {
            (Some(_), Some(_)) | (None, None) => errors.push(l.error(
                format!("plugins.{name}"),
                "give exactly one of `builtin` (a built-in filter) or `module` (a .wasm file)",
            )),
            (Some(b), None) if !crate::builtin::NAMES.contains(&b.as_str()) => errors.push(l.error(
                format!("plugins.{name}.builtin"),
                format!("unknown built-in filter `{b}`; built-ins are: {}", crate::builtin::NAMES.join(", ")),
            )),
            _ => {}
        }
    }
    let known: Vec<&str> = c.clusters.keys().map(String::as_str).collect();
    for (i, r) in c.routes.iter().enumerate() {
        if !r.cluster.is_empty() && !c.clusters.contains_key(&r.cluster) {
            errors.push(l.error(
                format!("routes[{i}].cluster"),
                format!("unknown cluster `{}`; defined clusters: {}", r.cluster, list(&known)),
            ));
        }
        for (j, w) in r.weighted_clusters.iter().enumerate() {
            if !c.clusters.contains_key(&w.name) {
                errors.push(l.error(
                    format!("routes[{i}].weighted_clusters[{j}].name"),
                    format!("unknown cluster `{}`; defined clusters: {}", w.name, list(&known)),
                ));
            }
        }
        errors.extend(route_errors(l, i, r));
        if r.matcher.path.is_some() && r.matcher.path_prefix.is_some() {
            errors.push(l.error(format!("routes[{i}].match"), "give `path` or `path_prefix`, not both"));
        }
        for (j, f) in r.filters.iter().enumerate() {
            errors.extend(unknown_plugin(l, format!("routes[{i}].filters[{j}].plugin"), &f.plugin));
        }
    }
    for (i, svc) in c.services.iter().enumerate() {
        errors.extend(unknown_plugin(l, format!("services[{i}].plugin"), &svc.plugin));
    }
    errors
}

/// Clusters named inside built-in filters' configurations (`auth`'s `external.cluster`,
/// `ab-routing`'s `variants[].cluster`) must exist: the filters cannot see weir's clusters,
/// and a missing one would deny every request (auth) or silently send the traffic to the
/// route's cluster (ab-routing).
/// `metrics`: a prefix that makes valid names, labels Prometheus allows, regexes that compile.
/// A route's action and conditions: exactly one action, valid statuses and regexes.
fn route_errors(l: &Loaded, i: usize, r: &Route) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let at = format!("routes[{i}]");
    let actions =
        [!r.cluster.is_empty(), !r.weighted_clusters.is_empty(), r.direct_response.is_some(), r.redirect.is_some()];
    if actions.iter().filter(|a| **a).count() != 1 {
        errors.push(
            l.error(at.clone(), "give exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`"),
        );
    }
    if !r.weighted_clusters.is_empty() && r.weighted_clusters.iter().all(|w| w.weight == 0) {
        errors.push(l.error(format!("{at}.weighted_clusters"), "at least one weight must be above 0"));
    }
    if let Some(d) = &r.direct_response
        && !(200..=599).contains(&d.status)
    {
        errors.push(l.error(format!("{at}.direct_response.status"), "must be between 200 and 599"));
    }
    if let Some(redirect) = &r.redirect {
        if ![301, 302, 303, 307, 308].contains(&redirect.response_code) {
            errors.push(l.error(format!("{at}.redirect.response_code"), "must be 301, 302, 303, 307 or 308"));
        }
        if redirect.prefix_rewrite.is_some() && r.matcher.path_prefix.is_none() {
            errors.push(
                l.error(format!("{at}.redirect.prefix_rewrite"), "needs `match.path_prefix`: the prefix it replaces"),
            );
        }
    }
    let forwards = r.direct_response.is_none() && r.redirect.is_none();
    if r.prefix_rewrite.is_some() && r.regex_rewrite.is_some() {
        errors.push(l.error(format!("{at}.prefix_rewrite"), "give `prefix_rewrite` or `regex_rewrite`, not both"));
    }
    if (r.prefix_rewrite.is_some() || r.regex_rewrite.is_some()) && !forwards {
        errors.push(l.error(format!("{at}.prefix_rewrite"), "a rewrite applies to forwarded requests only"));
    }
    if r.prefix_rewrite.is_some() && r.matcher.path_prefix.is_none() && r.matcher.path.is_none() {
        errors.push(
            l.error(format!("{at}.prefix_rewrite"), "needs `match.path_prefix` or `match.path`: what it replaces"),
        );
    }
    let regex = |errors: &mut Vec<ConfigError>, field: String, pattern: &str| {
        if let Err(e) = regex::Regex::new(pattern) {
            errors.push(l.error(field, format!("not a valid regular expression: {e}")));
        }
    };
    if let Some(p) = &r.matcher.path_regex {
        regex(&mut errors, format!("{at}.match.path_regex"), p);
    }
    if let Some(re) = &r.regex_rewrite {
        regex(&mut errors, format!("{at}.regex_rewrite.pattern"), &re.pattern);
    }
    for (kind, map) in [("headers", &r.matcher.headers), ("query_params", &r.matcher.query_params)] {
        for (name, m) in map {
            let ValueMatch::Rule(rule) = m else { continue };
            let field = format!("{at}.match.{kind}.{name}");
            let given = [&rule.exact, &rule.prefix, &rule.suffix, &rule.contains, &rule.regex]
                .iter()
                .filter(|v| v.is_some())
                .count()
                + usize::from(rule.present.is_some());
            if given != 1 {
                errors.push(l.error(
                    field.clone(),
                    "give exactly one of `exact`, `prefix`, `suffix`, `contains`, `regex` or `present`",
                ));
            }
            if let Some(p) = &rule.regex {
                regex(&mut errors, format!("{field}.regex"), p);
            }
        }
    }
    errors
}

/// Retry policies, retry budgets, health checks and outlier detection with values that cannot
/// work.
fn resilience_errors(l: &Loaded) -> Vec<ConfigError> {
    let c = &l.config;
    let mut errors = Vec::new();
    let mut policy = |at: String, p: &RetryPolicyConfig| {
        if p.num_retries > 10 {
            errors.push(l.error(
                format!("{at}.num_retries"),
                "at most 10 (each retry multiplies the load on a failing upstream)",
            ));
        }
        if p.per_try_timeout.is_some_and(|t| t.0.is_zero()) {
            errors.push(l.error(format!("{at}.per_try_timeout"), "must be longer than 0"));
        }
        if p.retry_back_off.max_interval.is_some_and(|m| m.0 < p.retry_back_off.base_interval.0) {
            errors.push(l.error(format!("{at}.retry_back_off.max_interval"), "must be at least base_interval"));
        }
        let listed = p.retry_on.contains(&RetryOn::RetriableStatusCodes);
        if listed && p.retriable_status_codes.is_empty() {
            errors.push(
                l.error(format!("{at}.retriable_status_codes"), "`retriable-status-codes` needs the codes to retry"),
            );
        }
        if let Some(code) = p.retriable_status_codes.iter().find(|s| !(100..=599).contains(*s)) {
            errors.push(l.error(format!("{at}.retriable_status_codes"), format!("{code} is not an HTTP status")));
        }
    };
    for (i, r) in c.routes.iter().enumerate() {
        if let Some(p) = &r.retry_policy {
            policy(format!("routes[{i}].retry_policy"), p);
        }
    }
    for (name, cluster) in &c.clusters {
        if let Some(p) = &cluster.retry_policy {
            policy(format!("clusters.{name}.retry_policy"), p);
        }
    }
    for (name, cluster) in &c.clusters {
        let at = format!("clusters.{name}");
        if !(0.0..=100.0).contains(&cluster.retry_budget.budget_percent) {
            errors.push(l.error(format!("{at}.retry_budget.budget_percent"), "must be between 0 and 100"));
        }
        if let Some(h) = &cluster.health_check {
            if h.timeout.0.is_zero() {
                errors.push(l.error(format!("{at}.health_check.timeout"), "must be longer than 0"));
            }
            if let Some(http) = &h.http {
                if !http.path.starts_with('/') {
                    errors.push(l.error(format!("{at}.health_check.http.path"), "must start with `/`"));
                }
                if http.expected_statuses.is_empty() || http.expected_statuses.iter().any(|s| !(100..=599).contains(s))
                {
                    errors.push(l.error(
                        format!("{at}.health_check.http.expected_statuses"),
                        "must list HTTP statuses (100 to 599)",
                    ));
                }
            }
        }
        if let Some(o) = &cluster.outlier_detection {
            if o.max_ejection_percent > 100 {
                errors.push(l.error(format!("{at}.outlier_detection.max_ejection_percent"), "at most 100"));
            }
            if o.base_ejection_time.0.is_zero() || o.max_ejection_time.0 < o.base_ejection_time.0 {
                errors.push(l.error(
                    format!("{at}.outlier_detection.base_ejection_time"),
                    "must be longer than 0 and at most max_ejection_time",
                ));
            }
        }
    }
    errors
}

fn metrics_errors(l: &Loaded) -> Vec<ConfigError> {
    let m = &l.config.metrics;
    let mut errors = Vec::new();
    let name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    if !m.filter_prefix.starts_with(name_start) || !m.filter_prefix.chars().all(name_char) {
        errors.push(l.error(
            "metrics.filter_prefix",
            "must start a valid Prometheus name: a letter, `_` or `:`, then letters, digits, `_` or `:`",
        ));
    }
    for (i, rule) in m.filter_tags.iter().enumerate() {
        let label_ok = rule.tag_name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && rule.tag_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !rule.tag_name.starts_with("__")
            && rule.tag_name != "le";
        if !label_ok {
            errors.push(l.error(
                format!("metrics.filter_tags[{i}].tag_name"),
                "must be a Prometheus label name (letters, digits, `_`; not `le`, not starting with `__`)",
            ));
        }
        if let Err(e) = crate::metrics::filters::tag_regex(&rule.regex) {
            errors.push(l.error(format!("metrics.filter_tags[{i}].regex"), e));
        }
    }
    errors
}

fn builtin_cluster_references(l: &Loaded) -> Vec<ConfigError> {
    let c = &l.config;
    let mut errors = Vec::new();
    let mut check = |field: String, cluster: Option<&serde_yaml_ng::Value>| {
        let Some(name) = cluster.and_then(serde_yaml_ng::Value::as_str) else { return };
        if !c.clusters.contains_key(name) {
            let known: Vec<&str> = c.clusters.keys().map(String::as_str).collect();
            errors.push(l.error(field, format!("unknown cluster `{name}`; defined clusters: {}", list(&known))));
        }
    };
    for (i, r) in c.routes.iter().enumerate() {
        for (j, f) in r.filters.iter().enumerate() {
            let builtin = c.plugins.get(&f.plugin).and_then(|p| p.builtin.as_deref());
            // A configuration given as JSON text is read the same way (YAML is a superset).
            let parsed = match &f.config {
                Some(serde_yaml_ng::Value::String(text)) => serde_yaml_ng::from_str(text).ok(),
                other => other.clone(),
            };
            let Some(config) = &parsed else { continue };
            let field = |rest: &str| format!("routes[{i}].filters[{j}].config.{rest}");
            match builtin {
                Some("auth") => check(field("external.cluster"), config.get("external").and_then(|e| e.get("cluster"))),
                Some("ab-routing") => {
                    let variants = config.get("variants").and_then(serde_yaml_ng::Value::as_sequence);
                    for (k, v) in variants.into_iter().flatten().enumerate() {
                        check(field(&format!("variants[{k}].cluster")), v.get("cluster"));
                    }
                }
                _ => {}
            }
        }
    }
    errors
}

/// The error for a reference to a plugin `plugins` does not define.
fn unknown_plugin(l: &Loaded, field: String, name: &str) -> Option<ConfigError> {
    let plugins = &l.config.plugins;
    if plugins.contains_key(name) {
        return None;
    }
    let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
    Some(l.error(field, format!("unknown plugin `{name}`; defined plugins: {}", list(&known))))
}

fn list(items: &[&str]) -> String {
    if items.is_empty() { "(none)".into() } else { items.join(", ") }
}
