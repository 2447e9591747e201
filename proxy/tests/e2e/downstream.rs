//! Downstream limits as an Internet-facing proxy needs them (Envoy's `idle_timeout` and
//! `max_connection_duration`, nginx's `keepalive_timeout`, `keepalive_requests` and connection
//! cap): connections that send nothing, that trickle a request head, or that idle between
//! requests are closed; requests in flight are not; the connection cap refuses with a log
//! line and a metric, and serves again once connections close.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Reads until the peer closes (or `within` passes): whether it closed, and when.
fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        match conn.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn idle_silent_and_trickling_connections_close_but_requests_in_flight_do_not() {
    let (slow, _) = slow_server(Duration::from_millis(1500));
    let weir = Weir::start(&format!(
        "server: {{ idle_timeout: 500ms }}\nclusters:\n  slow: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - cluster: slow\n"
    ));

    // A client that connects and sends nothing.
    let mut silent = TcpStream::connect(weir.proxy).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).is_some(), "a silent connection is closed");

    // A client that sends its request head one byte every 100 ms (slowloris): bytes keep
    // arriving, yet the head is never complete within the idle timeout.
    let mut trickle = TcpStream::connect(weir.proxy).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nhost: a\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".iter()
    {
        if trickle.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    closed = closed || closed_within(&mut trickle, Duration::from_secs(2)).is_some();
    assert!(closed, "a trickled head is cut off");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());

    // A request in flight for longer than the idle timeout is answered, and the kept-alive
    // connection is closed once idle.
    let mut conn = TcpStream::connect(weir.proxy).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the 1.5 s request outlives the 0.5 s idle timeout");
    assert!(closed_within(&mut conn, Duration::from_secs(5)).is_some(), "the idle keep-alive connection is closed");

    // HTTP/2 (h2c): a stream in flight keeps its connection.
    let resp = h2_client().get(weir.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let metrics = client().get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "weir_downstream_idle_timeouts_total") >= 3.0, "{metrics}");
}

#[tokio::test]
async fn connections_end_after_their_request_or_age_limit() {
    let origin = origin("o");
    let (slow, _) = slow_server(Duration::from_millis(1200));
    let weir = Weir::start(&format!(
        "server: {{ max_requests_per_connection: 3, max_connection_duration: 1s }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\n  slow: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - {{ match: {{ path: /slow }}, cluster: slow }}\n  - cluster: o\n"
    ));
    // One request on `conn`: its response head, lower-cased, read up to the body's end.
    let exchange = |conn: &mut TcpStream, path: &str| -> String {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The demo origin answers a line of JSON; the slow one `slow`.
        while !out.ends_with(b"}\n") && !out.ends_with(b"slow") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).to_ascii_lowercase()
    };
    let mut conn = TcpStream::connect(weir.proxy).unwrap();
    assert!(!exchange(&mut conn, "/").contains("connection: close"));
    assert!(!exchange(&mut conn, "/").contains("connection: close"));
    assert!(exchange(&mut conn, "/").contains("connection: close"), "the third request is the last");
    assert!(closed_within(&mut conn, Duration::from_secs(5)).is_some());

    // A request that runs past the connection's age limit ends it.
    let mut conn = TcpStream::connect(weir.proxy).unwrap();
    assert!(!exchange(&mut conn, "/").contains("connection: close"));
    assert!(exchange(&mut conn, "/slow").contains("connection: close"), "past max_connection_duration");
    assert!(closed_within(&mut conn, Duration::from_secs(5)).is_some());
    // An idle connection past it is closed.
    let mut idle = TcpStream::connect(weir.proxy).unwrap();
    assert!(!exchange(&mut idle, "/").contains("connection: close"));
    assert!(closed_within(&mut idle, Duration::from_secs(5)).is_some(), "idle past max_connection_duration");
}

#[tokio::test]
async fn the_connection_cap_refuses_with_a_log_line_and_a_metric() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "server: {{ max_connections: 5 }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: o\n"
    ));
    let held: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(weir.proxy).unwrap()).collect();
    // The five are accepted (the gauge counts them) before the sixth arrives.
    let admin = client();
    let five_open = eventually(async || {
        let text = admin.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
        metric(&text, "weir_downstream_connections") >= 5.0
    })
    .await;
    assert!(five_open);
    let mut sixth = TcpStream::connect(weir.proxy).unwrap();
    let _ = sixth.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    assert!(closed_within(&mut sixth, Duration::from_secs(5)).is_some(), "the sixth connection is closed at accept");
    let text = admin.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&text, "weir_downstream_connections_refused_total") >= 1.0, "{text}");
    assert!(weir.logs().contains("server.max_connections reached"), "{}", weir.logs());
    drop(held);
    // Once connections close, new ones are served.
    assert!(eventually(async || client().get(weir.url("/")).send().await.is_ok_and(|r| r.status() == 200)).await);
}

/// A request shorter than the HTTP/2 preface (HAProxy's default health check is
/// `OPTIONS / HTTP/1.0`, 22 bytes with its blank line) is answered at once on a listener that
/// also accepts h2c, and h2c still works there.
#[tokio::test]
async fn a_request_shorter_than_the_h2c_preface_is_answered_at_once() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "listeners: [{{ address: 127.0.0.1:0, http2: true }}]\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: o\n"
    ));
    let started = Instant::now();
    let out = raw_exchange(weir.proxy, b"OPTIONS / HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    assert_eq!(h2_client().get(weir.url("/")).send().await.unwrap().status(), 200, "h2c still served");
}
