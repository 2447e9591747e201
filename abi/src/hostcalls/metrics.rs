//! Metrics (docs/abi.md#metrics). Ids are per instance and carry the type in their low two bits
//! (counters ≡ 0, gauges ≡ 1, histograms ≡ 2 mod 4), as in Envoy; the metric itself is
//! process-wide, keyed by name and type.

use super::{Registrar, hostcall, tri};
use crate::memory;
use crate::types::{MetricType, Status};

fn lookup(state: &crate::host::HostState, id: i32) -> Result<&std::sync::Arc<crate::shared::Metric>, Status> {
    let id = id as u32;
    if MetricType::from_raw((id & 3) as i32).is_none() {
        return Err(Status::BadArgument);
    }
    state.metrics.get(&id).ok_or(Status::NotFound)
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_define_metric", |c, t: i32, np: i32, nl: i32, ret: i32| {
        let Some(kind) = MetricType::from_raw(t) else {
            return Ok(Status::BadArgument.code());
        };
        let name = tri!(memory::read_name(&mut c, np, nl));
        tri!(memory::check_out(&c, &[(ret, 4)]));
        let state = c.data_mut();
        let metric = state.spec.runtime.shared().metrics.define(&String::from_utf8_lossy(&name), kind);
        let n = &mut state.next_metric[kind as usize];
        *n += 1;
        let id = (*n << 2) | kind as u32;
        state.metrics.insert(id, metric);
        tri!(memory::write_u32(&mut c, ret, id));
        Ok(Status::Ok.code())
    });
    hostcall!(r, "proxy_increment_metric", |c, id: i32, offset: i64| {
        Ok(tri!(lookup(c.data(), id)).increment(offset).code())
    });
    hostcall!(r, "proxy_record_metric", |c, id: i32, value: i64| Ok(tri!(lookup(c.data(), id))
        .record(value as u64)
        .code()));
    hostcall!(r, "proxy_get_metric", |c, id: i32, ret: i32| {
        let metric = tri!(lookup(c.data(), id));
        if metric.kind == MetricType::Histogram {
            return Ok(Status::BadArgument.code());
        }
        let v = metric.value() as u64;
        tri!(memory::write_u64(&mut c, ret, v));
        Ok(Status::Ok.code())
    });
    Ok(())
}
