//! VM and context lifetimes as Envoy has them: plugins keyed into shared VMs and kept across
//! reloads (proxy-wasm-cpp-host `makeVmKey`, `makePluginKey`, `WasmBase::start`), root contexts
//! started on every worker when a configuration arrives, timers re-armed by every
//! `proxy_set_tick_period_milliseconds` (Envoy's `Wasm::setTimerPeriod` and `tickHandler`),
//! streams resumed from any context of their VM, the stream idle timeout that bounds a pause
//! (Envoy's `ActiveStream::onIdleTimeout`), and bootstrap services (`WasmService`).

use crate::suite::*;

/// The only route's filter list: the script probe with `config`, plus route keys in `route`.
fn probe_route(config: Value, route: &str) -> String {
    format!("[{{ plugin: probe, config: {config} }}]{route}")
}

/// The probe's lines for `callback` whose op is `op`.
fn op_lines(proxy: &Proxy, callback: &str, op: &str) -> Vec<Value> {
    proxy.lines_of(callback).into_iter().filter(|l| l["op"] == op).collect()
}

conformance! {
    /// §10: 151, 13
    /// proves: proxy_on_vm_start, proxy_on_configure, proxy_on_tick
    async fn root_contexts_start_on_every_worker_before_any_request(mode) {
        let config = steps(json!({
            "configure": [["set_tick_period", 20]],
            "tick": [["count", "ticks"], ["set_tick_period", 0]],
        }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, ""), "{ threads: 2 }");
        // No request was sent: each worker's root context ticked once on its own.
        let ticks = proxy.wait_lines("tick", 4).await;
        let counts: Vec<&Value> = ticks.iter().filter(|l| l["op"] == "count").map(|l| &l["value"]).collect();
        assert_eq!(counts, [&json!(1), &json!(1)], "one tick in each worker's VM: {ticks:#?}");
        // The canary (Envoy validates a new plugin in a throw-away VM) and two workers.
        assert_eq!(proxy.lines_of("configure").len(), 3);
        // A reload that changes nothing keeps every root context: no new on_configure, no tick.
        proxy.reload_if_asked().await;
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        assert_eq!(proxy.lines_of("configure").len(), 3, "{:#?}", proxy.lines());
        assert_eq!(op_lines(&proxy, "tick", "count").len(), 2);
    }
}

conformance! {
    /// §10: 152, 107
    /// proves: proxy_set_tick_period_milliseconds, proxy_on_tick
    async fn every_tick_period_rearms_the_timer_from_now(mode) {
        // Configured with a one-minute period, then 20 ms from a request: the next tick comes
        // 20 ms later, not a minute later. A period set inside on_tick re-arms it too.
        let config = steps(json!({
            "configure": [["set_tick_period", 60000]],
            "request_headers": [["set_tick_period", 20]],
            "tick": [["count", "ticks"], ["set_tick_period", 20]],
        }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, ""), "{ threads: 1 }");
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let ticks = proxy.wait_lines("tick", 6).await;
        let counts: Vec<i64> = ticks.iter().filter(|l| l["op"] == "count").filter_map(|l| l["value"].as_i64()).collect();
        assert_eq!(counts[..3], [1, 2, 3], "{ticks:#?}");
    }
}

conformance! {
    /// §10: 153, 146
    /// proves: proxy_set_effective_context, proxy_continue_stream, proxy_on_tick
    async fn a_tick_resumes_a_request_paused_with_nothing_outstanding(mode) {
        let config = json!({
            "steps": {
                "request_headers": [["save", "paused", "$self"], ["set_tick_period", 30]],
                "tick": [
                    ["set_tick_period", 0],
                    ["set_effective_context", "$paused"],
                    ["add_header", 0, "x-resumed-by", "tick"],
                    ["continue_stream", 0],
                ],
            },
            "actions": { "request_headers": "pause" },
        });
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, ""), "");
        let body = origin_saw(proxy.get("/paused", &[]).await).await;
        assert_eq!(seen(&body, "x-resumed-by").as_deref(), Some("tick"), "{body}");
        let tick = proxy.wait_lines("tick", 4).await;
        assert_eq!(statuses(&tick), [0, 0, 0, 0], "{tick:#?}");
    }
}

