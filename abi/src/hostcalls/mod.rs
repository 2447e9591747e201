//! Every `env.proxy_*` hostcall and the WASI subset, one module per family (docs/abi.md#hostcalls).
//!
//! Each hostcall decodes its arguments from guest memory (bounds-checked), acts on the
//! [`HostState`], and returns a status. Traps are kept for two cases: the guest allocator
//! trapped, or a hostcall was used where Envoy forbids it (start-up, inside the allocator).

use std::collections::HashSet;

use wasmtime::{Caller, IntoFunc, Linker};

use crate::error::{FailureKind, HostTrap};
use crate::host::{CallbackKind, HostState};

mod buffers;
mod callouts;
mod context;
mod foreign;
mod headers;
mod local_reply;
mod log;
mod metrics;
mod properties;
mod shared;
mod stream;
mod time;
mod wasi;

/// Collects registrations, remembering every name so module loading can name unknown imports.
pub(crate) struct Registrar<'a> {
    linker: &'a mut Linker<HostState>,
    names: HashSet<(&'static str, &'static str)>,
}

impl Registrar<'_> {
    pub(crate) fn add<P, A>(
        &mut self,
        module: &'static str,
        name: &'static str,
        f: impl IntoFunc<HostState, P, A>,
    ) -> wasmtime::Result<()> {
        self.linker.func_wrap(module, name, f)?;
        self.names.insert((module, name));
        Ok(())
    }
}

/// Defines a hostcall in module `env`: checks it is allowed now, then runs the body, which
/// evaluates to a `wasmtime::Result<i32>` (the status, or a trap).
macro_rules! hostcall {
    ($r:expr, $name:literal, |$c:ident $(, $a:ident : $t:ty)*| $body:expr) => {
        $r.add("env", $name, |$c: wasmtime::Caller<'_, $crate::host::HostState>, $($a: $t),*| -> wasmtime::Result<i32> {
            $crate::hostcalls::guard(&$c, $name)?;
            if !$crate::hostcalls::capability_allowed(&$c, $name) {
                return Ok($crate::types::Status::InternalFailure.code());
            }
            #[allow(unused_mut, unused_variables, reason = "some bodies do not use the caller")]
            let mut $c = $c;
            $body
        })?
    };
}
pub(crate) use hostcall;

/// Unwraps a `Result<T, Status>` inside a hostcall body, returning the status on error.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return Ok($crate::types::Status::code(s)),
        }
    };
}
pub(crate) use tri;

/// Registers every hostcall; returns the `(module, name)` set provided.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<HashSet<(&'static str, &'static str)>> {
    let mut r = Registrar { linker, names: HashSet::new() };
    log::add(&mut r)?;
    context::add(&mut r)?;
    time::add(&mut r)?;
    buffers::add(&mut r)?;
    headers::add(&mut r)?;
    stream::add(&mut r)?;
    local_reply::add(&mut r)?;
    callouts::add(&mut r)?;
    shared::add(&mut r)?;
    metrics::add(&mut r)?;
    properties::add(&mut r)?;
    foreign::add(&mut r)?;
    wasi::add(&mut r)?;
    Ok(r.names)
}

/// Hostcalls allowed while start functions run (proxy-wasm-cpp-host's list): logging and the
/// WASI calls a language runtime needs to initialize.
fn allowed_at_start(name: &str) -> bool {
    matches!(name, "proxy_log" | "emscripten_notify_memory_growth")
        || (wasi::is_wasi(name)
            && !matches!(name, "fd_read" | "fd_seek" | "fd_close" | "path_open" | "sched_yield" | "proc_exit"))
}

/// Hostcalls allowed while the host is inside the guest allocator.
fn allowed_in_allocator(name: &str) -> bool {
    matches!(name, "proxy_log" | "fd_write" | "clock_time_get" | "poll_oneoff")
}

/// False when the VM's capability allow-list does not name `name` (docs/abi.md#capabilities). Each refused
/// call is logged, as Envoy does, so an operator sees which capability to add.
pub(crate) fn capability_allowed(caller: &Caller<'_, HostState>, name: &'static str) -> bool {
    let config = &caller.data().spec.config;
    if config.allows(name) {
        return true;
    }
    tracing::warn!(target: "weir::vm", vm_id = %config.vm_id, capability = name,
        "a filter called a hostcall its allowed_capabilities do not list; it got an error");
    false
}

/// Traps when `name` may not be called in the current callback.
pub(crate) fn guard(caller: &Caller<'_, HostState>, name: &'static str) -> wasmtime::Result<()> {
    let frame = &caller.data().frame;
    let refused = if frame.in_allocator {
        !allowed_in_allocator(name)
    } else {
        frame.kind == CallbackKind::Start && !allowed_at_start(name)
    };
    if refused {
        let when = if frame.in_allocator { "inside the memory allocator" } else { "during module start-up" };
        return Err(wasmtime::Error::new(HostTrap {
            kind: FailureKind::Restricted,
            message: format!("restricted_callback: `{name}` may not be called {when}"),
        }));
    }
    Ok(())
}
