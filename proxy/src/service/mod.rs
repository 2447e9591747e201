//! The Pingora proxy service: maps each Pingora phase to the Proxy-Wasm phases of the route's
//! filter chain (docs/abi.md#http-stream) and acts on the outcomes.
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

mod body_buffer;
mod ctx;
mod drive;
mod reply;
mod tries;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
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
    /// Downstream connection limits.
    pub limits: crate::connections::Limits,
}

fn reset_error() -> Box<Error> {
    Error::explain(ErrorType::Custom("stream reset by filter"), "a filter closed the stream")
}

/// The error that ends an exchange whose reply a filter already sent in full.
const REPLIED: &str = "local reply sent";

/// True when the upstream response has no body: no body callback will follow its headers.
fn ends_at_headers(resp: &ResponseHeader) -> bool {
    matches!(resp.status.as_u16(), 204 | 304)
        || resp.headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
}

fn reply_error(status: u16) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), "local reply from a filter")
}

/// A `direct_response` or `redirect` route's answer.
fn route_reply(session: &Session, ctx: &RequestCtx) -> Option<weir_abi::LocalResponse> {
    use crate::route_action::Action;
    match ctx.route_action() {
        Action::Forward { .. } => None,
        Action::Direct { status, body } => {
            let length = body.len().to_string();
            let headers = match body.is_empty() {
                true => weir_abi::HeaderMap::new(),
                false => weir_abi::HeaderMap::from_pairs([("content-type", "text/plain"), ("content-length", &length)]),
            };
            Some(weir_abi::LocalResponse {
                status: *status,
                headers,
                body: body.clone(),
                details: "direct_response".into(),
            })
        }
        Action::Redirect(redirect) => {
            let req = session.req_header();
            let scheme = if ctx.tls() { "https" } else { "http" };
            let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
            let location =
                crate::route_action::location(redirect, scheme, convert::authority(req), path, ctx.route_prefix());
            let mut r = reply::plain(redirect.response_code, "", "direct_response");
            r.headers = weir_abi::HeaderMap::new();
            r.headers.add(b"location", Bytes::from(location));
            r.body = Bytes::new();
            Some(r)
        }
    }
}

