//! Timers and time (docs/abi.md#time): ticks on every instance, stopped by a zero period; clocks.

use crate::suite::*;

conformance! {
    /// §10: 106
    /// proves: proxy_set_tick_period_milliseconds, proxy_on_tick, proxy_get_current_time_nanoseconds
    async fn sdk_ticks_run_and_stop(mode) {
        for sdk in Sdk::ALL {
            // Every worker's root ticks from the start (item 151): one worker, one sequence.
            let proxy = Proxy::family_one_worker(mode, sdk, "timers", "");
            assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}");
            assert_eq!(proxy.value(sdk, "now_nonzero").await, "true", "{sdk:?}");
            proxy.value(sdk, "stopped").await;
            let ticks = proxy.values(sdk, "tick");
            assert_eq!(&ticks[..3], ["1", "2", "3"], "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 107, 108
    /// proves: proxy_set_tick_period_milliseconds, proxy_on_tick, proxy_get_current_time_nanoseconds
    async fn a_stream_sets_its_roots_timer_and_clocks_agree(mode) {
        let proxy = Proxy::raw(mode, steps(json!({
            "request_headers": [["set_tick_period", 50], ["time"], ["clock", 0], ["clock", 1], ["clock", 1], ["clock", 2]],
            "tick": [["set_tick_period", 0]],
        })));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 6).await;
        assert_eq!(l[0]["status"], 0);
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
        for i in [1, 2] {
            let nanos = l[i]["nanos"].as_i64().unwrap() as i128;
            assert!((wall - nanos).abs() < 60_000_000_000, "{}: wall clock: {nanos}", l[i]["op"]);
        }
        assert!(l[4]["nanos"].as_u64() >= l[3]["nanos"].as_u64(), "monotonic");
        assert_eq!(l[5]["errno"], 58, "other clocks: NOTSUP");
        proxy.wait_lines("tick", 1).await;
    }
}
