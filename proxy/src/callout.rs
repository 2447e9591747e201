//! Runs the callouts filters ask for (`proxy_http_call`, `proxy_grpc_call`) against configured
//! clusters, and turns every failure into what Envoy delivers: a 503 when no connection could
//! be made, a 504 on timeout, a reset (no headers) when the exchange broke midway.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use weir_abi::{
    Callout, CalloutKind, CalloutResult, GrpcCallRequest, GrpcEvent, HeaderMap, HttpCallRequest, HttpCallResponse,
};

use crate::clusters::Cluster;

/// Largest callout response body kept; beyond it the call counts as reset (Envoy's buffer limit).
const MAX_RESPONSE_BODY: usize = 4 << 20;
/// Informational answers a callout skips before it counts as broken.
const MAX_INFORMATIONAL: usize = 8;

/// Connection pool for callouts.
/// Starts the work of one callout a filter asked for: the future yields its token and result,
/// to hand back to the VM. `None` for work that has no result of its own (messages, half-close
/// or cancel on gRPC streams, which the client does not carry).
///
/// `trace`: the request's trace context, when tracing is on (a root context's callouts start
/// traces of their own); the callout's span goes to the service in `traceparent`.
pub fn start(
    state: &std::sync::Arc<crate::state::State>,
    generation: &std::sync::Arc<crate::generation::Generation>,
    c: Callout,
    trace: Option<&opentelemetry::Context>,
) -> Option<BoxFuture<'static, (u32, CalloutResult)>> {
    let (state, generation, token) = (state.clone(), generation.clone(), c.token);
    match c.kind {
        CalloutKind::Http(mut req) => {
            let span = crate::traces::CalloutSpan::start(trace, &req.cluster, &mut req.headers);
            let work = async move {
                let cluster = generation.clusters.get(&req.cluster).cloned();
                state.callouts.http(cluster.as_deref(), &req).await
            };
            Some(traced(span, work, status_of).map(move |r| (token, CalloutResult::Http(r))).boxed())
        }
        CalloutKind::Grpc(mut req) if req.message.is_some() => {
            let span = crate::traces::CalloutSpan::start(trace, &req.cluster, &mut req.initial_metadata);
            let work = async move {
                let cluster = generation.clusters.get(&req.cluster).cloned();
                state.callouts.grpc_unary(cluster.as_deref(), &req).await
            };
            let status =
                |e: &GrpcEvent| if matches!(e, GrpcEvent::Close { status, .. } if *status != 0) { 0 } else { 200 };
            Some(traced(span, work, status).map(move |e| (token, CalloutResult::Grpc(e))).boxed())
        }
        // A stream: closed at once with UNIMPLEMENTED, so the filter hears why instead of
        // waiting for events that never come.
        CalloutKind::Grpc(_) => {
            let message = "gRPC streams are not supported by weir".to_owned();
            Some(futures::future::ready((token, CalloutResult::Grpc(GrpcEvent::Close { status: 12, message }))).boxed())
        }
        CalloutKind::GrpcSend { .. } | CalloutKind::GrpcClose | CalloutKind::GrpcCancel => None,
    }
}

/// Runs `work` inside the callout's span (when tracing is on), ending it with `status` of the
/// result.
async fn traced<T>(
    span: Option<crate::traces::CalloutSpan>,
    work: impl std::future::Future<Output = T>,
    status: impl FnOnce(&T) -> u16,
) -> T {
    let result = work.await;
    if let Some(span) = span {
        span.finish(status(&result));
    }
    result
}

