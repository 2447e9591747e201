//! Header, trailer and metadata maps (docs/abi.md#header-maps), with Envoy's availability rules: a map
//! exists only in the phase that owns it, becomes read-only in `on_log`, and is gone once the
//! filter continued that direction.

use bytes::Bytes;

use super::{Registrar, hostcall, tri};
use crate::headers::HeaderMap;
use crate::host::{HostState, Phase};
use crate::memory;
use crate::stream::{GrpcEvent, HttpCallResponse};
use crate::types::{AbiVersion, MapType, Status};

/// What the current callback may do with a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    None,
    Read,
    Write,
}

fn access(state: &HostState, t: MapType) -> Access {
    let e = state.effective_effects();
    let stream_phase = state.effective_stream().map(|(_, p)| p);
    let request_open = !e.continue_request && !e.continue_response;
    match (t, stream_phase) {
        (MapType::HttpRequestHeaders, Some(Phase::RequestHeaders)) if request_open => Access::Write,
        (MapType::HttpRequestHeaders, Some(Phase::Log)) => Access::Read,
        (MapType::HttpRequestTrailers, Some(Phase::RequestTrailers | Phase::RequestBody { end_of_stream: true }))
            if request_open =>
        {
            Access::Write
        }
        (MapType::HttpResponseHeaders, Some(Phase::ResponseHeaders)) if !e.continue_response => Access::Write,
        (MapType::HttpResponseHeaders | MapType::HttpResponseTrailers, Some(Phase::Log)) => Access::Read,
        (
            MapType::HttpResponseTrailers,
            Some(Phase::ResponseTrailers | Phase::ResponseBody { end_of_stream: true }),
        ) if !e.continue_response => Access::Write,
        (MapType::GrpcCallInitialMetadata, _)
            if matches!(state.frame.grpc_event.as_deref(), Some(GrpcEvent::InitialMetadata(_))) =>
        {
            Access::Read
        }
        (MapType::GrpcCallTrailingMetadata, _)
            if matches!(state.frame.grpc_event.as_deref(), Some(GrpcEvent::TrailingMetadata(_))) =>
        {
            Access::Read
        }
        (MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers, _)
            if state.frame.http_response.is_some() =>
        {
            Access::Read
        }
        _ => Access::None,
    }
}

/// Builds the effective stream's view of `t` if it is one not built yet (see
/// [`crate::HeaderView`]): [`read`] only reads.
fn build_view(state: &mut HostState, t: MapType) {
    if let Some((stream, _)) = state.effective_stream_mut() {
        match t {
            MapType::HttpRequestHeaders => {
                stream.request_headers.build();
            }
            MapType::HttpResponseHeaders => {
                stream.response_headers.build();
            }
            _ => {}
        }
    }
}

fn read(state: &HostState, t: MapType) -> Option<&HeaderMap> {
    let stream = state.effective_stream().map(|(s, _)| s);
    match t {
        MapType::HttpRequestHeaders => stream.map(|s| &*s.request_headers),
        MapType::HttpRequestTrailers => stream.and_then(|s| s.request_trailers.as_ref()),
        MapType::HttpResponseHeaders => stream.map(|s| &*s.response_headers),
        MapType::HttpResponseTrailers => stream.and_then(|s| s.response_trailers.as_ref()),
        MapType::GrpcCallInitialMetadata | MapType::GrpcCallTrailingMetadata => match state.frame.grpc_event.as_deref()
        {
            Some(GrpcEvent::InitialMetadata(m) | GrpcEvent::TrailingMetadata(m)) => Some(m),
            _ => None,
        },
        MapType::HttpCallResponseHeaders => match state.frame.http_response.as_deref() {
            Some(HttpCallResponse::Response { headers, .. }) => Some(headers),
            _ => None,
        },
        MapType::HttpCallResponseTrailers => match state.frame.http_response.as_deref() {
            Some(HttpCallResponse::Response { trailers, .. }) => Some(trailers),
            _ => None,
        },
    }
}

