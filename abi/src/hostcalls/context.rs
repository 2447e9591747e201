//! Context management (docs/abi.md#context-management): `proxy_set_effective_context`, `proxy_done`.

use super::{Registrar, hostcall};
use crate::host::Context;
use crate::types::Status;

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_set_effective_context", |c, id: i32| {
        let id = id as u32;
        let state = c.data_mut();
        if !state.contexts.contains_key(&id) {
            return Ok(Status::BadArgument.code());
        }
        state.frame.effective = id;
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_done", |c| {
        let state = c.data_mut();
        let Some(root) = state.root_of(state.frame.effective) else {
            return Ok(Status::NotFound.code());
        };
        match state.contexts.get(&root) {
            Some(Context::Root(r)) if r.shutting_down => {
                state.frame.done_root = Some(root);
                Ok(Status::Ok.code())
            }
            _ => Ok(Status::NotFound.code()),
        }
    });
    // Legacy stubs Envoy links for old emscripten and C++ SDK builds.
    r.add("env", "emscripten_notify_memory_growth", |_: i32| {})?;
    r.add("env", "pthread_equal", |a: i32, b: i32| -> i32 { (a == b) as i32 })?;
    Ok(())
}
