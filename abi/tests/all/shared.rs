//! Shared data and shared queues (docs/abi.md#shared-data, #shared-queues; checklist items 109–115).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn shared_data_with_cas() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["get_shared", "k"], ["set_shared", "k", "v1", 0], ["get_shared", "k"], ["set_shared", "k", "v2", 12345],
        ["set_shared", "new", "x", 777], ["set_shared", "empty", null, 0], ["get_shared", "empty"],
    ]})));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let l = h.log.take();
    let st: Vec<i64> = l.iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [1, 0, 0, 8, 0, 0, 0]);
    assert_eq!(l[2]["value"], "v1");
    let cas = l[2]["cas"].as_u64().unwrap();
    assert_ne!(cas, 0);
    assert_eq!(l[6]["ptr_null"], true, "empty value: OK with no bytes");
    let (value, now) = h.rt.shared().data.get("", b"k").unwrap();
    assert_eq!((&value[..], now), (&b"v1"[..], cas as u32));
}

#[test]
fn shared_data_is_shared_across_threads_by_vm_id_only() {
    let h = host();
    let writer = h.probe(script(json!({ "request_headers": [["set_shared", "k", "from-a", 0]] })));
    exchange(&mut FilterChain::new(vec![writer]), &mut get("/"));
    let other_vm = VmConfig { vm_id: "other".into(), ..Default::default() };
    let reader_same = h.probe(script(json!({ "request_headers": [["get_shared", "k"]] })));
    let reader_other =
        h.probe_with(script(json!({ "request_headers": [["get_shared", "k"]] })), other_vm, FailurePolicy::FailClosed);
    std::thread::scope(|t| {
        t.spawn(|| exchange(&mut FilterChain::new(vec![reader_same.clone()]), &mut get("/")));
    });
    exchange(&mut FilterChain::new(vec![reader_other]), &mut get("/"));
    let l = h.ops("get_shared");
    assert_eq!(
        (l[0]["status"].clone(), l[0]["value"].clone()),
        (json!(0), json!("from-a")),
        "another thread, same vm_id"
    );
    assert_eq!(l[1]["status"], 1, "another vm_id does not see it");
}

#[test]
fn queues_notify_the_registrant() {
    let h = host();
    let p = h.probe(json!({ "steps": {
        "configure": [["register_queue", "q"], ["register_queue", "q"], ["resolve_queue", "", "q"], ["resolve_queue", "", "nope"], ["dequeue", "$register_queue"]],
        "request_headers": [["enqueue", "$register_queue", "one"], ["enqueue", "$register_queue", "two"], ["enqueue", 9999, "x"]],
        "queue_ready": [["dequeue", "$register_queue"]],
    }}));
    let mut chain = FilterChain::new(vec![p.clone()]);
    chain.on_request_headers(&mut get("/"), true);
    let l = h.log.take();
    assert_eq!(l[0]["token"], l[1]["token"], "registering twice gives the same token");
    assert_eq!(l[2]["token"], l[0]["token"]);
    assert_eq!(l[3]["status"], 1);
    assert_eq!(l[4]["status"], 7, "empty queue: EMPTY");
    assert_eq!(l[7]["status"], 1, "unknown token: NOT_FOUND");
    assert!(h.rt.shared().queues.resolve("", b"q").is_some());
    let delivered = pool::with_vm(&p.vm, None, |vm| {
        let (vm, _) = vm.unwrap();
        assert!(vm.inbox().has_events(), "notifications are posted, never delivered inline");
        vm.deliver_queue_ready().unwrap()
    });
    assert_eq!(delivered, 2);
    let values: Vec<_> = h.ops("dequeue").iter().map(|v| v["value"].clone()).collect();
    assert_eq!(values, [json!("one"), json!("two")], "FIFO");
}
