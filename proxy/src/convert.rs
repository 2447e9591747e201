//! Between pingora's request/response headers and the header maps filters see, with Envoy's
//! pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`, `:status`).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use weir_abi::{HeaderMap, HeaderView, HeadersOf};

/// Why headers a filter produced cannot be sent: which part is invalid (escaped, at most 64
/// bytes of it), or Pingora's reason.
#[derive(Debug, thiserror::Error)]
pub enum InvalidHeaders {
    #[error("invalid :method `{0}`")]
    Method(String),
    #[error("invalid :path `{0}`")]
    Path(String),
    #[error("invalid :status `{0}`")]
    Status(String),
    #[error("invalid header name `{0}`")]
    Name(String),
    #[error("invalid header value `{0}`")]
    Value(String),
    #[error("invalid content-length `{0}`")]
    ContentLength(String),
    #[error("the header cannot be written")]
    Write(#[source] Box<pingora::Error>),
}

/// Hop-by-hop headers: they describe one connection, not the message, so filters never see
/// them (Envoy's connection manager removes them before the filter chain) and weir keeps the
/// client's or upstream's own when it writes a filter's changes back.
pub(crate) fn is_hop_by_hop(name: &HeaderName, value: &HeaderValue, upgrade: bool) -> bool {
    // Dispatched on the length first: every header of every request on a route with filters
    // comes here, and most lengths name no connection header.
    let n = name.as_str();
    match n.len() {
        2 => n == "te" && !value.as_bytes().eq_ignore_ascii_case(b"trailers"),
        7 => n == "upgrade" && !upgrade,
        10 => n == "connection" || n == "keep-alive",
        16 => n == "proxy-connection",
        17 => n == "transfer-encoding",
        _ => false,
    }
}

/// The names [`is_hop_by_hop`] may hold to be the connection's (`te` and `upgrade` depending
/// on their value and the message).
const CONNECTION_HEADERS: [&str; 6] =
    ["connection", "transfer-encoding", "te", "upgrade", "keep-alive", "proxy-connection"];

/// True for an upgrade request or response (`Connection: upgrade` with an `Upgrade` header):
/// its `Upgrade` header is the message's, not the connection's.
pub(crate) fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// An absolute-form target (`GET http://host:port/path?q HTTP/1.1`) as Envoy takes it: the
/// authority from the URI (replacing `Host`), the path and query as the target sent upstream.
pub fn to_origin_form(req: &mut RequestHeader) {
    use pingora::http::authority::{RawTargetAuthority, raw_target_authority};
    if req.method == http::Method::CONNECT {
        return;
    }
    let (authority, target) = match raw_target_authority(req.raw_path()) {
        RawTargetAuthority::Absolute { authority, path_and_query, .. } => (authority.to_vec(), path_and_query.to_vec()),
        _ => return,
    };
    let target = if target.is_empty() { b"/".to_vec() } else { target };
    if req.set_raw_path(&target).is_ok()
        && let Ok(host) = HeaderValue::from_bytes(&authority)
    {
        let _ = req.insert_header(http::header::HOST, host);
    }
}

/// True for an HTTP/1 request whose body is framed by `content-length` (not chunked).
pub fn framed_by_length(req: &RequestHeader, http2: bool) -> bool {
    !http2
        && req.headers.contains_key(http::header::CONTENT_LENGTH)
        && !req.headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// The request's `:authority`: its `Host`, else the authority of its absolute-form target.
pub fn authority(req: &RequestHeader) -> &str {
    match req.headers.get(http::header::HOST) {
        Some(host) => std::str::from_utf8(host.as_bytes()).unwrap_or(""),
        None => req.uri.authority().map_or("", |a| a.as_str()),
    }
}

/// The request as filters see it. `Host` becomes `:authority` (no `host` entry); hop-by-hop
/// headers are left out.
pub fn request_headers(req: &RequestHeader, tls: bool) -> HeaderMap {
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = req.headers.get(http::header::HOST).map_or_else(|| authority(req).as_bytes(), |h| h.as_bytes());
    let pseudo: [(&'static [u8], &[u8]); REQUEST_PSEUDO_HEADERS] = [
        (b":method", req.method.as_str().as_bytes()),
        (b":path", path.as_bytes()),
        (b":authority", authority),
        (b":scheme", if tls { b"https" } else { b"http" }),
    ];
    let regular = request_regular(req).map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
    HeaderMap::from_host(&pseudo, regular, SPARE_ENTRIES)
}

/// The pseudo-headers of a request's view.
const REQUEST_PSEUDO_HEADERS: usize = 4;

/// The headers of `req` its view shows besides the pseudo-headers.
fn request_regular(req: &RequestHeader) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    message_headers(&req.headers).filter(|(name, _)| *name != http::header::HOST)
}

/// The headers of `resp` its view shows besides `:status`.
fn response_regular(resp: &ResponseHeader) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    message_headers(&resp.headers)
}

/// The headers of a message less its hop-by-hop ones. Whether it is an upgrade is looked up
/// only if it has an `upgrade` header (almost none has).
fn message_headers(headers: &http::HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let mut upgrade = None;
    headers.iter().filter(move |(name, value)| {
        let upgrade = *name == http::header::UPGRADE && *upgrade.get_or_insert_with(|| is_upgrade(headers));
        !is_hop_by_hop(name, value, upgrade)
    })
}

/// The filters' view of a request's headers, built when a filter first uses them; it has
/// the entries [`request_headers`] would give.
pub fn unbuilt_request_view(req: &RequestHeader) -> HeaderView {
    HeaderView::unbuilt(HeadersOf::Request, REQUEST_PSEUDO_HEADERS + request_regular(req).count())
}

/// Likewise for a response ([`response_headers`]).
pub fn unbuilt_response_view(resp: &ResponseHeader) -> HeaderView {
    HeaderView::unbuilt(HeadersOf::Response, 1 + response_regular(resp).count())
}

/// Pingora's headers of one request, lent to a chain call (`weir_abi::lend_headers`): the
/// filters' views are built from them when a filter first reads or changes them.
pub struct LentHeaders<'a> {
    pub request: &'a RequestHeader,
    /// The response, once there is one.
    pub response: Option<&'a ResponseHeader>,
    pub tls: bool,
}

