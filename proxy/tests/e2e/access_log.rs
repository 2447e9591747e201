//! The access log and `weir_requests_total` record what the client received, with Envoy's
//! response code details for why: a client that goes away mid-response, an upstream that
//! answers early and closes during an upload.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::*;

/// The access-log lines logged so far.
fn access_lines(weir: &Weir) -> Vec<String> {
    weir.logs().lines().filter(|l| l.contains("weir::access")).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_client_gone_mid_response_is_logged_with_the_status_it_got() {
    let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n".to_vec();
    response.resize(response.len() + 64 * 1024 * 1024, b'x');
    let big = canned_server(Box::leak(response.into_boxed_slice()), false);
    let weir = Weir::start(&format!("clusters:\n  big: {{ endpoints: [\"{big}\"] }}\nroutes:\n  - cluster: big\n"));
    {
        let mut conn = std::net::TcpStream::connect(weir.proxy).unwrap();
        conn.write_all(b"GET /big HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    assert!(eventually(async || !access_lines(&weir).is_empty()).await, "{}", weir.logs());
    let line = access_lines(&weir).remove(0);
    assert!(line.contains("status=200"), "the client got a 200: {line}");
    assert!(line.contains("details=\"downstream_remote_disconnect\""), "{line}");
    let metrics = client().get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("weir_requests_total{code=\"200\""), "{metrics}");
}

#[tokio::test]
async fn an_upstream_answering_early_during_an_upload_is_logged_as_answered() {
    let early = canned_server(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", true);
    let weir =
        Weir::start(&format!("clusters:\n  early: {{ endpoints: [\"{early}\"] }}\nroutes:\n  - cluster: early\n"));
    let mut conn = std::net::TcpStream::connect(weir.proxy).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = vec![b'u'; 2 << 20];
    conn.write_all(format!("POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes())
        .unwrap();
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = conn.write_all(&body);
        })
    };
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    let got = String::from_utf8_lossy(&head).into_owned();
    drop(conn);
    let _ = writer.join();
    assert!(eventually(async || !access_lines(&weir).is_empty()).await, "{}", weir.logs());
    let line = access_lines(&weir).remove(0);
    let status = &got[9..12];
    assert!(line.contains(&format!("status={status} ")), "the client got {got}: {line}");
}

#[tokio::test]
async fn a_client_gone_before_the_response_is_logged_as_nothing_sent() {
    let (slow, seen) = slow_server(Duration::from_secs(3));
    let weir = Weir::start(&format!("clusters:\n  slow: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - cluster: slow\n"));
    {
        let mut conn = std::net::TcpStream::connect(weir.proxy).unwrap();
        conn.write_all(b"GET /wait HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        assert!(eventually(async || seen.load(std::sync::atomic::Ordering::SeqCst) == 1).await);
    }
    assert!(eventually(async || !access_lines(&weir).is_empty()).await, "{}", weir.logs());
    let line = access_lines(&weir).remove(0);
    assert!(line.contains("status=0 ") && line.contains("details=\"downstream_remote_disconnect\""), "{line}");
}

/// Pingora answers a head its parser rejects before any hook of weir's runs;
/// the client's answer is still logged and counted. Envoy's integration test
/// (`test/integration/integration_test.cc`) sends a header line without a colon (`foo bar`),
/// expects `400 Bad Request` and an access-log line with `http1.codec_error`. A good request on a new connection afterwards is
/// logged as usual.
#[tokio::test]
async fn a_request_the_parser_rejects_is_logged_with_the_answer_pingora_sent() {
    let weir =
        Weir::start(&format!("clusters:\n  o: {{ endpoints: [\"{}\"] }}\nroutes:\n  - cluster: o\n", origin("o")));
    for (head, status, details) in [
        (&b"GET / HTTP/1.1\r\nhost: a\r\nno colon here\r\n\r\n"[..], "400", "http1.codec_error"),
        (b"GET / HTTP/1.1\r\nhost: a\r\nx-bad\x01name: 1\r\n\r\n", "400", "http1.codec_error"),
    ] {
        let mut conn = std::net::TcpStream::connect(weir.proxy).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.write_all(head).unwrap();
        let mut got = [0u8; 12];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got[9..], status.as_bytes(), "{}", String::from_utf8_lossy(&got));
        let wanted = format!("status={status} ");
        assert!(eventually(async || access_lines(&weir).iter().any(|l| l.contains(&wanted))).await, "{}", weir.logs());
        let line = access_lines(&weir).into_iter().find(|l| l.contains(&wanted)).unwrap();
        assert!(line.contains(&format!("details=\"{details}\"")), "{line}");
    }
    let ok = client().get(weir.url("/fine")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(eventually(async || access_lines(&weir).len() == 3).await, "{}", weir.logs());
    let rejected = access_lines(&weir).iter().filter(|l| l.contains("status=400 ")).count();
    assert_eq!(rejected, 2, "one line per rejected head: {}", weir.logs());
    let metrics = client().get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for code in ["400", "200"] {
        assert!(metrics.contains(&format!("code=\"{code}\"")), "{code}: {metrics}");
    }
}

/// Lines are written by a thread of the access log's own, in batches: every request's line
/// still reaches the log, in the order the requests ended, including those buffered when
/// SIGTERM stops the process.
#[tokio::test]
async fn every_line_reaches_the_log_by_exit() {
    let mut weir =
        Weir::start(&format!("clusters:\n  o: {{ endpoints: [\"{}\"] }}\nroutes:\n  - cluster: o\n", origin("o")));
    let c = client();
    for i in 0..300 {
        assert_eq!(c.get(weir.url(&format!("/n{i}"))).send().await.unwrap().status(), 200);
    }
    weir.signal("TERM");
    assert!(weir.wait_exit(Duration::from_secs(10)).is_some(), "{}", weir.logs());
    let paths: Vec<String> = access_lines(&weir)
        .iter()
        .map(|l| l.split("path=\"").nth(1).and_then(|p| p.split('"').next()).unwrap().to_owned())
        .collect();
    assert_eq!(paths, (0..300).map(|i| format!("/n{i}")).collect::<Vec<_>>());
}

/// With `--log-format json` an access-log line is one flat JSON object (fields at the top
/// level, not under `fields`), as log shippers index them; so is every other line, including
/// those bridged from dependencies' `log` records (without the build machine's `log.file`).
#[tokio::test]
async fn json_lines_are_flat() {
    let config =
        format!("clusters:\n  o: {{ endpoints: [\"{}\"] }}\nroutes:\n  - name: all\n    cluster: o\n", origin("o"));
    let weir = Weir::start_with_args(tempfile::tempdir().unwrap(), &config, &["--log-format", "json"]);
    assert_eq!(client().get(weir.url("/j?q=\"x\"")).send().await.unwrap().status(), 200);
    assert!(eventually(async || !access_lines(&weir).is_empty()).await, "{}", weir.logs());
    let line: serde_json::Value = serde_json::from_str(&access_lines(&weir)[0]).unwrap();
    assert_eq!(line["target"], "weir::access");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "all");
    assert_eq!(line["details"], "via_upstream");
    assert!(line["duration_us"].is_u64() && line["timestamp"].is_string(), "{line}");
    let logs = weir.logs();
    let mut targets = std::collections::BTreeSet::new();
    for text in logs.lines() {
        let line: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(!keys.contains(&"fields") && !keys.iter().any(|k| k.starts_with("log.")), "{text}");
        assert!(line["level"].is_string() && line["timestamp"].is_string() && line["message"].is_string(), "{text}");
        targets.insert(line["target"].as_str().unwrap().to_owned());
    }
    assert!(targets.iter().any(|t| t.starts_with("pingora")), "bridged `log` lines keep their target: {targets:?}");
}

/// A stderr nobody reads (a pipe whose reader is stuck; 64 KiB of buffer) does not hold up
/// requests: lines wait in the access log's buffer, and reach the pipe, all of them, once it
/// is read again. Written inline, the ~350th request would block its worker.
#[tokio::test]
async fn a_stderr_nobody_reads_does_not_hold_up_requests() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.yaml");
    let config = format!(
        "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nserver: {{ threads: 1 }}\nclusters:\n  o: {{ endpoints: [\"{}\"] }}\nroutes:\n  - cluster: o\n",
        origin("o")
    );
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (admin, proxy) = read_ready(&mut child);
    let stderr = child.stderr.take().unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Stop(child);
    let c = client();
    let ready = async || c.get(format!("http://{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200);
    assert!(eventually(ready).await, "weir did not become ready");
    let all = async {
        for i in 0..2000 {
            let resp = c.get(format!("http://{proxy}/r{i}")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    let served = tokio::time::timeout(Duration::from_secs(60), all).await;
    assert!(served.is_ok(), "requests were held up by a stderr nobody reads");
    // Read now: every line arrives, the last ones flushed at exit.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let _ = child.0.wait();
    let logs = reader.join().unwrap();
    let lines = logs.lines().filter(|l| l.contains("weir::access")).count();
    assert_eq!(lines, 2000, "{}", logs.lines().rev().take(5).collect::<Vec<_>>().join("\n"));
}

/// `access_log`: a file with the fields chosen (the path the client sent though a filter
/// rewrote it, the upstream that answered, bytes), reopened on SIGUSR1 after logrotate moved
/// it, and fields changed by a reload.
#[tokio::test]
async fn a_file_log_shows_the_chosen_fields_and_is_reopened_on_sigusr1() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rewrite = serde_json::json!({ "steps": { "request_headers": [["replace_header", 0, ":path", "/rewritten"]] } });
    let config = |fields: &str| {
        format!(
            "access_log:\n  path: access.log\n  format: json\n  fields: [{fields}]\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
            probe(),
            serde_json::to_string(&rewrite).unwrap()
        )
    };
    let all = "client_address, request_id, method, authority, path, protocol, status, bytes_sent, upstream_cluster, upstream_address, upstream_time_us, tls_version";
    let mut weir = Weir::start_in(dir, &config(all));
    let lines = |path: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let c = client();
    let r = c.get(weir.url("/original?q=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("/rewritten"), "the origin got the rewritten path: {body}");
    assert!(eventually(async || lines(&log).len() == 1).await, "{}", weir.logs());
    let line = lines(&log).remove(0);
    assert_eq!(line["path"], "/original?q=1", "the path the client sent: {line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_sent"], body.len());
    assert_eq!(line["upstream_cluster"], "origin");
    assert_eq!(line["upstream_address"], origin.to_string());
    assert!(line["upstream_time_us"].is_u64(), "{line}");
    assert!(line["tls_version"].is_null(), "plaintext: {line}");
    assert_eq!(line["authority"], weir.proxy.to_string());
    assert!(line["client_address"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
    assert_eq!(line["request_id"].as_str().unwrap().len(), 36, "{line}");
    assert!(line.get("route").is_none(), "only the chosen fields: {line}");
    assert!(!weir.logs().contains("weir::access"), "lines go to the file, not stderr");

    // logrotate: move the file away, then SIGUSR1.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    weir.signal("USR1");
    assert!(eventually(async || weir.logs().contains("access log reopened")).await, "{}", weir.logs());
    assert_eq!(c.get(weir.url("/after")).send().await.unwrap().status(), 200);
    assert!(eventually(async || lines(&log).len() == 1).await, "the new file gets the new line");
    assert_eq!(lines(&rotated).len(), 1, "the rotated file keeps its line and gets no more");
    assert_eq!(lines(&log)[0]["path"], "/after");

    // A reload changes the fields.
    weir.rewrite(&config("status, route"));
    assert_eq!(c.post(weir.admin_url("/reload")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(weir.url("/third")).send().await.unwrap().status(), 200);
    assert!(eventually(async || lines(&log).len() == 2).await);
    let line = &lines(&log)[1];
    assert!(line["status"] == 200 && line["route"].is_string() && line.get("path").is_none(), "{line}");
    assert!(weir.alive(), "SIGUSR1 does not end the process");
}

#[test]
fn an_access_log_that_cannot_be_opened_or_has_no_fields_is_refused() {
    let (ok, text) = check_config(
        "listeners: [{ address: 127.0.0.1:0 }]\nclusters:\n  o: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - cluster: o\naccess_log:\n  path: no/such/dir/access.log\n  fields: []\n",
    );
    assert!(!ok, "{text}");
    assert!(text.contains("access_log.path") && text.contains("cannot open it for appending"), "{text}");
    assert!(text.contains("access_log.fields") && text.contains("at least one field"), "{text}");
    let (ok, text) =
        check_config("listeners: [{ address: 127.0.0.1:0 }]\nroutes: []\naccess_log: { fields: [colour] }\n");
    assert!(!ok && text.contains("unknown variant `colour`") && text.contains("client_address"), "{text}");
}
