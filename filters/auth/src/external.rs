//! The external authorization service (Envoy `ext_authz`, HTTP flavour): the check request
//! sent to it and what its answer means for the paused request.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::headers::{self, Headers};
use crate::reply::Reply;

/// `external` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    cluster: String,
    path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_headers_to_send")]
    headers_to_send: Vec<String>,
    #[serde(default)]
    headers_from_response: Vec<String>,
    #[serde(default)]
    failure_mode_allow: bool,
}

/// Envoy's `ext_authz` default.
fn default_timeout_ms() -> u64 {
    200
}

/// Envoy's HTTP `ext_authz` sends `authorization` by default.
fn default_headers_to_send() -> Vec<String> {
    vec!["authorization".to_owned()]
}

/// Headers the check request always carries; the configuration cannot override them.
const OWN: &[&str] = &["x-original-uri", "x-original-method", "x-request-id", "content-length", "host"];

/// A checked `external` section.
#[derive(Debug)]
pub struct External {
    /// Cluster the check goes to (must exist in the proxy).
    pub cluster: String,
    path: String,
    /// How long to wait for the answer.
    pub timeout: Duration,
    headers_to_send: Vec<String>,
    /// Copied from a 2xx answer into the request (lower-case).
    pub headers_from_response: Vec<String>,
    failure_mode_allow: bool,
}

/// What to do with the paused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Set these request headers and let the request through.
    Resume(Vec<(String, String)>),
    /// Answer locally.
    Reply(Reply),
}

