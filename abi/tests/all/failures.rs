//! Traps, deadlines, memory limits and failure policies (docs/abi.md#failures; checklist items 134, 138–141,
//! 143). Each failure is classified, fails only its request per the policy, and leaves the
//! host usable.

use std::time::Duration;

use serde_json::json;
use weir_abi::*;

use crate::common::*;

fn failed(o: &Outcome) -> &FilterFailure {
    match o {
        Outcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn probe_on_request(
    h: &Host,
    op: serde_json::Value,
    policy: FailurePolicy,
    limits: Limits,
) -> std::sync::Arc<PluginSpec> {
    let s = json!({ "steps": { "request_headers": [["get_header", 0, "x-boom"]], "response_headers": [op.clone()] } });
    let _ = s;
    h.probe_with(json!({ "steps": { "request_headers": [op] } }), VmConfig { limits, ..Default::default() }, policy)
}

#[test]
fn panic_fails_closed_and_later_requests_get_503_without_the_vm() {
    let h = host();
    let p = probe_on_request(&h, json!(["panic", "boom"]), FailurePolicy::FailClosed, Limits::default());
    let mut chain = FilterChain::new(vec![p.clone()]);
    let mut s = get("/");
    let f = failed(&chain.on_request_headers(&mut s, true)).clone();
    assert_eq!(f.failure.kind, FailureKind::Unreachable);
    assert_eq!((f.reply.status, f.reply.body.len(), f.reply.details.as_str()), (503, 0, "wasm_fail_stream"));
    chain.finish(&mut s);
    assert!(h.log.raw().iter().all(|(_, m)| !m.contains("\"cb\":\"log\"")), "no on_log for the failed stream");
    let again = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    assert_eq!(failed(&again).failure.kind, FailureKind::Unreachable, "the next request fails without entering the VM");
}

#[test]
fn fail_open_skips_the_filter() {
    let h = host();
    let p = probe_on_request(&h, json!(["panic", "boom"]), FailurePolicy::FailOpen, Limits::default());
    let next = h.probe(script(json!({ "request_headers": [["log", 2, "next"]] })));
    let mut chain = FilterChain::new(vec![p.clone(), next]);
    assert!(is_continue(&chain.on_request_headers(&mut get("/"), true)));
    assert_eq!(h.log.take().len(), 1, "the next filter still ran");
    assert!(is_continue(&FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true)));
}

#[test]
fn reload_gives_a_fresh_vm() {
    let h = host();
    // Panics only when the request carries x-boom, so the fresh VM can serve the next one.
    let p = h.probe_with(
        json!({ "steps": { "request_headers": [["get_property", ["request", "headers", "x-boom"]]] } }),
        VmConfig::default(),
        FailurePolicy::Reload,
    );
    let first = FilterChain::new(vec![p.clone()]).on_request_headers(&mut get("/"), true);
    assert!(is_continue(&first));
    pool::with_vm(&p.vm, None, |vm| vm.unwrap().0.fail(FailureKind::Unreachable, "simulated trap"));
    let out = FilterChain::new(vec![p.clone()]).on_request_headers(&mut get("/"), true);
    assert!(is_continue(&out), "backoff 0: a fresh VM serves the request ({out:?})");
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let h = host();
    let limits = Limits { callback_deadline: Duration::from_millis(20), ..Default::default() };
    let p = probe_on_request(&h, json!(["loop"]), FailurePolicy::FailClosed, limits);
    let started = std::time::Instant::now();
    let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    assert_eq!(failed(&out).failure.kind, FailureKind::Deadline);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The host is still usable.
    let ok = h.probe(json!({}));
    assert!(is_continue(&FilterChain::new(vec![ok]).on_request_headers(&mut get("/"), true)));
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let h = host();
    let limits = Limits { memory_bytes: 8 << 20, ..Default::default() };
    let p = probe_on_request(&h, json!(["grow", 64]), FailurePolicy::FailClosed, limits);
    let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    let f = failed(&out);
    assert_eq!(f.failure.kind, FailureKind::MemoryLimit, "{}", f.failure);
    let small = probe_on_request(&h, json!(["grow", 2]), FailurePolicy::FailClosed, limits);
    assert!(is_continue(&FilterChain::new(vec![small]).on_request_headers(&mut get("/"), true)));
}

#[test]
fn proc_exit_is_a_trap() {
    let h = host();
    let p = probe_on_request(&h, json!(["exit", 3]), FailurePolicy::FailClosed, Limits::default());
    let out = FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true);
    assert_eq!(failed(&out).failure.kind, FailureKind::Exit);
}

#[test]
fn trap_after_the_response_started_resets() {
    let h = host();
    let p = h.probe(script(json!({ "response_body": [["panic", "late"]] })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, true);
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    chain.on_response_headers(&mut s, false);
    s.response_body.extend_from_slice(b"x");
    assert!(matches!(chain.on_response_body(&mut s, true), Outcome::Close));
}

#[test]
fn trap_in_a_tick_fails_the_vm() {
    let h = host();
    let p = h.probe(script(json!({ "configure": [["set_tick_period", 10]], "tick": [["panic", "tick"]] })));
    let mut vm = Vm::new(&p.vm).unwrap();
    let root = vm.start_plugin(&p).unwrap();
    assert_eq!(vm.tick_period(root), Some(Duration::from_millis(10)));
    assert_eq!(vm.on_tick(root).unwrap_err().kind, FailureKind::Unreachable);
    assert!(vm.failure().is_some());
}