impl WeirProxy {
    /// Runs `on_request_body` over the data the stream holds; returns what to send upstream
    /// now (nothing while a filter buffers).
    async fn request_body_step(&self, ctx: &mut RequestCtx, session: &Session, end_of_stream: bool) -> Result<Bytes> {
        let lent = ctx.lent_headers(session, None);
        let out = match ctx.chain.as_mut() {
            Some(chain) => weir_abi::lend_headers(&lent, || chain.on_request_body(&mut ctx.stream, end_of_stream)),
            None => Outcome::Continue,
        };
        match drive::drive(&self.state, ctx, out).await {
            Flow::Continue => {
                ctx.held_request = 0;
                Ok(body_buffer::take(&mut ctx.stream.request_body))
            }
            Flow::Buffer => Ok(Bytes::new()),
            Flow::Reply(r) => {
                let status = r.status;
                ctx.reply = Some(r);
                Err(reply_error(status))
            }
            Flow::Reset => {
                ctx.reset = true;
                Err(reset_error())
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for WeirProxy {
    /// Boxed: Pingora moves its per-request future (which holds the context) into a box of
    /// its own for every request, and a pointer is cheaper to carry than the whole context.
    type CTX = Box<RequestCtx>;

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx::new(self.state.current.load_full(), crate::lifecycle::Lifecycle::enter(&self.state)))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.fill_request(session);
        let req = session.req_header();
        ctx.trace = crate::traces::RequestTrace::start(&req.headers, req.method.as_str(), req.uri.path(), ctx.started);
        if self.state.lifecycle.draining() || crate::connections::expired(self.limits.max_duration) {
            // Shutting down, or the connection is past server.max_connection_duration: the
            // client makes its next request on a new connection.
            session.set_keepalive(None);
        } else if session.get_keepalive().is_some() {
            // Between requests (the connection watchdog bounds the whole idle time too). Only
            // where the client keeps the connection: an HTTP/1.0 request without keep-alive,
            // or one with `connection: close`, ends it.
            session.set_keepalive(Some(self.limits.idle_timeout.as_secs().max(1)));
        }
        // CONNECT matches no route (Envoy answers it 404 unless a route enables it).
        let route = match session.req_header().method {
            http::Method::CONNECT => None,
            _ => ctx.generation.route(&crate::routes::Head { req: session.req_header(), tls: ctx.tls() }),
        };
        let Some(route) = route else {
            if session.req_header().method == http::Method::CONNECT {
                // What follows a CONNECT on the connection is a tunnel, not another request.
                session.set_keepalive(None);
            }
            let r = reply::plain(404, "no route matched\n", "route_not_found");
            ctx.stream.info.response_code_details = r.details.clone().into();
            reply::send(session, ctx, r).await?;
            return Ok(true);
        };
        ctx.select_route(route);
        if let Some(trace) = &ctx.trace {
            trace.route(session.req_header().method.as_str(), ctx.route_name());
        }
        let eos = session.is_body_empty();
        ctx.request_done_at_headers = eos;
        let plugins = &ctx.generation.routes[route].chain;
        if !plugins.is_empty() {
            let mut chain = FilterChain::new(plugins.iter().cloned());
            if ctx.trace.as_ref().is_some_and(|t| t.sampled()) {
                chain.record_calls();
            }
            ctx.defer_filter_view(session);
            let lent = ctx.lent_headers(session, None);
            let out = weir_abi::lend_headers(&lent, || chain.on_request_headers(&mut ctx.stream, eos));
            ctx.chain = Some(chain);
            let flow = match out {
                Outcome::Continue => drive::continued(&self.state, ctx),
                out => drive::drive(&self.state, ctx, out).await,
            };
            match flow {
                Flow::Continue | Flow::Buffer => {}
                Flow::Reply(r) => {
                    reply::send(session, ctx, r).await?;
                    return Ok(true);
                }
                Flow::Reset => {
                    ctx.reset = true;
                    return Err(reset_error());
                }
            }
            // Envoy clears the route cache when a filter of ABI 0.2.1 or older (every ABI weir
            // runs) changed the request headers, and on `clear_route_cache`.
            let cleared = ctx.chain.as_mut().is_some_and(FilterChain::take_clear_route_cache);
            if cleared || ctx.stream.request_headers.is_changed() {
                let lent = ctx.lent_headers(session, None);
                weir_abi::lend_headers(&lent, || ctx.reroute());
            }
        }
        // The route's own answer comes after the filters' request headers, as Envoy's router
        // is the last decoder filter.
        if let Some(r) = route_reply(session, ctx) {
            ctx.stream.info.response_code_details = r.details.clone().into();
            reply::send(session, ctx, r).await?;
            return Ok(true);
        }
        // Most requests leave the headers as they came (or no filter runs): nothing to write back.
        if ctx.chain.is_some() && ctx.stream.request_headers.is_changed() {
            // The access log shows the path the client sent.
            ctx.original_uri = Some(session.req_header().uri.clone());
            if let Err(e) = convert::apply_request(&ctx.stream.request_headers, session.req_header_mut()) {
                tracing::warn!(target: "weir::proxy", error = %weir_abi::Chain(&e), "a filter produced an invalid request");
                let r = reply::plain(500, "invalid request produced by a filter\n", "wasm_invalid_headers");
                reply::send(session, ctx, r).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        let cluster = ctx.upstream_cluster().ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no cluster"))?;
        tries::start_try(&self.state, ctx, &cluster);
        let tried = &ctx.tries.tried;
        let picked = match (cluster.hashes(), cluster.hash_header()) {
            (false, _) => cluster.peer(&[], tried),
            // The request as it goes upstream (filters' changes were written back).
            (true, Some(h)) => {
                cluster.peer(session.req_header().headers.get(h).map_or(&[][..], |v| v.as_bytes()), tried)
            }
            // The client's IP, not ip:port, so a client sticks across connections.
            (true, None) => {
                let ip =
                    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string()).unwrap_or_default();
                cluster.peer(ip.as_bytes(), tried)
            }
        };
        let mut peer = picked.ok_or_else(|| {
            Error::explain(
                ErrorType::HTTPStatus(503),
                format!("no healthy endpoint in cluster {}", ctx.stream.info.cluster_name),
            )
        })?;
        ctx.stream.info.upstream_address = peer._address.as_inet().copied();
        tries::back_off(ctx, ctx.stream.info.upstream_address).await;
        ctx.tries.tried.extend(ctx.stream.info.upstream_address);
        ctx.upstream_sent.get_or_insert_with(std::time::Instant::now);
        tries::bound_reads(ctx, &mut peer);
        ctx.retry_response = false;
        if let Some(trace) = ctx.trace.as_mut() {
            ctx.trace_headers = trace.upstream(&cluster.name, ctx.stream.info.upstream_address);
        }
        ctx.upstream = Some(cluster);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // The upstream span's trace context replaces the caller's.
        for (name, value) in &ctx.trace_headers {
            upstream_request.insert_header(*name, value.as_str())?;
        }
        // The route's path rewrite, on what goes upstream only: filters and the access log
        // keep the path as it was (Envoy's router rewrites when it forwards).
        if let crate::route_action::Action::Forward { rewrite: Some(rewrite), .. } = ctx.route_action() {
            let path = upstream_request.uri.path_and_query().map_or("/", |p| p.as_str());
            let uri: http::Uri = rewrite
                .apply(path)
                .parse()
                .map_err(|e| Error::because(ErrorType::InternalError, "the route's rewrite made an invalid path", e))?;
            upstream_request.set_uri(uri);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(cluster) = &ctx.upstream {
            cluster.metrics(&self.state.metrics).connect_failure();
        }
        e.set_retry(tries::retry(&self.state, session, ctx, crate::retry::TryFailure::ConnectFailure));
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if std::mem::take(&mut ctx.retry_response) {
            // `upstream_response_filter` decided: the answer's status is retried.
            e.set_retry(true);
            return e;
        }
        // The route's timeout or idle timeout ended: no try is left to make.
        if e.etype() == &ErrorType::ReadTimedout
            && matches!(ctx.read_limit, tries::ReadLimit::Route | tries::ReadLimit::Idle)
        {
            e.set_retry(false);
            return e;
        }
        // Pingora's own judgement: a pooled connection the upstream had closed, or an HTTP/2
        // GOAWAY, failed before the request was processed; an idempotent request goes again.
        // That is not the endpoint failing: outlier detection and the retry policy skip it.
        e.retry.decide_reuse(client_reused);
        let safe = e.retry()
            && session.req_header().method.is_idempotent()
            && !ctx.upstream_answered
            && !session.as_ref().retry_buffer_truncated();
        if !safe {
            let failure = tries::failure_of(&e, ctx.read_limit);
            e.set_retry(tries::retry(&self.state, session, ctx, failure));
        }
        e
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if status < 200 {
            return Ok(());
        }
        let failure = crate::retry::TryFailure::Status(status);
        if tries::retry(&self.state, session, ctx, failure) {
            // Failing the try here, before `response_filter`, keeps the answer from the filters
            // and the client; Pingora asks `upstream_peer` for the next try.
            ctx.retry_response = true;
            return Error::e_explain(ErrorType::HTTPStatus(status), "the upstream's answer is retried (retry_policy)");
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if end_of_stream {
            ctx.upstream_done = Some(std::time::Instant::now());
        } else if tries::past_deadline(ctx) {
            // The route's timeout ended while the response was arriving: the stream is reset.
            ctx.read_limit = tries::ReadLimit::Route;
            return Error::e_explain(ErrorType::ReadTimedout, "the route's timeout ended during the response");
        }
        Ok(None)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if ctx.request_done_at_headers || ctx.chain.is_none() {
            return Ok(());
        }
        if let Some(sent) = ctx.replay() {
            // A retry: the body the filters released before, not the client's again.
            ctx.request_length.send(sent.len(), false);
            *body = Some(sent);
            return Ok(());
        }
        ctx.request_body_done |= end_of_stream;
        if let Some(b) = body.take() {
            ctx.held_request += b.len();
            body_buffer::append(&mut ctx.stream.request_body, b);
        }
        if ctx.held_request > ctx.generation.max_buffered_body() {
            ctx.reply = Some(reply::plain(413, "payload too large\n", "request_payload_too_large"));
            return Err(reply_error(413));
        }
        // Envoy's HTTP/1 codec ends a body framed by content-length apart from its data: the
        // last data arrives with end_of_stream false, then an empty callback ends the stream.
        let apart = end_of_stream
            && !ctx.stream.request_body.is_empty()
            && convert::framed_by_length(session.req_header(), session.is_http2());
        let released = if apart {
            let data = self.request_body_step(ctx, session, false).await?;
            let end = self.request_body_step(ctx, session, true).await?;
            body_buffer::join(data, end)
        } else {
            self.request_body_step(ctx, session, end_of_stream).await?
        };
        // The request headers left with the filters' length; the body must match it.
        ctx.request_length.declare(&session.req_header().headers);
        if !ctx.request_length.send(released.len(), end_of_stream) {
            ctx.reply = Some(reply::plain(500, "internal error\n", "wasm_body_length_mismatch"));
            return Err(reply_error(500));
        }
        ctx.keep_sent(&released);
        // An empty chunk holds the body: `None` would end the upstream body.
        *body = Some(released);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.stream.info.response_code = Some(resp.status.as_u16());
        ctx.upstream_answered = true;
        if crate::connections::expired(self.limits.max_duration) {
            // The connection passed server.max_connection_duration during this request.
            session.set_keepalive(None);
        }
        if !ctx.client_sent_head && session.req_header().method == http::Method::HEAD {
            // A filter made the upstream request a HEAD: its answer has no body, whatever
            // length it announces, and the client (which asked for one) must not wait for it.
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            let _ = resp.insert_header(http::header::CONTENT_LENGTH, "0");
        }
        // An HTTP/1.1 client gets an HTTP/1.1 response whatever the upstream spoke (nginx and
        // Envoy do this); Pingora frames a body of unknown length as chunked for it.
        if !session.is_http2()
            && session.req_header().version == http::Version::HTTP_11
            && resp.version < http::Version::HTTP_11
        {
            resp.set_version(http::Version::HTTP_11);
        }
        let lent = ctx.lent_headers(session, Some(resp));
        let Some(chain) = ctx.chain.as_mut() else { return Ok(()) };
        ctx.stream.response_headers = convert::unbuilt_response_view(resp);
        // Looked up once: the framing now, the declared length too unless a filter changes it.
        let length_header = resp.headers.get(http::header::CONTENT_LENGTH);
        ctx.response_framed_by_length = resp.version != http::Version::HTTP_2 && length_header.is_some();
        let declared = ctx::content_length(length_header);
        // The request went upstream as the filters left it: Pingora's method is theirs.
        let no_body = session.req_header().method == http::Method::HEAD || matches!(resp.status.as_u16(), 204 | 304);
        let out = weir_abi::lend_headers(&lent, || chain.on_response_headers(&mut ctx.stream, no_body));
        let flow = match out {
            Outcome::Continue => drive::continued(&self.state, ctx),
            out => drive::drive(&self.state, ctx, out).await,
        };
        match flow {
            Flow::Continue | Flow::Buffer => {
                let changed = ctx.stream.response_headers.is_changed();
                if changed && let Err(e) = convert::apply_response(&ctx.stream.response_headers, resp) {
                    tracing::warn!(target: "weir::proxy", error = %weir_abi::Chain(&e), "a filter produced an invalid response");
                    ctx.reset = true;
                    return Err(reset_error());
                }
                match (no_body, changed) {
                    (true, _) => {}
                    (false, true) => ctx.response_length.declare(&resp.headers),
                    (false, false) => ctx.response_length.declare_length(declared),
                }
            }
            Flow::Reply(r) => {
                let mut local = convert::local_response(r.status, &r.headers).map_err(|e| {
                    Error::explain(
                        ErrorType::InternalError,
                        format!("invalid local reply from a filter: {}", weir_abi::Chain(&e)),
                    )
                })?;
                local.remove_header(&http::header::TRANSFER_ENCODING);
                local.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
                ctx.stream.info.response_code = Some(r.status);
                let head = session.req_header().method == http::Method::HEAD;
                if ends_at_headers(resp) && !head {
                    // No body callback follows an upstream response without a body: send the
                    // whole reply now (Envoy's sendDirectLocalReply) and end the exchange.
                    session.write_response_header(Box::new(local), false).await?;
                    session.write_response_body(Some(r.body), true).await?;
                    ctx.replied = true;
                    return Err(Error::explain(ErrorType::Custom(REPLIED), "a filter's reply was sent"));
                }
                *resp = local;
                ctx.body_replacement = Some(if head { Bytes::new() } else { r.body });
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
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let Some(replacement) = &ctx.body_replacement {
            *body = end_of_stream.then(|| replacement.clone());
            return Ok(None);
        }
        let lent = ctx.lent_headers(session, session.response_written());
        let Some(chain) = ctx.chain.as_mut() else { return Ok(None) };
        let head = session.req_header().method == http::Method::HEAD;
        if let Some(b) = body.take() {
            ctx.held_response += b.len();
            body_buffer::append(&mut ctx.stream.response_body, b);
        }
        if ctx.held_response > ctx.generation.max_buffered_body() {
            ctx.reset = true;
            return Err(Error::explain(ErrorType::Custom("response too large to buffer"), "over max_buffered_body"));
        }
        // As for requests: an HTTP/1 response framed by content-length ends apart from its data.
        let mut released = Bytes::new();
        let (framed, stream) = (ctx.response_framed_by_length, &mut ctx.stream);
        let out = weir_abi::lend_headers(&lent, || {
            if end_of_stream && framed && !stream.response_body.is_empty() {
                match chain.on_response_body(stream, false) {
                    Outcome::Continue | Outcome::Pause { .. } => {
                        released = body_buffer::take(&mut stream.response_body)
                    }
                    Outcome::Buffer => {}
                    Outcome::LocalResponse(_) | Outcome::Failed(_) | Outcome::Close => return None,
                }
                Some(chain.on_response_body(stream, true))
            } else {
                Some(chain.on_response_body(stream, end_of_stream))
            }
        });
        let Some(out) = out else {
            ctx.reset = true;
            return Err(reset_error());
        };
        match out {
            Outcome::Continue => {
                ctx.held_response = 0;
                let data = body_buffer::join(released, body_buffer::take(&mut ctx.stream.response_body));
                if !head && !ctx.response_length.send(data.len(), end_of_stream) {
                    // The response head is gone: a broken response, never a truncated or
                    // overlong one that looks complete.
                    tracing::warn!(target: "weir::proxy", route = ctx.route_name(), "a filter changed the response body against its content-length; resetting the response");
                    ctx.stream.info.response_code_details = "wasm_body_length_mismatch".into();
                    ctx.reset = true;
                    return Err(reset_error());
                }
                *body = (!data.is_empty() || end_of_stream).then_some(data);
            }
            Outcome::Buffer => *body = None,
            Outcome::Pause { callouts } => {
                // This hook cannot await: a filter pausing the response body for a callout is
                // not supported; release what we have so the response completes.
                tracing::warn!(target: "weir::proxy", callouts = callouts.len(), "a filter paused the response body; continuing");
                let data = body_buffer::take(&mut ctx.stream.response_body);
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
        session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Bytes>> {
        let lent = ctx.lent_headers(session, session.response_written());
        let Some(chain) = ctx.chain.as_mut() else { return Ok(None) };
        ctx.stream.response_trailers = Some(convert::trailers(trailers));
        let out = weir_abi::lend_headers(&lent, || chain.on_response_trailers(&mut ctx.stream));
        if let Flow::Reset | Flow::Reply(_) = drive::drive(&self.state, ctx, out).await {
            ctx.reset = true;
            return Err(reset_error());
        }
        if let Some(t) = &ctx.stream.response_trailers {
            convert::apply_trailers(t, trailers)
                .map_err(|e| Error::explain(ErrorType::InternalError, weir_abi::Chain(&e).to_string()))?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Self::CTX) -> FailToProxy {
        if ctx.replied {
            return FailToProxy { error_code: ctx.stream.info.response_code.unwrap_or(0), can_reuse_downstream: false };
        }
        if ctx.reset {
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        if session.response_written().is_some() {
            // The response has started: no error text can follow it. The upstream died
            // mid-body (the client must see the response broken, as Envoy resets the stream),
            // or the client went away; either way the log keeps the status the client got.
            let details = match e.esource() {
                pingora::ErrorSource::Downstream => "downstream_remote_disconnect",
                _ => "upstream_reset_after_response_started",
            };
            ctx.stream.info.response_code_details = details.into();
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        if e.esource() == &pingora::ErrorSource::Upstream
            && matches!(e.etype(), ErrorType::ReadTimedout | ErrorType::WriteTimedout)
            && let Some(cluster) = &ctx.upstream
        {
            cluster.metrics(&self.state.metrics).timeout();
        }
        if reply::client_gone(e) {
            // Nothing was sent and nothing can be: the log says so (status 0, as Envoy's).
            ctx.stream.info.response_code = Some(0);
            ctx.stream.info.response_code_details = "downstream_remote_disconnect".into();
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        // A filter's reply sent from here is its decision, not an error (`suppress_error_log`).
        ctx.replied = ctx.reply.is_some();
        let reply = ctx.reply.take().unwrap_or_else(|| match e.etype() {
            ErrorType::ReadTimedout if e.esource() != &pingora::ErrorSource::Downstream => {
                reply::for_timeout(ctx.read_limit, ctx.request_received() || session.is_body_done())
            }
            _ => reply::for_error(e),
        });
        if ctx.stream.info.response_code_details.is_empty() || ctx.stream.info.response_code_details == "via_upstream" {
            ctx.stream.info.response_code_details = reply.details.clone().into();
        }
        let reply = reply::encoded(session, ctx, reply);
        let code = reply.status;
        ctx.stream.info.response_code = Some(code);
        // Pingora keeps the connection after an error only before an upstream was chosen, and
        // then only when the request was read whole; otherwise the reply must say that the
        // connection closes, or a client sends its next request into a closing socket.
        let reuse = ctx.tries.count == 0 && session.is_body_done();
        if !reuse {
            session.set_keepalive(None);
        }
        if let Err(err) = reply::write(session, &reply).await {
            tracing::debug!(target: "weir::proxy", error = %err, "could not send the error response");
        }
        FailToProxy { error_code: code, can_reuse_downstream: reuse }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        // One request's failure (an upstream that refused or reset, a client that went away, a
        // filter's reply or reset) is recorded in its access-log line with the error and
        // response code details, as Envoy does; ERROR is for what an operator must act on.
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        if ctx.stream.info.response_code.is_none() {
            ctx.stream.info.response_code = session.response_written().map(|r| r.status.as_u16());
        }
        let bytes = (session.body_bytes_read() as u64, session.body_bytes_sent() as u64);
        let lent = ctx.lent_headers(session, session.response_written());
        weir_abi::lend_headers(&lent, || ctx.finish(&self.state.metrics, bytes));
        let status = ctx.stream.info.response_code.unwrap_or(0);
        let error = e.map(|e| e as &dyn std::fmt::Display);
        let req = session.req_header();
        let uri = ctx.original_uri.as_ref().unwrap_or(&req.uri);
        let authority =
            uri.authority().map(|a| a.as_str()).or_else(|| req.headers.get(http::header::HOST)?.to_str().ok());
        let micros = |d: Duration| d.as_micros() as u64;
        crate::access_log::record(&crate::access_log::Entry {
            client: ctx.stream.info.source,
            request_id: req.headers.get(ctx::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            method: req.method.as_str(),
            authority: authority.unwrap_or_default(),
            path: uri.path_and_query().map_or("-", |p| p.as_str()),
            protocol: ctx.stream.info.protocol,
            status,
            details: ctx.response_code_details(),
            bytes_received: session.body_bytes_read() as u64,
            bytes_sent: session.body_bytes_sent() as u64,
            // Measured by `finish` above, for the filters' `request.duration`.
            duration_us: micros(ctx.stream.info.duration.unwrap_or_else(|| ctx.started.elapsed())),
            route: ctx.route_name(),
            upstream_cluster: if ctx.upstream.is_some() { &ctx.stream.info.cluster_name } else { "" },
            upstream_address: ctx.stream.info.upstream_address.filter(|_| ctx.upstream.is_some()),
            upstream_time_us: ctx.upstream_time().map(micros),
            tls_version: ctx.stream.info.tls.as_ref().map_or("", |t| t.version.as_str()),
            filters: ctx.filter_summary(),
            error,
        });
    }
}
