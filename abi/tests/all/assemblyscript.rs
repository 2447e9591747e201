//! A filter built with the AssemblyScript SDK (`@solo-io/proxy-runtime`) loads and runs
//! (docs/abi.md#assemblyscript: `malloc`, start section, `plugin_root_id` lookup at root creation). The module
//! is the conformance suite's AssemblyScript probe (`conformance/probes/as`), configured with
//! the name of the family to exercise.

use weir_abi::*;

use crate::common::*;

#[test]
fn assemblyscript_filter_runs() {
    let h = host();
    let wasm = weir_test_fixtures::read(weir_test_fixtures::FAMILY_PROBE_AS);
    let module = h.rt.load_module(&wasm).expect("the AssemblyScript filter loads");
    assert_eq!(module.allocator, "malloc");
    let plugin = |family: &str| {
        let vm = h.rt.vm(module.clone(), VmConfig::default()).unwrap();
        h.rt.plugin(
            &vm,
            PluginConfig { name: "as".into(), configuration: family.to_owned().into(), ..Default::default() },
        )
    };

    let mut s = get("/p");
    s.request_headers.add(b"x-remove-me", "1");
    let out = exchange(&mut FilterChain::new(vec![plugin("headers")]), &mut s);
    assert!(out.iter().all(is_continue), "{out:?}");
    assert_eq!(s.request_headers.get_str("x-added"), Some("1"));
    assert!(s.request_headers.get(b"x-remove-me").is_none());
    assert_eq!(s.response_headers.get_str("x-response-added"), Some("1"));
    let observed = h.log.raw();
    assert!(
        observed.iter().any(|(_, m)| m.contains(r#""sdk":"as","family":"headers","check":"path","value":"/p""#)),
        "the family named by the plugin configuration ran: {observed:?}"
    );

    match FilterChain::new(vec![plugin("local_reply")]).on_request_headers(&mut get("/"), true) {
        Outcome::LocalResponse(r) => {
            assert_eq!((r.status, &r.body[..]), (403, &b"denied by probe"[..]));
            assert_eq!(r.headers.get_str("x-conformance"), Some("denied"));
        }
        other => panic!("{other:?}"),
    }
}
