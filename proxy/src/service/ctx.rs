//! Per-request state: data only (the generation it is pinned to, the filter chain's context,
//! the stream data), so it is `Send + Sync` and holds no VM.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use pingora::proxy::Session;
use weir_abi::{FilterChain, LocalResponse, StreamState};

use crate::clusters::Cluster;
use crate::generation::Generation;
use crate::metrics::Metrics;

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// `x-request-id`, added when the client sent none and logged by the access log.
pub(super) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// The property a filter sets to choose the upstream cluster (see `docs/filters/ab-routing.md`).
pub const UPSTREAM_CLUSTER_PROPERTY: &str = "weir.upstream_cluster";

/// One request's state.
pub struct RequestCtx {
    /// The generation this request runs on, start to end.
    pub generation: Arc<Generation>,
    /// The matched route.
    pub route: Option<usize>,
    /// The route's filters, once they started.
    pub chain: Option<FilterChain>,
    /// What the filters see.
    pub stream: StreamState,
    /// A reply `fail_to_proxy` must send (local reply after the upstream request started).
    pub reply: Option<LocalResponse>,
    /// Replaces the upstream body (local reply from the response headers).
    pub body_replacement: Option<Bytes>,
    /// Reset the stream instead of answering.
    pub reset: bool,
    /// A filter's reply was already sent whole: nothing more to write.
    pub replied: bool,
    /// The request had no body.
    pub request_done_at_headers: bool,
    /// The client's request was a HEAD (a filter may have changed the method since).
    pub client_sent_head: bool,
    /// The request body sent upstream against the length its headers declared.
    pub request_length: BodyLength,
    /// The response body sent to the client against the length its headers declared.
    pub response_length: BodyLength,
    /// The request body's last chunk arrived.
    pub request_body_done: bool,
    /// The upstream response is HTTP/1 with a content-length.
    pub response_framed_by_length: bool,
    /// Body bytes filters hold, per direction (for the buffer limit).
    pub held_request: usize,
    pub held_response: usize,
    /// When the request arrived.
    pub started: Instant,
    /// The upstream's response headers arrived.
    pub upstream_answered: bool,
    /// The cluster the request went to, once an endpoint was picked.
    pub upstream: Option<Arc<Cluster>>,
    /// When the first endpoint was picked (upstream time starts).
    pub upstream_sent: Option<Instant>,
    /// When the upstream response's last byte arrived.
    pub upstream_done: Option<Instant>,
    /// The URI the client sent, kept when filters rewrote it.
    pub original_uri: Option<http::Uri>,
    /// The request's spans, when tracing is on.
    pub trace: Option<crate::traces::RequestTrace>,
    /// The trace context headers the upstream request carries.
    pub trace_headers: Vec<(&'static str, String)>,
    filters_ran: bool,
    /// Counts this request in flight for the shutdown's drain.
    _in_flight: crate::lifecycle::InFlight,
    /// `name:outcome` per filter, taken when the request ends, unless all passed.
    outcomes: String,
    all_passed: bool,
    /// The tries at the upstream.
    pub tries: crate::retry::Tries,
    /// The request body the filters released, kept for a retry.
    pub sent_body: smallvec::SmallVec<[Bytes; 2]>,
    /// Its length.
    pub sent_len: usize,
    /// The try whose body is being sent.
    pub body_try: u32,
    /// The upstream's response head asks for a retry (`upstream_response_filter`).
    pub retry_response: bool,
    /// What bounds the current try's upstream reads.
    pub read_limit: super::tries::ReadLimit,
    /// The route whose action the request follows (the matched one, or the one a filter's
    /// change re-routed to).
    action_route: usize,
}

impl RequestCtx {
    /// A request pinned to `generation`.
    pub fn new(generation: Arc<Generation>, in_flight: crate::lifecycle::InFlight) -> Self {
        Self {
            generation,
            route: None,
            chain: None,
            stream: StreamState::default(),
            reply: None,
            body_replacement: None,
            reset: false,
            replied: false,
            request_done_at_headers: false,
            client_sent_head: false,
            request_length: BodyLength::default(),
            response_length: BodyLength::default(),
            request_body_done: false,
            response_framed_by_length: false,
            held_request: 0,
            held_response: 0,
            started: Instant::now(),
            upstream_answered: false,
            upstream: None,
            upstream_sent: None,
            upstream_done: None,
            original_uri: None,
            trace: None,
            trace_headers: Vec::new(),
            filters_ran: false,
            _in_flight: in_flight,
            outcomes: String::new(),
            all_passed: false,
            tries: Default::default(),
            sent_body: Default::default(),
            sent_len: 0,
            body_try: 0,
            retry_response: false,
            action_route: 0,
            read_limit: Default::default(),
        }
    }