impl External {
    /// Checks `raw`.
    pub fn new(raw: Raw) -> Result<Self, ConfigError> {
        if raw.cluster.is_empty() || !headers::is_safe_value(&raw.cluster) {
            return Err(ConfigError::new("external.cluster", "expected the name of a configured cluster"));
        }
        if !raw.path.starts_with('/') || raw.path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ConfigError::new(
                "external.path",
                format!("expected a path starting with `/`, got {:?}", raw.path),
            ));
        }
        if !(1..=60_000).contains(&raw.timeout_ms) {
            return Err(ConfigError::new("external.timeout_ms", "expected milliseconds from 1 to 60000"));
        }
        let names = |field: &str, list: Vec<String>| -> Result<Vec<String>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, n)| {
                    let name = headers::name(&format!("{field}[{i}]"), n)?;
                    if OWN.contains(&name.as_str()) {
                        return Err(ConfigError::new(
                            &format!("{field}[{i}]"),
                            format!("{name:?} is set by the filter"),
                        ));
                    }
                    Ok(name)
                })
                .collect()
        };
        Ok(Self {
            headers_to_send: names("external.headers_to_send", raw.headers_to_send)?,
            headers_from_response: names("external.headers_from_response", raw.headers_from_response)?,
            cluster: raw.cluster,
            path: raw.path,
            timeout: Duration::from_millis(raw.timeout_ms),
            failure_mode_allow: raw.failure_mode_allow,
        })
    }

    /// The check request's headers: a GET of the configured path, the selected request
    /// headers, the original URI and method, the request id, and the identity established
    /// by the local checks (`identity` = (header, value)).
    pub fn request(&self, request: &Headers, identity: Option<(&str, &str)>) -> Vec<(String, String)> {
        let mut out = vec![
            (":method".to_owned(), "GET".to_owned()),
            (":path".to_owned(), self.path.clone()),
            (":authority".to_owned(), self.cluster.clone()),
            ("x-original-uri".to_owned(), request.get(":path").unwrap_or("/").to_owned()),
            ("x-original-method".to_owned(), request.get(":method").unwrap_or("GET").to_owned()),
        ];
        if let Some(id) = request.get("x-request-id") {
            out.push(("x-request-id".to_owned(), id.to_owned()));
        }
        for name in &self.headers_to_send {
            if identity.is_some_and(|(h, _)| h == name) {
                continue;
            }
            if let Some(v) = request.get(name) {
                out.push((name.clone(), v.to_owned()));
            }
        }
        if let Some((h, v)) = identity {
            out.push((h.to_owned(), v.to_owned()));
        }
        out
    }

    /// The decision for an answer with `status` (None: the call failed, timed out or was
    /// reset) and `response` headers. 2xx allows; 5xx counts as a failure, as in Envoy;
    /// 401 is passed on with the service's challenge; any other status is a 403.
    pub fn on_response(&self, status: Option<u32>, response: &Headers) -> Decision {
        match status {
            Some(200..=299) => Decision::Resume(
                self.headers_from_response
                    .iter()
                    .filter_map(|h| {
                        let v = response.get(h).filter(|v| headers::is_safe_value(v))?;
                        Some((h.clone(), v.to_owned()))
                    })
                    .collect(),
            ),
            None | Some(500..=599) => self.on_failure(),
            Some(401) => {
                let challenge = response.get("www-authenticate").filter(|v| headers::is_safe_value(v));
                Decision::Reply(Reply::unauthorized(challenge.map(str::to_owned).into_iter().collect()))
            }
            Some(_) => Decision::Reply(Reply::forbidden()),
        }
    }

    /// The decision when the service could not be asked.
    pub fn on_failure(&self) -> Decision {
        if self.failure_mode_allow { Decision::Resume(Vec::new()) } else { Decision::Reply(Reply::forbidden()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn external(v: serde_json::Value) -> Result<External, ConfigError> {
        let raw: Raw = serde_json::from_value(v).map_err(|e| ConfigError::new("test", e))?;
        External::new(raw)
    }

    fn ext() -> External {
        match external(
            json!({"cluster": "authz", "path": "/check", "headers_to_send": ["authorization", "x-api-key", "x-user"],
                              "headers_from_response": ["x-user", "x-tenant"]}),
        ) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn check_request_carries_the_selection() {
        let req = headers(&[
            (":method", "POST"),
            (":path", "/orders?x=1"),
            ("authorization", "Bearer t"),
            ("x-request-id", "r1"),
            ("cookie", "secret"),
        ]);
        let out = ext().request(&req, Some(("x-auth-identity", "alice")));
        let get = |n: &str| out.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(":method"), Some("GET"));
        assert_eq!(get(":path"), Some("/check"));
        assert_eq!(get(":authority"), Some("authz"));
        assert_eq!(get("x-original-uri"), Some("/orders?x=1"));
        assert_eq!(get("x-original-method"), Some("POST"));
        assert_eq!(get("x-request-id"), Some("r1"));
        assert_eq!(get("authorization"), Some("Bearer t"));
        assert_eq!(get("x-auth-identity"), Some("alice"));
        assert_eq!(get("cookie"), None);
        assert_eq!(get("x-api-key"), None);
    }

    #[test]
    fn answers_map_to_decisions() {
        let e = ext();
        let resp = headers(&[("x-user", "u1"), ("x-tenant", "t1"), ("x-other", "o"), ("www-authenticate", "Bearer")]);
        assert_eq!(
            e.on_response(Some(204), &resp),
            Decision::Resume(vec![("x-user".into(), "u1".into()), ("x-tenant".into(), "t1".into())])
        );
        assert_eq!(e.on_response(Some(403), &resp), Decision::Reply(Reply::forbidden()));
        assert_eq!(e.on_response(Some(302), &resp), Decision::Reply(Reply::forbidden()));
        assert_eq!(e.on_response(Some(401), &resp), Decision::Reply(Reply::unauthorized(vec!["Bearer".into()])));
        assert_eq!(e.on_response(Some(503), &resp), Decision::Reply(Reply::forbidden()));
        assert_eq!(e.on_response(None, &resp), Decision::Reply(Reply::forbidden()));
    }

    #[test]
    fn failure_mode_allow_resumes_without_headers() {
        let Ok(e) = external(json!({"cluster": "authz", "path": "/check", "failure_mode_allow": true,
                                    "headers_from_response": ["x-user"]}))
        else {
            panic!("valid")
        };
        assert_eq!(e.on_response(None, &headers(&[("x-user", "spoof")])), Decision::Resume(vec![]));
        assert_eq!(e.on_response(Some(500), &Headers::default()), Decision::Resume(vec![]));
        assert_eq!(e.on_failure(), Decision::Resume(vec![]));
        assert_eq!(e.on_response(Some(403), &Headers::default()), Decision::Reply(Reply::forbidden()));
    }

    #[test]
    fn unsafe_response_values_are_not_copied() {
        let resp = headers(&[("x-user", "a\r\nx-admin: true")]);
        assert_eq!(ext().on_response(Some(200), &resp), Decision::Resume(vec![]));
    }

    #[test]
    fn bad_sections_are_refused() {
        let e = |v: serde_json::Value| external(v).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(json!({"cluster": "", "path": "/"})).contains("external.cluster"));
        assert!(e(json!({"cluster": "a", "path": "check"})).contains("external.path"));
        assert!(e(json!({"cluster": "a", "path": "/", "timeout_ms": 0})).contains("external.timeout_ms"));
        assert!(
            e(json!({"cluster": "a", "path": "/", "headers_to_send": ["x-original-uri"]}))
                .contains("headers_to_send[0]")
        );
        assert!(
            e(json!({"cluster": "a", "path": "/", "headers_from_response": [":status"]}))
                .contains("headers_from_response[0]")
        );
        assert!(e(json!({"path": "/"})).contains("cluster"));
    }
}
