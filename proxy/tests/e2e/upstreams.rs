//! Listeners and clusters: TLS with HTTP/2 by ALPN, consistent hashing, health checks.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::FetchJson;
use crate::harness::*;

#[tokio::test]
async fn tls_listener_offers_h2_by_alpn_and_serves_http1() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let config = format!(
        "listeners: [{{ address: 127.0.0.1:0, tls: {{ cert: cert.pem, key: key.pem }} }}]\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: origin\n",
    );
    let weir = Weir::start_in(dir, &config);

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let connect = |alpn: Vec<Vec<u8>>| {
        let roots = roots.clone();
        let addr = weir.proxy;
        async move {
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let mut cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = alpn;
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap()
        }
    };
    let h2 = connect(vec![b"h2".to_vec(), b"http/1.1".to_vec()]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 offered by ALPN");

    let mut h1 = connect(vec![b"http/1.1".to_vec()]).await;
    h1.write_all(b"GET /secure HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    h1.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"path\":\"/secure\""));
    assert!(out.contains("[\"x-forwarded-proto\",\"https\"]"), "{out}");
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_endpoint() {
    let (a, b) = (origin("a"), origin("b"));
    let weir = Weir::start(&format!(
        "clusters:\n  pool: {{ endpoints: [\"{a}\", \"{b}\"], lb: hash, hash_on: x-user }}\nroutes:\n  - cluster: pool\n"
    ));
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for user in 0..40 {
        let mut first = None;
        for _ in 0..3 {
            let body: Value = c.get(weir.url("/")).header("x-user", format!("u{user}")).fetch_json().await;
            let o = body["origin"].as_str().unwrap().to_owned();
            assert_eq!(first.get_or_insert(o.clone()), &o, "user u{user} moved between endpoints");
            seen.insert(o);
        }
    }
    assert_eq!(seen.len(), 2, "keys spread over both endpoints");
}

#[tokio::test]
async fn health_checks_take_dead_endpoints_out() {
    let live = origin("live");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let weir = Weir::start(&format!(
        "clusters:\n  pool: {{ endpoints: [\"{live}\", \"{dead}\"], health_check: {{ interval: 100ms }} }}\nroutes:\n  - cluster: pool\n"
    ));
    let c = client();
    assert!(
        eventually(async || all_ok(&c, &weir.url("/"), 10).await).await,
        "after a health check, requests only go to the live endpoint"
    );
    // A reload brings new cluster objects: they are health-checked too.
    assert_eq!(c.post(weir.admin_url("/reload")).send().await.unwrap().status(), 200);
    assert!(eventually(async || all_ok(&c, &weir.url("/"), 10).await).await, "health checks go on after a reload");
}
