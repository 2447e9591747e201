//! Header maps (docs/abi.md#header-maps): reads, edits and their effect on what the origin and the client
//! get, through each SDK and at the raw ABI.

use crate::suite::*;

const SENT: &[(&str, &str)] =
    &[("x-conformance-in", "yes"), ("x-dup", "a"), ("x-dup", "b"), ("x-replaced", "old"), ("x-remove-me", "1")];

conformance! {
    /// §10: 35, 36, 37, 39, 40, 41, 43, 46
    /// proves: proxy_get_header_map_value, proxy_get_header_map_pairs, proxy_add_header_map_value, proxy_replace_header_map_value, proxy_remove_header_map_value
    async fn sdk_reads_and_edits_reach_origin_and_client(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "headers");
            let resp = proxy.get("/orig?q=1", SENT).await;
            assert_eq!(resp.headers()["x-response-added"], "1", "{sdk:?}");
            assert!(resp.headers().get("x-demo-origin").is_none(), "{sdk:?}: removed from the response");
            let body = origin_saw(resp).await;
            assert_eq!(body["path"], "/rewritten", "{sdk:?}: :path edits reach the origin");
            let seen_all = |name: &str| -> Vec<String> {
                body["headers"].as_array().unwrap().iter().filter(|h| h[0] == name).map(|h| h[1].as_str().unwrap().to_owned()).collect()
            };
            assert_eq!(seen_all("x-added"), ["1"], "{sdk:?}");
            assert_eq!(seen_all("x-dup"), ["a", "b", "c"], "{sdk:?}: add appends");
            assert_eq!(seen_all("x-replaced"), ["new"], "{sdk:?}: replace leaves one");
            assert_eq!(seen_all("x-created"), ["yes"], "{sdk:?}: replace adds when absent");
            assert!(seen_all("x-remove-me").is_empty(), "{sdk:?}");
            assert_eq!(seen_all("x-upper"), ["v"], "{sdk:?}: names are stored lower-case");

            assert_eq!(proxy.value(sdk, "path").await, "/orig?q=1");
            assert_eq!(proxy.value(sdk, "method").await, "GET");
            assert_eq!(proxy.value(sdk, "authority").await, proxy.weir.proxy.to_string());
            let absent = if sdk == Sdk::As { "" } else { "<none>" };
            assert_eq!(proxy.value(sdk, "host").await, absent, "{sdk:?}: Host is only :authority");
            assert_eq!(proxy.value(sdk, "mixed_case").await, "yes", "{sdk:?}: lookups ignore case");
            assert_eq!(proxy.value(sdk, "dup").await, "a", "{sdk:?}: the first of duplicates");
            assert_eq!(proxy.value(sdk, "pseudo_first").await, "true", "{sdk:?}");
            assert!(proxy.value(sdk, "count").await.parse::<u32>().unwrap() >= 10, "{sdk:?}");
            assert_eq!(proxy.value(sdk, "status").await, "200", "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 34, 38, 53
    /// proves: proxy_get_header_map_pairs, proxy_get_header_map_value, proxy_get_header_map_size
    async fn raw_pairs_lookups_and_size(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["get_headers", 0], ["get_header", 0, "x-missing"], ["header_size", 0], ["get_headers", 1],
        ]})));
        proxy.get("/p", &[("x-dup", "a"), ("x-dup", "b")]).await;
        let l = proxy.wait_lines("request_headers", 4).await;
        let pairs = l[0]["pairs"].as_array().unwrap();
        let names: Vec<_> = pairs.iter().map(|p| p[0].as_str().unwrap()).collect();
        let first_plain = names.iter().position(|n| !n.starts_with(':')).unwrap();
        assert!(names[first_plain..].iter().all(|n| !n.starts_with(':')), "pseudo-headers first: {names:?}");
        assert_eq!(names.iter().filter(|n| **n == "x-dup").count(), 2);
        // The raw bytes follow docs/abi.md#pairs: count, (name len, value len)*, then NUL-terminated strings.
        let raw = hex_bytes(l[0]["hex"].as_str().unwrap());
        assert_eq!(u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize, pairs.len());
        let size: usize = pairs.iter().map(|p| p[0].as_str().unwrap().len() + p[1].as_str().unwrap().len()).sum();
        assert_eq!(raw.len(), 4 + 8 * pairs.len() + size + 2 * pairs.len(), "sizes plus NUL terminators");
        assert_eq!(l[1]["status"], 1, "missing header: NOT_FOUND (0.2.x)");
        assert_eq!(l[2]["size"], size, "size = sum of name and value bytes");
        assert_eq!((l[3]["status"].clone(), l[3]["ptr_null"].clone()), (json!(0), json!(true)), "no trailers: OK, empty");
    }
}

conformance! {
    /// §10: 42, 44, 46
    /// proves: proxy_set_header_map_pairs, proxy_get_header_map_pairs
    async fn set_pairs_replaces_the_map_and_malformed_input_empties_it(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["set_headers", 0, [[":method", "GET"], [":path", "/set"], [":authority", "a.test"], [":scheme", "http"], ["X-Only", "1"]]]],
            "response_headers": [["set_headers_raw", 2, "0100000005000000"], ["get_headers", 2], ["replace_header", 2, ":status", "203"]],
        })));
        let resp = proxy.get("/orig", &[("x-gone", "1")]).await;
        assert_eq!(resp.status(), 203);
        assert!(resp.headers().get("x-demo-origin").is_none(), "the malformed set removed every response header");
        let lines = proxy.wait_lines("response_headers", 3).await;
        assert_eq!(statuses(&lines), [0, 0, 0], "a malformed buffer is OK, as in Envoy");
        assert_eq!(lines[1]["ptr_null"], true, "and the map is empty");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["path"], "/set");
        assert_eq!(seen(&body, "x-only").as_deref(), Some("1"), "stored lower-case, in the given order");
        assert_eq!(seen(&body, "x-gone"), None, "every earlier entry is removed");
    }
}

conformance! {
    /// §10: 49, 52
    /// proves: proxy_continue_stream, proxy_add_header_map_value, proxy_get_header_map_value
    async fn edits_after_resume_and_to_read_only_maps_are_bad_arguments(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["add_header", 6, "k", "v"], ["add_header", 4, "k", "v"], ["get_header", 8, "k"],
            ["continue_stream", 0], ["add_header", 0, "x-late", "1"],
        ]})));
        let body = origin_saw(proxy.get("/", &[]).await).await;
        let l = proxy.wait_lines("request_headers", 5).await;
        assert_eq!(statuses(&l), [2, 2, 2, 0, 2]);
        assert_eq!(seen(&body, "x-late"), None);
    }
}

/// Decodes lower-case hex.
pub fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}