conformance! {
    /// §10: 153
    /// proves: proxy_http_call, proxy_on_http_call_response, proxy_continue_stream
    async fn a_root_callout_answer_resumes_a_paused_request(mode) {
        // The call is made on the root context (the stream only names it effective), so its
        // answer reaches the VM outside the stream; the SDK then continues the paused stream.
        let call = json!(["http_call", "origin", [[":method", "GET"], [":path", "/side"], [":authority", "origin"]], "", [], 5000]);
        let config = json!({
            "steps": {
                "request_headers": [["set_effective_context", "$root"], call],
                "http_call_response": [["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        });
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, ""), "");
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let answered = proxy.wait_lines("http_call_response", 1).await;
        assert_eq!(answered[0]["status"], 0);
    }
}

conformance! {
    /// §10: 154
    /// proves: proxy_on_request_headers
    async fn a_pause_nothing_resumes_ends_at_the_stream_idle_timeout(mode) {
        let config = json!({ "actions": { "request_headers": "pause" } });
        let route = "\n    idle_timeout: 300ms";
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, route), "");
        // A GET was received whole: 504 (Envoy's Utility::maybeRequestTimeoutCode).
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.status(), 504);
        assert_eq!(resp.text().await.unwrap(), "stream timeout");
        // A POST whose body weir has not read yet: 408.
        let resp = proxy.send(proxy.http1().post(proxy.url("/")).body("a body")).await;
        assert_eq!(resp.status(), 408);
        assert!(eventually(async || proxy.weir.logs().contains("stream_idle_timeout")).await);
    }
}

