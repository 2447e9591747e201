//! Context lifecycle and callback order (docs/abi.md#lifecycle; checklist items 10, 11, 13, 14, 16, 17, 19, 20,
//! 21, 22, 23, 26, 30, 31, 32).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

fn marker(cb: &str) -> serde_json::Value {
    json!([["log", 2, cb]])
}

#[test]
fn callbacks_run_in_envoys_order() {
    let h = host();
    let steps = json!({
        "configure": marker("configure"), "context_create": marker("create"),
        "request_headers": marker("req"), "request_body": marker("body"),
        "response_headers": marker("resp"), "response_body": marker("rbody"),
        "log": marker("log"), "done": marker("done"),
    });
    let p = h.probe(script(steps));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    assert!(is_continue(&chain.on_request_headers(&mut s, false)));
    s.request_body.extend_from_slice(b"abc");
    assert!(is_continue(&chain.on_request_body(&mut s, false)));
    s.request_body.extend_from_slice(b"de");
    assert!(is_continue(&chain.on_request_body(&mut s, true)));
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    assert!(is_continue(&chain.on_response_headers(&mut s, false)));
    s.response_body.extend_from_slice(b"x");
    assert!(is_continue(&chain.on_response_body(&mut s, true)));
    chain.finish(&mut s);
    chain.finish(&mut s); // runs once
    let order: Vec<String> = h.log.take().iter().map(|v| v["cb"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        order,
        [
            "configure",
            "context_create",
            "request_headers",
            "request_body",
            "request_body",
            "response_headers",
            "response_body",
            "log",
            "done"
        ]
    );
}

#[test]
fn stream_ids_follow_the_root_and_are_unique() {
    let h = host();
    let p = h.probe(script(json!({ "configure": marker("c"), "request_headers": marker("r") })));
    for _ in 0..2 {
        let mut chain = FilterChain::new(vec![p.clone()]);
        exchange(&mut chain, &mut get("/"));
    }
    let ctx: Vec<u32> = h.log.lines.lock().unwrap().iter().filter(|l| l.3.starts_with("probe")).map(|l| l.2).collect();
    assert_eq!(ctx, [1, 2, 3], "root 1, then one new stream context per request");
}

#[test]
fn configuration_buffers_follow_the_phase() {
    let h = host();
    let vm = VmConfig { configuration: "".into(), ..Default::default() };
    let p = h.probe_with(
        script(json!({
            "configure": [["get_buffer", 7, 0, 1000], ["get_buffer", 6, 0, 10]],
            "request_headers": [["get_buffer", 7, 0, 1000], ["get_buffer", 6, 0, 10], ["get_property", ["plugin_root_id"]], ["get_property", ["plugin_name"]]],
        })),
        vm,
        FailurePolicy::FailClosed,
    );
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let lines = h.log.take();
    assert_eq!(lines[0]["status"], 0, "plugin configuration readable in on_configure");
    assert!(lines[0]["value"].as_str().unwrap().contains("steps"));
    assert_eq!(lines[1]["status"], 0, "empty VM configuration: OK, no bytes");
    assert_eq!(lines[1]["ptr_null"], true);
    assert_eq!(lines[2]["status"], 1, "plugin configuration: NOT_FOUND outside on_configure");
    assert_eq!(lines[3]["status"], 0, "VM configuration readable later");
    assert_eq!(lines[4]["status"], 0, "plugin_root_id is OK even when empty");
    assert_eq!(lines[5]["value"], "probe");
}

#[test]
fn refusals_at_start_reject_the_plugin() {
    let h = host();
    let refuse_config = h.probe(json!({ "configure": false }));
    let mut vm = Vm::new(&refuse_config.vm).unwrap();
    assert!(matches!(vm.start_plugin(&refuse_config), Err(StartError::ConfigureRefused { .. })));

    let vm_config = VmConfig { configuration: json!({ "vm_start": false }).to_string().into(), ..Default::default() };
    let refuse_vm = h.probe_with(json!({}), vm_config, FailurePolicy::FailClosed);
    let mut vm = Vm::new(&refuse_vm.vm).unwrap();
    let err = vm.start_plugin(&refuse_vm).unwrap_err();
    assert!(matches!(err, StartError::VmStartRefused { .. }), "{err}");
    assert!(err.to_string().contains("proxy_on_vm_start returned false"));

    let bad_json = h.probe(json!("not an object"));
    let mut vm = Vm::new(&bad_json.vm).unwrap();
    assert!(vm.start_plugin(&bad_json).is_err());
}

#[test]
fn two_plugins_share_one_vm_with_their_own_roots() {
    let h = host();
    let a = h.probe(script(json!({ "request_headers": [["get_property", ["plugin_name"]]] })));
    let b = h.rt.plugin(
        &a.vm,
        PluginConfig { name: "second".into(), configuration: a.config.configuration.clone(), ..Default::default() },
    );
    let mut chain = FilterChain::new(vec![a.clone(), b.clone()]);
    exchange(&mut chain, &mut get("/"));
    let names: Vec<_> = h.ops("get_property").iter().map(|v| v["value"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["probe", "second"]);
    pool::with_vm(&a.vm, None, |vm| {
        let (vm, _) = vm.unwrap();
        assert_eq!(vm.roots().len(), 2);
        assert_ne!(vm.root_of(&a), vm.root_of(&b));
    });
}

#[test]
fn root_done_false_waits_for_proxy_done() {
    let h = host();
    let p = h.probe(json!({ "root_done": false, "steps": { "tick": [["done"]], "request_headers": [["done"]] } }));
    let mut vm = Vm::new(&p.vm).unwrap();
    let root = vm.start_plugin(&p).unwrap();
    let mut chain_probe = FilterChain::new(vec![p.clone()]);
    exchange(&mut chain_probe, &mut get("/"));
    assert_eq!(h.ops("done")[0]["status"], 1, "proxy_done with nothing pending: NOT_FOUND");
    assert!(!vm.stop_plugin(&p), "on_done returned false: the root stays");
    vm.on_tick(root).unwrap();
    assert_eq!(h.ops("done")[0]["status"], 0, "proxy_done completes the shutdown");
    assert!(vm.roots().is_empty());
}
