//! Between pingora's request/response headers and the header maps filters see, with Envoy's
//! pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`, `:status`).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use weir_abi::HeaderMap;

/// The request as filters see it. `Host` becomes `:authority` (no `host` entry).
pub fn request_headers(req: &RequestHeader, tls: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.add(b":method", Bytes::copy_from_slice(req.method.as_str().as_bytes()));
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    h.add(b":path", Bytes::copy_from_slice(path.as_bytes()));
    let authority = req
        .headers
        .get(http::header::HOST)
        .map(|v| Bytes::copy_from_slice(v.as_bytes()))
        .or_else(|| req.uri.authority().map(|a| Bytes::copy_from_slice(a.as_str().as_bytes())))
        .unwrap_or_default();
    h.add(b":authority", authority);
    h.add(b":scheme", Bytes::from_static(if tls { b"https" } else { b"http" }));
    for (name, value) in req.headers.iter() {
        if name != http::header::HOST {
            h.add(name.as_str().as_bytes(), Bytes::copy_from_slice(value.as_bytes()));
        }
    }
    h
}

/// Writes the filters' view back into the request sent upstream.
///
/// # Errors
///
/// A message when a filter produced an invalid method, path or header.
pub fn apply_request(h: &HeaderMap, req: &mut RequestHeader) -> Result<(), String> {
    if let Some(m) = h.get_str(":method")
        && m != req.method.as_str()
    {
        let method = http::Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid :method `{m}`"))?;
        req.set_method(method);
    }
    if let Some(p) = h.get_str(":path")
        && Some(p) != req.uri.path_and_query().map(|x| x.as_str())
    {
        let uri: http::Uri = p.parse().map_err(|_| format!("invalid :path `{p}`"))?;
        req.set_uri(uri);
    }
    let names: Vec<HeaderName> = req.headers.keys().cloned().collect();
    for n in names {
        req.remove_header(&n);
    }
    if let Some(a) = h.get(b":authority") {
        req.insert_header(http::header::HOST, value(a)?).map_err(|e| e.to_string())?;
    }
    for (k, v) in h.regular() {
        req.append_header(name(k)?, value(v)?).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The response as filters see it.
pub fn response_headers(resp: &ResponseHeader) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.add(b":status", Bytes::from(resp.status.as_u16().to_string()));
    for (n, v) in resp.headers.iter() {
        h.add(n.as_str().as_bytes(), Bytes::copy_from_slice(v.as_bytes()));
    }
    h
}

/// Writes the filters' view back into the response.
///
/// # Errors
///
/// A message when a filter produced an invalid status or header.
pub fn apply_response(h: &HeaderMap, resp: &mut ResponseHeader) -> Result<(), String> {
    if let Some(s) = h.get_str(":status") {
        let code: u16 = s.parse().map_err(|_| format!("invalid :status `{s}`"))?;
        if code != resp.status.as_u16() {
            resp.set_status(code).map_err(|e| e.to_string())?;
        }
    }
    let names: Vec<HeaderName> = resp.headers.keys().cloned().collect();
    for n in names {
        resp.remove_header(&n);
    }
    for (k, v) in h.regular() {
        resp.append_header(name(k)?, value(v)?).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A response header from a filter's local reply.
///
/// # Errors
///
/// A message for an invalid status or header.
pub fn local_response(status: u16, headers: &HeaderMap) -> Result<ResponseHeader, String> {
    let mut resp = ResponseHeader::build(status, Some(headers.len())).map_err(|e| e.to_string())?;
    for (k, v) in headers.regular() {
        resp.append_header(name(k)?, value(v)?).map_err(|e| e.to_string())?;
    }
    Ok(resp)
}

/// Trailers as filters see them.
pub fn trailers(t: &http::HeaderMap) -> HeaderMap {
    HeaderMap::from_pairs(t.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())))
}

/// Writes filter trailers back.
///
/// # Errors
///
/// A message for an invalid header.
pub fn apply_trailers(h: &HeaderMap, t: &mut http::HeaderMap) -> Result<(), String> {
    t.clear();
    for (k, v) in h.iter() {
        t.append(name(k)?, value(v)?);
    }
    Ok(())
}

fn name(k: &[u8]) -> Result<HeaderName, String> {
    HeaderName::from_bytes(k).map_err(|_| format!("invalid header name `{}`", String::from_utf8_lossy(k)))
}

fn value(v: &[u8]) -> Result<HeaderValue, String> {
    HeaderValue::from_bytes(v).map_err(|_| format!("invalid header value `{}`", String::from_utf8_lossy(v)))
}
