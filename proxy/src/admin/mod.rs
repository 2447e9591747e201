//! The admin listener (loopback by default): `/ready`, `/metrics`, `/plugins` (modules,
//! generations, VMs and their memory, failures), `/clusters` (endpoints, health, counters),
//! `/server_info`, `/config` (secrets redacted), `/logging` (log levels, changed with POST)
//! and `POST /reload`. See `docs/operations.md`.

mod info;
mod logging;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::State;

/// The admin application.
pub struct Admin {
    /// Shared state.
    pub state: Arc<State>,
    /// Where the proxy listens, reported by `/ready`.
    pub listeners: Vec<String>,
    /// Runs reloads.
    pub reloader: Arc<crate::reload::Reloader>,
    /// The file holding the token requests must present (`admin.token_file`, absolute).
    pub token_file: Option<std::path::PathBuf>,
}

/// Whether the request carries the token in `file` as `Authorization: Bearer <token>`.
fn authorized(session: &ServerSession, file: &std::path::Path) -> Result<bool, crate::config::TokenError> {
    use subtle::ConstantTimeEq;
    let token = crate::config::read_admin_token(file)?;
    let presented = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    Ok(bool::from(presented.ct_eq(token.as_bytes())))
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let query = session.req_header().uri.query().unwrap_or_default().to_owned();
        let method = session.req_header().method.clone();

        // `/ready` stays open: load balancers and kubelets probe it without credentials.
        if let Some(file) = self.token_file.as_deref().filter(|_| path != "/ready") {
            match authorized(session, file) {
                Ok(true) => {}
                Ok(false) => {
                    let mut r = respond(
                        StatusCode::UNAUTHORIZED,
                        "text/plain",
                        "this admin listener needs `Authorization: Bearer <the token in admin.token_file>`\n",
                    );
                    r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                    return r;
                }
                Err(e) => {
                    tracing::error!(target: "weir::admin", error = %weir_abi::Chain(&e), "cannot read the admin token; refusing admin requests");
                    return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the admin token cannot be read\n");
                }
            }
        }
        if method == http::Method::HEAD {
            // As GET, without the body (its length stays).
            let mut response = self.route("GET", &path, &query).await;
            response.body_mut().clear();
            return response;
        }
        self.route(method.as_str(), &path, &query).await
    }
}

impl Admin {
    async fn route(&self, method: &str, path: &str, query: &str) -> Response<Vec<u8>> {
        let generation = self.state.current.load();
        match (method, path) {
            ("GET", "/ready") => {
                // True once every worker runs its VMs and the listeners accept, until a
                // shutdown starts draining.
                let lifecycle = &self.state.lifecycle;
                let ready = lifecycle.ready();
                let body = serde_json::json!({
                    "ready": ready,
                    "draining": lifecycle.draining(),
                    "generation": generation.id,
                    "listeners": self.listeners,
                });
                let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                respond(status, "application/json", body.to_string() + "\n")
            }
            ("GET", "/metrics") => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.state.metrics.render(&self.state.runtime, &generation),
            ),
            ("GET", "/server_info") => json(StatusCode::OK, &info::server_info(&self.state, &generation)),
            ("GET", "/clusters") => json(StatusCode::OK, &info::clusters(&self.state, &generation)),
            ("GET", "/logging") => json(StatusCode::OK, &logging::levels(&generation)),
            ("POST", "/logging") => match logging::change(&generation, query) {
                Ok(levels) => json(StatusCode::OK, &levels),
                Err((status, message)) => json(status, &serde_json::json!({ "error": message })),
            },
            ("GET", "/plugins") => {
                let plugins: serde_json::Map<String, serde_json::Value> = generation
                    .plugins
                    .iter()
                    .map(|(name, p)| {
                        let stats = p.vm.stats();
                        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                        let v = serde_json::json!({
                            "sha256": p.sha256,
                            "abi": p.abi,
                            "vm_id": p.vm.config.vm_id,
                            "failure_policy": p.failure_policy.name(),
                            "memory_limit_bytes": p.vm.config.limits.memory_bytes,
                            "deadline_ms": p.vm.config.limits.callback_deadline.as_millis() as u64,
                            "code": p.vm.module.tier().name(),
                            "vms_alive": load(&stats.instances),
                            "vms_on_baseline_code": load(&stats.baseline_instances),
                            "memory_bytes": load(&stats.memory_bytes),
                            "resident_bytes": stats.resident_bytes(),
                            "failures": load(&stats.failures),
                        });
                        (name.clone(), v)
                    })
                    .collect();
                let body = serde_json::json!({ "generation": generation.id, "plugins": plugins, "vms_live": weir_abi::live_instances() });
                respond(StatusCode::OK, "application/json", body.to_string() + "\n")
            }
            ("GET", "/config") => {
                let body = crate::config::redacted_json(&generation.loaded.text);
                respond(StatusCode::OK, "application/json", body + "\n")
            }
            ("POST", "/reload") => match self.reloader.reload("POST /reload").await {
                Ok(r) => {
                    let body =
                        serde_json::json!({ "generation": r.generation, "took_ms": r.took.as_secs_f64() * 1000.0 });
                    respond(StatusCode::OK, "application/json", body.to_string() + "\n")
                }
                Err(errors) => {
                    let body = serde_json::json!({ "errors": errors, "generation": gen_id(&self.state) });
                    respond(StatusCode::UNPROCESSABLE_ENTITY, "application/json", body.to_string() + "\n")
                }
            },
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try GET /ready, /metrics, /plugins, /clusters, /server_info, /config, /logging, \
                 or POST /reload, /logging?level=LEVEL, /logging?plugin=NAME&level=LEVEL\n",
            ),
        }
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", body.to_string() + "\n")
}

fn gen_id(state: &State) -> u64 {
    state.current.load().id
}