impl weir_abi::HeaderSource for LentHeaders<'_> {
    fn request_view(&self) -> HeaderMap {
        request_headers(self.request, self.tls)
    }

    fn response_view(&self) -> Option<HeaderMap> {
        self.response.map(response_headers)
    }
}

/// Room a filter's view leaves for headers filters add (a few are common: an identity, a
/// rate limit's three, a request id), so adding them does not move the view.
const SPARE_ENTRIES: usize = 4;

/// The headers to send for a message whose filters' view is `h`: the hop-by-hop headers the
/// message came with (its framing and connection handling are not the filters' to change),
/// then the filters' headers, less any hop-by-hop ones a filter added.
fn outgoing(original: &http::HeaderMap, h: &HeaderMap) -> Result<Vec<(HeaderName, HeaderValue)>, InvalidHeaders> {
    let upgrade = is_upgrade(original);
    let mut out: Vec<(HeaderName, HeaderValue)> =
        original.iter().filter(|(n, v)| is_hop_by_hop(n, v, upgrade)).map(|(n, v)| (n.clone(), v.clone())).collect();
    for (k, v) in h.regular() {
        let (n, v) = (name(k)?, checked_value(k, value(v)?)?);
        if !is_hop_by_hop(&n, &v, upgrade) {
            out.push((n, v));
        }
    }
    Ok(out)
}

