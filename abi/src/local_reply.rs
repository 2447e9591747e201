//! Envoy's rules for a local reply (docs/abi.md#local-replies): `:status` and the filter's headers; with a
//! body `content-length` and, unless given, `content-type: text/plain`; without one neither;
//! gRPC requests get a trailers-only 200 with `grpc-status` and `grpc-message`; HEAD gets no
//! body.

use bytes::Bytes;

use crate::headers::HeaderMap;
use crate::stream::{LocalResponse, StreamState};

/// The response headers (with `:status`) and body Envoy would send for `reply`.
pub(crate) fn finalize(
    reply: &LocalResponse,
    grpc_status: Option<u32>,
    stream: &mut StreamState,
) -> (HeaderMap, Bytes) {
    stream.request_headers.build();
    let mut headers = HeaderMap::new();
    if stream.is_grpc() {
        headers.add(b":status", Bytes::from_static(b"200"));
        for (k, v) in grpc_headers(reply, grpc_status).iter() {
            headers.add(k, Bytes::copy_from_slice(v));
        }
        return (headers, Bytes::new());
    }
    headers.add(b":status", Bytes::from(reply.status.to_string()));
    for (k, v) in reply.headers.iter() {
        headers.add(k, Bytes::copy_from_slice(v));
    }
    if reply.body.is_empty() {
        headers.remove(b"content-length");
        headers.remove(b"content-type");
    } else {
        headers.replace(b"content-length", Bytes::from(reply.body.len().to_string()));
        if headers.get(b"content-type").is_none() {
            headers.add(b"content-type", Bytes::from_static(b"text/plain"));
        }
    }
    let body = if stream.is_head() { Bytes::new() } else { reply.body.clone() };
    (headers, body)
}

/// The headers of `reply` as a trailers-only gRPC response (its HTTP status and body become
/// `grpc-status` and `grpc-message`), as Envoy's `Utility::sendLocalReply` answers a gRPC
/// request.
fn grpc_headers(reply: &LocalResponse, grpc_status: Option<u32>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in reply.headers.iter() {
        headers.add(k, Bytes::copy_from_slice(v));
    }
    headers.replace(b"content-type", Bytes::from_static(b"application/grpc"));
    let status = grpc_status.unwrap_or_else(|| grpc_status_for_http(reply.status));
    headers.replace(b"grpc-status", Bytes::from(status.to_string()));
    if !reply.body.is_empty() {
        headers.replace(b"grpc-message", Bytes::from(percent_encode(&reply.body)));
    }
    headers.remove(b"content-length");
    headers
}

/// A reply the proxy makes itself, in the form a gRPC request gets it: HTTP 200, trailers
/// only, its status mapped to `grpc-status` and its body sent as `grpc-message` (Envoy's rule
/// for every local reply to a gRPC request). A reply that already has a `grpc-status` (a
/// filter's, made by `proxy_send_local_response`) is returned as it is.
pub fn grpc_reply(mut reply: LocalResponse) -> LocalResponse {
    if reply.headers.get(b"grpc-status").is_some() {
        return reply;
    }
    // The proxy's texts end with a newline for terminals; a gRPC message does not.
    if reply.body.ends_with(b"\n") {
        reply.body.truncate(reply.body.len() - 1);
    }
    let headers = grpc_headers(&reply, None);
    LocalResponse { status: 200, headers, body: Bytes::new(), details: reply.details }
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn grpc_status_for_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// Percent-encodes a gRPC message (RFC: bytes outside 0x20..0x7e and `%`).
fn percent_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if (0x20..=0x7e).contains(&c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &'static str, headers: &[(&str, &str)]) -> LocalResponse {
        LocalResponse {
            status: 403,
            headers: HeaderMap::from_pairs(headers.iter().copied()),
            body: Bytes::from(body),
            details: String::new(),
        }
    }

    #[test]
    fn body_gets_length_and_default_type() {
        let (h, b) = finalize(&reply("no", &[("x-a", "1")]), None, &mut StreamState::default());
        assert_eq!(h.get(b":status").unwrap().as_ref(), b"403");
        assert_eq!(h.get(b"content-length").unwrap().as_ref(), b"2");
        assert_eq!(h.get(b"content-type").unwrap().as_ref(), b"text/plain");
        assert_eq!(h.get(b"x-a").unwrap().as_ref(), b"1");
        assert_eq!(b.as_ref(), b"no");
    }

    #[test]
    fn empty_body_drops_length_and_type() {
        let (h, _) = finalize(&reply("", &[("content-type", "x/y")]), None, &mut StreamState::default());
        assert!(h.get(b"content-type").is_none() && h.get(b"content-length").is_none());
    }

    #[test]
    fn the_proxys_own_reply_to_grpc_is_trailers_only_once() {
        let mut r = reply("upstream\nfailed\n", &[("content-type", "text/plain"), ("content-length", "16")]);
        r.status = 503;
        let g = grpc_reply(r);
        assert_eq!((g.status, g.body.len()), (200, 0));
        assert_eq!(g.headers.get(b"grpc-status").unwrap().as_ref(), b"14");
        assert_eq!(g.headers.get(b"grpc-message").unwrap().as_ref(), b"upstream%0Afailed");
        assert_eq!(g.headers.get(b"content-type").unwrap().as_ref(), b"application/grpc");
        assert!(g.headers.get(b"content-length").is_none());
        let again = grpc_reply(g.clone());
        assert_eq!(again.headers.get(b"grpc-status").unwrap().as_ref(), b"14", "a gRPC reply stays as it is");
    }

    #[test]
    fn grpc_requests_get_trailers_only() {
        let mut s = StreamState::default();
        s.request_headers.add(b"content-type", "application/grpc");
        let (h, b) = finalize(&reply("no way", &[]), None, &mut s);
        assert_eq!(h.get(b":status").unwrap().as_ref(), b"200");
        assert_eq!(h.get(b"grpc-status").unwrap().as_ref(), b"7");
        assert_eq!(h.get(b"grpc-message").unwrap().as_ref(), b"no way");
        assert!(b.is_empty());
    }
}
