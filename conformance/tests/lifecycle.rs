//! The HTTP stream's callbacks, in Envoy's order, as each SDK delivers them (docs/abi.md#http-stream).

use crate::suite::*;

conformance! {
    /// §10: 21, 22, 25, 26
    /// proves: proxy_on_context_create, proxy_on_request_headers, proxy_on_response_headers, proxy_on_response_body, proxy_on_log, proxy_on_done
    async fn a_get_runs_every_callback_once_in_order(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "lifecycle");
            let resp = proxy.get("/life", &[]).await;
            assert_eq!(resp.status(), 200);
            let _ = resp.bytes().await;
            proxy.value(sdk, "done").await;
            let stream: Vec<_> =
                proxy.observed(sdk).into_iter().filter(|(c, _)| !matches!(c.as_str(), "vm_start" | "configure")).collect();
            let names: Vec<_> = stream.iter().map(|(c, _)| c.as_str()).collect();
            let bodies = names.iter().filter(|n| **n == "response_body").count();
            let mut expected = vec!["http_context", "request_headers", "response_headers"];
            expected.extend(std::iter::repeat_n("response_body", bodies));
            expected.extend(["log", "done"]);
            assert_eq!(names, expected, "{sdk:?}");
            let (context, root) = stream[0].1.split_once(',').unwrap();
            assert!(context.parse::<u32>().unwrap() > root.parse::<u32>().unwrap(), "{sdk:?}: stream id > root id");
            let (headers, eos) = stream[1].1.split_once(',').unwrap();
            assert_eq!(eos, "1", "{sdk:?}: a GET ends with its headers");
            // :method :path :authority :scheme user-agent? accept x-request-id x-forwarded-proto
            assert!(headers.parse::<u32>().unwrap() >= 6, "{sdk:?}: pseudo-headers are counted: {headers}");
            assert!(stream.iter().rev().find(|(c, _)| c == "response_body").unwrap().1.ends_with(",1"), "{sdk:?}");
        }
    }
}

conformance! {
    /// §10: 23, 55
    /// proves: proxy_on_request_body
    async fn a_post_body_arrives_in_chunks_and_only_the_last_ends_the_stream(mode) {
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "lifecycle");
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![b'a'; 3000]), Ok(vec![b'b'; 3000])];
            let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
            let resp = proxy.send(proxy.http1().post(proxy.url("/upload")).body(body)).await;
            assert_eq!(origin_saw(resp).await["body_bytes"], 6000);
            proxy.value(sdk, "done").await;
            let bodies = proxy.values(sdk, "request_body");
            assert!(!bodies.is_empty(), "{sdk:?}");
            let (last, rest) = bodies.split_last().unwrap();
            assert!(last.ends_with(",1"), "{sdk:?}: the last chunk ends the stream: {bodies:?}");
            assert!(rest.iter().all(|b| b.ends_with(",0")), "{sdk:?}: {bodies:?}");
            let total: usize = bodies.iter().map(|b| b.split_once(',').unwrap().0.parse::<usize>().unwrap()).sum();
            assert_eq!(total, 6000, "{sdk:?}: each call reports its own chunk when the previous continued");
            let eos = proxy.values(sdk, "request_headers")[0].split_once(',').unwrap().1.to_owned();
            assert_eq!(eos, "0", "{sdk:?}: headers of a request with a body do not end the stream");
        }
    }
}

conformance! {
    /// §10: 28
    /// proves: proxy_on_context_create, proxy_on_log, proxy_on_done
    async fn a_filter_after_a_local_reply_sees_only_create_log_done(mode) {
        let sdk = Sdk::Rust;
        let proxy = Proxy::setup(
            mode,
            None,
            "",
            &format!("{}  second: {{ module: {} }}\n", plugin(probe(), ""), sdk.module()),
            &format!(
                "[{{ plugin: probe, config: {} }}, {{ plugin: second, config: lifecycle }}]",
                steps(json!({ "request_headers": [["local_response", 403, "first", "no", [], -1]] }))
            ),
            "",
        );
        assert_eq!(proxy.get("/", &[]).await.status(), 403);
        proxy.value(sdk, "done").await;
        let names: Vec<_> = proxy
            .observed(sdk)
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| !matches!(c.as_str(), "vm_start" | "configure"))
            .collect();
        // Envoy encodes a local reply only through the filters before the one that sent it.
        assert_eq!(names, ["http_context", "log", "done"]);
    }
}

conformance! {
    /// §10: 27
    /// proves: proxy_on_log, proxy_on_done
    async fn a_client_that_goes_away_mid_request_still_ends_the_stream(mode) {
        use std::io::Write;
        for sdk in Sdk::ALL {
            let proxy = Proxy::family(mode, sdk, "lifecycle");
            proxy.reload_if_asked().await;
            let mut s = std::net::TcpStream::connect(proxy.weir.proxy).unwrap();
            s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\npartial body").unwrap();
            drop(s);
            proxy.value(sdk, "done").await;
            assert_eq!(proxy.values(sdk, "log").len(), 1, "{sdk:?}: on_log once");
            assert_eq!(proxy.values(sdk, "done").len(), 1, "{sdk:?}: on_done once");
            assert_eq!(proxy.get("/", &[]).await.status(), 200, "{sdk:?}: the next request is served");
        }
    }
}
