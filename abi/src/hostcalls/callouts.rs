//! HTTP and gRPC callouts (docs/abi.md#http-callouts, #grpc-callouts). A callout is recorded as work for the host
//! with a token; its result comes back through [`crate::Vm::on_callout_result`], never inside
//! the hostcall.

use std::time::Duration;

use bytes::Bytes;

use super::{Registrar, hostcall, tri};
use crate::headers::HeaderMap;
use crate::host::{CallKind, HostState, OutstandingCall};
use crate::memory;
use crate::stream::{Callout, CalloutKind, GrpcCallRequest, HttpCallRequest};
use crate::types::Status;

fn timeout(ms: i32) -> Option<Duration> {
    let ms = ms as u32;
    (ms > 0).then(|| Duration::from_millis(ms.into()))
}

/// Records a new callout of `kind` for the effective context's root; returns its token.
fn start(state: &mut HostState, kind: CallKind, work: CalloutKind) -> Option<u32> {
    let root = state.root_of(state.frame.effective)?;
    let origin = state.frame.effective;
    let token = state.new_token(kind);
    state.tokens.insert(token, OutstandingCall { root, origin, kind });
    state.callouts.push((origin, Callout { token, kind: work }));
    if state.stream_context != Some(origin) {
        // Not the stream whose callback runs (a root, or a parked stream): the VM's loop
        // starts it.
        state.inbox.wake();
    }
    Some(token)
}

fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_http_call", |c,
                                     up: i32,
                                     ul: i32,
                                     hp: i32,
                                     hl: i32,
                                     bp: i32,
                                     bl: i32,
                                     tp: i32,
                                     tl: i32,
                                     ms: i32,
                                     ret: i32| {
        tri!(memory::check_out(&c, &[(ret, 4)]));
        let cluster = utf8(tri!(memory::read_name(&mut c, up, ul)));
        let headers = HeaderMap::from_pairs(crate::pairs::decode(&tri!(memory::read(&mut c, hp, hl))));
        let body = Bytes::from(tri!(memory::read(&mut c, bp, bl)));
        let trailers = HeaderMap::from_pairs(crate::pairs::decode(&tri!(memory::read(&mut c, tp, tl))));
        let state = c.data_mut();
        if !state.allows_cluster(&cluster) {
            return Ok(Status::BadArgument.code());
        }
        // Envoy's Context::httpCall: the three must be present (an empty value is accepted),
        // and the timeout is a signed 32-bit number of milliseconds.
        if [&b":method"[..], b":path", b":authority"].iter().any(|h| headers.get(h).is_none()) || ms < 0 {
            return Ok(Status::BadArgument.code());
        }
        let mut headers = headers;
        if !body.is_empty() {
            headers.replace(b"content-length", Bytes::from(body.len().to_string()));
        }
        let request = HttpCallRequest { cluster, headers, body, trailers, timeout: timeout(ms) };
        let Some(token) = start(state, CallKind::Http, CalloutKind::Http(request)) else {
            return Ok(Status::InternalFailure.code());
        };
        tri!(memory::write_u32(&mut c, ret, token));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_grpc_call", |c,
                                     cp: i32,
                                     cl: i32,
                                     sp: i32,
                                     sl: i32,
                                     mp: i32,
                                     ml: i32,
                                     ip: i32,
                                     il: i32,
                                     gp: i32,
                                     gl: i32,
                                     ms: i32,
                                     ret: i32| {
        let req = tri!(grpc_request(&mut c, (cp, cl), (sp, sl), (mp, ml), (ip, il)));
        let message = Bytes::from(tri!(memory::read(&mut c, gp, gl)));
        tri!(memory::check_out(&c, &[(ret, 4)]));
        let req = GrpcCallRequest { message: Some(message), timeout: timeout(ms), ..req };
        open_grpc(&mut c, CallKind::GrpcCall, req, ret)
    });
    hostcall!(r, "proxy_grpc_stream", |c,
                                       cp: i32,
                                       cl: i32,
                                       sp: i32,
                                       sl: i32,
                                       mp: i32,
                                       ml: i32,
                                       ip: i32,
                                       il: i32,
                                       ret: i32| {
        let req = tri!(grpc_request(&mut c, (cp, cl), (sp, sl), (mp, ml), (ip, il)));
        tri!(memory::check_out(&c, &[(ret, 4)]));
        open_grpc(&mut c, CallKind::GrpcStream, req, ret)
    });
    hostcall!(r, "proxy_grpc_send", |c, token: i32, mp: i32, ml: i32, eos: i32| {
        let message = Bytes::from(tri!(memory::read(&mut c, mp, ml)));
        let token = token as u32;
        let state = c.data_mut();
        match state.tokens.get(&token) {
            None => Ok(Status::NotFound.code()),
            Some(call) if call.kind != CallKind::GrpcStream => Ok(Status::BadArgument.code()),
            Some(call) => {
                let origin = call.origin;
                let work = CalloutKind::GrpcSend { message, end_of_stream: eos != 0 };
                state.callouts.push((origin, Callout { token, kind: work }));
                Ok(Status::Ok.code())
            }
        }
    });
    hostcall!(r, "proxy_grpc_cancel", |c, token: i32| Ok(end_grpc(c.data_mut(), token as u32, true).code()));
    hostcall!(r, "proxy_grpc_close", |c, token: i32| Ok(end_grpc(c.data_mut(), token as u32, false).code()));
    hostcall!(r, "proxy_get_status", |c, ret_code: i32, ret_ptr: i32, ret_len: i32| {
        let (code, message) = c.data().effective_root().map(|r| r.last_status.clone()).unwrap_or_default();
        tri!(memory::check_out(&c, &[(ret_code, 4)]));
        tri!(memory::hand_out(&mut c, &message, ret_ptr, ret_len)?);
        tri!(memory::write_u32(&mut c, ret_code, code));
        Ok(Status::Ok.code())
    });
    Ok(())
}

