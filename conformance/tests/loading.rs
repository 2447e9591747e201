//! Loading and linking (docs/abi.md#loading): a module weir cannot run is refused with an error that says
//! why, and the running configuration keeps serving.

use crate::suite::*;

/// Minimal modules, each wrong in one way, with what the refusal must mention.
fn bad_modules() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "no ABI version",
            r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0))"#,
            "proxy_abi_version",
        ),
        (
            "a 0.2.x headers callback with two parameters",
            r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))
                 (func (export "malloc") (param i32) (result i32) i32.const 0)
                 (func (export "proxy_on_request_headers") (param i32 i32) (result i32) i32.const 0))"#,
            "proxy_on_request_headers",
        ),
        (
            "an unknown import",
            r#"(module (import "env" "proxy_no_such_call" (func)) (memory (export "memory") 1)
                 (func (export "proxy_abi_version_0_2_1")) (func (export "malloc") (param i32) (result i32) i32.const 0))"#,
            "proxy_no_such_call",
        ),
        (
            "an import with the wrong type",
            r#"(module (import "env" "proxy_log" (func (param i64))) (memory (export "memory") 1)
                 (func (export "proxy_abi_version_0_2_1")) (func (export "malloc") (param i32) (result i32) i32.const 0))"#,
            "proxy_log",
        ),
        (
            "no allocator",
            r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
            "malloc",
        ),
    ]
}

/// Points plugin `probe` at `module` in the running weir's configuration and asks for a reload.
async fn reload_with(proxy: &Proxy, module: &std::path::Path) -> (u16, String) {
    let config = proxy.weir.log.with_file_name("weir.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let at = text.find("module: ").unwrap() + "module: ".len();
    let end = at + text[at..].find([',', ' ', '}']).unwrap();
    std::fs::write(&config, format!("{}{}{}", &text[..at], module.display(), &text[end..])).unwrap();
    let resp = proxy.http1().post(proxy.weir.admin_url("/reload")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

conformance! {
    /// §10: 1, 3, 4, 6
    /// proves: proxy_abi_version_0_2_1, proxy_on_request_headers, malloc
    async fn bad_modules_are_refused_and_the_old_one_keeps_serving(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [["add_header", 0, "x-old", "1"]] })));
        let dir = tempfile::tempdir().unwrap();
        for (what, wat, mention) in bad_modules() {
            let path = dir.path().join("bad.wasm");
            std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
            let (status, body) = reload_with(&proxy, &path).await;
            assert_eq!(status, 422, "{what}: refused");
            assert!(body.contains(mention), "{what}: the error names {mention}: {body}");
            let served = origin_saw(proxy.http1().get(proxy.url("/")).send().await.unwrap()).await;
            assert_eq!(seen(&served, "x-old").as_deref(), Some("1"), "{what}: the old filter still serves");
        }
    }
}

conformance! {
    /// §10: 10, 11
    /// proves: proxy_on_vm_start, proxy_on_configure
    async fn a_filter_that_refuses_its_configuration_is_not_published(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [["add_header", 0, "x-old", "1"]] })));
        let config = proxy.weir.log.with_file_name("weir.yaml");
        let original = std::fs::read_to_string(&config).unwrap();
        for (flag, mention) in [("configure", "proxy_on_configure returned false"), ("vm_start", "proxy_on_vm_start returned false")] {
            let refusing = if flag == "vm_start" {
                original.replace("module: ", "vm_config: '{\"vm_start\": false}', module: ")
            } else {
                original.replace("config: {\"steps\"", "config: {\"configure\": false, \"steps\"")
            };
            assert_ne!(refusing, original);
            std::fs::write(&config, &refusing).unwrap();
            let resp = proxy.http1().post(proxy.weir.admin_url("/reload")).send().await.unwrap();
            assert_eq!(resp.status(), 422, "{flag}");
            assert!(resp.text().await.unwrap().contains(mention), "{flag}");
            let served = origin_saw(proxy.http1().get(proxy.url("/")).send().await.unwrap()).await;
            assert_eq!(seen(&served, "x-old").as_deref(), Some("1"), "{flag}: the previous configuration keeps serving");
            std::fs::write(&config, &original).unwrap();
        }
    }
}

conformance! {
    /// §10: 2, 5
    /// proves: proxy_abi_version_0_2_1, proxy_abi_version_0_2_0, _initialize, malloc
    async fn rust_and_assemblyscript_modules_both_run(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "failure");
            let body = origin_saw(proxy.get("/", &[]).await).await;
            assert_eq!(seen(&body, "x-failure-probe").as_deref(), Some("passed"), "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 9
    /// proves: proxy_get_header_map_value, random_get, proxy_on_response_headers
    async fn a_capability_allow_list_refuses_what_it_does_not_name(mode) {
        let allowed = "proxy_log, proxy_get_buffer_bytes, proxy_on_context_create, proxy_on_vm_start, proxy_on_configure, proxy_on_request_headers, proxy_on_done, proxy_on_delete";
        let proxy = Proxy::raw_with(
            mode,
            steps(json!({
                "request_headers": [["get_header", 0, ":path"], ["log", 2, "allowed"], ["random", 16]],
                "response_headers": [["log", 2, "never called"]],
            })),
            &format!("allowed_capabilities: [{allowed}]"),
        );
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 3).await;
        assert_eq!(l[0]["status"], 10, "a hostcall not listed: INTERNAL_FAILURE");
        assert_eq!(l[1]["status"], 0);
        assert_eq!(l[2]["errno"], 76, "a WASI call not listed: NOTCAPABLE");
        assert!(proxy.lines_of("response_headers").is_empty(), "a callback not listed is never called");
        assert!(proxy.weir.logs().contains("capability=\"proxy_get_header_map_value\""), "the refusal is logged");

        // A name weir does not know is a configuration error, not a silent restriction.
        let config = proxy.weir.log.with_file_name("weir.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("proxy_on_done", "proxy_on_dnoe")).unwrap();
        let resp = proxy.http1().post(proxy.weir.admin_url("/reload")).send().await.unwrap();
        assert_eq!(resp.status(), 422);
        let body = resp.text().await.unwrap();
        assert!(body.contains("allowed_capabilities") && body.contains("proxy_on_dnoe"), "{body}");
    }
}
