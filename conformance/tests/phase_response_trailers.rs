//! Response trailers (gRPC over an HTTP/2 upstream): `on_response_trailers` sees them and may
//! edit them; they stay readable in `on_log`.

use crate::suite::*;

conformance! {
    /// §10: 50
    /// proves: proxy_on_response_trailers, proxy_get_header_map_value, proxy_add_header_map_value
    async fn response_trailers_are_seen_and_editable(mode) {
        let grpc = crate::harness::grpc_server();
        let proxy = Proxy::setup(
            mode,
            Some(&format!("{{ endpoints: [\"{grpc}\"], http2: true }}")),
            "",
            &plugin(probe(), ""),
            &format!(
                "[{{ plugin: probe, config: {} }}]",
                steps(json!({
                    "response_trailers": [["get_header", 3, "grpc-status"], ["add_header", 3, "x-trailer", "added"]],
                    "log": [["get_header", 3, "grpc-status"], ["add_header", 3, "x-late", "1"]],
                }))
            ),
            "",
        );
        let message = [0u8, 0, 0, 0, 2, b'h', b'i'];
        let request = proxy
            .http2()
            .post(proxy.url("/pkg.Echo/Ping"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(message.to_vec());
        let resp = proxy.send(request).await;
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert!(body.ends_with(b"pong:/pkg.Echo/Ping:hi"), "{body:?}");
        let trailers = proxy.wait_lines("response_trailers", 2).await;
        assert_eq!((trailers[0]["status"].clone(), trailers[0]["value"].clone()), (json!(0), json!("0")));
        assert_eq!(trailers[1]["status"], 0, "trailers are writable in their callback");
        let log = proxy.wait_lines("log", 2).await;
        assert_eq!(log[0]["value"], "0", "readable in on_log");
        assert_eq!(log[1]["status"], 2, "read-only in on_log");
    }
}
