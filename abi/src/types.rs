//! The numbers that cross the ABI: status codes and the enums of Proxy-Wasm 0.2.1, with the
//! values Envoy uses (docs/abi.md#values).

/// A `proxy_status_t`: what every `env.proxy_*` hostcall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Missing key, property, queue, metric or buffer; `proxy_done` with nothing pending.
    NotFound = 1,
    /// Bad enum value, unavailable map, unknown cluster, missing required headers.
    BadArgument = 2,
    /// A value that cannot be serialized; compress/uncompress failure.
    SerializationFailure = 3,
    /// gRPC: unknown cluster name.
    ParseFailure = 4,
    /// A pointer or length outside the guest's memory, or the guest allocator returned 0.
    InvalidMemoryAccess = 6,
    /// Dequeue from an empty queue.
    Empty = 7,
    /// Shared-data compare-and-swap mismatch.
    CasMismatch = 8,
    /// The host could not start the operation.
    InternalFailure = 10,
    /// Reported by `proxy_get_status` after an HTTP callout was reset.
    BrokenConnection = 11,
    /// Not implemented by this host (`proxy_continue_stream(UPSTREAM)`).
    Unimplemented = 12,
}

impl Status {
    /// The value returned to the guest.
    pub fn code(self) -> i32 {
        self as u32 as i32
    }
}

/// `proxy_map_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::FromRepr)]
#[repr(u32)]
pub enum MapType {
    /// Request headers, pseudo-headers included.
    HttpRequestHeaders = 0,
    /// Request trailers.
    HttpRequestTrailers = 1,
    /// Response headers, `:status` included.
    HttpResponseHeaders = 2,
    /// Response trailers.
    HttpResponseTrailers = 3,
    /// Initial metadata of a gRPC stream callout.
    GrpcCallInitialMetadata = 4,
    /// Trailing metadata of a gRPC callout.
    GrpcCallTrailingMetadata = 5,
    /// Headers of an HTTP callout's response.
    HttpCallResponseHeaders = 6,
    /// Trailers of an HTTP callout's response.
    HttpCallResponseTrailers = 7,
}

/// `proxy_buffer_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::FromRepr)]
#[repr(u32)]
pub enum BufferType {
    /// The request body seen by the current body callback.
    HttpRequestBody = 0,
    /// The response body seen by the current body callback.
    HttpResponseBody = 1,
    /// TCP data from the downstream (not used by an HTTP host).
    DownstreamData = 2,
    /// TCP data from the upstream (not used by an HTTP host).
    UpstreamData = 3,
    /// Body of an HTTP callout's response, inside `proxy_on_http_call_response`.
    HttpCallResponseBody = 4,
    /// A gRPC message, inside `proxy_on_grpc_receive`.
    GrpcCallMessage = 5,
    /// The VM configuration.
    VmConfiguration = 6,
    /// The plugin configuration, during `proxy_on_configure`.
    PluginConfiguration = 7,
    /// Arguments of a foreign-function callback.
    CallData = 8,
}

/// `proxy_stream_type_t` (ABI 0.2.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::FromRepr)]
#[repr(u32)]
pub enum StreamType {
    /// The HTTP request direction.
    HttpRequest = 0,
    /// The HTTP response direction.
    HttpResponse = 1,
    /// The downstream TCP connection.
    Downstream = 2,
    /// The upstream TCP connection.
    Upstream = 3,
}

/// `proxy_log_level_t`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::FromRepr, strum::IntoStaticStr, strum::EnumString,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
#[repr(u32)]
pub enum LogLevel {
    /// Trace.
    Trace = 0,
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical.
    Critical = 5,
}

impl LogLevel {
    /// The level named `name` (`trace`, `debug`, `info`, `warn`, `error`, `critical`, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// Its name, lower case.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::FromRepr)]
#[repr(u32)]
pub enum MetricType {
    /// Monotonic counter.
    Counter = 0,
    /// Gauge.
    Gauge = 1,
    /// Histogram.
    Histogram = 2,
}

/// The Proxy-Wasm ABI version a module declares with its `proxy_abi_version_*` export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbiVersion {
    /// `proxy_abi_version_0_1_0`.
    V0_1_0,
    /// `proxy_abi_version_0_2_0`.
    V0_2_0,
    /// `proxy_abi_version_0_2_1`.
    V0_2_1,
}

impl AbiVersion {
    /// Every version weir runs, oldest first.
    pub const ALL: [AbiVersion; 3] = [Self::V0_1_0, Self::V0_2_0, Self::V0_2_1];

    /// The export that marks this version.
    pub fn marker(self) -> &'static str {
        match self {
            Self::V0_1_0 => "proxy_abi_version_0_1_0",
            Self::V0_2_0 => "proxy_abi_version_0_2_0",
            Self::V0_2_1 => "proxy_abi_version_0_2_1",
        }
    }

    /// The version a marker export names, if it is one.
    pub fn from_marker(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.marker() == name)
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
            Self::V0_2_1 => "0.2.1",
        })
    }
}

/// What a filter's callback asked the host to do with the stream (Envoy's filter statuses,
/// decoded from the raw `i32` the way Envoy decodes them, docs/abi.md#enum-decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the headers or data on to the next filter.
    Continue,
    /// Stop: hold the headers, or buffer the body and call again with more.
    Stop,
}

impl Action {
    /// Headers callbacks: 0 and 2 (ContinueAndEndStream) continue, anything else stops.
    pub fn from_headers_status(v: i32) -> Self {
        if v == 0 || v == 2 { Self::Continue } else { Self::Stop }
    }

    /// Body and trailers callbacks: 0 continues, anything else stops.
    pub fn from_data_status(v: i32) -> Self {
        if v == 0 { Self::Continue } else { Self::Stop }
    }
}

/// What the host does with a request when a filter's VM has failed (docs/abi.md#failures).
/// Written `fail_closed`, `fail_open`, `reload` (with the `serde` feature, as configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(rename_all = "snake_case"))]
pub enum FailurePolicy {
    /// Reply 503 (or reset, once the response has started); later requests also get 503
    /// without entering the VM. Envoy's default.
    #[default]
    FailClosed,
    /// Skip the filter for this and later requests.
    FailOpen,
    /// Like fail-closed for the failing request; later requests get a fresh VM once the
    /// reload backoff has passed.
    Reload,
}

impl FailurePolicy {
    /// The policy as configuration writes it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// `from_raw`: the enum value a guest passed as `i32`, or `None` for a value the enum does not
/// have (negative ones included); the hostcall then answers BAD_ARGUMENT.
macro_rules! from_raw {
    ($($t:ty),*) => {$(
        impl $t {
            /// Decodes a guest value; `None` when out of range.
            pub fn from_raw(v: i32) -> Option<Self> {
                u32::try_from(v).ok().and_then(Self::from_repr)
            }
        }
    )*};
}

from_raw!(MapType, BufferType, StreamType, LogLevel, MetricType);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_values_decode_only_within_range() {
        assert_eq!(MapType::from_raw(7), Some(MapType::HttpCallResponseTrailers));
        assert_eq!(MapType::from_raw(8), None);
        assert_eq!(BufferType::from_raw(-1), None);
        assert_eq!(LogLevel::from_raw(5), Some(LogLevel::Critical));
        assert_eq!(MetricType::from_raw(i32::MIN), None);
    }

    #[test]
    fn names_are_as_configuration_writes_them() {
        assert_eq!(LogLevel::from_name("WARN"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_name("warning"), None);
        assert_eq!(LogLevel::Critical.name(), "critical");
        assert_eq!(FailurePolicy::FailOpen.name(), "fail_open");
    }
}
