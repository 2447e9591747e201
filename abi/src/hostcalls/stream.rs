//! Stream control (docs/abi.md#stream-control): `proxy_continue_stream`, `proxy_close_stream`, and the 0.1.0
//! `proxy_continue_request`, `proxy_continue_response`, `proxy_clear_route_cache`. Each only
//! records the wish; the chain acts on it after the callback returns.

use super::{Registrar, hostcall};
use crate::host::HostState;
use crate::types::{Status, StreamType};

fn continue_stream(state: &mut HostState, t: StreamType) -> Status {
    if let Some(effects) = state.stream_effects_mut() {
        match t {
            StreamType::HttpRequest => effects.continue_request = true,
            StreamType::HttpResponse => effects.continue_response = true,
            StreamType::Downstream | StreamType::Upstream => {}
        }
    }
    Status::Ok
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_continue_stream", |c, t: i32| {
        Ok(match StreamType::from_raw(t) {
            None => Status::BadArgument,
            Some(StreamType::Upstream) => Status::Unimplemented,
            Some(t) => continue_stream(c.data_mut(), t),
        }
        .code())
    });
    hostcall!(r, "proxy_close_stream", |c, t: i32| {
        let state = c.data_mut();
        Ok(match StreamType::from_raw(t) {
            None => Status::BadArgument,
            Some(StreamType::HttpRequest | StreamType::HttpResponse) => {
                if let Some(effects) = state.stream_effects_mut() {
                    effects.close = true;
                }
                Status::Ok
            }
            Some(_) => Status::Ok,
        }
        .code())
    });
    hostcall!(r, "proxy_continue_request", |c| Ok(continue_stream(c.data_mut(), StreamType::HttpRequest).code()));
    hostcall!(r, "proxy_continue_response", |c| Ok(continue_stream(c.data_mut(), StreamType::HttpResponse).code()));
    hostcall!(r, "proxy_clear_route_cache", |c| {
        c.data_mut().frame.effects.clear_route_cache = true;
        Ok(Status::Ok.code())
    });
    Ok(())
}
