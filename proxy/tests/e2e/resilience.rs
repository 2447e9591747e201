//! Retries, active health checks and outlier detection (docs/configuration.md#clusters), with
//! real upstreams on loopback: one that refuses connections, one that closes before answering,
//! one that answers 503.

use serde_json::{Value, json};

use crate::harness::*;

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy";

/// An upstream that reads each request whole (head and `content-length` body) before it
/// answers 503: the try fails after weir sent the body.
fn busy_after_body() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() || writer.write_all(BUSY).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn statuses(weir: &Weir, n: usize) -> Vec<u16> {
    let c = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.get(weir.url("/")).send().await.unwrap().status().as_u16());
    }
    out
}

async fn cluster_info(weir: &Weir) -> Value {
    client().get(weir.admin_url("/clusters")).fetch_json().await["clusters"]["o"].clone()
}

/// As nginx does by default (and Envoy with `retry_on: connect-failure`): a connection refused
/// sends the request to the next endpoint; with `num_retries: 0` the dead endpoint's share fails.
#[tokio::test]
async fn a_refusing_endpoint_is_retried_on_another_by_default() {
    let (origin, (dead, _held)) = (origin("o"), closed_port());
    let cluster = format!("clusters:\n  o: {{ endpoints: [\"{dead}\", \"{origin}\"] }}\n");
    let weir = Weir::start(&format!("{cluster}routes:\n  - cluster: o\n"));
    assert_eq!(statuses(&weir, 20).await, vec![200; 20]);
    // Round-robin moves on at each pick, the retry's included: first tries keep meeting the
    // dead endpoint until outlier detection or a health check takes it out.
    let stats = &cluster_info(&weir).await["stats"];
    assert!(stats["retries"].as_u64().unwrap() >= 10, "{stats}");
    assert_eq!(stats["retries"], stats["connect_failures"], "{stats}");

    let weir = Weir::start(&format!("{cluster}routes:\n  - cluster: o\n    retry_policy: {{ num_retries: 0 }}\n"));
    let got = statuses(&weir, 20).await;
    assert_eq!(got.iter().filter(|s| **s == 503).count(), 10, "{got:?}");
}

/// A 503 answer is retried on the other endpoint under `retry_on: 5xx`. The filters see one
/// request: one response-headers callback per request, with the answer the client got, and
/// a POST body sent once more exactly as the filters released it (Envoy's router retries
/// below the filter chain).
#[tokio::test]
async fn a_5xx_answer_is_retried_and_the_filters_see_one_request() {
    let (origin, busy) = (origin("o"), busy_after_body());
    let script = json!({ "steps": {
        "request_body": [["buffer_status", 0]],
        "response_headers": [["get_header", 2, ":status"]],
    } });
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{busy}\", \"{origin}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: o\n    retry_policy: {{ retry_on: \"5xx\", retry_non_idempotent: true }}\n    filters: [{{ plugin: probe, config: {script} }}]\n",
        probe()
    ));
    let c = client();
    for i in 0..6 {
        let r = c.post(weir.url("/")).body(format!("body {i}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let seen: Value = r.json().await.unwrap();
        assert_eq!(seen["body"], format!("body {i}"), "the body arrives once, whole");
    }
    let statuses: Vec<Value> =
        weir.probe_lines().into_iter().filter(|l| l["cb"] == "response_headers").map(|l| l["value"].clone()).collect();
    // Two body callbacks per request (the data, then the end: Envoy's HTTP/1 codec), none
    // more for a retry.
    let bodies = weir.probe_lines().into_iter().filter(|l| l["cb"] == "request_body").count();
    assert_eq!(bodies, 12);
    assert_eq!(statuses, vec![json!("200"); 6], "one response callback per request, never the 503");
    let retries = cluster_info(&weir).await["stats"]["retries"].as_u64().unwrap();
    assert!((3..=6).contains(&retries), "the busy endpoint answered {retries} first tries");
}

/// Without `retry_non_idempotent`, a POST that reached an endpoint is not sent again: its 503
/// reaches the client (and the filters). A GET on the same route is retried.
#[tokio::test]
async fn a_post_that_was_sent_is_not_retried_unless_configured() {
    let (origin, busy) = (origin("o"), canned_server(BUSY, false));
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{busy}\", \"{origin}\"] }}\nroutes:\n  - cluster: o\n    retry_policy: {{ retry_on: [5xx] }}\n"
    ));
    let c = client();
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(c.post(weir.url("/")).body("x").send().await.unwrap().status().as_u16());
    }
    assert_eq!(posts.iter().filter(|s| **s == 503).count(), 2, "{posts:?}");
    assert_eq!(statuses(&weir, 4).await, vec![200; 4]);
}

