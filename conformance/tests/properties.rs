//! Properties (docs/abi.md#properties-hostcalls, #properties): paths, encodings, and where each is available.

use crate::suite::*;

conformance! {
    /// §10: 121, 122, 123, 124, 126, 129, 130
    /// proves: proxy_get_property, proxy_set_property
    async fn sdk_properties_and_their_encodings(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "properties");
            assert_eq!(proxy.get("/props?x=1", &[("x-conformance-in", "yes")]).await.status(), 200, "{sdk:?}");
            assert_eq!(proxy.value(sdk, "request.path").await, "/props?x=1", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "request.method").await, "GET", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "request.header").await, "yes", "{sdk:?}");
            let source = proxy.value(sdk, "source.address").await;
            let (ip, port) = source.rsplit_once(':').unwrap();
            assert_eq!(ip, "127.0.0.1", "{sdk:?}: ip:port");
            assert_eq!(proxy.value(sdk, "source.port").await, port, "{sdk:?}: int64 LE");
            assert_eq!(proxy.value(sdk, "request.time").await, "8", "{sdk:?}: a timestamp is 8 bytes");
            assert_eq!(proxy.value(sdk, "plugin_name").await, "probe", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "missing").await, "<none>", "{sdk:?}: unknown: NOT_FOUND, no trap");
            assert_eq!(proxy.value(sdk, "set_then_get").await, "v", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "response.code").await, "200", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "log.response.code").await, "200", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "request.duration").await, "present", "{sdk:?}: in on_log");
        }
    }
}

conformance! {
    /// §10: 121, 125, 127, 128, 129
    /// proves: proxy_get_property, proxy_set_property
    async fn raw_paths_and_contexts(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [
                ["get_property_raw", "726571756573742e70617468"], ["get_property", ["request", "headers", "x-dup"]],
                ["get_property", ["request", "headers"]], ["get_property", ["xds", "node", "id"]], ["get_property", ["node", "id"]],
                ["set_property", ["my_key"], "mine"], ["get_property", ["my_key"]], ["get_property", ["plugin_vm_id"]],
            ],
            "configure": [["get_property", ["request", "path"]], ["set_property", ["my_key"], "v"], ["get_property", ["my_key"]], ["get_property", ["plugin_name"]]],
        })));
        assert_eq!(proxy.get("/", &[("x-dup", "a"), ("x-dup", "b")]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 8).await;
        assert_eq!(l[0]["status"], 1, "\"request.path\" as one segment: NOT_FOUND");
        assert_eq!(l[1]["value"], "a,b", "repeated values joined with a comma");
        assert_eq!(l[2]["status"], 0);
        let map = crate::headers::hex_bytes(l[2]["hex"].as_str().unwrap());
        assert_eq!(u32::from_le_bytes(map[..4].try_into().unwrap()), 9, "request.headers is a pairs map of the 9 headers");
        assert_eq!((l[3]["status"].clone(), l[4]["status"].clone()), (json!(0), json!(0)), "xds.node.id and node.id");
        assert_eq!(l[6]["value"], "mine", "set then get in a stream");
        assert_eq!(l[7]["value"], "probe", "plugin_vm_id defaults to the plugin name");
        let root = proxy.wait_lines("configure", 4).await;
        assert_eq!(root[0]["status"], 1, "request.* from a root context: NOT_FOUND");
        assert_eq!(root[2]["status"], 1, "no filter state in a root context");
        assert_eq!(root[3]["value"], "probe");
    }
}