    /// Takes the downstream request's facts (adding `x-request-id` and `x-forwarded-proto`
    /// when missing, as Envoy does) and the connection's. What filters see of the headers is
    /// set by [`RequestCtx::defer_filter_view`] on routes with filters only.
    pub fn fill_request(&mut self, session: &mut Session) {
        let ssl = session.digest().and_then(|d| d.ssl_digest.as_ref());
        let tls = ssl.is_some();
        self.stream.info.tls = ssl.map(|d| weir_abi::TlsInfo {
            version: d.version.to_string(),
            server_name: String::new(),
            peer_certificate_presented: !d.cert_digest.is_empty(),
        });
        self.client_sent_head = session.req_header().method == http::Method::HEAD;
        let req = session.req_header_mut();
        crate::convert::to_origin_form(req);
        if !req.headers.contains_key(X_REQUEST_ID)
            && let Ok(id) = http::HeaderValue::from_maybe_shared(request_id())
        {
            let _ = req.append_header("x-request-id", id);
        }
        if !req.headers.contains_key(X_FORWARDED_PROTO) {
            let _ = req.append_header("x-forwarded-proto", if tls { "https" } else { "http" });
        }
        let info = &mut self.stream.info;
        info.source = session.client_addr().and_then(|a| a.as_inet()).copied();
        info.destination = session.server_addr().and_then(|a| a.as_inet()).copied();
        info.protocol = if session.is_http2() {
            "HTTP/2"
        } else if session.req_header().version == http::Version::HTTP_10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        info.connection_id = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
        info.start_time = SystemTime::now();
    }

    /// Why the response is what it is, for the access log: `via_upstream` for an upstream's
    /// answer nothing else explained (the filter chain sets it when filters run).
    pub fn response_code_details(&self) -> &str {
        match self.stream.info.response_code_details.as_ref() {
            "" if self.upstream_answered => "via_upstream",
            details => details,
        }
    }

    /// Whether the request came over TLS.
    pub fn tls(&self) -> bool {
        self.stream.info.tls.is_some()
    }

    /// Sets what filters see of the request headers (pseudo-headers included): built from
    /// Pingora's when a filter first uses them (they are lent to each chain call, see
    /// [`RequestCtx::lent_headers`]), in step with them: only a filter's change needs writing back.
    pub fn defer_filter_view(&mut self, session: &Session) {
        self.stream.request_headers = crate::convert::unbuilt_request_view(session.req_header());
    }