/// An endpoint that closes the connection before answering: `reset` retries it; without a
/// retry policy for it the client gets Envoy's 502 `upstream_reset_before_response_started`.
#[tokio::test]
async fn a_reset_before_the_answer_is_retried_under_reset() {
    let (origin, closing) = (origin("o"), canned_server(b"", true));
    let cluster = format!("clusters:\n  o: {{ endpoints: [\"{closing}\", \"{origin}\"] }}\n");
    let weir = Weir::start(&format!("{cluster}routes:\n  - cluster: o\n    retry_policy: {{ retry_on: reset }}\n"));
    assert_eq!(statuses(&weir, 6).await, vec![200; 6]);
    let weir = Weir::start(&format!("{cluster}routes:\n  - cluster: o\n"));
    let got = statuses(&weir, 6).await;
    assert_eq!(got.iter().filter(|s| **s == 502).count(), 3, "{got:?}");
}

/// The retry budget bounds retries under way: with no room, a failed try is not retried and
/// the refusal is counted.
#[tokio::test]
async fn retries_over_the_budget_are_not_made() {
    let (origin, (dead, _held)) = (origin("o"), closed_port());
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{dead}\", \"{origin}\"], retry_budget: {{ budget_percent: 0, min_retry_concurrency: 0 }} }}\nroutes:\n  - cluster: o\n"
    ));
    let got = statuses(&weir, 10).await;
    assert_eq!(got.iter().filter(|s| **s == 503).count(), 5, "{got:?}");
    assert_eq!(cluster_info(&weir).await["stats"]["retries_over_budget"], 5);
    let metrics = client().get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("weir_upstream_retries_over_budget_total{cluster=\"o\"} 5"), "{metrics}");
}

/// An HTTP health check takes an endpoint that answers 503 out: `/clusters` shows it, and
/// requests (with retries off) all reach the healthy one.
#[tokio::test]
async fn an_http_health_check_takes_a_failing_endpoint_out() {
    let (origin, busy) = (origin("o"), canned_server(BUSY, false));
    let weir = Weir::start(&format!(
        "clusters:\n  o:\n    endpoints: [\"{busy}\", \"{origin}\"]\n    health_check: {{ interval: 50ms, http: {{ path: /healthz }} }}\nroutes:\n  - cluster: o\n    retry_policy: {{ num_retries: 0 }}\n"
    ));
    let busy_out = async || {
        let endpoints = cluster_info(&weir).await["endpoints"].clone();
        endpoints.as_array().unwrap().iter().any(|e| e["address"] == busy.to_string() && e["healthy"] == false)
    };
    assert!(eventually(busy_out).await, "{}", cluster_info(&weir).await);
    let info = cluster_info(&weir).await;
    assert_eq!(info["health_check"]["type"], "http");
    assert_eq!(info["health_check"]["expected_statuses"], json!([200]));
    assert_eq!(statuses(&weir, 10).await, vec![200; 10]);
}

/// A cluster's only endpoint, taken out by its health check, gets no request: weir answers
/// 503 itself (Envoy's `no_healthy_upstream`). weir skips the balancer for a one-endpoint
/// cluster only when nothing can take the endpoint out.
#[tokio::test]
async fn a_lone_endpoint_failing_its_health_check_is_not_used() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "clusters:\n  o:\n    endpoints: [\"{origin}\"]\n    health_check: {{ interval: 50ms, http: {{ path: /healthz, expected_statuses: [204] }} }}\nroutes:\n  - cluster: o\n    retry_policy: {{ num_retries: 0 }}\n"
    ));
    let out = async || cluster_info(&weir).await["endpoints"][0]["healthy"] == false;
    assert!(eventually(out).await, "{}", cluster_info(&weir).await);
    assert_eq!(statuses(&weir, 3).await, vec![503; 3], "the origin answers 200 to requests that reach it");
}

