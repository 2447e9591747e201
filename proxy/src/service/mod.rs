//! The Pingora proxy service: maps each Pingora phase to the Proxy-Wasm phases of the route's
//! filter chain (ABI.md §5.3) and acts on the outcomes.
//!
//! | Pingora hook | filters |
//! |---|---|
//! | `request_filter` | route match, `on_request_headers` (a pause awaits its callouts) |
//! | `upstream_peer` | cluster: the route's, or `weir.upstream_cluster` set by a filter |
//! | `request_body_filter` | `on_request_body` per chunk (held while a filter buffers) |
//! | `response_filter` | `on_response_headers`, reverse order |
//! | `response_body_filter` | `on_response_body` (buffering only: the hook cannot await) |
//! | `response_trailer_filter` | `on_response_trailers` (HTTP/2) |
//! | `logging` + `Drop` | `on_log`, `on_done`, `on_delete`, exactly once |
//!
//! Every request pins the generation it started with; VMs live in per-thread pools, so the
//! service runs with work stealing off (a request never changes thread).

mod ctx;
mod drive;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use weir_abi::{FilterChain, Outcome};

pub use ctx::RequestCtx;
use drive::Flow;

use crate::convert;
use crate::state::State;

/// The proxy application.
pub struct WeirProxy {
    /// Shared state.
    pub state: Arc<State>,
}

fn reset_error() -> Box<Error> {
    Error::explain(ErrorType::Custom("stream reset by filter"), "a filter closed the stream")
}

fn reply_error(status: u16) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), "local reply from a filter")
}