/// The map to change, creating trailers when the phase allows it.
fn write(state: &mut HostState, t: MapType) -> Result<&mut HeaderMap, Status> {
    if access(state, t) != Access::Write {
        return Err(Status::BadArgument);
    }
    let (stream, _) = state.effective_stream_mut().ok_or(Status::BadArgument)?;
    Ok(match t {
        MapType::HttpRequestHeaders => &mut stream.request_headers,
        MapType::HttpRequestTrailers => stream.request_trailers.get_or_insert_with(HeaderMap::new),
        MapType::HttpResponseHeaders => &mut stream.response_headers,
        MapType::HttpResponseTrailers => stream.response_trailers.get_or_insert_with(HeaderMap::new),
        _ => return Err(Status::BadArgument),
    })
}

fn map_type(t: i32) -> Result<MapType, Status> {
    MapType::from_raw(t).ok_or(Status::BadArgument)
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_get_header_map_value", |c, t: i32, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32| {
        let t = tri!(map_type(t));
        build_view(c.data_mut(), t);
        let key = tri!(memory::read(&mut c, kp, kl));
        let state = c.data();
        let value: Bytes = match access(state, t) {
            Access::None if state.effective_stream().is_some_and(|(_, p)| p == Phase::Log) => {
                return Ok(Status::NotFound.code());
            }
            Access::None => return Ok(Status::BadArgument.code()),
            Access::Read | Access::Write => match read(state, t).and_then(|m| m.get(&key)) {
                Some(v) => v.clone(),
                None if state.spec.module.abi == AbiVersion::V0_1_0 => Bytes::new(),
                None => return Ok(Status::NotFound.code()),
            },
        };
        tri!(memory::hand_out(&mut c, &value, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_get_header_map_pairs", |c, t: i32, ret_ptr: i32, ret_len: i32| {
        let t = tri!(map_type(t));
        build_view(c.data_mut(), t);
        let state = c.data();
        let bytes = match access(state, t) {
            Access::None => Vec::new(),
            _ => read(state, t).map(HeaderMap::encode).unwrap_or_default(),
        };
        tri!(memory::hand_out(&mut c, &bytes, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_set_header_map_pairs", |c, t: i32, ptr: i32, len: i32| {
        let t = tri!(map_type(t));
        let status = tri!(memory::with_slice(&mut c, ptr, len, |data, state| match write(state, t) {
            Ok(map) => {
                // Envoy quirk kept on purpose: a malformed buffer empties the map.
                map.set_all(crate::pairs::decode(data));
                Status::Ok
            }
            Err(s) => s,
        }));
        Ok(status.code())
    });
    hostcall!(r, "proxy_add_header_map_value", |c, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
        let t = tri!(map_type(t));
        let key = tri!(memory::read(&mut c, kp, kl));
        let status = tri!(memory::with_slice(&mut c, vp, vl, |v, state| {
            match write(state, t) {
                Ok(map) => {
                    map.add(&key, Bytes::copy_from_slice(v));
                    Status::Ok
                }
                Err(s) => s,
            }
        }));
        Ok(status.code())
    });
    hostcall!(r, "proxy_replace_header_map_value", |c, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
        let t = tri!(map_type(t));
        let key = tri!(memory::read(&mut c, kp, kl));
        let status = tri!(memory::with_slice(&mut c, vp, vl, |v, state| {
            match write(state, t) {
                Ok(map) => {
                    map.replace(&key, Bytes::copy_from_slice(v));
                    Status::Ok
                }
                Err(s) => s,
            }
        }));
        Ok(status.code())
    });
    hostcall!(r, "proxy_remove_header_map_value", |c, t: i32, kp: i32, kl: i32| {
        let t = tri!(map_type(t));
        let status = tri!(memory::with_slice(&mut c, kp, kl, |key, state| match write(state, t) {
            Ok(map) => {
                map.remove(key);
                Status::Ok
            }
            Err(s) => s,
        }));
        Ok(status.code())
    });
    hostcall!(r, "proxy_get_header_map_size", |c, t: i32, ret: i32| {
        let t = tri!(map_type(t));
        build_view(c.data_mut(), t);
        let state = c.data();
        if access(state, t) == Access::None {
            return Ok(Status::BadArgument.code());
        }
        let size = read(state, t).map_or(0, HeaderMap::byte_size);
        tri!(memory::write_u32(&mut c, ret, size as u32));
        Ok(Status::Ok.code())
    });
    Ok(())
}
