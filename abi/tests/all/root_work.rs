//! Root-context work driven by [`Vm::poll`] and streams parked in their VM: the timer is
//! re-armed by every `proxy_set_tick_period_milliseconds` (Envoy's `Wasm::setTimerPeriod`), the
//! next tick is due one period after `on_tick` returned (`Wasm::tickHandler`), and a paused
//! stream lent to its VM is continued from another context (checklist items 152, 153).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn every_tick_period_rearms_the_timer_from_now() {
    let h = host();
    let p = h.probe(script(json!({
        "configure": [["set_tick_period", 60000]],
        "request_headers": [["set_tick_period", 10]],
        "tick": [["count", "ticks"]],
    })));
    let mut chain = FilterChain::new(vec![p.clone()]);
    let before = Instant::now();
    assert!(is_continue(&chain.on_request_headers(&mut get("/"), true)));
    let next = pool::with_vm(&p.vm, None, |vm| vm.unwrap().0.poll(Instant::now()).next_wake).unwrap();
    assert!(next < before + Duration::from_secs(1), "re-armed from now with 10 ms, not a minute later");
    std::thread::sleep(Duration::from_millis(15));
    let work = pool::with_vm(&p.vm, None, |vm| vm.unwrap().0.poll(Instant::now()));
    let after_tick = Instant::now();
    assert_eq!(h.ops("count")[0]["value"], 1);
    let next = work.next_wake.unwrap();
    assert!(next > after_tick && next <= after_tick + Duration::from_millis(10), "one period after the tick");
    // Not due yet: no tick.
    pool::with_vm(&p.vm, None, |vm| vm.unwrap().0.poll(Instant::now()));
    assert!(h.ops("count").is_empty());
}

#[test]
fn a_tick_continues_a_parked_stream() {
    let h = host();
    let p = h.probe(json!({
        "steps": {
            "request_headers": [["save", "paused", "$self"], ["set_tick_period", 1]],
            "tick": [["set_tick_period", 0], ["set_effective_context", "$paused"], ["add_header", 0, "x-resumed", "1"], ["continue_stream", 0]],
        },
        "actions": { "request_headers": "pause" },
    }));
    let mut chain = FilterChain::new(vec![p.clone()]);
    let mut s = get("/");
    assert!(matches!(chain.on_request_headers(&mut s, true), Outcome::Pause { .. }));
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    assert!(chain.park(&mut s, Arc::new(move || _ = w.fetch_add(1, Ordering::Relaxed))));
    assert!(s.request_headers.get(b":path").is_none(), "the stream's data is lent to the VM");
    // Nothing asked for it yet: it stays paused.
    assert!(matches!(chain.unpark(&mut s), Outcome::Pause { .. }));
    let w = woken.clone();
    chain.park(&mut s, Arc::new(move || _ = w.fetch_add(1, Ordering::Relaxed)));
    std::thread::sleep(Duration::from_millis(5));
    pool::with_vm(&p.vm, None, |vm| vm.unwrap().0.poll(Instant::now()));
    assert_eq!(woken.load(Ordering::Relaxed), 1, "the tick's continue wakes the stream");
    assert!(is_continue(&chain.unpark(&mut s)));
    assert_eq!(s.request_headers.get_str("x-resumed"), Some("1"));
    assert_eq!(s.request_headers.get_str(":path"), Some("/"));
    chain.finish(&mut s);
}
