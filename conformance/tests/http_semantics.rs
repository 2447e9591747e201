//! The request and response at the filter boundary as Envoy's codecs and connection manager
//! shape them: hop-by-hop headers removed (`ConnectionManagerUtility::mutateRequestHeaders`,
//! `mutateResponseHeaders`), HTTP/1 bodies ended apart from their data (`onMessageComplete`),
//! absolute-form targets (`allow_absolute_url`), metadata properties, callout argument checks
//! (`Context::httpCall`), one local reply per stream (`prepareLocalReplyViaFilterChain`), and
//! what the client gets: a whole local reply whatever the upstream sent, HTTP/1.1 to HTTP/1.1.

use std::io::{Read, Write};

use crate::harness::{canned_server, raw_exchange};
use crate::suite::*;

fn probe_filter(config: Value) -> String {
    format!("[{{ plugin: probe, config: {config} }}]")
}

/// An upstream answering every request with `response`.
fn canned(response: &'static [u8], close: bool) -> String {
    format!("{{ endpoints: [\"{}\"] }}", canned_server(response, close))
}

/// Sends `request` as is on a new connection (after a reload in reload mode).
async fn raw(proxy: &Proxy, request: &[u8]) -> String {
    proxy.reload_if_asked().await;
    let (addr, request) = (proxy.weir.proxy, request.to_vec());
    tokio::task::spawn_blocking(move || raw_exchange(addr, &request)).await.unwrap()
}

/// The header names in a `get_headers` line.
fn names(line: &Value) -> Vec<String> {
    line["pairs"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap().to_owned()).collect()
}

const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"];

conformance! {
    /// §10: 157
    /// proves: proxy_send_local_response, proxy_on_response_headers
    async fn a_reply_to_a_response_without_body_is_sent_whole(mode) {
        let config = steps(json!({ "response_headers": [["local_response", 403, "denied", "forbidden", [], -1]] }));
        for upstream in [&b"HTTP/1.1 204 No Content\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"] {
            let proxy = Proxy::setup(mode, Some(&canned(upstream, false)), "", &plugin(probe(), ""), &probe_filter(config.clone()), "");
            for client in [proxy.http1(), proxy.http2()] {
                let resp = proxy.send(client.get(proxy.url("/"))).await;
                assert_eq!(resp.status(), 403);
                assert_eq!(resp.text().await.unwrap(), "forbidden", "the whole body");
            }
        }
    }
}

conformance! {
    /// §10: 158
    /// proves: proxy_get_header_map_pairs, proxy_add_header_map_value
    async fn hop_by_hop_headers_never_reach_filters(mode) {
        let config = steps(json!({
            "request_headers": [["get_headers", 0], ["add_header", 0, "x-added", "1"]],
            "response_headers": [["get_headers", 2], ["add_header", 2, "x-added", "1"]],
        }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_filter(config.clone()), "");
        let answer = raw(&proxy, b"POST /hop HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nte: gzip\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
        let seen = proxy.wait_lines("request_headers", 2).await;
        let request = names(&seen[0]);
        assert!(HOP_BY_HOP.iter().all(|h| !request.contains(&h.to_string())), "{request:?}");
        // The filter changed the request: its chunked body still reached the origin whole.
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"body\":\"hello\"") && answer.contains("x-added"), "{answer}");

        // A chunked upstream response with hop-by-hop headers, changed by the filter.
        let upstream = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nkeep-alive: timeout=5\r\nconnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let proxy = Proxy::setup(mode, Some(&canned(upstream, false)), "", &plugin(probe(), ""), &probe_filter(config), "");
        for client in [proxy.http1(), proxy.http2()] {
            let resp = proxy.send(client.get(proxy.url("/"))).await;
            assert_eq!(resp.headers()["x-added"], "1");
            assert_eq!(resp.text().await.unwrap(), "hello");
        }
        let seen = proxy.wait_lines("response_headers", 4).await;
        let response = names(&seen[0]);
        assert!(HOP_BY_HOP.iter().all(|h| !response.contains(&h.to_string())), "{response:?}");
    }
}

conformance! {
    /// §10: 159
    /// proves: proxy_on_request_body, proxy_on_response_body
    async fn http1_bodies_with_a_length_end_apart_from_their_data(mode) {
        let config = steps(json!({
            "request_body": [["save", "eos", "$eos"], ["save", "size", "$size"]],
            "response_body": [["save", "eos", "$eos"], ["save", "size", "$size"]],
        }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_filter(config), "{ threads: 1 }");
        let resp = proxy.send(proxy.http1().post(proxy.url("/")).body("hello")).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["body"], "hello");
        let values = |cb: &str| -> Vec<i64> { proxy.lines_of(cb).iter().filter_map(|l| l["value"].as_i64()).collect() };
        proxy.wait_lines("request_body", 4).await;
        // Envoy's HTTP/1 codec: (data, end_of_stream false), then (empty, end_of_stream true).
        assert_eq!(values("request_body"), [0, 5, 1, 0]);
        let lines = proxy.wait_lines("response_body", 4).await;
        let v = values("response_body");
        assert_eq!((v[0], v[2], v[3]), (0, 1, 0), "{lines:#?}");
        assert!(v[1] > 0);
    }
}

