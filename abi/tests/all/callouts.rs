//! HTTP and gRPC callouts (docs/abi.md#http-callouts, #grpc-callouts; checklist items 48, 67, 89–95, 98, 100–105, 145–147).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

const CALL: &str =
    r#"["http_call", "auth", [[":method", "GET"], [":path", "/check"], [":authority", "auth"]], "q", [], 500]"#;

fn call() -> serde_json::Value {
    serde_json::from_str(CALL).unwrap()
}

fn pausing(h: &Host, on_response: serde_json::Value) -> std::sync::Arc<PluginSpec> {
    h.probe(json!({
        "steps": { "request_headers": [call()], "http_call_response": on_response },
        "actions": { "request_headers": "pause" },
    }))
}

fn http_callout(o: &Outcome) -> (u32, HttpCallRequest) {
    match o {
        Outcome::Pause { callouts } => match &callouts[..] {
            [Callout { token, kind: CalloutKind::Http(r) }] => (*token, r.clone()),
            other => panic!("{other:?}"),
        },
        other => panic!("expected a pause, got {other:?}"),
    }
}

#[test]
fn pause_for_a_callout_then_resume() {
    let h = host();
    let p = pausing(
        &h,
        json!([
            ["get_headers", 6],
            ["get_buffer", 4, 0, 100],
            ["set_effective_context", "$origin"],
            ["add_header", 0, "x-auth", "ok"],
            ["continue_stream", 0],
            ["add_header", 0, "late", "1"],
        ]),
    );
    let next = h.probe(script(json!({ "request_headers": [["log", 2, "second filter"], ["save", "eos", "$eos"]] })));
    let mut chain = FilterChain::new(vec![p, next]);
    let mut s = get("/");
    let out = chain.on_request_headers(&mut s, true);
    let (token, req) = http_callout(&out);
    assert_eq!(token % 4, 0, "HTTP tokens are multiples of 4");
    assert_eq!(req.cluster, "auth");
    assert_eq!(req.headers.get_str("content-length"), Some("1"));
    assert_eq!(req.timeout, Some(std::time::Duration::from_millis(500)));
    assert_eq!(h.log.take()[0]["status"], 0);
    let resp = HttpCallResponse::new(200, HeaderMap::from_pairs([("x-r", "1")]), "allowed");
    let out = chain.on_callout_result(&mut s, token, CalloutResult::Http(resp));
    assert!(is_continue(&out), "{out:?}");
    let l = h.log.take();
    assert_eq!(l[0]["pairs"][0], json!([":status", "200"]));
    assert_eq!(l[1]["value"], "allowed");
    assert_eq!(l[3]["status"], 0, "request headers writable while paused");
    assert_eq!(l[5]["status"], 2, "not after continue_stream");
    assert_eq!(l[6]["cb"], "request_headers", "the next filter ran after the resume");
    // Envoy's continueDecoding passes the stream's end on: a GET stays a GET for the filters
    // after the one that paused.
    assert_eq!(l[7]["value"], 1, "end_of_stream reaches the filters after the resume");
    assert_eq!(s.request_headers.get_str("x-auth"), Some("ok"));
}

#[test]
fn local_reply_from_the_callout_response() {
    let h = host();
    let p = pausing(&h, json!([["set_effective_context", "$origin"], ["local_response", 403, "", "denied", [], -1]]));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    let (token, _) = http_callout(&chain.on_request_headers(&mut s, true));
    let out =
        chain.on_callout_result(&mut s, token, CalloutResult::Http(HttpCallResponse::new(403, HeaderMap::new(), "")));
    assert!(matches!(out, Outcome::LocalResponse(ref r) if r.status == 403), "{out:?}");
}

#[test]
fn reset_delivers_no_headers_and_broken_connection() {
    let h = host();
    let p = pausing(&h, json!([["get_headers", 6], ["get_status"], ["get_buffer", 4, 0, 10]]));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    let (token, _) = http_callout(&chain.on_request_headers(&mut s, true));
    h.log.take();
    chain.on_callout_result(&mut s, token, CalloutResult::Http(HttpCallResponse::Reset));
    let l = h.log.take();
    assert_eq!(l[0]["ptr_null"], true);
    assert_eq!((l[1]["code"].clone(), l[1]["value"].clone()), (json!(11), json!("reset")));
    // Outside the callback, the call-response body does not exist.
    let p = h.probe(script(json!({ "request_headers": [["get_buffer", 4, 0, 10], ["get_headers", 6]] })));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let l = h.log.take();
    assert_eq!((l[0]["status"].clone(), l[1]["ptr_null"].clone()), (json!(1), json!(true)));
}

