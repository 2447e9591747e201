//! Route matching and route actions through the real binary (docs/configuration.md#routes):
//! regex paths, header and query conditions, direct responses, redirects, path rewrites on
//! the way upstream, weighted clusters.

use serde_json::Value;

use crate::harness::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn origin_of(req: reqwest::RequestBuilder) -> String {
    let seen: Value = req.fetch_json().await;
    seen["origin"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn conditions_on_path_headers_and_query_choose_the_route() {
    let (a, b, c_, d, fallback) =
        (origin("regex"), origin("header"), origin("query"), origin("absent"), origin("fallback"));
    let weir = Weir::start(&format!(
        r#"clusters:
  a: {{ endpoints: ["{a}"] }}
  b: {{ endpoints: ["{b}"] }}
  c: {{ endpoints: ["{c_}"] }}
  d: {{ endpoints: ["{d}"] }}
  f: {{ endpoints: ["{fallback}"] }}
routes:
  - match: {{ path_regex: "/users/[0-9]+" }}
    cluster: a
  - match: {{ headers: {{ x-tenant: {{ prefix: "acme-" }}, x-debug: {{ present: true, invert: true }} }} }}
    cluster: b
  - match: {{ query_params: {{ version: {{ regex: "v[2-9]" }}, beta: "yes" }} }}
    cluster: c
  - match: {{ headers: {{ x-tenant: {{ present: false }} }}, path_prefix: /anon }}
    cluster: d
  - cluster: f
"#
    ));
    let c = client();
    let at = |path: &str| c.get(weir.url(path));
    assert_eq!(origin_of(at("/users/42")).await, "regex");
    assert_eq!(origin_of(at("/users/42/x")).await, "fallback", "the regex matches the whole path");
    assert_eq!(origin_of(at("/p").header("x-tenant", "acme-1")).await, "header");
    assert_eq!(origin_of(at("/p").header("x-tenant", "acme-1").header("x-debug", "1")).await, "fallback", "inverted");
    assert_eq!(origin_of(at("/p?version=v3&beta=yes")).await, "query");
    assert_eq!(origin_of(at("/p?version=v1&beta=yes")).await, "fallback");
    assert_eq!(origin_of(at("/p?beta=yes%20no&version=v3")).await, "fallback", "values are decoded, then compared");
    assert_eq!(origin_of(at("/anon/x")).await, "absent");
    assert_eq!(origin_of(at("/anon/x").header("x-tenant", "t")).await, "fallback");
}

#[tokio::test]
async fn direct_responses_and_redirects_answer_without_an_upstream() {
    let (upstream, count) = slow_server(std::time::Duration::ZERO);
    let weir = Weir::start(&format!(
        r#"clusters:
  o: {{ endpoints: ["{upstream}"] }}
routes:
  - match: {{ path: /health }}
    direct_response: {{ status: 200, body: "fine\n" }}
  - match: {{ path: /gone }}
    direct_response: {{ status: 410 }}
  - match: {{ path_prefix: /old/ }}
    redirect: {{ prefix_rewrite: /new/, response_code: 308 }}
  - match: {{ path_prefix: /secure }}
    redirect: {{ https_redirect: true }}
  - cluster: o
"#
    ));
    let c = no_redirects();
    let r = c.get(weir.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "fine\n");
    let r = c.get(weir.url("/gone")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.content_length()), (410, Some(0)));
    let r = c.get(weir.url("/old/a/b?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    let host = weir.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    assert_eq!(r.headers()["location"], format!("http://{host}/new/a/b?x=1").as_str());
    let r = c.get(weir.url("/secure/x")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    let bare_host = host.rsplit_once(':').unwrap().0;
    assert_eq!(r.headers()["location"], format!("https://{bare_host}/secure/x").as_str());
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0, "no request reached the upstream");
    let logged = async || weir.logs().contains("status=308 details=\"direct_response\"");
    assert!(eventually(logged).await, "{}", weir.logs());
}

#[tokio::test]
async fn rewrites_change_only_the_path_sent_upstream() {
    let o = origin("o");
    let weir = Weir::start(&format!(
        r#"clusters:
  o: {{ endpoints: ["{o}"] }}
routes:
  - match: {{ path_prefix: /api/ }}
    prefix_rewrite: /v2/
    cluster: o
  - match: {{ path_regex: "/users/[0-9]+" }}
    regex_rewrite: {{ pattern: "^/users/([0-9]+)$", substitution: "/u/$1" }}
    cluster: o
"#
    ));
    let c = client();
    let seen: Value = c.get(weir.url("/api/items?page=2")).fetch_json().await;
    assert_eq!(seen["path"], "/v2/items?page=2");
    let seen: Value = c.get(weir.url("/users/42")).fetch_json().await;
    assert_eq!(seen["path"], "/u/42");
    let logged = async || weir.logs().contains("path=\"/api/items?page=2\"");
    assert!(eventually(logged).await, "the access log keeps the client's path: {}", weir.logs());
}

#[tokio::test]
async fn weighted_clusters_share_requests_by_weight() {
    let (a, b) = (origin("a"), origin("b"));
    let weir = Weir::start(&format!(
        "clusters:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - weighted_clusters: [{{ name: a, weight: 3 }}, {{ name: b, weight: 1 }}]\n"
    ));
    let c = client();
    let mut to_a = 0;
    for _ in 0..200 {
        to_a += usize::from(origin_of(c.get(weir.url("/"))).await == "a");
    }
    // 150 expected; the bound is many standard deviations (6.1) wide.
    assert!((110..=190).contains(&to_a), "{to_a} of 200 went to the cluster of weight 3");
}

/// An upstream that answers a WebSocket upgrade with `101` and then echoes every byte.
fn websocket_echo() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains("upgrade: websocket") {
                    let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
                    return;
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                );
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A WebSocket upgrade goes through end to end (with a filter on the route): the client gets
/// the upstream's `101`, then bytes flow both ways until it closes.
#[tokio::test]
async fn websocket_upgrades_are_proxied_end_to_end() {
    use std::io::{Read, Write};
    let upstream = websocket_echo();
    let weir = Weir::start(&format!(
        "clusters:\n  ws: {{ endpoints: [\"{upstream}\"] }}\nplugins:\n  t: {{ module: {} }}\nroutes:\n  - cluster: ws\n    filters: [{{ plugin: t }}]\n",
        trivial()
    ));
    let addr = weir.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket") && head.contains("sec-websocket-accept"), "{head}");
    // A masked text frame "hi", as a client sends it; the echo returns it byte for byte.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    for _ in 0..3 {
        s.write_all(&frame).unwrap();
        let mut back = [0u8; 8];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, frame);
    }
}