conformance! {
    /// §10: 155
    /// proves: proxy_http_call, proxy_on_http_call_response
    async fn callouts_outstanding_when_a_pause_ends_are_still_answered(mode) {
        let call = |path: &str| json!(["http_call", "origin", [[":method", "GET"], [":path", path], [":authority", "origin"]], "", [], 5000]);
        let config = json!({
            "steps": {
                "request_headers": [call("/one"), call("/two")],
                "http_call_response": [["count", "answers"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        });
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_route(config, ""), "{ threads: 1 }");
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        // The first answer resumed the request; the second still reaches the filter.
        let answers = proxy.wait_lines("http_call_response", 4).await;
        let counts: Vec<&Value> = answers.iter().filter(|l| l["op"] == "count").map(|l| &l["value"]).collect();
        assert_eq!(counts, [&json!(1), &json!(2)], "{answers:#?}");
    }
}

conformance! {
    /// §10: 12, 15
    /// proves: proxy_on_context_create, proxy_on_configure
    async fn plugins_with_one_vm_key_share_one_vm_per_worker(mode) {
        let request = |tag: &str| json!({ "steps": { "request_headers": [["count", "n"], ["save", tag, "$root"]] } });
        let module = probe();
        let config = format!(
            "server: {{ threads: 1 }}\nclusters:\n  origin: {{ endpoints: [\"{}\"] }}\nplugins:\n  \
             first: {{ module: {module}, vm_id: shared }}\n  second: {{ module: {module}, vm_id: shared }}\n  \
             other: {{ module: {module}, vm_id: other }}\nroutes:\n  \
             - {{ match: {{ path: /a }}, cluster: origin, filters: [{{ plugin: first, config: {} }}] }}\n  \
             - {{ match: {{ path: /b }}, cluster: origin, filters: [{{ plugin: second, config: {} }}] }}\n  \
             - {{ match: {{ path: /c }}, cluster: origin, filters: [{{ plugin: other, config: {} }}] }}\n",
            origin("origin"),
            request("a"),
            request("b"),
            request("c"),
        );
        let proxy = Proxy::from_config(mode, &config);
        for path in ["/a", "/b", "/c"] {
            assert_eq!(proxy.get(path, &[]).await.status(), 200);
        }
        let lines = proxy.wait_lines("request_headers", 6).await;
        let values: Vec<&Value> = lines.iter().map(|l| &l["value"]).collect();
        // first and second count in one VM, each with its own root; other has a VM of its own.
        assert_eq!((values[0], values[2], values[4]), (&json!(1), &json!(2), &json!(1)), "{lines:#?}");
        assert_ne!(values[1], values[3], "each plugin is a root context of its own");
    }
}

conformance! {
    /// §10: 33, 30
    /// proves: proxy_on_configure, proxy_on_done
    async fn a_configuration_change_keeps_the_vm_and_its_globals(mode) {
        let module = probe();
        let config = |tag: &str| {
            let filter = json!({ "steps": {
                "request_headers": [["count", "n"], ["save", "root", "$root"]],
                "root_done": [["log", 2, tag]],
            }});
            format!(
                "server: {{ threads: 1 }}\nclusters:\n  origin: {{ endpoints: [\"{}\"] }}\nplugins:\n  probe: {{ module: {module} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {filter} }}]\n",
                origin("origin")
            )
        };
        let proxy = Proxy::from_config(mode, &config("first"));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        // The plugin's configuration changes, its VM does not.
        proxy.weir.rewrite(&config("second"));
        let resp = proxy.http1().post(proxy.weir.admin_url("/reload")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let lines = proxy.wait_lines("request_headers", 4).await;
        let counts: Vec<&Value> = lines.iter().filter(|l| l["op"] == "count").map(|l| &l["value"]).collect();
        assert_eq!(counts[..2], [&json!(1), &json!(2)], "the VM's globals survived: {lines:#?}");
        let roots: Vec<&Value> = lines.iter().filter(|l| l["op"] == "save").map(|l| &l["value"]).collect();
        assert_ne!(roots[0], roots[1], "the new configuration is a new root context");
        // The old root context ends once nothing uses it.
        let done = proxy.wait_lines("root_done", 1).await;
        assert_eq!(done[0]["status"], 0);
    }
}

conformance! {
    /// §10: 156
    /// proves: proxy_on_tick, proxy_http_call, proxy_on_http_call_response
    async fn services_run_without_a_route(mode) {
        let call = json!(["http_call", "origin", [[":method", "GET"], [":path", "/svc"], [":authority", "origin"]], "", [], 5000]);
        let service = |singleton: bool| {
            json!({ "plugin": "probe", "singleton": singleton, "config": { "steps": {
                "configure": [["set_tick_period", 20]],
                "tick": [["count", "ticks"], ["set_tick_period", 0], call.clone()],
                "http_call_response": [["log", 2, "answered"]],
            }}})
        };
        let config = format!(
            "server: {{ threads: 2 }}\nclusters:\n  origin: {{ endpoints: [\"{}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin\nservices: [{}, {}]\n",
            origin("origin"),
            probe(),
            service(true),
            service(false),
        );
        let proxy = Proxy::from_config(mode, &config);
        // One singleton VM and one VM on each of the two workers each ticked once and called out.
        let answered = proxy.wait_lines("http_call_response", 3).await;
        assert_eq!(statuses(&answered), [0, 0, 0]);
        assert_eq!(op_lines(&proxy, "tick", "count").len(), 3);
        proxy.reload_if_asked().await;
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
    }
}

conformance! {
    /// §10: 153
    /// proves: proxy_set_effective_context, proxy_continue_stream, proxy_on_tick
    async fn sdk_roots_resume_paused_requests(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "resume");
            let body = origin_saw(proxy.get("/", &[]).await).await;
            assert_eq!(seen(&body, "x-resumed-by").as_deref(), Some("tick"), "{sdk:?}: {body}");
            assert_eq!(proxy.value(sdk, "resumed").await, "ok", "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 153
    /// proves: proxy_on_queue_ready, proxy_set_effective_context, proxy_continue_stream
    async fn a_queue_notification_resumes_a_paused_request(mode) {
        // One request pauses and registers a queue; another enqueues, and the queue's root
        // context continues the first from proxy_on_queue_ready.
        let wait = json!({
            "steps": {
                "request_headers": [["save", "paused", "$self"], ["register_queue", "wake"]],
                "queue_ready": [["set_effective_context", "$paused"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        });
        let kick = steps(json!({ "request_headers": [["resolve_queue", "probe", "wake"], ["enqueue", "$resolve_queue", "go"]] }));
        let config = format!(
            "server: {{ threads: 1 }}\nclusters:\n  origin: {{ endpoints: [\"{}\"] }}\nplugins:\n{}routes:\n  \
             - {{ match: {{ path: /wait }}, cluster: origin, filters: [{{ plugin: probe, config: {wait} }}] }}\n  \
             - {{ match: {{ path: /kick }}, cluster: origin, filters: [{{ plugin: probe, config: {kick} }}] }}\n",
            origin("origin"),
            plugin(probe(), ""),
        );
        let proxy = Proxy::from_config(mode, &config);
        proxy.reload_if_asked().await;
        let waiting = tokio::spawn(proxy.http1().get(proxy.url("/wait")).send());
        proxy.wait_lines("request_headers", 2).await;
        assert_eq!(proxy.http1().get(proxy.url("/kick")).send().await.unwrap().status(), 200);
        let resp = waiting.await.unwrap().expect("the paused request is answered");
        assert_eq!(resp.status(), 200);
        assert_eq!(statuses(&proxy.wait_lines("queue_ready", 2).await), [0, 0]);
    }
}