    /// Pingora's headers of this request, to lend to a chain call (`weir_abi::lend_headers`);
    /// `response` once there is one.
    pub fn lent_headers<'a>(
        &self,
        session: &'a Session,
        response: Option<&'a pingora::http::ResponseHeader>,
    ) -> crate::convert::LentHeaders<'a> {
        crate::convert::LentHeaders { request: session.req_header(), response, tls: self.tls() }
    }

    /// Records the matched route.
    pub fn select_route(&mut self, route: usize) {
        self.route = Some(route);
        self.describe_route(route);
        self.filters_ran = !self.generation.routes[route].chain.is_empty();
    }

    /// Matches the route again after a filter changed the request and asked for it
    /// (`clear_route_cache`); only the cluster changes, the chain stays.
    pub fn reroute(&mut self) {
        if let Some(r) = self.generation.route(&*self.stream.request_headers.build()) {
            self.describe_route(r);
        }
    }

    /// What filters see of the route: its name, cluster (one of `weighted_clusters`, picked
    /// here) and metadata. Its action is the request's from now on.
    fn describe_route(&mut self, route: usize) {
        self.action_route = route;
        let r = &self.generation.routes[route];
        let cluster = match &r.action {
            crate::route_action::Action::Forward { weighted, .. } if !weighted.is_empty() => {
                crate::route_action::pick(weighted).unwrap_or(&r.cluster)
            }
            _ => &r.cluster,
        };
        let info = &mut self.stream.info;
        info.route_name = r.name.clone();
        info.cluster_name = cluster.to_owned();
        info.route_metadata = r.metadata.clone();
        info.cluster_metadata = self.generation.cluster_metadata.get(cluster).cloned().unwrap_or_default();
    }

    /// The action of the route the request follows (after a filter's re-routing).
    pub fn route_action(&self) -> &crate::route_action::Action {
        &self.generation.routes[self.action_route].action
    }

    /// The `path_prefix` of the route the request follows.
    pub fn route_prefix(&self) -> Option<&str> {
        self.generation.routes[self.action_route].matcher.prefix()
    }

    /// The cluster the request goes to: the route's, or the one a filter chose through
    /// [`UPSTREAM_CLUSTER_PROPERTY`], which becomes the request's cluster with its metadata.
    pub fn upstream_cluster(&mut self) -> Option<Arc<Cluster>> {
        let chosen = self
            .stream
            .filter_state(&[UPSTREAM_CLUSTER_PROPERTY])
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|name| *name != self.stream.info.cluster_name && self.generation.clusters.contains_key(*name))
            .map(str::to_owned);
        if let Some(name) = chosen {
            if let Some(m) = self.generation.cluster_metadata.get(&name) {
                self.stream.info.cluster_metadata = m.clone();
            }
            self.stream.info.cluster_name = name;
        }
        self.generation.clusters.get(&self.stream.info.cluster_name).cloned()
    }

    /// Endpoint chosen to the upstream response's last byte, once the upstream answered.
    pub fn upstream_time(&self) -> Option<std::time::Duration> {
        let sent = self.upstream_sent.filter(|_| self.upstream_answered)?;
        Some(self.upstream_done.unwrap_or_else(Instant::now) - sent)
    }

    /// True once the whole request arrived.
    pub fn request_received(&self) -> bool {
        self.request_done_at_headers || self.request_body_done
    }

    /// How long filters may keep the request paused with nothing to wake it.
    pub fn idle_timeout(&self) -> std::time::Duration {
        self.route.map_or(std::time::Duration::from_secs(300), |r| self.generation.routes[r].idle_timeout)
    }

    /// The route's name for logs.
    pub fn route_name(&self) -> &str {
        self.route.map(|r| self.generation.routes[r].name.as_str()).unwrap_or("-")
    }

    /// The route's filters and how the request went for each (`auth:passed,limiter:replied`),
    /// for the access log.
    pub fn filter_summary(&self) -> &str {
        match self.route {
            Some(r) if self.filters_ran && self.all_passed => &self.generation.routes[r].passed_summary,
            _ if self.filters_ran && !self.outcomes.is_empty() => &self.outcomes,
            _ => "-",
        }
    }

    /// Ends the request for the filters (`on_log`, `on_done`, `on_delete`) and records metrics
    /// (`bytes`: request and response body bytes).
    pub fn finish(&mut self, metrics: &Metrics, bytes: (u64, u64)) {
        let duration = self.started.elapsed();
        self.stream.info.duration = Some(duration);
        if let Some(chain) = self.chain.as_mut() {
            // Most requests pass every filter: their summary is the route's, made once.
            self.all_passed = chain.all_passed();
            if !self.all_passed {
                self.outcomes = crate::access_log::filter_summary(chain.outcomes());
            }
            chain.finish(&mut self.stream);
            let trace = self.trace.as_ref();
            let route = self.route.map(|r| route_metrics(&self.generation, metrics, r));
            if let Some(route) = route {
                chain.filter_times(|slot, _, took| route.filter_time(slot, took));
            }
            if let Some(trace) = trace {
                chain.drain_timings(|_, p, t| trace.filter_call(p.name(), t));
            }
            chain.drain_failures(|p, k| metrics.filter_failure(p.name(), k));
        }
        if let (Some(cluster), Some(time)) = (&self.upstream, self.upstream_time()) {
            cluster.metrics(metrics).answered(time);
        }
        if let Some(trace) = &self.trace {
            let details = self.response_code_details();
            trace.finish(self.stream.info.response_code.unwrap_or(0), details, self.upstream_done);
        }
        let finished = crate::metrics::Finished {
            code: self.stream.info.response_code.unwrap_or(0),
            duration,
            request_bytes: bytes.0,
            response_bytes: bytes.1,
        };
        match self.route {
            Some(r) => metrics.request(route_metrics(&self.generation, metrics, r), &finished),
            None => metrics.request(metrics.unrouted(), &finished),
        }
    }
}

