//! Plain per-request data: what a filter can read and change about one HTTP stream.
//!
//! The proxy fills a [`StreamState`] from the wire, hands it to a [`crate::FilterChain`] for
//! each phase and applies what the filters changed. Tests build one by hand.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::header_view::HeaderView;
use crate::headers::HeaderMap;

/// Everything a filter can see of one request/response exchange, boxed: the host lends it to
/// the filter's VM for each callback by swapping it in and out, and swapping a pointer is far
/// cheaper than swapping the whole exchange (28 swaps a request with four filters).
#[derive(Debug, Default)]
pub struct StreamState(Box<StreamData>);

impl std::ops::Deref for StreamState {
    type Target = StreamData;
    fn deref(&self) -> &StreamData {
        &self.0
    }
}

impl std::ops::DerefMut for StreamState {
    fn deref_mut(&mut self) -> &mut StreamData {
        &mut self.0
    }
}

impl StreamState {
    /// A stream whose request has these headers (pseudo-headers included).
    pub fn with_request_headers(headers: HeaderMap) -> Self {
        Self(Box::new(StreamData { request_headers: headers.into(), ..StreamData::default() }))
    }
}

/// What [`StreamState`] holds.
#[derive(Debug, Default)]
pub struct StreamData {
    /// Request headers with the pseudo-headers `:method`, `:path`, `:authority`, `:scheme`
    /// (built from the host's when a filter first uses them).
    pub request_headers: HeaderView,
    /// Request trailers, when the request carries them (or a filter created them).
    pub request_trailers: Option<HeaderMap>,
    /// Response headers with `:status` (likewise).
    pub response_headers: HeaderView,
    /// Response trailers.
    pub response_trailers: Option<HeaderMap>,
    /// The request body a filter sees in its body callback (the chain swaps each filter's own
    /// buffer in and out, so outside a callback this holds the body released so far).
    pub request_body: BytesMut,
    /// The response body, likewise.
    pub response_body: BytesMut,
    /// Connection and request facts behind the properties of docs/abi.md#properties.
    pub info: StreamInfo,
    /// Values filters stored with `proxy_set_property` (Envoy's `wasm.<path>` filter state),
    /// keyed by the raw path bytes.
    pub filter_state: crate::FastMap<Vec<u8>, Bytes>,
}

impl StreamData {
    /// A value a filter stored with `proxy_set_property(path)`, path segments joined by NUL.
    pub fn filter_state(&self, path: &[&str]) -> Option<&Bytes> {
        match path {
            // Asked on every request (the upstream cluster): most requests stored nothing.
            _ if self.filter_state.is_empty() => None,
            [one] => self.filter_state.get(one.as_bytes()),
            _ => self.filter_state.get(path.join("\0").as_bytes()),
        }
    }

    /// True for a gRPC request (`content-type: application/grpc…`).
    pub fn is_grpc(&self) -> bool {
        self.request_headers.get(b"content-type").is_some_and(|v| is_grpc_content_type(v))
    }

    /// Builds the header views not built yet, from the headers lent to this thread: a
    /// stream about to be parked is reached from callbacks nobody lends them for.
    pub fn build_views(&mut self) {
        self.request_headers.build();
        self.response_headers.build();
    }

    /// True for a `HEAD` request.
    pub fn is_head(&self) -> bool {
        self.request_headers.get(b":method").is_some_and(|m| m.as_ref() == b"HEAD")
    }
}

