//! Logging (docs/abi.md#logging): `proxy_log`, `proxy_get_log_level`.

use super::{Registrar, hostcall, tri};
use crate::host::{CallbackKind, HostState};
use crate::log::LogRecord;
use crate::memory;
use crate::types::{LogLevel, Status};

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_log", |c, level: i32, ptr: i32, len: i32| {
        let Some(level) = LogLevel::from_raw(level) else {
            return Ok(Status::BadArgument.code());
        };
        tri!(memory::with_slice(&mut c, ptr, len, |msg, state| emit(state, level, msg)));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_get_log_level", |c, ret: i32| {
        let state = c.data();
        let plugin = state.effective_root().map_or("", |r| r.plugin.config.name.as_str());
        let level = state.spec.runtime.config().log_sink.level(plugin) as u32;
        tri!(memory::write_u32(&mut c, ret, level));
        Ok(Status::Ok.code())
    });
    Ok(())
}

/// Sends one line to the runtime's sink, with the plugin prefix of the effective context.
pub(crate) fn emit(state: &mut HostState, level: LogLevel, message: &[u8]) {
    if level >= LogLevel::Warn && matches!(state.frame.kind, CallbackKind::VmStart | CallbackKind::Configure) {
        state.refusal = Some(refusal_text(message));
    }
    let sink = &state.spec.runtime.config().log_sink;
    let root = state.effective_root();
    let (plugin, root_id) =
        root.map(|r| (r.plugin.config.name.as_str(), r.plugin.config.root_id.as_str())).unwrap_or(("", ""));
    if level < sink.level(plugin) {
        return;
    }
    sink.log(&LogRecord {
        level,
        plugin,
        root_id,
        vm_id: &state.spec.config.vm_id,
        context_id: state.frame.effective,
        message,
    });
}

/// Longest refusal reason kept for an error message.
const MAX_REFUSAL: usize = 1024;

fn refusal_text(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut end = text.len().min(MAX_REFUSAL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_owned()
}