/// The metrics of route `r` of `generation`, made at the route's first request.
fn route_metrics<'g>(generation: &'g Generation, metrics: &Metrics, r: usize) -> &'g crate::metrics::RouteMetrics {
    let route = &generation.routes[r];
    route.metrics.get_or_init(|| metrics.route(&route.name, route.chain.iter().map(|p| p.name())))
}

/// A body's bytes sent against the `content-length` its headers went out with. Filters may
/// change a body after its headers left: a body that no longer matches its length must fail
/// the exchange, or the peer would wait for bytes that never come (or read the surplus as the
/// next message).
#[derive(Debug, Default)]
pub struct BodyLength {
    declared: Option<u64>,
    sent: u64,
    known: bool,
}

/// The length a `content-length` value declares (`None`: absent or not a length).
pub fn content_length(value: Option<&http::HeaderValue>) -> Option<u64> {
    value.and_then(|v| v.to_str().ok()?.trim().parse().ok())
}

impl BodyLength {
    /// Notes the length `headers` declare (once: the first call is when the headers left).
    pub fn declare(&mut self, headers: &http::HeaderMap) {
        if !self.known {
            self.declare_length(content_length(headers.get(http::header::CONTENT_LENGTH)));
        }
    }

    /// Notes a length already read from the headers that left ([`content_length`]).
    pub fn declare_length(&mut self, declared: Option<u64>) {
        if !self.known {
            self.known = true;
            self.declared = declared;
        }
    }

    /// Counts from zero again: a retry sends the body again.
    pub fn restart(&mut self) {
        self.sent = 0;
    }

    /// Counts `n` more bytes sent; `false` when the body no longer fits its declared length
    /// (more bytes than declared, or fewer once it ends).
    pub fn send(&mut self, n: usize, end: bool) -> bool {
        self.sent += n as u64;
        self.declared.is_none_or(|d| self.sent <= d && (!end || self.sent == d))
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        // `logging` normally finished the chain; this covers requests Pingora abandoned.
        if let Some(chain) = self.chain.as_mut() {
            chain.finish(&mut self.stream);
        }
    }
}

thread_local! {
    /// SplitMix64 state, seeded once per thread from the OS: request ids need to be unique,
    /// not secret, and a syscall per request is too dear.
    static ID_STATE: std::cell::Cell<u64> = std::cell::Cell::new({
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            seed = (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64).to_le_bytes();
        }
        u64::from_le_bytes(seed)
    });
}

fn next_random() -> u64 {
    ID_STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A random request id in UUID v4 form, as Envoy generates: written straight into its 36
/// bytes (formatting each byte with `format!` cost 12,000 instructions per request).
fn request_id() -> Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&next_random().to_le_bytes());
    b[8..].copy_from_slice(&next_random().to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = [0u8; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id[at] = b'-';
            at += 1;
        }
        id[at] = HEX[usize::from(byte >> 4)];
        id[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    Bytes::copy_from_slice(&id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v4() {
        let a = super::request_id();
        let text = std::str::from_utf8(&a).unwrap();
        let parsed = uuid_parts(text);
        assert_eq!(parsed.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{text}");
        assert!(text.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{text}");
        assert_eq!(&text[14..15], "4", "version 4: {text}");
        assert!("89ab".contains(&text[19..20]), "RFC 4122 variant: {text}");
        assert_ne!(a, super::request_id());
    }

    fn uuid_parts(text: &str) -> Vec<&str> {
        text.split('-').collect()
    }
}
