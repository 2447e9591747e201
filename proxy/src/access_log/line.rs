//! One access-log line: the request's facts ([`Entry`]), the fields a configuration chooses
//! ([`Field`], `access_log.fields`), and their text and JSON forms.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// One request as the access log records it.
pub struct Entry<'a> {
    /// The client's address and port.
    pub client: Option<SocketAddr>,
    /// `x-request-id` as the request went upstream (weir adds one when the client sent none).
    pub request_id: &'a str,
    pub method: &'a str,
    /// `:authority` (the `host` header in HTTP/1).
    pub authority: &'a str,
    /// The path and query the client sent (before any filter rewrote them).
    pub path: &'a str,
    /// `HTTP/1.1`, `HTTP/2`, …
    pub protocol: &'a str,
    /// The status the client received (0: none).
    pub status: u16,
    /// Envoy's response code details (`via_upstream`, `wasm_fail_stream`, …).
    pub details: &'a str,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    pub duration_us: u64,
    pub route: &'a str,
    /// The cluster the request went to (`""`: none).
    pub upstream_cluster: &'a str,
    pub upstream_address: Option<SocketAddr>,
    /// Endpoint chosen to the upstream response's last byte.
    pub upstream_time_us: Option<u64>,
    /// `TLSv1.3`, … (`""`: plaintext).
    pub tls_version: &'a str,
    /// Each filter with its outcome (`auth:passed,limiter:replied`).
    pub filters: &'a str,
    pub error: Option<&'a dyn std::fmt::Display>,
}

/// A field lines can show (`access_log.fields`), named as in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    ClientAddress,
    RequestId,
    Method,
    Authority,
    Path,
    Protocol,
    Status,
    Details,
    BytesReceived,
    BytesSent,
    DurationUs,
    Route,
    UpstreamCluster,
    UpstreamAddress,
    UpstreamTimeUs,
    TlsVersion,
    Filters,
}

/// The fields lines show without `access_log.fields`.
pub const DEFAULT_FIELDS: &[Field] = &[
    Field::ClientAddress,
    Field::RequestId,
    Field::Method,
    Field::Path,
    Field::Protocol,
    Field::Status,
    Field::Details,
    Field::BytesReceived,
    Field::BytesSent,
    Field::DurationUs,
    Field::Route,
    Field::UpstreamAddress,
    Field::UpstreamTimeUs,
    Field::Filters,
];

/// Each field's name, and how text and JSON lines introduce it: one static string each, so a
/// line writes a field's key with one copy.
macro_rules! field_names {
    ($($field:ident => $name:literal,)*) => {
        impl Field {
            /// ` name=`
            fn text_key(self) -> &'static str {
                match self { $(Self::$field => concat!(" ", $name, "="),)* }
            }

            /// `,"name":`
            fn json_key(self) -> &'static str {
                match self { $(Self::$field => concat!(",\"", $name, "\":"),)* }
            }
        }
    };
}

field_names! {
    ClientAddress => "client_address",
    RequestId => "request_id",
    Method => "method",
    Authority => "authority",
    Path => "path",
    Protocol => "protocol",
    Status => "status",
    Details => "details",
    BytesReceived => "bytes_received",
    BytesSent => "bytes_sent",
    DurationUs => "duration_us",
    Route => "route",
    UpstreamCluster => "upstream_cluster",
    UpstreamAddress => "upstream_address",
    UpstreamTimeUs => "upstream_time_us",
    TlsVersion => "tls_version",
    Filters => "filters",
}

impl Field {
    fn value<'a>(self, e: &Entry<'a>) -> Value<'a> {
        let text = |s: &'a str| if s.is_empty() { Value::Missing } else { Value::Text(s) };
        match self {
            Self::ClientAddress => e.client.map_or(Value::Missing, Value::Address),
            Self::RequestId => text(e.request_id),
            Self::Method => Value::Text(e.method),
            Self::Authority => text(e.authority),
            Self::Path => Value::Text(e.path),
            Self::Protocol => text(e.protocol),
            Self::Status => Value::Number(e.status.into()),
            Self::Details => Value::Text(e.details),
            Self::BytesReceived => Value::Number(e.bytes_received),
            Self::BytesSent => Value::Number(e.bytes_sent),
            Self::DurationUs => Value::Number(e.duration_us),
            Self::Route => Value::Text(e.route),
            Self::UpstreamCluster => text(e.upstream_cluster),
            Self::UpstreamAddress => e.upstream_address.map_or(Value::Missing, Value::Address),
            Self::UpstreamTimeUs => e.upstream_time_us.map_or(Value::Missing, Value::Number),
            Self::TlsVersion => text(e.tls_version),
            Self::Filters => Value::Text(e.filters),
        }
    }
}

/// A field's value.
enum Value<'a> {
    Text(&'a str),
    Number(u64),
    Address(SocketAddr),
    /// Nothing to show (no upstream, plaintext, …): `"-"` in text, `null` in JSON.
    Missing,
}

/// The line's fields, in order, then the error when there is one, each with its key
/// (`key`, or `error_key` for the error).
fn each<'a>(
    e: &Entry<'a>,
    fields: &[Field],
    key: fn(Field) -> &'static str,
    error_key: &'static str,
    mut f: impl FnMut(&'static str, Value<'_>),
) {
    for field in fields {
        f(key(*field), field.value(e));
    }
    if let Some(error) = e.error {
        f(error_key, Value::Text(&error.to_string()));
    }
}

