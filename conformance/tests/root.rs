//! Root context start-up (docs/abi.md#root-start): the order of the root callbacks, their arguments, and
//! which configuration each can read.

use crate::suite::*;

conformance! {
    /// §10: 13, 14, 19
    /// proves: proxy_on_context_create, proxy_on_vm_start, proxy_on_configure
    async fn sdk_root_starts_with_vm_start_then_configure(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family_with(mode, sdk, "lifecycle", "vm_config: \"0123456789\"");
            assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}");
            let observed = proxy.observed(sdk);
            let first: Vec<_> = observed.iter().take(2).map(|(c, v)| (c.as_str(), v.as_str())).collect();
            assert_eq!(first, [("vm_start", "10"), ("configure", "9")], "{sdk:?}: sizes of the VM and plugin configurations");
        }
    }
}

conformance! {
    /// §10: 13, 14, 16, 17, 20
    /// proves: proxy_on_vm_start, proxy_on_configure, proxy_get_buffer_bytes, proxy_get_property
    async fn raw_root_sees_its_configurations_and_names(mode) {
        let vm = json!({ "steps": { "vm_start": [["get_buffer", 6, 0, 1000], ["get_buffer", 7, 0, 100], ["get_property", ["plugin_root_id"]]] } });
        let proxy = Proxy::raw_with(mode, steps(json!({
            "configure": [["get_buffer", 7, 0, 10], ["get_property", ["plugin_name"]], ["get_property", ["plugin_vm_id"]]],
            "request_headers": [["get_buffer", 6, 0, 9], ["get_buffer", 7, 0, 9], ["get_property", ["plugin_name"]]],
        })), &format!("vm_config: '{vm}', vm_id: shared-vm"));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let start = proxy.wait_lines("vm_start", 3).await;
        assert_eq!(start[0]["value"], vm.to_string(), "VM configuration in on_vm_start");
        assert_eq!(start[1]["status"], 1, "no plugin configuration in on_vm_start");
        assert_eq!((start[2]["status"].clone(), start[2]["value"].clone()), (json!(0), json!("")), "root id unset: OK, empty");
        let configure = proxy.wait_lines("configure", 3).await;
        assert_eq!(configure[0]["value"], "{\"steps\":{", "plugin configuration in on_configure");
        assert_eq!(configure[1]["value"], "probe");
        assert_eq!(configure[2]["value"], "shared-vm");
        let stream = proxy.wait_lines("request_headers", 3).await;
        assert_eq!(stream[0]["value"], "{\"steps\":", "the VM configuration stays readable");
        assert_eq!(stream[1]["status"], 1, "the plugin configuration does not");
        assert_eq!(stream[2]["value"], "probe");
    }
}

conformance! {
    /// §10: 32
    /// proves: proxy_done
    async fn proxy_done_with_nothing_pending_is_not_found(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [["done"]], "configure": [["done"]] })));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        assert_eq!(proxy.wait_lines("request_headers", 1).await[0]["status"], 1);
        assert_eq!(proxy.wait_lines("configure", 1).await[0]["status"], 1);
    }
}