/// Outlier detection ejects an endpoint after `consecutive_5xx` failures in a row; later
/// requests go to the other one, and `/clusters` and `/metrics` say so.
#[tokio::test]
async fn consecutive_5xx_eject_an_endpoint() {
    let (origin, busy) = (origin("o"), canned_server(BUSY, false));
    let weir = Weir::start(&format!(
        "clusters:\n  o:\n    endpoints: [\"{busy}\", \"{origin}\"]\n    outlier_detection: {{ consecutive_5xx: 2, max_ejection_percent: 50 }}\nroutes:\n  - cluster: o\n    retry_policy: {{ num_retries: 0 }}\n"
    ));
    let first = statuses(&weir, 4).await;
    assert_eq!(first.iter().filter(|s| **s == 503).count(), 2, "{first:?}");
    assert_eq!(statuses(&weir, 10).await, vec![200; 10], "the failing endpoint is out");
    let info = cluster_info(&weir).await;
    let busy_entry = info["endpoints"].as_array().unwrap().iter().find(|e| e["address"] == busy.to_string()).cloned();
    assert_eq!(busy_entry.map(|e| (e["ejected"].clone(), e["ejections"].clone())), Some((json!(true), json!(1))));
    let metrics = client().get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("weir_outlier_ejections_total{cluster=\"o\"} 1"), "{metrics}");
    assert!(metrics.contains(&format!("weir_endpoint_ejected{{cluster=\"o\",endpoint=\"{busy}\"}} 1")), "{metrics}");
}

/// The route's `timeout` ends the request with Envoy's 504 `upstream_response_timeout` and is
/// not retried; a try's `per_try_timeout` is retried under `5xx` and `gateway-error` (not
/// `reset`, as Envoy's retry_state_impl.cc), and when the last try timed out the answer is 504
/// `upstream_per_try_timeout`; the route's `idle_timeout` bounds an
/// upstream that does not answer, as Envoy's stream idle timeout (504 once the request was
/// received, details `stream_idle_timeout`).
#[tokio::test]
async fn route_try_and_idle_timeouts_answer_as_envoy() {
    use std::sync::atomic::Ordering::SeqCst;
    let cases = [
        ("timeout: 200ms\n    retry_policy: { retry_on: reset, num_retries: 2 }", 1, "upstream_response_timeout"),
        (
            "retry_policy: { retry_on: gateway-error, num_retries: 1, per_try_timeout: 200ms }",
            2,
            "upstream_per_try_timeout",
        ),
        // Envoy retries a per-try timeout under `5xx` and `gateway-error` only.
        ("retry_policy: { retry_on: reset, num_retries: 1, per_try_timeout: 200ms }", 1, "upstream_per_try_timeout"),
        ("idle_timeout: 200ms", 1, "stream_idle_timeout"),
    ];
    for (route, tries, details) in cases {
        let (slow, count) = slow_server(std::time::Duration::from_secs(3));
        let weir = Weir::start(&format!(
            "clusters:\n  o: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - cluster: o\n    {route}\n"
        ));
        let r = client().get(weir.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 504, "{route}");
        assert_eq!(count.load(SeqCst), tries, "{route}: tries");
        let line = format!("status=504 details=\"{details}\"");
        assert!(eventually(async || weir.logs().contains(&line)).await, "{route}:\n{}", weir.logs());
    }
}

/// An HTTP/2 upstream that refuses every other stream with `REFUSED_STREAM` and answers the
/// others 200; counts the streams.
fn refusing_h2_server() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering::SeqCst;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let addr = h2_server(move |req, mut respond| {
        let refuse = seen.fetch_add(1, SeqCst).is_multiple_of(2);
        async move {
            if refuse {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                return;
            }
            // The answer comes after the whole request, as most servers give it. One sent
            // before the body ends makes the client's body write fail on the stream's reset,
            // which Pingora's HTTP/2 client reports as a failed try (not what this tests).
            let mut body = req.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let _ = respond.send_response(http::Response::builder().status(200).body(()).unwrap(), true);
        }
    });
    (addr, count)
}

/// A stream the HTTP/2 upstream refused was not processed: `refused-stream` sends it again,
/// a POST included (RFC 9113 §8.7).
#[tokio::test]
async fn a_refused_stream_is_sent_again() {
    use std::sync::atomic::Ordering::SeqCst;
    let (upstream, streams) = refusing_h2_server();
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{upstream}\"], http2: true }}\nroutes:\n  - cluster: o\n    retry_policy: {{ retry_on: refused-stream }}\n"
    ));
    let c = client();
    for _ in 0..3 {
        let r = c.post(weir.url("/")).body("payload").send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", weir.logs());
    }
    assert_eq!(streams.load(SeqCst), 6, "each request: a refused stream, then the answered one");
}

/// An endpoint that dies mid-answer is not tried again, even under `5xx,reset`: the response
/// had started (Envoy retries only before the response head). The client sees the answer
/// broken, and the access log says why.
#[tokio::test]
async fn an_answer_that_breaks_mid_body_is_not_retried() {
    let broken = canned_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", true);
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{broken}\"] }}\nroutes:\n  - cluster: o\n    retry_policy: {{ retry_on: \"5xx,reset\", num_retries: 3 }}\n"
    ));
    let r = client().get(weir.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body ends short of its length");
    let logged = async || weir.logs().contains("details=\"upstream_reset_after_response_started\"");
    assert!(eventually(logged).await, "{}", weir.logs());
    assert_eq!(cluster_info(&weir).await["stats"]["retries"], 0);
}