type Span = (i32, i32);

fn grpc_request(
    c: &mut wasmtime::Caller<'_, HostState>,
    cluster: Span,
    service: Span,
    method: Span,
    metadata: Span,
) -> Result<GrpcCallRequest, Status> {
    Ok(GrpcCallRequest {
        cluster: utf8(memory::read_name(c, cluster.0, cluster.1)?),
        service: utf8(memory::read_name(c, service.0, service.1)?),
        method: utf8(memory::read_name(c, method.0, method.1)?),
        initial_metadata: HeaderMap::from_pairs(crate::pairs::decode(&memory::read(c, metadata.0, metadata.1)?)),
        message: None,
        timeout: None,
    })
}

fn open_grpc(
    c: &mut wasmtime::Caller<'_, HostState>,
    kind: CallKind,
    req: GrpcCallRequest,
    ret: i32,
) -> wasmtime::Result<i32> {
    let state = c.data_mut();
    if !state.allows_cluster(&req.cluster) {
        return Ok(Status::ParseFailure.code());
    }
    let Some(token) = start(state, kind, CalloutKind::Grpc(req)) else {
        return Ok(Status::InternalFailure.code());
    };
    tri!(memory::write_u32(c, ret, token));
    Ok(Status::Ok.code())
}

/// `proxy_grpc_cancel` (no further callbacks) and `proxy_grpc_close` (half-close a stream;
/// cancel a unary call).
fn end_grpc(state: &mut HostState, token: u32, cancel: bool) -> Status {
    let Some(call) = state.tokens.get(&token).copied() else {
        return if token % 4 == 1 || token % 4 == 2 { Status::NotFound } else { Status::BadArgument };
    };
    if call.kind == CallKind::Http {
        return Status::BadArgument;
    }
    let really_cancel = cancel || call.kind == CallKind::GrpcCall;
    if really_cancel {
        state.tokens.remove(&token);
    }
    let work = if really_cancel { CalloutKind::GrpcCancel } else { CalloutKind::GrpcClose };
    state.callouts.push((call.origin, Callout { token, kind: work }));
    Status::Ok
}
