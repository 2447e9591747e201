//! TLS listeners as operators run them: a certificate renewal applied by a reload (no binary
//! upgrade), several certificates on one listener chosen by SNI, and certificate problems
//! refused with the file named, by `weir -t` and at start, instead of a panic in a service.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokio_rustls::rustls;

use crate::harness::*;

struct Cert {
    der: rustls::pki_types::CertificateDer<'static>,
}

/// A self-signed certificate for `names`, written as `<stem>.pem` and `<stem>.key` in `dir`.
fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> Cert {
    let cert = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), cert.signing_key.serialize_pem()).unwrap();
    Cert { der: cert.cert.der().clone() }
}

/// The leaf certificate `addr` presents to a client sending `sni`, trusting `trusted`.
async fn presented(addr: std::net::SocketAddr, sni: &str, trusted: &[&Cert]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn config(origin: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "listeners: [{{ address: 127.0.0.1:0, tls: {tls} }}]\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: origin\n"
    )
}

#[tokio::test]
async fn a_reload_renews_the_certificate_and_sni_chooses_among_several() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let old = make_cert(dir.path(), "old", &["localhost"]);
    let renewed = make_cert(dir.path(), "renewed", &["localhost"]);
    let api = make_cert(dir.path(), "api", &["api.example.test"]);
    let weir = Weir::start_in(dir, &config(origin, "{ cert: old.pem, key: old.key }"));
    let both = [&old, &renewed, &api];
    assert_eq!(presented(weir.proxy, "localhost", &both).await, old.der.to_vec());

    // Renewal: the same listener, new files; a reload applies them to new handshakes.
    weir.rewrite(&config(
        origin,
        "{ cert: renewed.pem, key: renewed.key, certificates: [{ cert: api.pem, key: api.key }] }",
    ));
    let reloaded = client().post(weir.admin_url("/reload")).send().await.unwrap();
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    assert_eq!(presented(weir.proxy, "localhost", &both).await, renewed.der.to_vec(), "renewed by the reload");
    // SNI picks the certificate that covers the name; others get the first one.
    assert_eq!(presented(weir.proxy, "api.example.test", &both).await, api.der.to_vec());
    assert_eq!(presented(weir.proxy, "localhost", &both).await, renewed.der.to_vec());

    // A broken renewal is refused and the running certificate stays.
    std::fs::write(weir.log.parent().unwrap().join("broken.pem"), "not a certificate").unwrap();
    weir.rewrite(&config(origin, "{ cert: broken.pem, key: renewed.key }"));
    let refused = client().post(weir.admin_url("/reload")).send().await.unwrap();
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(body.contains("broken.pem"), "names the file: {body}");
    assert_eq!(presented(weir.proxy, "localhost", &both).await, renewed.der.to_vec());
}

#[test]
fn certificate_problems_fail_the_check_and_the_start_naming_the_file() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "a", &["localhost"]);
    make_cert(dir.path(), "b", &["localhost"]);
    let cases = [
        ("{ cert: missing.pem, key: a.key }", "missing.pem"),
        ("{ cert: a.pem, key: b.key }", "do not belong together"),
        ("{ cert: a.key, key: a.key }", "no PEM certificate"),
        ("{ cert: a.pem }", "give both `cert` and `key`"),
    ];
    for (tls, expected) in cases {
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, format!("admin: {{ address: 127.0.0.1:0 }}\n{}", config(origin, tls))).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_weir")).arg("-t").arg("-c").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "-t refuses {tls}");
        assert!(said.contains(expected) && said.contains("listeners[0].tls"), "{tls}: {said}");
        // The start fails the same way, before serving anything, with status 1.
        let start = Command::new(env!("CARGO_BIN_EXE_weir")).arg("-c").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&start.stderr);
        assert_eq!(start.status.code(), Some(1), "{tls}: {said}");
        assert!(said.contains(expected), "{tls}: {said}");
        assert!(!said.contains("panicked"), "{said}");
    }
}

/// ERROR means an operator has something to do: clients that give up (a TLS or HTTP/2
/// handshake abandoned, a request head cut off) and one request's upstream failure (recorded
/// in its access-log line) log no ERROR line.
#[tokio::test]
async fn client_and_per_request_failures_log_no_error_line() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "c", &["localhost"]);
    let (refused, _socket) = closed_port();
    let origin = origin("o");
    let weir = Weir::start_in(
        dir,
        &format!(
            "listeners:\n  - {{ address: 127.0.0.1:0, tls: {{ cert: c.pem, key: c.key }} }}\n  - {{ address: 127.0.0.1:0 }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\n  gone: {{ endpoints: [\"{refused}\"] }}\nroutes:\n  - {{ match: {{ path: /gone }}, cluster: gone }}\n  - cluster: o\n"
        ),
    );
    // The ready line lists the TLS listener first; the harness's `proxy` is that one.
    let tls_addr = weir.proxy;
    // TLS with ALPN h2, then gone before the HTTP/2 preface.
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der.clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
        tls.shutdown().await.unwrap();
    }
    // A TLS handshake abandoned half-way.
    {
        let mut tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
        tcp.write_all(b"\x16\x03\x01\x00\x05hello").await.unwrap();
    }
    // A request head cut off on the plaintext listener.
    let plain = {
        let text = client().get(weir.admin_url("/ready")).send().await.unwrap().text().await.unwrap();
        let ready: serde_json::Value = serde_json::from_str(&text).unwrap();
        ready["listeners"][1].as_str().unwrap().to_owned()
    };
    {
        let mut tcp = tokio::net::TcpStream::connect(&plain).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-cut: ").await.unwrap();
    }
    // An upstream that refuses: the client gets 503, the access log says why.
    let resp = client().get(format!("http://{plain}/gone")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(eventually(async || weir.logs().contains("connection_failure")).await);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = weir.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
