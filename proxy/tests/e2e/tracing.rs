//! OpenTelemetry tracing through the real binary: W3C trace context from the client, a
//! server span with child spans per filter callback, per callout and for the upstream, their
//! contexts sent upstream and to the callout's service, exported over OTLP/HTTP to a loopback
//! receiver (flushed when weir stops).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// Requests a server received: head (lower-cased) and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback HTTP/1.1 server that answers every request `200` with an empty body and keeps
/// what it received: an OTLP/HTTP receiver, or a callout's service.
fn recording_server() -> (SocketAddr, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let keep = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(conn);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock().unwrap().push((head, body));
                    if reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Every span in OTLP/JSON export requests.
fn spans(received: &Received) -> Vec<Value> {
    let mut all = Vec::new();
    for (_, body) in received.lock().unwrap().iter() {
        let Ok(request) = serde_json::from_slice::<Value>(body) else { continue };
        for rs in request["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                all.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    all
}

/// `traceparent`'s parent id (the span that sent the request), from a recorded head.
fn traceparent(head: &str) -> Option<(String, String)> {
    let value = head.lines().find_map(|l| l.strip_prefix("traceparent:"))?.trim();
    let parts: Vec<&str> = value.split('-').collect();
    Some((parts.get(1)?.to_string(), parts.get(2)?.to_string()))
}

#[tokio::test]
async fn a_request_is_a_server_span_with_filter_upstream_and_callout_children_linked_to_the_caller() {
    let origin = origin("o");
    let (collector, exported) = recording_server();
    let (service, called) = recording_server();
    let script = json!({
        "steps": {
            "request_headers": [["http_call", "service", [[":method", "GET"], [":path", "/check"], [":authority", "service"]], null, [], 2000]],
            "http_call_response": [["set_effective_context", "$origin"], ["continue_stream", 0]],
        },
        "actions": { "request_headers": "pause" },
    });
    let mut weir = Weir::start(&format!(
        "tracing:\n  endpoint: http://{collector}/v1/traces\n  protocol: http_json\n  service_name: edge\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\n  service: {{ endpoints: [\"{service}\"] }}\nplugins:\n  probe: {{ module: {} }}\nroutes:\n  - name: traced\n    cluster: origin\n    filters: [{{ plugin: probe, config: {} }}]\n",
        probe(),
        serde_json::to_string(&script).unwrap()
    ));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let r = client()
        .get(weir.url("/traced"))
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    // weir stops: the spans still buffered are exported before it exits.
    weir.signal("TERM");
    assert!(weir.wait_exit(Duration::from_secs(15)).is_some(), "weir stops");
    let spans = spans(&exported);
    let by_name =
        |name: &str| spans.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no span {name}: {spans:#?}"));
    let server = by_name("GET traced");
    assert_eq!(server["traceId"], trace_id, "the caller's trace continues");
    assert_eq!(server["parentSpanId"], caller, "the server span's parent is the caller's span");
    assert_eq!(server["kind"], 2, "SERVER");
    let server_id = server["spanId"].as_str().unwrap();
    for name in [
        "probe request_headers",
        "probe response_headers",
        "probe log",
        "probe done",
        "probe delete",
        "upstream origin",
        "callout service",
    ] {
        let span = by_name(name);
        assert_eq!(span["traceId"], trace_id, "{name}");
        assert_eq!(span["parentSpanId"], server_id, "{name} is a child of the request's span");
    }
    let attribute = |span: &Value, key: &str| {
        span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| a["value"].clone())
    };
    assert_eq!(attribute(server, "http.response.status_code"), Some(json!({ "intValue": "200" })), "{server}");
    assert_eq!(attribute(server, "http.route"), Some(json!({ "stringValue": "traced" })));
    // The upstream and the callout's service got their spans' context.
    let sent_upstream = seen(&echoed, "traceparent").expect("traceparent upstream");
    assert_eq!(sent_upstream, format!("00-{trace_id}-{}-01", by_name("upstream origin")["spanId"].as_str().unwrap()));
    assert_eq!(seen(&echoed, "tracestate").as_deref(), Some("vendor=1"), "tracestate travels on");
    let (callout_trace, callout_parent) =
        traceparent(&called.lock().unwrap()[0].0).expect("traceparent on the callout");
    assert_eq!(callout_trace, trace_id);
    assert_eq!(callout_parent, by_name("callout service")["spanId"].as_str().unwrap());
    let resource_ok = exported.lock().unwrap().iter().any(|(head, body)| {
        head.starts_with("post /v1/traces")
            && head.contains("content-type: application/json")
            && String::from_utf8_lossy(body).contains("\"edge\"")
    });
    assert!(resource_ok, "OTLP/HTTP JSON to the endpoint, with service.name");
}

#[tokio::test]
async fn a_request_without_trace_context_starts_a_trace_and_protobuf_is_the_default() {
    let origin = origin("o");
    let (collector, exported) = recording_server();
    let mut weir = Weir::start(&format!(
        "tracing: {{ endpoint: \"http://{collector}/v1/traces\" }}\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: origin\n"
    ));
    let r = client().get(weir.url("/")).send().await.unwrap();
    let echoed: Value = r.json().await.unwrap();
    let (trace, parent) = {
        let value = seen(&echoed, "traceparent").expect("a new trace goes upstream");
        let parts: Vec<String> = value.split('-').map(str::to_owned).collect();
        (parts[1].clone(), parts[2].clone())
    };
    assert_eq!(trace.len(), 32);
    assert_ne!(trace, "0".repeat(32));
    assert_eq!(parent.len(), 16);
    weir.signal("TERM");
    assert!(weir.wait_exit(Duration::from_secs(15)).is_some());
    let exported = exported.lock().unwrap();
    let (head, body) = exported.first().expect("spans exported at exit");
    assert!(head.contains("content-type: application/x-protobuf"), "{head}");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert!(hex(body).contains(&trace), "the protobuf export carries the trace id");
}

#[test]
fn a_bad_tracing_section_is_refused() {
    let (ok, text) = check_config(
        "listeners: [{ address: 127.0.0.1:0 }]\nroutes: []\ntracing: { endpoint: \"https://collector:4318/v1/traces\", sampling: 2 }\n",
    );
    assert!(!ok, "{text}");
    assert!(text.contains("tracing.sampling") && text.contains("between 0 and 1"), "{text}");
    assert!(text.contains("tracing.endpoint") && text.contains("https is not supported"), "{text}");
}