conformance! {
    /// §10: 160
    /// proves: proxy_get_property
    async fn route_cluster_and_node_metadata_are_readable(mode) {
        let config = steps(json!({ "request_headers": [
            ["get_property", ["xds", "route_metadata", "filter_metadata", "authz", "policy"]],
            ["get_property", ["route_metadata", "filter_metadata", "authz", "weight"]],
            ["get_property", ["xds", "route_metadata", "filter_metadata", "authz", "strict"]],
            ["get_property", ["xds", "cluster_metadata", "filter_metadata", "lb", "zone"]],
            ["get_property", ["xds", "node", "id"]],
            ["get_property", ["xds", "node", "cluster"]],
            ["get_property", ["xds", "node", "metadata", "region"]],
            ["get_property", ["xds", "route_metadata", "filter_metadata", "authz", "missing"]],
            ["get_property", ["xds", "route_metadata", "filter_metadata", "authz"]],
        ]}));
        let text = format!(
            "node: {{ id: edge-1, cluster: edge, metadata: {{ region: eu }} }}\nclusters:\n  origin: {{ endpoints: [\"{}\"], metadata: {{ filter_metadata: {{ lb: {{ zone: a }} }} }} }}\nplugins:\n{}routes:\n  - cluster: origin\n    metadata: {{ filter_metadata: {{ authz: {{ policy: deny, weight: 2, strict: true }} }} }}\n    filters: {}\n",
            origin("origin"),
            plugin(probe(), ""),
            probe_filter(config),
        );
        let proxy = Proxy::from_config(mode, &text);
        assert_eq!(proxy.get("/", &[]).await.status(), 200);
        let l = proxy.wait_lines("request_headers", 9).await;
        assert_eq!(l[0]["value"], "deny");
        assert_eq!(l[1]["hex"], hex(&2f64.to_le_bytes()), "a number is a double");
        assert_eq!(l[2]["hex"], "01");
        assert_eq!(l[3]["value"], "a");
        assert_eq!((l[4]["value"].as_str(), l[5]["value"].as_str(), l[6]["value"].as_str()), (Some("edge-1"), Some("edge"), Some("eu")));
        assert_eq!(l[7]["status"], 1, "NOT_FOUND");
        // A Struct reached by its path: a map in the pairs format.
        assert_eq!(l[8]["status"], 0);
        assert!(l[8]["value"].as_str().unwrap().contains("policy"));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

conformance! {
    /// §10: 161
    /// proves: proxy_get_header_map_value
    async fn absolute_form_targets_are_accepted_and_connect_is_answered(mode) {
        let config = steps(json!({ "request_headers": [["get_header", 0, ":authority"], ["get_header", 0, ":path"]] }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_filter(config), "");
        // Pingora's parser refuses a Host that differs from the URI's authority (400) where
        // Envoy lets the URI win: the Host here agrees with it.
        let answer = raw(&proxy, b"GET http://example.test:8080/abs?q=1 HTTP/1.1\r\nhost: example.test:8080\r\nconnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"path\":\"/abs?q=1\""), "origin-form upstream: {answer}");
        let l = proxy.wait_lines("request_headers", 2).await;
        assert_eq!((l[0]["value"].as_str(), l[1]["value"].as_str()), (Some("example.test:8080"), Some("/abs?q=1")));
        // CONNECT matches no route: 404, as Envoy answers without a CONNECT route.
        let answer = raw(&proxy, b"CONNECT example.test:443 HTTP/1.1\r\nhost: example.test:443\r\nconnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
}

conformance! {
    /// §10: 162, 163
    /// proves: proxy_http_call, proxy_send_local_response
    async fn callout_arguments_and_a_second_reply_as_envoy(mode) {
        let call = |authority: &str, timeout: u64| json!(["http_call", "origin", [[":method", "GET"], [":path", "/"], [":authority", authority]], "", [], timeout]);
        let config = steps(json!({ "request_headers": [
            call("", 1000),
            call("o", 2_147_483_647),
            call("o", 2_147_483_648u64),
            ["local_response", 401, "first", "one", [], -1],
            ["local_response", 402, "second", "two", [], -1],
        ]}));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_filter(config), "");
        let resp = proxy.get("/", &[]).await;
        assert_eq!(resp.status(), 401, "the first reply wins");
        assert_eq!(resp.text().await.unwrap(), "one");
        let l = proxy.wait_lines("request_headers", 5).await;
        assert_eq!(statuses(&l), [0, 0, 2, 0, 0], "an empty :authority is accepted; 2^31 ms is BAD_ARGUMENT");
    }
}

conformance! {
    /// §10: 164
    /// proves: proxy_on_response_headers
    async fn http1_clients_get_http1_1_from_an_http1_0_upstream(mode) {
        for (upstream, body) in [
            (&b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..], "hello"),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil close", "until close"),
        ] {
            let proxy = Proxy::setup(mode, Some(&canned(upstream, true)), "", &plugin(probe(), ""), &probe_filter(steps(json!({}))), "");
            let answer = raw(&proxy, b"GET / HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.contains(body), "{answer}");
        }
    }
}

conformance! {
    /// §10: 165
    /// proves: proxy_send_local_response
    async fn an_empty_local_reply_is_framed_and_keeps_the_connection(mode) {
        let config = steps(json!({ "request_headers": [["local_response", 401, "no", "", [], -1]] }));
        let proxy = Proxy::setup(mode, None, "", &plugin(probe(), ""), &probe_filter(config), "");
        proxy.reload_if_asked().await;
        let addr = proxy.weir.proxy;
        let answers = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n").unwrap();
            let mut first = Vec::new();
            let mut byte = [0u8; 1];
            while !first.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                first.push(byte[0]);
            }
            s.write_all(b"GET / HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n").unwrap();
            let mut second = Vec::new();
            let _ = s.read_to_end(&mut second);
            (String::from_utf8_lossy(&first).into_owned(), String::from_utf8_lossy(&second).into_owned())
        })
        .await
        .unwrap();
        assert!(answers.0.starts_with("HTTP/1.1 401") && answers.0.to_ascii_lowercase().contains("content-length: 0"), "{}", answers.0);
        assert!(answers.1.starts_with("HTTP/1.1 401"), "the connection stays usable: {}", answers.1);
    }
}
