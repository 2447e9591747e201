//! Time and timers (docs/abi.md#time): `proxy_get_current_time_nanoseconds`,
//! `proxy_set_tick_period_milliseconds`, and the 0.1.0 `proxy_get_configuration`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Registrar, hostcall, tri};
use crate::host::CallbackKind;
use crate::memory;
use crate::types::Status;

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_get_current_time_nanoseconds", |c, ret: i32| {
        tri!(memory::write_u64(&mut c, ret, now_nanos()));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_set_tick_period_milliseconds", |c, period: i32| {
        // The timer belongs to the effective context's root. As in Envoy, every call re-arms it
        // from now with the new period, and 0 stops it.
        let state = c.data_mut();
        if let Some(root) = state.effective_root_mut() {
            let ms = period as u32;
            root.tick_period = (ms > 0).then(|| Duration::from_millis(ms.into()));
            root.next_tick = root.tick_period.map(|p| Instant::now() + p);
            state.inbox.wake();
        }
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_get_configuration", |c, ret_ptr: i32, ret_len: i32| {
        let state = c.data();
        let config = if state.frame.kind == CallbackKind::Configure {
            state.effective_root().map(|r| r.plugin.config.configuration.clone()).unwrap_or_default()
        } else {
            state.spec.config.configuration.clone()
        };
        tri!(memory::hand_out(&mut c, &config, ret_ptr, ret_len)?);
        Ok(Status::Ok.code())
    });
    Ok(())
}
