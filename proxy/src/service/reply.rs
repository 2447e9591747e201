//! Writing replies the proxy makes itself: filter local replies, failures, and errors.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;
use weir_abi::{HeaderMap, LocalResponse};

use super::ctx::RequestCtx;
use crate::convert;

/// A text reply with Envoy's headers.
pub fn plain(status: u16, body: &'static str, details: &str) -> LocalResponse {
    LocalResponse {
        status,
        headers: HeaderMap::from_pairs([
            ("content-type", "text/plain"),
            ("content-length", body.len().to_string().as_str()),
        ]),
        body: Bytes::from_static(body.as_bytes()),
        details: details.into(),
    }
}

/// What Envoy answers when `limit` ended an upstream read: its stream idle timeout is 408
/// while the request still arrives, else 504; a try's own timeout and the route's are 504.
pub fn for_timeout(limit: super::tries::ReadLimit, request_received: bool) -> LocalResponse {
    use super::tries::ReadLimit;
    match limit {
        ReadLimit::Idle if !request_received => plain(408, "stream timeout", "stream_idle_timeout"),
        ReadLimit::Idle => plain(504, "stream timeout", "stream_idle_timeout"),
        ReadLimit::PerTry => plain(504, "upstream request timeout\n", "upstream_per_try_timeout"),
        ReadLimit::Cluster | ReadLimit::Route => plain(504, "upstream request timeout\n", "upstream_response_timeout"),
    }
}

/// What Envoy answers for a proxy error: 503 when no upstream connection could be made, 504
/// on timeouts, 502 for other upstream failures.
pub fn for_error(e: &Error) -> LocalResponse {
    if e.esource() == &ErrorSource::Downstream {
        return match e.etype() {
            // The client stopped sending its request body.
            ErrorType::ReadTimedout => plain(408, "request timeout\n", "stream_idle_timeout"),
            _ => plain(400, "bad request\n", "downstream_protocol_error"),
        };
    }
    match e.etype() {
        ErrorType::HTTPStatus(code) => {
            let mut r = plain(*code, "", "proxy_error");
            r.headers = HeaderMap::new();
            r.body = Bytes::new();
            r
        }
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError => plain(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n",
            "upstream_reset_before_response_started{connection_failure}",
        ),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            plain(504, "upstream request timeout\n", "upstream_response_timeout")
        }
        _ if e.esource() == &ErrorSource::Upstream => {
            plain(502, "upstream error\n", "upstream_reset_before_response_started{connection_termination}")
        }
        _ => plain(500, "internal error\n", "internal_error"),
    }
}

/// Whether `e` says the client went away (nothing can be sent to it any more).
pub fn client_gone(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError | ErrorType::WriteTimedout
        )
}

/// Whether the request is gRPC.
fn is_grpc(session: &Session) -> bool {
    let content_type = session.req_header().headers.get(http::header::CONTENT_TYPE);
    content_type.is_some_and(|v| weir_abi::is_grpc_content_type(v.as_bytes()))
}

/// `r` as the client gets it: to a gRPC request as a trailers-only gRPC response (Envoy's
/// rule for its local replies), then through the filters' response callbacks, as Envoy's local
/// replies go through its encoder filters (docs/abi.md §8.3). The response code the log and
/// `response.code` report is the one sent.
pub fn encoded(session: &Session, ctx: &mut RequestCtx, r: LocalResponse) -> LocalResponse {
    let r = if is_grpc(session) { weir_abi::grpc_reply(r) } else { r };
    let lent = ctx.lent_headers(session, None);
    let Some(chain) = ctx.chain.as_mut() else { return r };
    let r = weir_abi::lend_headers(&lent, || chain.encode_reply(&mut ctx.stream, r));
    ctx.stream.info.response_code = Some(r.status);
    r
}

/// Sends `r`, [`encoded`], to the client.
///
/// # Errors
///
/// When the client connection fails.
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, r: LocalResponse) -> Result<()> {
    let r = encoded(session, ctx, r);
    write(session, &r).await
}

/// Sends `r` to the client.
///
/// # Errors
///
/// When the client connection fails.
pub async fn write(session: &mut Session, r: &LocalResponse) -> Result<()> {
    let resp = match convert::local_response(r.status, &r.headers) {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(target: "weir::proxy", error = %weir_abi::Chain(&e), "invalid local reply from a filter; sending 500");
            ResponseHeader::build(500, Some(1))?
        }
    };
    let mut resp = resp;
    // The reply's own framing: HTTP/1 needs a length, even 0, to keep the connection (Envoy's
    // codec adds `content-length: 0` to a bodiless reply other than 204 and 304).
    resp.remove_header(&http::header::TRANSFER_ENCODING);
    // Over HTTP/2 the length is only a check, but it must be the body's: a filter may have
    // replaced the body of the reply.
    let bodiless = matches!(resp.status.as_u16(), 204 | 304);
    if !bodiless && (!session.is_http2() || !r.body.is_empty()) {
        resp.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
    }
    // A HEAD request gets the headers only, with the length GET's body has (RFC 9110 §9.3.2):
    // Pingora leaves out a body after them over HTTP/1, but not over HTTP/2, where the data
    // would be a protocol error for the client.
    let has_body = !r.body.is_empty() && session.req_header().method != http::Method::HEAD;
    session.write_response_header(Box::new(resp), !has_body).await?;
    if has_body {
        session.write_response_body(Some(r.body.clone()), true).await?;
    } else if session.is_http2() {
        // Pingora's session writes the header without ending the stream, and an HTTP/2 stream
        // dropped unended is reset (CANCEL): a client reading the reply after a failed upstream
        // saw an error. HTTP/1 needs nothing more (and an empty body there would cut a HEAD
        // reply's announced length short, closing the connection).
        session.write_response_body(None, true).await?;
    }
    Ok(())
}
