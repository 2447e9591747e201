//! Buffers (docs/abi.md#buffers): `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`,
//! `proxy_get_buffer_status`, with Envoy's availability and `copyFrom` rules.

use bytes::{Bytes, BytesMut};

use super::{Registrar, hostcall, tri};
use crate::host::{CallbackKind, HostState, Phase};
use crate::memory;
use crate::stream::{GrpcEvent, HttpCallResponse};
use crate::types::{BufferType, Status};

/// The bytes of a buffer as the current callback sees it: bodies borrowed (a body can be
/// large and callers want its length or a slice), the rest shared.
enum Buf<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl std::ops::Deref for Buf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Borrowed(b) => b,
            Buf::Shared(b) => b,
        }
    }
}

fn buffer(state: &HostState, t: BufferType) -> Result<Buf<'_>, Status> {
    let shared = |b: Bytes| Ok(Buf::Shared(b));
    match t {
        BufferType::HttpRequestBody => match state.effective_stream() {
            Some((s, Phase::RequestBody { .. })) => Ok(Buf::Borrowed(&s.request_body)),
            _ => shared(Bytes::new()),
        },
        BufferType::HttpResponseBody => match state.effective_stream() {
            Some((s, Phase::ResponseBody { .. })) => Ok(Buf::Borrowed(&s.response_body)),
            _ => shared(Bytes::new()),
        },
        other => owned_buffer(state, other).map(Buf::Shared),
    }
}

fn owned_buffer(state: &HostState, t: BufferType) -> Result<Bytes, Status> {
    Ok(match t {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => Bytes::new(),
        BufferType::DownstreamData | BufferType::UpstreamData => Bytes::new(),
        BufferType::HttpCallResponseBody => match state.frame.http_response.as_deref() {
            Some(HttpCallResponse::Response { body, .. }) => body.clone(),
            Some(HttpCallResponse::Reset) => Bytes::new(),
            None => return Err(Status::NotFound),
        },
        BufferType::GrpcCallMessage => match state.frame.grpc_event.as_deref() {
            Some(GrpcEvent::Message(m)) => m.clone(),
            _ => Bytes::new(),
        },
        BufferType::VmConfiguration => state.spec.config.configuration.clone(),
        BufferType::PluginConfiguration => match state.frame.kind {
            CallbackKind::RootCreate | CallbackKind::Configure => {
                state.effective_root().map(|r| r.plugin.config.configuration.clone()).unwrap_or_default()
            }
            _ => return Err(Status::NotFound),
        },
        BufferType::CallData => state.foreign_args.clone(),
    })
}

/// The body a set call may change, if the current callback has one.
fn body_mut(state: &mut HostState, t: BufferType) -> Result<&mut BytesMut, Status> {
    match t {
        BufferType::HttpRequestBody => match state.effective_stream_mut() {
            Some((s, Phase::RequestBody { .. })) => Ok(&mut s.request_body),
            _ => Err(Status::NotFound),
        },
        BufferType::HttpResponseBody => match state.effective_stream_mut() {
            Some((s, Phase::ResponseBody { .. })) => Ok(&mut s.response_body),
            _ => Err(Status::NotFound),
        },
        _ => Err(Status::BadArgument),
    }
}

/// Envoy's `Buffer::copyFrom`: `start == 0` drains `size` bytes and prepends, `start >= len`
/// appends, anything in between is refused.
pub(crate) fn copy_from(buf: &mut BytesMut, start: usize, size: usize, data: &[u8]) -> Status {
    if start == 0 {
        let drain = size.min(buf.len());
        let rest = buf.split_off(drain);
        buf.clear();
        buf.extend_from_slice(data);
        buf.extend_from_slice(&rest);
        Status::Ok
    } else if start >= buf.len() {
        buf.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_get_buffer_bytes", |c, t: i32, start: i32, max: i32, ret_ptr: i32, ret_len: i32| {
        let Some(t) = BufferType::from_raw(t) else {
            return Ok(Status::BadArgument.code());
        };
        let (start, max) = (start as u32 as usize, max as u32 as usize);
        if (start as u32).checked_add(max as u32).is_none() {
            return Ok(Status::BadArgument.code());
        }
        // Copy only the requested range out before handing it to the guest allocator.
        let slice: Vec<u8> = {
            let data = tri!(buffer(c.data(), t));
            if start > data.len() { Vec::new() } else { data[start..data.len().min(start + max)].to_vec() }
        };
        tri!(memory::hand_out(&mut c, &slice, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_set_buffer_bytes", |c, t: i32, start: i32, size: i32, ptr: i32, len: i32| {
        let Some(t) = BufferType::from_raw(t) else {
            return Ok(Status::BadArgument.code());
        };
        let status = tri!(memory::with_slice(&mut c, ptr, len, |data, state| match body_mut(state, t) {
            Ok(buf) => copy_from(buf, start as u32 as usize, size as u32 as usize, data),
            Err(s) => s,
        }));
        Ok(status.code())
    });
    hostcall!(r, "proxy_get_buffer_status", |c, t: i32, ret_size: i32, ret_flags: i32| {
        let Some(t) = BufferType::from_raw(t) else {
            return Ok(Status::BadArgument.code());
        };
        let size = tri!(buffer(c.data(), t)).len();
        tri!(memory::check_out(&c, &[(ret_size, 4), (ret_flags, 4)]));
        tri!(memory::write_u32(&mut c, ret_size, size as u32));
        tri!(memory::write_u32(&mut c, ret_flags, 0));
        Ok(Status::Ok.code())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_follows_envoy() {
        let mut b = BytesMut::from(&b"hello"[..]);
        assert_eq!(copy_from(&mut b, 0, 0, b">"), Status::Ok);
        assert_eq!(&b[..], b">hello");
        assert_eq!(copy_from(&mut b, 6, 0, b"<"), Status::Ok);
        assert_eq!(&b[..], b">hello<");
        assert_eq!(copy_from(&mut b, i32::MAX as usize, 0, b"!"), Status::Ok);
        assert_eq!(copy_from(&mut b, 0, usize::MAX, b"new"), Status::Ok);
        assert_eq!(&b[..], b"new");
        assert_eq!(copy_from(&mut b, 1, 1, b"x"), Status::BadArgument);
        assert_eq!(&b[..], b"new");
    }
}
