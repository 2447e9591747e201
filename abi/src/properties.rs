//! The attributes a filter reads with `proxy_get_property` (docs/abi.md#properties), encoded as Envoy
//! encodes them (docs/abi.md#property-values): strings raw, integers 8-byte little-endian, booleans one byte, maps in
//! the pairs format, timestamps and durations as int64 nanoseconds.

use std::time::UNIX_EPOCH;

use bytes::Bytes;

use crate::headers::HeaderMap;
use crate::host::{HostState, Phase};
use crate::stream::StreamState;
use crate::types::Status;

fn int(v: i64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

fn uint(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

fn string(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Resolves a NUL-separated property path for the current callback.
pub(crate) fn get(state: &HostState, path: &[u8]) -> Result<Bytes, Status> {
    let segs = crate::pairs::split_path(path);
    let first = *segs.first().ok_or(Status::NotFound)?;
    let rest = &segs[1..];
    let stream = state.effective_stream();
    let root = state.effective_root();
    let leaf = |v: Bytes| {
        if rest.is_empty() { Ok(v) } else { Err(Status::NotFound) }
    };
    match first {
        b"plugin_name" => leaf(string(&root.ok_or(Status::NotFound)?.plugin.config.name)),
        b"plugin_root_id" => leaf(string(&root.ok_or(Status::NotFound)?.plugin.config.root_id)),
        b"plugin_vm_id" => leaf(string(&state.spec.config.vm_id)),
        b"xds" => xds(state, stream.map(|(s, _)| s), rest),
        // Legacy top-level names (Envoy ≤ 1.32), still used by Go and Istio-era filters.
        b"node" | b"cluster_name" | b"route_name" | b"listener_direction" | b"route_metadata" | b"cluster_metadata" => {
            let mut full = vec![first];
            full.extend_from_slice(rest);
            xds(state, stream.map(|(s, _)| s), &full)
        }
        b"request" => request(stream.ok_or(Status::NotFound)?, rest),
        b"response" => response(stream.ok_or(Status::NotFound)?.0, rest),
        b"source" | b"destination" => {
            let (s, _) = stream.ok_or(Status::NotFound)?;
            let addr = if first == b"source" { s.info.source } else { s.info.destination };
            address(addr, rest)
        }
        b"upstream" => {
            let (s, _) = stream.ok_or(Status::NotFound)?;
            address(s.info.upstream_address, rest)
        }
        b"connection" => connection(stream.ok_or(Status::NotFound)?.0, rest),
        b"connection_id" => leaf(uint(stream.ok_or(Status::NotFound)?.0.info.connection_id)),
        b"filter_state" => {
            let (s, _) = stream.ok_or(Status::NotFound)?;
            let map = HeaderMap::from_pairs(
                s.filter_state.iter().map(|(k, v)| ([b"wasm.", k.as_slice()].concat(), v.clone())),
            );
            map_value(&map, rest)
        }
        _ => {
            let (s, _) = stream.ok_or(Status::NotFound)?;
            let key = path.strip_suffix(&[0]).unwrap_or(path);
            s.filter_state.get(key).cloned().ok_or(Status::NotFound)
        }
    }
}

fn map_value(map: &HeaderMap, rest: &[&[u8]]) -> Result<Bytes, Status> {
    match rest {
        [] => Ok(map.encode().into()),
        [name] => map.joined(name).ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}

fn xds(state: &HostState, stream: Option<&StreamState>, rest: &[&[u8]]) -> Result<Bytes, Status> {
    let info = stream.map(|s| &s.info);
    match rest {
        [b"node", tail @ ..] => state.spec.runtime.node().property(tail),
        [b"route_metadata", tail @ ..] => info.ok_or(Status::NotFound)?.route_metadata.property(tail),
        [b"cluster_metadata", tail @ ..] => info.ok_or(Status::NotFound)?.cluster_metadata.property(tail),
        [b"cluster_name"] => Ok(string(&info.ok_or(Status::NotFound)?.cluster_name)),
        [b"route_name"] => Ok(string(&info.ok_or(Status::NotFound)?.route_name)),
        [b"listener_direction"] => Ok(int(0)),
        [b"filter_chain_name" | b"virtual_host_name"] => Ok(Bytes::new()),
        _ => Err(Status::NotFound),
    }
}

fn request((s, phase): (&StreamState, Phase), rest: &[&[u8]]) -> Result<Bytes, Status> {
    let h = &s.request_headers;
    let header = |name: &[u8]| h.get(name).cloned().ok_or(Status::NotFound);
    let path = || h.get(b":path").cloned().unwrap_or_default();
    let body_size =
        || h.get_str("content-length").and_then(|v| v.parse::<i64>().ok()).unwrap_or(s.info.request_body_bytes as i64);
    Ok(match rest {
        [b"path"] => header(b":path")?,
        [b"url_path"] => {
            let p = path();
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p.slice(..end)
        }
        [b"host"] => header(b":authority")?,
        [b"scheme"] => header(b":scheme")?,
        [b"method"] => header(b":method")?,
        [b"headers", tail @ ..] => return map_value(h, tail),
        [b"headers_bytes"] => int(h.byte_size() as i64),
        [b"referer"] => header(b"referer")?,
        [b"useragent"] => header(b"user-agent")?,
        [b"id"] => header(b"x-request-id")?,
        [b"query"] => {
            let p = path();
            match p.iter().position(|b| *b == b'?') {
                Some(q) => {
                    let end = p.iter().position(|b| *b == b'#').unwrap_or(p.len());
                    p.slice(q + 1..end.max(q + 1))
                }
                None => Bytes::new(),
            }
        }
        [b"time"] => {
            let ns = s.info.start_time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
            int(ns)
        }
        [b"protocol"] => string(s.info.protocol),
        [b"duration"] if phase == Phase::Log => int(s.info.duration.ok_or(Status::NotFound)?.as_nanos() as i64),
        [b"size"] => int(body_size()),
        [b"total_size"] => int(s.info.request_body_bytes as i64 + h.byte_size() as i64),
        _ => return Err(Status::NotFound),
    })
}

fn response(s: &StreamState, rest: &[&[u8]]) -> Result<Bytes, Status> {
    let h = &s.response_headers;
    let empty = HeaderMap::new();
    let t = s.response_trailers.as_ref().unwrap_or(&empty);
    Ok(match rest {
        [b"code"] => int(s.info.response_code.ok_or(Status::NotFound)?.into()),
        [b"code_details"] => string(&s.info.response_code_details),
        [b"flags"] => int(0),
        [b"grpc_status"] => {
            let v = t.get_str("grpc-status").or_else(|| h.get_str("grpc-status")).ok_or(Status::NotFound)?;
            int(v.parse().map_err(|_| Status::NotFound)?)
        }
        [b"headers", tail @ ..] => return map_value(h, tail),
        [b"trailers", tail @ ..] => return map_value(t, tail),
        [b"headers_bytes"] => int(h.byte_size() as i64),
        [b"size"] => int(s.info.response_body_bytes as i64),
        [b"total_size"] => int((s.info.response_body_bytes as usize + h.byte_size() + t.byte_size()) as i64),
        _ => return Err(Status::NotFound),
    })
}

fn address(addr: Option<std::net::SocketAddr>, rest: &[&[u8]]) -> Result<Bytes, Status> {
    let addr = addr.ok_or(Status::NotFound)?;
    match rest {
        [b"address"] => {
            let mut text = Vec::with_capacity(48);
            write_socket_addr(&mut text, addr);
            Ok(Bytes::from(text))
        }
        [b"port"] => Ok(int(addr.port().into())),
        _ => Err(Status::NotFound),
    }
}

/// Writes `a` as its `Display` does (`1.2.3.4:80`, `[::1]:80`), without the formatting
/// machinery for IPv4 (about a tenth of the instructions): filters and the access log read
/// the client's address on every request.
pub fn write_socket_addr(out: &mut Vec<u8>, a: std::net::SocketAddr) {
    let number = |out: &mut Vec<u8>, n: u16| out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    match a {
        std::net::SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, octet.into());
            }
        }
        std::net::SocketAddr::V6(v6) => {
            let _ = std::io::Write::write_fmt(out, format_args!("[{}]", v6.ip()));
        }
    }
    out.push(b':');
    number(out, a.port());
}

fn connection(s: &StreamState, rest: &[&[u8]]) -> Result<Bytes, Status> {
    let tls = s.info.tls.as_ref();
    match rest {
        [b"id"] => Ok(uint(s.info.connection_id)),
        [b"mtls"] => {
            Ok(Bytes::from_static(if tls.is_some_and(|t| t.peer_certificate_presented) { &[1] } else { &[0] }))
        }
        [b"requested_server_name"] => Ok(string(tls.map(|t| t.server_name.as_str()).unwrap_or(""))),
        [b"tls_version"] => Ok(string(&tls.ok_or(Status::NotFound)?.version)),
        _ => Err(Status::NotFound),
    }
}
