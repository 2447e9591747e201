//! Properties (docs/abi.md#properties-hostcalls): `proxy_get_property` resolves through [`crate::properties`];
//! `proxy_set_property` stores filter state on the stream (NOT_FOUND without one).

use bytes::Bytes;

use super::{Registrar, hostcall, tri};
use crate::memory;
use crate::types::Status;

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_get_property", |c, pp: i32, pl: i32, ret_ptr: i32, ret_len: i32| {
        let path = tri!(memory::read(&mut c, pp, pl));
        tri!(memory::check_out(&c, &[(ret_ptr, 4), (ret_len, 4)]));
        // `request.*` and `response.*` read the header views: built on first use.
        if (path.starts_with(b"request") || path.starts_with(b"response"))
            && let Some((stream, _)) = c.data_mut().effective_stream_mut()
        {
            stream.build_views();
        }
        let value = tri!(crate::properties::get(c.data(), &path));
        tri!(memory::hand_out(&mut c, &value, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_set_property", |c, pp: i32, pl: i32, vp: i32, vl: i32| {
        let path = tri!(memory::read(&mut c, pp, pl));
        let value = Bytes::from(tri!(memory::read(&mut c, vp, vl)));
        let Some((stream, _)) = c.data_mut().effective_stream_mut() else {
            return Ok(Status::NotFound.code());
        };
        let key = path.strip_suffix(&[0]).map(<[u8]>::to_vec).unwrap_or(path);
        stream.filter_state.insert(key, value);
        Ok(Status::Ok.code())
    });
    Ok(())
}
