//! Shared queues (docs/abi.md#shared-queues): registration, FIFO delivery through `on_queue_ready`.

use crate::suite::*;

conformance! {
    /// §10: 115
    /// proves: proxy_register_shared_queue, proxy_enqueue_shared_queue, proxy_dequeue_shared_queue, proxy_on_queue_ready
    async fn sdk_enqueued_items_are_delivered_in_order(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "queue");
            for path in ["/one", "/two"] {
                assert_eq!(proxy.get(path, &[]).await.status(), 200, "{sdk:?}");
            }
            assert_eq!(proxy.value(sdk, "register").await, "ok", "{sdk:?}");
            assert_eq!(proxy.value(sdk, "enqueue").await, "ok", "{sdk:?}");
            let found = eventually(async || proxy.values(sdk, "dequeued").len() >= 2).await;
            assert!(found, "{sdk:?}: {:?}", proxy.observed(sdk));
            assert_eq!(proxy.values(sdk, "dequeued")[..2], ["/one", "/two"], "{sdk:?}: FIFO");
        }
    }
}

conformance! {
    /// §10: 114, 115
    /// proves: proxy_register_shared_queue, proxy_resolve_shared_queue, proxy_enqueue_shared_queue, proxy_dequeue_shared_queue
    async fn raw_tokens_and_empty_queues(mode) {
        let proxy = Proxy::raw(mode, steps(json!({ "request_headers": [
            ["register_queue", "q"], ["register_queue", "q"], ["resolve_queue", "probe", "q"], ["resolve_queue", "probe", "none"],
            ["enqueue", 999999, "x"], ["dequeue", 999999], ["dequeue", "$register_queue"],
        ]})));
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 7).await;
        assert_eq!(statuses(&l), [0, 0, 0, 1, 1, 1, 7]);
        assert_eq!(l[0]["token"], l[1]["token"], "registering twice gives the same token");
        assert_eq!(l[0]["token"], l[2]["token"], "resolve by vm_id finds it");
    }
}
