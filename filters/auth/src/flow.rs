//! The order of checks for one request: protected headers dropped, exempt paths, local
//! credentials (API key, Basic, Bearer JWT), then the external service.

use crate::basic;
use crate::config::Config;
use crate::headers::Headers;
use crate::jwt::Jwt;
use crate::path;
use crate::reply::Reply;

/// What the filter does with the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set these request headers and continue.
    Continue(Vec<(String, String)>),
    /// Answer locally.
    Reply(Reply),
    /// Set these headers, then pause and send the check request (`request` headers) to the
    /// external service.
    Callout {
        /// Request headers to set now.
        set: Vec<(String, String)>,
        /// The check request's headers.
        request: Vec<(String, String)>,
    },
}

/// Decides what happens to a request with `headers` at `now` (Unix seconds). The caller
/// removes [`Config::protected_headers`] from the real request first; this removes them
/// from the snapshot, so nothing the client sent under those names is ever trusted.
pub fn on_request(config: &Config, mut headers: Headers, now: u64) -> Step {
    headers.remove_all(config.protected_headers());
    let full_path = headers.get(":path").unwrap_or("/");
    if config.exempt.matches(full_path) {
        return Step::Continue(Vec::new());
    }
    let identity = match local(config, &headers, now) {
        Local::Skip => None,
        Local::Allow { identity, extra } => Some((identity, extra)),
        Local::Deny(reply) => return Step::Reply(reply),
    };
    let (id, extra) = identity.unwrap_or_default();
    // The check request is built first: it borrows the identity that `set` then takes.
    let request = config.external.as_ref().map(|ext| {
        let forwarded = id.as_deref().map(|id| (config.identity_header.as_str(), id));
        ext.request(&headers, forwarded)
    });
    let mut set = Vec::with_capacity(usize::from(id.is_some()) + extra.len());
    if let Some(id) = id {
        set.push((config.identity_header.clone(), id));
    }
    set.extend(extra);
    match request {
        Some(request) => Step::Callout { request, set },
        None => Step::Continue(set),
    }
}

enum Local {
    /// No local method is configured.
    Skip,
    /// Valid credentials: the identity (if any) and headers from claims.
    Allow {
        identity: Option<String>,
        extra: Vec<(String, String)>,
    },
    Deny(Reply),
}

/// The first configured method whose credentials the request carries decides.
fn local(config: &Config, headers: &Headers, now: u64) -> Local {
    if config.api_keys.is_none() && config.basic.is_none() && config.jwt.is_none() {
        return Local::Skip;
    }
    let allow = |identity: &str| Local::Allow { identity: Some(identity.to_owned()), extra: Vec::new() };
    let (_, query) = path::split(headers.get(":path").unwrap_or("/"));
    if let Some(keys) = &config.api_keys
        && let Some(presented) = keys.presented(headers, query)
    {
        return match keys.check(&presented) {
            Some(name) => allow(name),
            None => Local::Deny(Reply::unauthorized(vec![format!("{}, error=\"invalid_key\"", keys.challenge())])),
        };
    }
    let authorization = headers.get("authorization");
    if let Some(b) = &config.basic
        && let Some(value) = authorization.filter(|a| basic::is_basic(a))
    {
        return match b.check(value) {
            Some(user) => allow(user),
            None => Local::Deny(Reply::unauthorized(vec![b.challenge()])),
        };
    }
    if let Some(jwt) = &config.jwt
        && let Some(token) = jwt.token(headers)
    {
        return match jwt.verify(token, now) {
            Ok(claims) => Local::Allow { identity: Jwt::identity(&claims), extra: jwt.claim_headers(&claims) },
            Err(e) => Local::Deny(Reply::unauthorized(vec![format!(
                "Bearer error=\"invalid_token\", error_description=\"{e}\""
            )])),
        };
    }
    let mut challenges = Vec::new();
    if let Some(keys) = &config.api_keys {
        challenges.push(keys.challenge());
    }
    if let Some(b) = &config.basic {
        challenges.push(b.challenge());
    }
    if config.jwt.is_some() {
        challenges.push("Bearer".to_owned());
    }
    Local::Deny(Reply::unauthorized(challenges))
}

#[cfg(test)]
mod tests;
