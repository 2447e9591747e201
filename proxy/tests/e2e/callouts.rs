//! Callouts as Envoy delivers them: a gRPC call over HTTP/2 to a cluster, and a timeout that
//! reaches the filter as a 504.

use serde_json::json;

use crate::harness::*;

/// A gRPC server (h2c) answering every unary call with the message `pong:<request message>`.
fn grpc_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut conn = h2::server::handshake(tcp).await.unwrap();
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        tokio::spawn(async move {
                            let path = req.uri().path().to_owned();
                            let mut body = req.into_body();
                            let mut data = Vec::new();
                            while let Some(Ok(chunk)) = body.data().await {
                                let _ = body.flow_control().release_capacity(chunk.len());
                                data.extend_from_slice(&chunk);
                            }
                            let message =
                                format!("pong:{}:{}", path, String::from_utf8_lossy(data.get(5..).unwrap_or(&[])));
                            let mut framed = vec![0u8];
                            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
                            framed.extend_from_slice(message.as_bytes());
                            let resp = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let mut send = respond.send_response(resp, false).unwrap();
                            send.send_data(framed.into(), false).unwrap();
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            send.send_trailers(trailers).unwrap();
                        });
                    }
                });
            }
        });
    });
    addr
}

fn probe_config(clusters: &str, script: serde_json::Value) -> String {
    format!(
        "clusters:\n{clusters}plugins:\n  probe: {{ module: {} }}\nroutes:\n  - cluster: origin\n    filters: [{{ plugin: probe, config: {script} }}]\n",
        probe()
    )
}

#[tokio::test]
async fn grpc_unary_call_over_http2() {
    let (origin, grpc) = (origin("o"), grpc_server());
    let weir = Weir::start(&probe_config(
        &format!("  origin: {{ endpoints: [\"{origin}\"] }}\n  grpc: {{ endpoints: [\"{grpc}\"], http2: true }}\n"),
        json!({
            "steps": {
                "request_headers": [["grpc_call", "grpc", "pkg.Echo", "Ping", [["x-md", "1"]], "hello", 2000]],
                "grpc_receive": [["get_buffer", 5, 0, 100], ["set_effective_context", "$origin"], ["continue_stream", 0]],
                "grpc_close": [["get_status"], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }),
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let lines = weir.probe_lines();
    let got = lines.iter().find(|l| l["cb"] == "grpc_receive" && l["op"] == "get_buffer");
    assert_eq!(got.map(|l| l["value"].clone()), Some(json!("pong:/pkg.Echo/Ping:hello")), "{lines:#?}");
}

#[tokio::test]
async fn callout_timeout_reaches_the_filter_as_504() {
    let origin = origin("o");
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let _held: Vec<_> = silent.incoming().flatten().collect();
    });
    let weir = Weir::start(&probe_config(
        &format!("  origin: {{ endpoints: [\"{origin}\"] }}\n  silent: {{ endpoints: [\"{silent_addr}\"] }}\n"),
        json!({
            "steps": {
                "request_headers": [["http_call", "silent", [[":method", "GET"], [":path", "/"], [":authority", "silent"]], null, [], 200]],
                "http_call_response": [["get_header", 6, ":status"], ["get_buffer", 4, 0, 100], ["set_effective_context", "$origin"], ["continue_stream", 0]],
            },
            "actions": { "request_headers": "pause" },
        }),
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let lines = weir.probe_lines();
    let status = lines.iter().find(|l| l["op"] == "get_header" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(status["value"], "504");
    let body = lines.iter().find(|l| l["op"] == "get_buffer" && l["cb"] == "http_call_response").unwrap();
    assert_eq!(body["value"], "upstream request timeout");
}