/// Writes the filters' view back into the request sent upstream.
///
/// # Errors
///
/// [`InvalidHeaders`] when a filter produced an invalid method, path or header.
pub fn apply_request(h: &HeaderMap, req: &mut RequestHeader) -> Result<(), InvalidHeaders> {
    if let Some(m) = h.get_str(":method")
        && m != req.method.as_str()
    {
        let method = http::Method::from_bytes(m.as_bytes()).map_err(|_| InvalidHeaders::Method(shown(m.as_bytes())))?;
        req.set_method(method);
    }
    if let Some(p) = h.get_str(":path")
        && Some(p) != req.uri.path_and_query().map(|x| x.as_str())
    {
        let uri: http::Uri = p.parse().map_err(|_| InvalidHeaders::Path(shown(p.as_bytes())))?;
        req.set_uri(uri);
    }
    write_back(h, req, h.get(b":authority").map(|a| &a[..]))
}

/// A request or response head that filters' headers are written back into.
trait Head {
    fn headers(&self) -> &http::HeaderMap;
    fn remove(&mut self, name: &HeaderName);
    fn append(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), InvalidHeaders>;
    /// Sets `name` to `value` alone, in the place of its first value (appended when absent).
    fn insert(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), InvalidHeaders>;
}

macro_rules! head {
    ($t:ty) => {
        impl Head for $t {
            fn headers(&self) -> &http::HeaderMap {
                &self.headers
            }
            fn remove(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
            fn append(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), InvalidHeaders> {
                self.append_header(name, value).map(drop).map_err(InvalidHeaders::Write)
            }
            fn insert(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), InvalidHeaders> {
                self.insert_header(name, value).map_err(InvalidHeaders::Write)
            }
        }
    };
}
head!(RequestHeader);
head!(ResponseHeader);

/// Writes the filters' regular headers back into `head`, with `host` (a request's
/// `:authority`) as its `Host`: only the names a filter changed when that is enough, a name
/// set to one value in its place (as Envoy's `setCopy`), else the whole map.
fn write_back(h: &HeaderMap, head: &mut impl Head, host: Option<&[u8]>) -> Result<(), InvalidHeaders> {
    if let Some(changed) = changed_entries(h) {
        let host_changed = h.changed_names().is_some_and(|names| names.iter().any(|n| &n[..] == b":authority"));
        if let Some(a) = host.filter(|_| host_changed) {
            head.insert(http::header::HOST, value(a)?)?;
        }
        for (n, mut values) in changed? {
            if values.len() == 1
                && let Some(v) = values.pop()
            {
                head.insert(n, v)?;
                continue;
            }
            head.remove(&n);
            for v in values {
                head.append(n.clone(), v)?;
            }
        }
        return Ok(());
    }
    let headers = outgoing(head.headers(), h)?;
    let names: Vec<HeaderName> = head.headers().keys().cloned().collect();
    for n in names {
        head.remove(&n);
    }
    if let Some(a) = host {
        head.insert(http::header::HOST, value(a)?)?;
    }
    for (n, v) in headers {
        head.append(n, v)?;
    }
    Ok(())
}

/// Header names with their values, in order.
type Entries = Vec<(HeaderName, Vec<HeaderValue>)>;

/// The entries of the names filters changed, with their values now, when writing back only
/// those gives what rewriting the whole map would: the map was not replaced whole and no
/// changed name is connection-level (`outgoing` decides about those). Pseudo-headers are the
/// caller's. Most filters change a header or two; rewriting every header costs far more.
fn changed_entries(h: &HeaderMap) -> Option<Result<Entries, InvalidHeaders>> {
    let names = h.changed_names()?;
    let regular = || names.iter().filter(|n| n.first() != Some(&b':'));
    let connection_level = |n: &[u8]| n == b"host" || CONNECTION_HEADERS.iter().any(|c| c.as_bytes() == n);
    if regular().any(|n| connection_level(n)) {
        return None;
    }
    let entries = regular()
        .map(|n| {
            let values = h.get_all(n).map(|v| checked_value(n, shared_value(v)?)).collect::<Result<Vec<_>, _>>()?;
            Ok((name(n)?, values))
        })
        .collect();
    Some(entries)
}

/// A filter's header value, with `content-length` held to a length a peer can hold (one that
/// is not would desynchronize the framing of what follows).
fn checked_value(name: &[u8], v: HeaderValue) -> Result<HeaderValue, InvalidHeaders> {
    if name == b"content-length" && v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()).is_none() {
        return Err(InvalidHeaders::ContentLength(shown(v.as_bytes())));
    }
    Ok(v)
}