/// Health checks follow a reload: a cluster the reload gives a check is checked at once, and
/// its failing endpoint is taken out.
#[tokio::test]
async fn a_health_check_added_by_a_reload_runs() {
    let (origin, busy) = (origin("o"), canned_server(BUSY, false));
    let config = |check: &str| {
        format!(
            "clusters:\n  o:\n    endpoints: [\"{busy}\", \"{origin}\"]\n{check}routes:\n  - cluster: o\n    retry_policy: {{ num_retries: 0 }}\n"
        )
    };
    let weir = Weir::start(&config(""));
    assert!(statuses(&weir, 4).await.contains(&503));
    weir.rewrite(&config("    health_check: { interval: 50ms, http: { path: /healthz } }\n"));
    let busy_out = async || {
        let info = cluster_info(&weir).await;
        info["health_check"]["type"] == "http"
            && info["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["address"] == busy.to_string() && e["healthy"] == false)
    };
    assert!(eventually(busy_out).await, "{}", cluster_info(&weir).await);
    assert_eq!(statuses(&weir, 10).await, vec![200; 10]);
}

/// A HEAD request gets weir's own replies (an upstream failure, no route) as headers only, with
/// the length a GET's reply has (RFC 9110 §9.3.2): over HTTP/2 a body after them was a protocol
/// error for the client, and over HTTP/1 the next request on the connection must parse.
#[tokio::test]
async fn a_head_request_gets_weirs_own_replies_without_a_body() {
    let (dead, _held) = closed_port();
    let weir = Weir::start(&format!(
        "clusters:\n  dead: {{ endpoints: [\"{dead}\"] }}\nroutes:\n  - match: {{ path_prefix: /api }}\n    cluster: dead\n"
    ));
    for c in [client(), h2_client()] {
        for (path, status) in [("/api", 503), ("/nowhere", 404)] {
            let get = c.get(weir.url(path)).send().await.unwrap();
            let length = get.headers()["content-length"].clone();
            assert_eq!(get.status(), status);
            let head = c.head(weir.url(path)).send().await.unwrap();
            assert_eq!(head.status(), status, "{path}");
            assert_eq!(head.headers()["content-length"], length, "{path}: the length of GET's reply");
            assert_eq!(head.bytes().await.unwrap().len(), 0, "{path}: no body, no stream error");
        }
    }
    // HTTP/1: the connection carries the next request after a HEAD reply (Pingora does not
    // pipeline, so the GET goes once the HEAD's answer is read).
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(weir.proxy).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    conn.write_all(b"HEAD /nowhere HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "the HEAD reply ends: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    conn.write_all(b"GET /nowhere HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").unwrap();
    let mut rest = String::new();
    conn.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 404") && rest.ends_with("no route matched\n"), "{rest}");
}

/// A gRPC request gets weir's own replies as Envoy answers a gRPC request with a local reply
/// (`Utility::sendLocalReply`): HTTP 200, trailers only, the status as `grpc-status`
/// (`Grpc::Utility::httpToGrpcStatus`: 503 is 14 UNAVAILABLE, 404 is 12 UNIMPLEMENTED) and
/// the text as `grpc-message`; any other request keeps the HTTP status.
#[tokio::test]
async fn grpc_requests_get_weirs_own_replies_as_grpc_statuses() {
    let (dead, _held) = closed_port();
    let weir = Weir::start(&format!(
        "clusters:\n  dead: {{ endpoints: [\"{dead}\"] }}\nroutes:\n  - match: {{ path_prefix: /svc.Api/ }}\n    cluster: dead\n"
    ));
    let c = h2_client();
    for (path, grpc_status, message) in
        [("/svc.Api/Call", "14", "upstream connect error"), ("/other.Api/Call", "12", "no route matched")]
    {
        let r = c
            .post(weir.url(path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8; 5])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert_eq!(headers["content-type"], "application/grpc", "{path}");
        assert_eq!(headers["grpc-status"], grpc_status, "{path}");
        assert!(headers["grpc-message"].to_str().unwrap().starts_with(message), "{path}: {headers:?}");
        assert!(r.bytes().await.unwrap().is_empty(), "{path}: trailers only");
    }
    assert_eq!(c.get(weir.url("/svc.Api/Call")).send().await.unwrap().status(), 503);
    assert_eq!(c.get(weir.url("/other.Api/Call")).send().await.unwrap().status(), 404);
}