/// The status of a callout's answer (0: none, the call was reset).
fn status_of(response: &HttpCallResponse) -> u16 {
    match response {
        HttpCallResponse::Response { headers, .. } => {
            headers.get_str(":status").and_then(|s| s.parse().ok()).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Awaits `work` and hands its result to `vm`'s instance on this thread, outside any stream
/// (the root context's callouts, and calls their stream did not wait for).
pub async fn deliver(vm: std::sync::Arc<weir_abi::VmSpec>, work: BoxFuture<'static, (u32, CalloutResult)>) {
    let (token, result) = work.await;
    deliver_result(&vm, token, result);
}

/// Hands a callout's result to `vm`'s instance on this thread; the VM's loop then runs what the
/// callback started.
pub fn deliver_result(vm: &std::sync::Arc<weir_abi::VmSpec>, token: u32, result: CalloutResult) {
    weir_abi::pool::with_vm(vm, None, |v| {
        if let Ok((v, _)) = v
            && let Err(f) = v.on_callout_result(None, token, result)
        {
            tracing::warn!(target: "weir::proxy", failure = %f, "filter failed handling a callout response");
        }
    });
    crate::workers::wake_this_thread();
}

pub struct Client {
    connector: Connector,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an exchange failed.
enum Broke {
    Connect,
    Midway,
}

impl Client {
    /// A client with its own connection pool.
    pub fn new() -> Self {
        Self { connector: Connector::new(None) }
    }

    /// Runs an HTTP callout to `cluster`.
    pub async fn http(&self, cluster: Option<&Cluster>, req: &HttpCallRequest) -> HttpCallResponse {
        let Some(cluster) = cluster else { return HttpCallResponse::unreachable() };
        let authority = req.headers.get(b":authority").cloned().unwrap_or_default();
        let exchange = self.exchange(cluster, &authority, &req.headers, req.body.clone(), false);
        let result = match req.timeout {
            Some(t) => match tokio::time::timeout(t, exchange).await {
                Ok(r) => r,
                Err(_) => return HttpCallResponse::timeout(),
            },
            None => exchange.await,
        };
        match result {
            Ok((headers, body, trailers)) => HttpCallResponse::Response { headers, body, trailers },
            Err(Broke::Connect) => HttpCallResponse::unreachable(),
            Err(Broke::Midway) => HttpCallResponse::Reset,
        }
    }

    /// Runs a unary gRPC call: one message back, or a close with the gRPC status.
    pub async fn grpc_unary(&self, cluster: Option<&Cluster>, req: &GrpcCallRequest) -> GrpcEvent {
        let Some(cluster) = cluster else { return close(14, "no healthy upstream") };
        let mut headers = HeaderMap::from_pairs([
            (":method", "POST"),
            (":path", &format!("/{}/{}", req.service, req.method)),
            (":authority", cluster.name.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]);
        for (k, v) in req.initial_metadata.iter() {
            headers.add(k, Bytes::copy_from_slice(v));
        }
        let message = req.message.clone().unwrap_or_default();
        let mut framed = BytesMut::with_capacity(message.len() + 5);
        framed.extend_from_slice(&[0]);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let exchange = self.exchange(cluster, cluster.name.as_bytes(), &headers, framed.freeze(), true);
        let result = match req.timeout {
            Some(t) => match tokio::time::timeout(t, exchange).await {
                Ok(r) => r,
                Err(_) => return close(4, "deadline exceeded"),
            },
            None => exchange.await,
        };
        let (headers, body, trailers) = match result {
            Ok(r) => r,
            Err(_) => return close(14, "upstream connect error or disconnect/reset"),
        };
        let status = trailers
            .get_str("grpc-status")
            .or_else(|| headers.get_str("grpc-status"))
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(if headers.get_str(":status") == Some("200") { 0 } else { 2 });
        if status != 0 {
            let msg = trailers.get_str("grpc-message").or_else(|| headers.get_str("grpc-message")).unwrap_or("");
            return close(status, msg);
        }
        match body.get(5..).zip(body.get(1..5)) {
            Some((rest, len)) => {
                let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                GrpcEvent::Message(Bytes::copy_from_slice(&rest[..n.min(rest.len())]))
            }
            None => GrpcEvent::Message(Bytes::new()),
        }
    }

    async fn exchange(
        &self,
        cluster: &Cluster,
        hash_key: &[u8],
        headers: &HeaderMap,
        body: Bytes,
        want_trailers: bool,
    ) -> Result<(HeaderMap, Bytes, HeaderMap), Broke> {
        let peer = cluster.peer(hash_key, &[]).ok_or(Broke::Connect)?;
        let (mut session, _reused) = self.connector.get_http_session(&peer).await.map_err(|_| Broke::Connect)?;
        let method = headers.get_str(":method").unwrap_or("GET");
        let path = headers.get_str(":path").unwrap_or("/");
        let mut rh = RequestHeader::build(method, path.as_bytes(), None).map_err(|_| Broke::Connect)?;
        if let Some(a) = headers.get(b":authority") {
            let _ = rh.insert_header(http::header::HOST, a.to_vec());
        }
        for (k, v) in headers.regular() {
            if let Ok(name) = http::HeaderName::from_bytes(k) {
                let _ = rh.append_header(name, v.to_vec());
            }
        }
        session.write_request_header(Box::new(rh)).await.map_err(|_| Broke::Midway)?;
        if !body.is_empty() {
            session.write_request_body(body, true).await.map_err(|_| Broke::Midway)?;
        }
        session.finish_request_body().await.map_err(|_| Broke::Midway)?;
        // Informational answers (100 Continue, 103 Early Hints) come before the final one.
        let mut informational = 0;
        loop {
            session.read_response_header().await.map_err(|_| Broke::Midway)?;
            let status = session.response_header().ok_or(Broke::Midway)?.status;
            if !status.is_informational() {
                break;
            }
            informational += 1;
            if status == http::StatusCode::SWITCHING_PROTOCOLS || informational > MAX_INFORMATIONAL {
                return Err(Broke::Midway);
            }
        }
        let resp = session.response_header().ok_or(Broke::Midway)?;
        let mut out = HeaderMap::new();
        out.add(b":status", Bytes::from(resp.status.as_u16().to_string()));
        for (n, v) in resp.headers.iter() {
            out.add(n.as_str().as_bytes(), Bytes::copy_from_slice(v.as_bytes()));
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(|_| Broke::Midway)? {
            data.extend_from_slice(&chunk);
            if data.len() > MAX_RESPONSE_BODY {
                return Err(Broke::Midway);
            }
        }
        let mut trailers = HeaderMap::new();
        if want_trailers
            && let HttpSession::H2(h2) = &mut session
            && let Ok(Some(t)) = h2.read_trailers().await
        {
            trailers = crate::convert::trailers(&t);
        }
        self.connector.release_http_session(session, &peer, Some(Duration::from_secs(60))).await;
        Ok((out, data.freeze(), trailers))
    }
}

fn close(status: u32, message: &str) -> GrpcEvent {
    GrpcEvent::Close { status, message: message.to_owned() }
}
