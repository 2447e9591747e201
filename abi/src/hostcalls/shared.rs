//! Shared data and shared queues (docs/abi.md#shared-data, #shared-queues), namespaced by the VM's `vm_id`.

use bytes::Bytes;

use super::{Registrar, hostcall, tri};
use crate::memory;
use crate::types::Status;

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_get_shared_data", |c, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32, ret_cas: i32| {
        let key = tri!(memory::read_name(&mut c, kp, kl));
        tri!(memory::check_out(&c, &[(ret_cas, 4)]));
        let state = c.data();
        let Some((value, cas)) = state.spec.runtime.shared().data.get(&state.spec.config.vm_id, &key) else {
            return Ok(Status::NotFound.code());
        };
        tri!(memory::hand_out(&mut c, &value, ret_ptr, ret_len)?);
        tri!(memory::write_u32(&mut c, ret_cas, cas));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_set_shared_data", |c, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
        let key = tri!(memory::read_name(&mut c, kp, kl));
        let value = Bytes::from(tri!(memory::read(&mut c, vp, vl)));
        let state = c.data();
        Ok(state.spec.runtime.shared().data.set(&state.spec.config.vm_id, &key, value, cas as u32).code())
    });
    hostcall!(r, "proxy_register_shared_queue", |c, np: i32, nl: i32, ret: i32| {
        let name = tri!(memory::read_name(&mut c, np, nl));
        tri!(memory::check_out(&c, &[(ret, 4)]));
        let state = c.data();
        let root = state.root_of(state.frame.effective).unwrap_or(0);
        let token = state.spec.runtime.shared().queues.register(&state.spec.config.vm_id, &name, &state.inbox, root);
        tri!(memory::write_u32(&mut c, ret, token));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_resolve_shared_queue", |c, vp: i32, vl: i32, np: i32, nl: i32, ret: i32| {
        let vm_id = tri!(memory::read_name(&mut c, vp, vl));
        let name = tri!(memory::read_name(&mut c, np, nl));
        tri!(memory::check_out(&c, &[(ret, 4)]));
        let state = c.data();
        let vm_id = if vm_id.is_empty() {
            state.spec.config.vm_id.clone()
        } else {
            String::from_utf8_lossy(&vm_id).into_owned()
        };
        let Some(token) = state.spec.runtime.shared().queues.resolve(&vm_id, &name) else {
            return Ok(Status::NotFound.code());
        };
        tri!(memory::write_u32(&mut c, ret, token));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_enqueue_shared_queue", |c, token: i32, vp: i32, vl: i32| {
        let value = Bytes::from(tri!(memory::read(&mut c, vp, vl)));
        Ok(c.data().spec.runtime.shared().queues.enqueue(token as u32, value).code())
    });
    hostcall!(r, "proxy_dequeue_shared_queue", |c, token: i32, ret_ptr: i32, ret_len: i32| {
        tri!(memory::check_out(&c, &[(ret_ptr, 4), (ret_len, 4)]));
        let value = tri!(c.data().spec.runtime.shared().queues.dequeue(token as u32));
        tri!(memory::hand_out(&mut c, &value, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    Ok(())
}