/// The response as filters see it (without hop-by-hop headers), marked unchanged: in step
/// with `resp`.
pub fn response_headers(resp: &ResponseHeader) -> HeaderMap {
    let regular = response_regular(resp).map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    HeaderMap::from_host(&[(b":status", resp.status.as_str().as_bytes())], regular, SPARE_ENTRIES)
}

/// Writes the filters' view back into the response.
///
/// # Errors
///
/// [`InvalidHeaders`] when a filter produced an invalid status or header.
pub fn apply_response(h: &HeaderMap, resp: &mut ResponseHeader) -> Result<(), InvalidHeaders> {
    if let Some(s) = h.get_str(":status") {
        let code: u16 = s
            .parse()
            .ok()
            .filter(|c| (200..=599).contains(c))
            .ok_or_else(|| InvalidHeaders::Status(shown(s.as_bytes())))?;
        if code != resp.status.as_u16() {
            resp.set_status(code).map_err(InvalidHeaders::Write)?;
        }
    }
    write_back(h, resp, None)
}

/// A response header from a filter's local reply.
///
/// # Errors
///
/// [`InvalidHeaders`] for an invalid status or header.
pub fn local_response(status: u16, headers: &HeaderMap) -> Result<ResponseHeader, InvalidHeaders> {
    let mut resp = ResponseHeader::build(status, Some(headers.len())).map_err(InvalidHeaders::Write)?;
    for (k, v) in headers.regular() {
        resp.append_header(name(k)?, value(v)?).map_err(InvalidHeaders::Write)?;
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
/// [`InvalidHeaders`] for an invalid header.
pub fn apply_trailers(h: &HeaderMap, t: &mut http::HeaderMap) -> Result<(), InvalidHeaders> {
    t.clear();
    for (k, v) in h.iter() {
        t.append(name(k)?, value(v)?);
    }
    Ok(())
}

fn name(k: &[u8]) -> Result<HeaderName, InvalidHeaders> {
    HeaderName::from_bytes(k).map_err(|_| InvalidHeaders::Name(shown(k)))
}

fn value(v: &[u8]) -> Result<HeaderValue, InvalidHeaders> {
    HeaderValue::from_bytes(v).map_err(|_| InvalidHeaders::Value(shown(v)))
}

/// As [`value`], sharing the filter's bytes instead of copying them.
fn shared_value(v: &Bytes) -> Result<HeaderValue, InvalidHeaders> {
    HeaderValue::from_maybe_shared(v.clone()).map_err(|_| InvalidHeaders::Value(shown(v)))
}

/// Bytes a filter produced, as a log line may show them: escaped, and at most 64 of them.
fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let text: String = bytes[..bytes.len().min(MAX)].escape_ascii().to_string();
    if bytes.len() > MAX { format!("{text}… ({} bytes)", bytes.len()) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_headers_are_hop_by_hop_as_listed() {
        let value = HeaderValue::from_static("x");
        for n in CONNECTION_HEADERS {
            let name = HeaderName::from_static(n);
            assert!(is_hop_by_hop(&name, &value, false), "{n}");
        }
        assert!(!is_hop_by_hop(&HeaderName::from_static("te"), &HeaderValue::from_static("Trailers"), false));
        assert!(!is_hop_by_hop(&HeaderName::from_static("upgrade"), &value, true), "an upgrade's own header");
        for n in ["host", "content-length", "x-api-key", "keep-alive-x", "proxy-connections"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(n), &value, false), "{n}");
        }
    }

    fn sent(req: &RequestHeader) -> Vec<(String, String)> {
        let mut all: Vec<_> =
            req.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
        all.sort();
        all
    }

    #[test]
    fn only_what_filters_changed_is_rewritten_and_the_result_is_their_map() {
        // Marked in step with the request (as weir's view is), only the changed names are
        // written back; otherwise the whole map is. Either way the request is the filters' map.
        for in_step in [true, false] {
            changes_give_the_filters_map(in_step);
        }
    }

    fn changes_give_the_filters_map(in_step: bool) {
        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        for (k, v) in [("host", "a.test"), ("x-keep", "1"), ("x-dup", "a"), ("x-dup", "b"), ("x-gone", "1")] {
            req.append_header(k, v).unwrap();
        }
        let mut h = request_headers(&req, false);
        if in_step {
            h.mark_unchanged();
        }
        h.remove(b"x-gone");
        h.add(b"x-dup", "c");
        h.add(b"x-new", "n");
        h.replace(b":authority", "b.test");
        apply_request(&h, &mut req).unwrap();
        let expected: Vec<(String, String)> =
            [("host", "b.test"), ("x-dup", "a"), ("x-dup", "b"), ("x-dup", "c"), ("x-keep", "1"), ("x-new", "n")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(sent(&req), expected, "in step: {in_step}");
        // Applying an unchanged map changes nothing.
        let mut again = request_headers(&req, false);
        if in_step {
            again.mark_unchanged();
        }
        apply_request(&again, &mut req).unwrap();
        assert_eq!(sent(&req), expected);
    }

    #[test]
    fn a_header_set_to_one_value_keeps_its_place() {
        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        for (k, v) in [("host", "a.test"), ("x-a", "1"), ("x-b", "1"), ("x-b", "2"), ("x-c", "1")] {
            req.append_header(k, v).unwrap();
        }
        let mut h = request_headers(&req, false);
        h.mark_unchanged();
        h.replace(b"x-b", "new");
        apply_request(&h, &mut req).unwrap();
        let order: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        assert_eq!(order, [("host", "a.test"), ("x-a", "1"), ("x-b", "new"), ("x-c", "1")]);
    }

    #[test]
    fn a_changed_connection_header_or_bad_length_is_handled_as_in_a_whole_rewrite() {
        let mut req = RequestHeader::build("GET", b"/p", None).unwrap();
        req.append_header("host", "a.test").unwrap();
        req.append_header("connection", "keep-alive").unwrap();
        let mut h = request_headers(&req, false);
        h.mark_unchanged();
        h.add(b"connection", "close");
        h.add(b"x-new", "1");
        apply_request(&h, &mut req).unwrap();
        // The connection's own header stays the client's; the filter's is dropped.
        assert_eq!(req.headers.get_all("connection").iter().count(), 1);
        assert_eq!(req.headers["connection"], "keep-alive");
        assert_eq!(req.headers["x-new"], "1");
        let mut h = request_headers(&req, false);
        h.mark_unchanged();
        h.replace(b"content-length", "-1");
        assert!(matches!(apply_request(&h, &mut req), Err(InvalidHeaders::ContentLength(_))));
    }

    #[test]
    fn response_edits_and_invalid_values() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("server", "origin").unwrap();
        resp.append_header("x-a", "1").unwrap();
        let mut h = response_headers(&resp);
        h.remove(b"server");
        h.replace(b"x-a", "2");
        h.replace(b":status", "201");
        apply_response(&h, &mut resp).unwrap();
        assert_eq!(resp.status.as_u16(), 201);
        assert!(resp.headers.get("server").is_none());
        assert_eq!(resp.headers["x-a"], "2");
        h.add(b"x-bad", &b"a\nb"[..]);
        let err = apply_response(&h, &mut resp).unwrap_err();
        assert!(matches!(err, InvalidHeaders::Value(ref v) if v == "a\\nb"), "{err}");
    }
}
