//! A filter built with the AssemblyScript SDK (`@solo-io/proxy-runtime`) loads and runs
//! (ABI.md §9.3: `malloc`, start section, `plugin_root_id` lookup at root creation).

use weir_abi::*;

use crate::common::*;

#[test]
fn assemblyscript_filter_runs() {
    let h = host();
    let wasm = weir_test_fixtures::read(weir_test_fixtures::AS_FILTER);
    let module = h.rt.load_module(&wasm).expect("the AssemblyScript filter loads");
    assert_eq!(module.allocator, "malloc");
    let vm = h.rt.vm(module, VmConfig::default()).unwrap();
    let p =
        h.rt.plugin(&vm, PluginConfig { name: "as".into(), configuration: "cfg-value".into(), ..Default::default() });

    let mut s = get("/");
    let mut chain = FilterChain::new(vec![p.clone()]);
    let out = exchange(&mut chain, &mut s);
    assert!(out.iter().all(is_continue), "{out:?}");
    assert_eq!(s.request_headers.get_str("x-as-seen"), Some("1"));
    assert_eq!(s.response_headers.get_str("x-as-config"), Some("cfg-value"));

    let mut deny = get("/");
    deny.request_headers.add(b"x-as-deny", "1");
    match FilterChain::new(vec![p]).on_request_headers(&mut deny, true) {
        Outcome::LocalResponse(r) => {
            assert_eq!((r.status, &r.body[..]), (403, &b"denied by as"[..]));
            assert_eq!(r.headers.get_str("x-as-reply"), Some("yes"));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.log.raw().iter().any(|(_, m)| m.contains("as filter done")));
}