#[test]
fn synthesized_timeout_and_unreachable_responses() {
    assert!(matches!(HttpCallResponse::timeout(), HttpCallResponse::Response { ref headers, ref body, .. }
        if headers.get_str(":status") == Some("504") && &body[..] == b"upstream request timeout"));
    assert!(
        matches!(HttpCallResponse::unreachable(), HttpCallResponse::Response { ref headers, .. } if headers.get_str(":status") == Some("503"))
    );
}

#[test]
fn bad_callouts_are_refused() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["http_call", "nowhere", [[":method", "GET"], [":path", "/"], [":authority", "a"]], null, [], 0],
        ["http_call", "auth", [[":method", "GET"], [":path", "/"]], null, [], 0],
        ["grpc_call", "nowhere", "svc", "M", [], "m", 0],
        ["set_effective_context", 999],
    ]})));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let st: Vec<i64> = h.log.take().iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [2, 2, 4, 2], "unknown cluster, missing :authority, unknown gRPC cluster, unknown context");
}

#[test]
fn tokens_are_unique_and_fire_and_forget_calls_are_detached() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [call(), call(), ["grpc_call", "auth", "svc", "M", [], "m", 0], ["grpc_stream", "auth", "svc", "S", []]] })));
    let mut chain = FilterChain::new(vec![p]);
    assert!(is_continue(&chain.on_request_headers(&mut get("/"), true)));
    let tokens: Vec<u32> = chain.take_detached_callouts().iter().map(|(_, c)| c.token).collect();
    assert_eq!(tokens.len(), 4);
    assert_eq!(tokens.iter().map(|t| t % 4).collect::<Vec<_>>(), [0, 0, 1, 2]);
    let mut unique = tokens.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4);
}

#[test]
fn grpc_unary_and_stream_events() {
    let h = host();
    let p = h.probe(json!({
        "steps": {
            "request_headers": [["grpc_call", "auth", "pkg.Svc", "Do", [["k", "v"]], "req", 100], ["grpc_stream", "auth", "pkg.Svc", "Watch", []]],
            "grpc_receive": [["get_buffer", 5, 0, 100]],
            "grpc_close": [["get_status"]],
            "grpc_initial_metadata": [["get_headers", 4]],
            "grpc_trailing_metadata": [["get_header", 5, "t"]],
        },
        "actions": { "request_headers": "pause" },
    }));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    let Outcome::Pause { callouts } = chain.on_request_headers(&mut s, true) else { panic!() };
    let (unary, stream) = (callouts[0].token, callouts[1].token);
    let CalloutKind::Grpc(req) = &callouts[0].kind else { panic!() };
    assert_eq!(
        (req.service.as_str(), req.method.as_str(), req.message.as_deref()),
        ("pkg.Svc", "Do", Some(&b"req"[..]))
    );
    h.log.take();
    chain.on_callout_result(&mut s, unary, CalloutResult::Grpc(GrpcEvent::Message("resp".into())));
    chain.on_callout_result(
        &mut s,
        stream,
        CalloutResult::Grpc(GrpcEvent::InitialMetadata(HeaderMap::from_pairs([("a", "b")]))),
    );
    chain.on_callout_result(
        &mut s,
        stream,
        CalloutResult::Grpc(GrpcEvent::TrailingMetadata(HeaderMap::from_pairs([("t", "x")]))),
    );
    chain.on_callout_result(
        &mut s,
        stream,
        CalloutResult::Grpc(GrpcEvent::Close { status: 5, message: "gone".into() }),
    );
    let l = h.log.take();
    assert_eq!(l[0]["value"], "resp");
    assert_eq!(l[1]["pairs"], json!([["a", "b"]]));
    assert_eq!(l[2]["value"], "x");
    assert_eq!((l[3]["code"].clone(), l[3]["value"].clone()), (json!(5), json!("gone")));
}

#[test]
fn grpc_send_cancel_close_codes() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["grpc_call", "auth", "s", "m", [], "x", 0], ["grpc_send", "$grpc_call", "m", false],
        ["grpc_stream", "auth", "s", "m", []], ["grpc_send", "$grpc_stream", "m", true], ["grpc_close", "$grpc_stream"],
        ["grpc_send", 4001, "m", false], ["grpc_cancel", 4001], ["grpc_cancel", "$grpc_call"],
    ]})));
    let mut chain = FilterChain::new(vec![p]);
    chain.on_request_headers(&mut get("/"), true);
    let st: Vec<i64> = h.log.take().iter().map(|v| v["status"].as_i64().unwrap()).collect();
    assert_eq!(st, [0, 2, 0, 0, 0, 1, 1, 0]);
    let kinds: Vec<String> = chain
        .take_detached_callouts()
        .iter()
        .map(|(_, c)| format!("{:?}", c.kind).split(['(', ' ', '{']).next().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["Grpc", "Grpc", "GrpcSend", "GrpcClose", "GrpcCancel"]);
}
