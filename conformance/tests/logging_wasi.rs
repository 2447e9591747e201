//! Logging and WASI (docs/abi.md#logging, #time): levels, the plugin prefix, stdout/stderr, and the
//! WASI calls filters make.

use crate::suite::*;

conformance! {
    /// §10: 131
    /// proves: proxy_log
    async fn sdk_log_levels_reach_weirs_log_with_the_plugin_name(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "logging");
            assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}");
            assert_eq!(proxy.value(sdk, "logged").await, "6", "{sdk:?}");
            let logs = proxy.weir.logs();
            // Filters see their log level, info by default as in Envoy: trace and debug are dropped.
            for level in [0, 1] {
                assert!(!logs.contains(&format!("conformance level {level}")), "{sdk:?}: level {level} is below info");
            }
            for (level, word) in [(2, "INFO"), (3, "WARN"), (4, "ERROR"), (5, "ERROR")] {
                let line = logs.lines().find(|l| l.contains(&format!("conformance level {level}"))).unwrap_or_else(|| panic!("{sdk:?}: level {level} missing:\n{logs}"));
                assert!(line.contains(word), "{sdk:?}: level {level} logged as {word}: {line}");
                assert!(line.contains("probe"), "{sdk:?}: the plugin is named: {line}");
            }
        }
    }
}

conformance! {
    /// §10: 131, 132, 133
    /// proves: proxy_log, proxy_get_log_level, fd_write, random_get, environ_get, environ_sizes_get, args_sizes_get
    async fn raw_log_and_wasi_calls(mode) {
        let proxy = Proxy::raw_with(mode, steps(json!({ "request_headers": [
            ["log", 6, "bad level"], ["log", 2, "fine"], ["get_log_level"],
            ["fd_write", 1, "to stdout\n"], ["fd_write", 2, "to stderr\n"], ["fd_write", 3, "nowhere\n"],
            ["random", 65537], ["random", 16], ["environ"], ["args"],
        ]})), "environment: { ONLY_THIS: \"1\" }");
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 10).await;
        assert_eq!(l[0]["status"], 2, "level 6: BAD_ARGUMENT");
        assert_eq!(l[1]["status"], 0);
        assert_eq!(l[2]["status"], 0);
        let errnos: Vec<_> = l[3..].iter().map(|v| v["errno"].as_i64().unwrap()).collect();
        assert_eq!(errnos, [0, 0, 8, 28, 0, 0, 0], "stdout, stderr, BADF, INVAL over 64 KiB");
        assert_eq!(l[8]["value"], "ONLY_THIS=1", "only the configured environment");
        assert_eq!(l[9]["size"], 0, "no arguments");
        let logs = proxy.weir.logs();
        let stdout = logs.lines().find(|x| x.contains("to stdout")).unwrap();
        assert!(stdout.contains("INFO"), "{stdout}");
        let stderr = logs.lines().find(|x| x.contains("to stderr")).unwrap();
        assert!(stderr.contains("ERROR"), "{stderr}");
    }
}

conformance! {
    /// §10: 134
    /// proves: proc_exit
    async fn proc_exit_fails_the_request_like_a_trap(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [["exit", 0]] })));
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.status(), 503);
    }
}