#[async_trait]
impl ProxyHttp for WeirProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.state.current.load_full())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.fill_request(session);
        let Some(route) = ctx.generation.route(&ctx.stream.request_headers) else {
            let r = reply::plain(404, "no route matched\n", "route_not_found");
            ctx.stream.info.response_code_details = r.details.clone();
            reply::write(session, &r).await?;
            return Ok(true);
        };
        ctx.select_route(route);
        let eos = session.is_body_empty();
        ctx.request_done_at_headers = eos;
        let plugins = ctx.generation.routes[route].chain.clone();
        if !plugins.is_empty() {
            let mut chain = FilterChain::new(plugins);
            let out = chain.on_request_headers(&mut ctx.stream, eos);
            ctx.chain = Some(chain);
            match drive::drive(&self.state, ctx, out).await {
                Flow::Continue | Flow::Buffer => {}
                Flow::Reply(r) => {
                    reply::write(session, &r).await?;
                    return Ok(true);
                }
                Flow::Reset => {
                    ctx.reset = true;
                    return Err(reset_error());
                }
            }
            if ctx.chain.as_mut().is_some_and(FilterChain::take_clear_route_cache) {
                ctx.reroute();
            }
        }
        // Most requests leave the headers as they came (or no filter runs): nothing to write back.
        if ctx.stream.request_headers.is_changed()
            && let Err(e) = convert::apply_request(&ctx.stream.request_headers, session.req_header_mut())
        {
            tracing::warn!(target: "weir::proxy", error = %e, "a filter produced an invalid request");
            reply::write(session, &reply::plain(500, "invalid request produced by a filter\n", "wasm_invalid_headers"))
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let (name, cluster) = ctx.cluster().ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no cluster"))?;
        let key: Vec<u8> = match cluster.hash_header() {
            Some(h) => ctx.stream.request_headers.get(h.as_bytes()).map(|v| v.to_vec()).unwrap_or_default(),
            // The client's IP, not ip:port, so a client sticks across connections.
            None => session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string().into_bytes())
                .unwrap_or_default(),
        };
        let peer = cluster.peer(&key).ok_or_else(|| {
            Error::explain(ErrorType::HTTPStatus(503), format!("no healthy endpoint in cluster {name}"))
        })?;
        ctx.stream.info.cluster_name = name;
        ctx.stream.info.upstream_address = peer._address.as_inet().copied();
        Ok(Box::new(peer))
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.request_done_at_headers || ctx.chain.is_none() {
            return Ok(());
        }
        ctx.request_body_done |= end_of_stream;
        if let Some(b) = body.take() {
            ctx.held_request += b.len();
            ctx.stream.request_body.extend_from_slice(&b);
        }
        if ctx.held_request > ctx.generation.max_buffered_body() {
            ctx.reply = Some(reply::plain(413, "payload too large\n", "request_payload_too_large"));
            return Err(reply_error(413));
        }
        let out = match ctx.chain.as_mut() {
            Some(chain) => chain.on_request_body(&mut ctx.stream, end_of_stream),
            None => Outcome::Continue,
        };
        match drive::drive(&self.state, ctx, out).await {
            Flow::Continue => {
                let data = ctx.stream.request_body.split().freeze();
                ctx.held_request = 0;
                *body = Some(data);
            }
            // Hold with an empty chunk: `None` would end the upstream body.
            Flow::Buffer => *body = Some(Bytes::new()),
            Flow::Reply(r) => {
                let status = r.status;
                ctx.reply = Some(r);
                return Err(reply_error(status));
            }
            Flow::Reset => {
                ctx.reset = true;
                return Err(reset_error());
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.stream.info.response_code = Some(resp.status.as_u16());
        let Some(chain) = ctx.chain.as_mut() else { return Ok(()) };
        ctx.stream.response_headers = convert::response_headers(resp);
        let no_body = ctx.stream.is_head() || matches!(resp.status.as_u16(), 204 | 304);
        let out = chain.on_response_headers(&mut ctx.stream, no_body);
        match drive::drive(&self.state, ctx, out).await {
            Flow::Continue | Flow::Buffer => {
                if ctx.stream.response_headers.is_changed()
                    && let Err(e) = convert::apply_response(&ctx.stream.response_headers, resp)
                {
                    tracing::warn!(target: "weir::proxy", error = %e, "a filter produced an invalid response");
                    ctx.reset = true;
                    return Err(reset_error());
                }
            }
            Flow::Reply(r) => {
                let mut local = convert::local_response(r.status, &r.headers).map_err(|e| {
                    Error::explain(ErrorType::InternalError, format!("invalid local reply from a filter: {e}"))
                })?;
                local.remove_header(&http::header::TRANSFER_ENCODING);
                local.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
                *resp = local;
                ctx.stream.info.response_code = Some(r.status);
                ctx.body_replacement =
                    Some(if session.req_header().method == http::Method::HEAD { Bytes::new() } else { r.body });
            }
            Flow::Reset => {
                ctx.reset = true;
                return Err(reset_error());
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(replacement) = &ctx.body_replacement {
            *body = end_of_stream.then(|| replacement.clone());
            return Ok(None);
        }
        let Some(chain) = ctx.chain.as_mut() else { return Ok(None) };
        if let Some(b) = body.take() {
            ctx.held_response += b.len();
            ctx.stream.response_body.extend_from_slice(&b);
        }
        if ctx.held_response > ctx.generation.max_buffered_body() {
            ctx.reset = true;
            return Err(Error::explain(ErrorType::Custom("response too large to buffer"), "over max_buffered_body"));
        }
        match chain.on_response_body(&mut ctx.stream, end_of_stream) {
            Outcome::Continue => {
                ctx.held_response = 0;
                let data = ctx.stream.response_body.split().freeze();
                *body = (!data.is_empty() || end_of_stream).then_some(data);
            }
            Outcome::Buffer => *body = None,
            Outcome::Pause { callouts } => {
                // This hook cannot await: a filter pausing the response body for a callout is
                // not supported; release what we have so the response completes.
                tracing::warn!(target: "weir::proxy", callouts = callouts.len(), "a filter paused the response body; continuing");
                let data = ctx.stream.response_body.split().freeze();
                *body = Some(data);
            }
            Outcome::LocalResponse(_) | Outcome::Failed(_) | Outcome::Close => {
                // The response headers are already on their way: only a reset is possible.
                ctx.reset = true;
                return Err(reset_error());
            }
        }
        drive::spawn_detached(&self.state, ctx);
        Ok(None)
    }

    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Bytes>> {
        let Some(chain) = ctx.chain.as_mut() else { return Ok(None) };
        ctx.stream.response_trailers = Some(convert::trailers(trailers));
        let out = chain.on_response_trailers(&mut ctx.stream);
        if let Flow::Reset | Flow::Reply(_) = drive::drive(&self.state, ctx, out).await {
            ctx.reset = true;
            return Err(reset_error());
        }
        if let Some(t) = &ctx.stream.response_trailers {
            convert::apply_trailers(t, trailers).map_err(|e| Error::explain(ErrorType::InternalError, e))?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        if ctx.reset {
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        let reply = ctx.reply.take().unwrap_or_else(|| reply::for_error(e));
        let code = reply.status;
        ctx.stream.info.response_code = Some(code);
        if ctx.stream.info.response_code_details.is_empty() || ctx.stream.info.response_code_details == "via_upstream" {
            ctx.stream.info.response_code_details = reply.details.clone();
        }
        if let Err(err) = reply::write(session, &reply).await {
            tracing::debug!(target: "weir::proxy", error = %err, "could not send the error response");
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.stream.info.response_code.is_none() {
            ctx.stream.info.response_code = session.response_written().map(|r| r.status.as_u16());
        }
        ctx.finish(&self.state.metrics);
        let status = ctx.stream.info.response_code.unwrap_or(0);
        tracing::info!(
            target: "weir::access",
            method = ctx.stream.request_headers.get_str(":method").unwrap_or("-"),
            path = ctx.stream.request_headers.get_str(":path").unwrap_or("-"),
            status,
            details = ctx.stream.info.response_code_details.as_str(),
            route = ctx.route_name(),
            filters = ctx.filter_summary(),
            duration_us = ctx.started.elapsed().as_micros() as u64,
            error = e.map(|e| e.to_string()),
            "request"
        );
    }
}