/// `2026-12-02T21:05:38.123456Z  INFO weir::access: request method="GET" …`, as tracing's
/// text format writes an event.
pub fn text_line(out: &mut Vec<u8>, e: &Entry<'_>, fields: &[Field]) {
    timestamp(out);
    out.extend_from_slice(b"  INFO weir::access: request");
    each(e, fields, Field::text_key, " error=", |key, value| {
        out.extend_from_slice(key.as_bytes());
        match value {
            Value::Text(text) => quoted(out, text),
            Value::Number(n) => number(out, n),
            Value::Address(a) => address(out, a),
            Value::Missing => out.push(b'-'),
        }
    });
    out.push(b'\n');
}

/// One flat JSON object: `{"timestamp":…,"level":"INFO","target":"weir::access","method":…}`.
pub fn json_line(out: &mut Vec<u8>, e: &Entry<'_>, fields: &[Field]) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"weir::access\",\"message\":\"request\"");
    each(e, fields, Field::json_key, ",\"error\":", |key, value| {
        out.extend_from_slice(key.as_bytes());
        match value {
            Value::Text(text) => json_string(out, text),
            Value::Number(n) => number(out, n),
            Value::Address(a) => {
                out.push(b'"');
                address(out, a);
                out.push(b'"');
            }
            Value::Missing => out.extend_from_slice(b"null"),
        }
    });
    out.extend_from_slice(b"}\n");
}

/// `ip:port` (`[v6]:port`). An IPv4 address is written digit by digit: `Display` through
/// `fmt::write` cost 1,300 instructions an address, a fifth of the line. The last two
/// addresses a thread wrote are kept as text: a keep-alive connection's lines show the same
/// client and (pooled) upstream addresses again and again.
fn address(out: &mut Vec<u8>, a: SocketAddr) {
    thread_local! {
        static RECENT: std::cell::RefCell<[(Option<SocketAddr>, Vec<u8>); 2]> =
            const { std::cell::RefCell::new([(None, Vec::new()), (None, Vec::new())]) };
    }
    RECENT.with_borrow_mut(|recent| {
        let slot = match recent.iter().position(|(known, _)| *known == Some(a)) {
            Some(hit) => hit,
            None => {
                // The older entry gives way: entries move to the front when written.
                recent.swap(0, 1);
                let (known, text) = &mut recent[0];
                *known = Some(a);
                text.clear();
                weir_abi::write_socket_addr(text, a);
                0
            }
        };
        out.extend_from_slice(&recent[slot].1);
    });
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `"value"` with Rust's string escapes, as tracing's text format shows a `&str` field.
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    if value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.extend_from_slice(value.as_bytes());
    } else {
        let mut escaped = String::new();
        let _ = write!(escaped, "{}", value.escape_debug());
        out.extend_from_slice(escaped.as_bytes());
    }
    out.push(b'"');
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if let Ok(text) = serde_json::to_string(value) {
        out.extend_from_slice(text.as_bytes());
    }
}

/// RFC 3339 UTC with microseconds. The date and time of day are formatted once per second
/// per thread.
pub fn timestamp(out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text.clear();
            if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs as i64) {
                let _ = write!(
                    text,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
        }
        out.extend_from_slice(text.as_bytes());
    });
    let mut micros = now.subsec_micros();
    let mut digits = *b".000000Z";
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, error: Option<&'a dyn std::fmt::Display>) -> Entry<'a> {
        Entry {
            client: Some("127.0.0.1:4242".parse().unwrap()),
            request_id: "f0e1",
            method: "GET",
            authority: "",
            path,
            protocol: "HTTP/1.1",
            status: 200,
            details: "via_upstream",
            bytes_received: 0,
            bytes_sent: 2,
            duration_us: 42,
            route: "-",
            upstream_cluster: "",
            upstream_address: None,
            upstream_time_us: None,
            tls_version: "",
            filters: "t:continued",
            error,
        }
    }

    #[test]
    fn text_lines_look_like_tracing_events() {
        let mut out = Vec::new();
        text_line(&mut out, &entry("/a\"b", Some(&"boom")), DEFAULT_FIELDS);
        let line = String::from_utf8(out).unwrap();
        let (stamp, rest) = line.split_once("  INFO ").unwrap();
        assert_eq!(stamp.len(), "2026-12-02T21:05:38.123456Z".len(), "{line}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{line}");
        assert_eq!(
            rest,
            "weir::access: request client_address=127.0.0.1:4242 request_id=\"f0e1\" method=\"GET\" path=\"/a\\\"b\" \
             protocol=\"HTTP/1.1\" status=200 details=\"via_upstream\" bytes_received=0 bytes_sent=2 duration_us=42 \
             route=\"-\" upstream_address=- upstream_time_us=- filters=\"t:continued\" error=\"boom\"\n"
        );
    }

    #[test]
    fn json_lines_are_flat_objects_with_the_chosen_fields() {
        let mut out = Vec::new();
        let fields = [Field::Path, Field::Status, Field::ClientAddress, Field::UpstreamAddress];
        json_line(&mut out, &entry("/\u{1}\\", None), &fields);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["path"], "/\u{1}\\");
        assert_eq!(value["status"], 200);
        assert_eq!(value["client_address"], "127.0.0.1:4242");
        assert!(value["upstream_address"].is_null());
        assert_eq!(value["target"], "weir::access");
        assert!(value.get("method").is_none() && value.get("error").is_none() && value.get("fields").is_none());
    }

    #[test]
    fn addresses_read_as_their_display() {
        // Repeats and alternations go through the thread's recent addresses.
        let all = ["[::1]:80", "127.0.0.1:4242", "127.0.0.1:4242", "[::1]:80", "127.0.0.1:4242", "0.0.0.0:0"];
        for a in all.into_iter().chain(["255.255.255.255:65535", "[2001:db8::1]:443", "[::1]:80", "0.0.0.0:0"]) {
            let mut out = Vec::new();
            address(&mut out, a.parse().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), a);
        }
    }
}