/// Facts about the connection and the exchange that filters read as properties.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Downstream peer address (`source.address`).
    pub source: Option<SocketAddr>,
    /// Local address the request arrived on (`destination.address`).
    pub destination: Option<SocketAddr>,
    /// Downstream connection id (`connection.id`).
    pub connection_id: u64,
    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` (`request.protocol`).
    pub protocol: &'static str,
    /// When the first byte of the request arrived (`request.time`).
    pub start_time: SystemTime,
    /// TLS facts, for a TLS connection.
    pub tls: Option<TlsInfo>,
    /// The route's name (`xds.route_name`).
    pub route_name: String,
    /// The upstream cluster chosen for the request (`xds.cluster_name`).
    pub cluster_name: String,
    /// The upstream host, once chosen (`upstream.address`).
    pub upstream_address: Option<SocketAddr>,
    /// The response status, once known (`response.code`).
    pub response_code: Option<u16>,
    /// Why the response is what it is (`response.code_details`): `via_upstream`, or the
    /// details of a local reply.
    pub response_code_details: std::borrow::Cow<'static, str>,
    /// Request body bytes received so far.
    pub request_body_bytes: u64,
    /// Response body bytes sent so far.
    pub response_body_bytes: u64,
    /// How long the exchange took, set when it is complete (`request.duration`).
    pub duration: Option<Duration>,
    /// The route's metadata (`xds.route_metadata`).
    pub route_metadata: std::sync::Arc<crate::metadata::Metadata>,
    /// The chosen cluster's metadata (`xds.cluster_metadata`).
    pub cluster_metadata: std::sync::Arc<crate::metadata::Metadata>,
}

impl Default for StreamInfo {
    fn default() -> Self {
        Self {
            source: None,
            destination: None,
            connection_id: 0,
            protocol: "HTTP/1.1",
            start_time: SystemTime::now(),
            tls: None,
            route_name: String::new(),
            cluster_name: String::new(),
            upstream_address: None,
            response_code: None,
            response_code_details: std::borrow::Cow::Borrowed(""),
            request_body_bytes: 0,
            response_body_bytes: 0,
            duration: None,
            route_metadata: Default::default(),
            cluster_metadata: Default::default(),
        }
    }
}

/// TLS facts of the downstream connection.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// The SNI the client sent, or empty.
    pub server_name: String,
    /// Whether the peer presented a certificate.
    pub peer_certificate_presented: bool,
}

/// A reply the host sends instead of the upstream's, as a filter asked with
/// `proxy_send_local_response` (after Envoy's header rules were applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers, without `:status`.
    pub headers: HeaderMap,
    /// Response body (empty for HEAD and gRPC replies).
    pub body: Bytes,
    /// `response.code_details`, whitespace replaced by `_`.
    pub details: String,
}

/// An HTTP request a filter asked the host to make (`proxy_http_call`).
#[derive(Debug, Clone)]
pub struct HttpCallRequest {
    /// Name of the configured cluster to send it to.
    pub cluster: String,
    /// Headers, with `:method`, `:path`, `:authority` (and maybe `:scheme`).
    pub headers: HeaderMap,
    /// Body; `content-length` is already set when it is not empty.
    pub body: Bytes,
    /// Trailers (empty map: none).
    pub trailers: HeaderMap,
    /// `None` means no timeout (`timeout_ms = 0`).
    pub timeout: Option<Duration>,
}

/// How an HTTP callout ended, as the host delivers it to the filter.
#[derive(Debug, Clone)]
pub enum HttpCallResponse {
    /// A response, real or synthesized by the host (503, 504).
    Response {
        /// Headers with `:status`.
        headers: HeaderMap,
        /// Body.
        body: Bytes,
        /// Trailers.
        trailers: HeaderMap,
    },
    /// The call was reset: the filter gets no headers and `proxy_get_status` reports
    /// BROKEN_CONNECTION.
    Reset,
}

impl HttpCallResponse {
    /// A response with this status, headers (without `:status`) and body.
    pub fn new(status: u16, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        let mut all = HeaderMap::new();
        all.add(b":status", Bytes::from(status.to_string()));
        for (k, v) in headers.iter() {
            all.add(k, Bytes::copy_from_slice(v));
        }
        Self::Response { headers: all, body: body.into(), trailers: HeaderMap::new() }
    }

    /// What Envoy delivers when the call timed out: 504 `upstream request timeout`.
    pub fn timeout() -> Self {
        Self::synthesized(504, "upstream request timeout")
    }

    /// What Envoy delivers when no connection could be made: 503.
    pub fn unreachable() -> Self {
        Self::synthesized(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        )
    }

    fn synthesized(status: u16, body: &'static str) -> Self {
        let headers = HeaderMap::from_pairs([
            ("content-length", body.len().to_string().as_str()),
            ("content-type", "text/plain"),
        ]);
        Self::new(status, headers, Bytes::from_static(body.as_bytes()))
    }
}

/// A gRPC callout a filter asked for (`proxy_grpc_call` / `proxy_grpc_stream`).
#[derive(Debug, Clone)]
pub struct GrpcCallRequest {
    /// The configured cluster (Envoy also accepts a serialized `GrpcService`; weir takes the name).
    pub cluster: String,
    /// Fully-qualified service name, e.g. `helloworld.Greeter`.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Initial metadata.
    pub initial_metadata: HeaderMap,
    /// The request message for a unary call; `None` for a stream.
    pub message: Option<Bytes>,
    /// Unary call timeout; `None` means none.
    pub timeout: Option<Duration>,
}

/// Something a gRPC callout produced, fed back to the filter.
#[derive(Debug, Clone)]
pub enum GrpcEvent {
    /// A stream's initial metadata.
    InitialMetadata(HeaderMap),
    /// A message. For a unary call this is the response and ends the call.
    Message(Bytes),
    /// A stream's trailing metadata.
    TrailingMetadata(HeaderMap),
    /// The call failed or the stream closed: gRPC status and message.
    Close {
        /// gRPC status code.
        status: u32,
        /// gRPC status message.
        message: String,
    },
}

/// Work a filter asked the host to do outside the VM.
#[derive(Debug, Clone)]
pub enum CalloutKind {
    /// Make an HTTP request; answer with [`CalloutResult::Http`].
    Http(HttpCallRequest),
    /// Start a gRPC unary call or stream; answer with [`CalloutResult::Grpc`] events.
    Grpc(GrpcCallRequest),
    /// Send a message on an open gRPC stream.
    GrpcSend {
        /// The message.
        message: Bytes,
        /// Half-close after it.
        end_of_stream: bool,
    },
    /// Half-close a gRPC stream (or cancel a unary call).
    GrpcClose,
    /// Cancel a gRPC call or stream: no further events are delivered.
    GrpcCancel,
}

/// One piece of callout work, with the token the filter knows it by.
#[derive(Debug, Clone)]
pub struct Callout {
    /// The token returned to the filter.
    pub token: u32,
    /// What to do.
    pub kind: CalloutKind,
}

/// The result of a callout, fed back with [`crate::FilterChain::on_callout_result`] or
/// [`crate::Vm::on_callout_result`].
#[derive(Debug, Clone)]
pub enum CalloutResult {
    /// The end of an HTTP callout.
    Http(HttpCallResponse),
    /// One gRPC event.
    Grpc(GrpcEvent),
}

/// Whether a request's `content-type` makes it gRPC (`application/grpc`, `application/grpc+proto`
/// and so on, as Envoy's `Grpc::Common::isGrpcRequestHeaders`).
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    value.starts_with(b"application/grpc")
}
