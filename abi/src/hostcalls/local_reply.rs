//! `proxy_send_local_response` (docs/abi.md#local-replies): records the reply; [`crate::local_reply`]
//! applies Envoy's header rules when the chain sends it.

use bytes::Bytes;

use super::{Registrar, hostcall, tri};
use crate::headers::HeaderMap;
use crate::memory;
use crate::stream::LocalResponse;
use crate::types::Status;

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_send_local_response", |c,
                                               code: i32,
                                               dp: i32,
                                               dl: i32,
                                               bp: i32,
                                               bl: i32,
                                               hp: i32,
                                               hl: i32,
                                               grpc: i32| {
        // Details name a reason in logs: the range must be valid, only its start is kept.
        tri!(memory::check_out(&c, &[(dp, dl as u32 as usize)]));
        let details = tri!(memory::read(&mut c, dp, dl.clamp(0, MAX_DETAILS)));
        let body = tri!(memory::read(&mut c, bp, bl));
        let headers = tri!(memory::read(&mut c, hp, hl));
        // From a root context, or a stream that is gone: OK, nothing happens.
        let Some(e) = c.data_mut().stream_effects_mut() else {
            return Ok(Status::Ok.code());
        };
        // Envoy's filter manager prepares one local reply per stream: a second call answers OK
        // and changes nothing (DownstreamFilterManager::prepareLocalReplyViaFilterChain).
        if e.local_response.is_some() {
            return Ok(Status::Ok.code());
        }
        // One token, as Envoy's response code details are: spaces and controls become `_`.
        let details: String = String::from_utf8_lossy(&details)
            .chars()
            .map(|ch| if ch.is_whitespace() || ch.is_control() { '_' } else { ch })
            .collect();
        // Only a final status can end a stream: an informational or out-of-range code (which a
        // client would wait past, or read as another code) becomes a 500 that says why.
        let (status, details) = match u16::try_from(code as u32) {
            Ok(c) if (200..=599).contains(&c) => (c, details),
            _ => (500, "wasm_invalid_local_reply_status".to_owned()),
        };
        e.local_response = Some(Box::new(LocalResponse {
            status,
            headers: HeaderMap::from_pairs(crate::pairs::decode(&headers)),
            body: Bytes::from(body),
            details,
        }));
        e.local_grpc_status = u32::try_from(grpc).ok().filter(|g| *g <= 16);
        Ok(Status::Ok.code())
    });
    Ok(())
}

/// The longest response code details kept from a filter's local reply.
const MAX_DETAILS: i32 = 256;
