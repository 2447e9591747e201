//! Local replies (docs/abi.md#local-replies; checklist items 76–82, 85, 86, 88).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

fn reply_of(o: Outcome) -> LocalResponse {
    match o {
        Outcome::LocalResponse(r) => r,
        other => panic!("expected a local response, got {other:?}"),
    }
}

#[test]
fn reply_from_request_headers_with_envoys_headers() {
    let h = host();
    let p = h.probe(script(json!({
        "request_headers": [["local_response", 403, "denied by probe", "nope", [["x-a", "1"], ["x-a", "2"]], -1]],
        "response_headers": [["get_header", 2, ":status"]],
        "response_body": [["get_buffer", 1, 0, 100]],
    })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    let r = reply_of(chain.on_request_headers(&mut s, true));
    assert_eq!(r.status, 403);
    assert_eq!(&r.body[..], b"nope");
    assert_eq!(r.headers.get_all(b"x-a").count(), 2, "duplicates kept");
    assert_eq!(r.headers.get_str("content-type"), Some("text/plain"));
    assert_eq!(r.headers.get_str("content-length"), Some("4"));
    assert_eq!(r.details, "denied_by_probe");
    let l = h.log.take();
    assert_eq!(l[1]["value"], "403", "the filter sees its own reply in on_response_headers");
    assert_eq!(l[2]["value"], "nope", "and in on_response_body");
    chain.finish(&mut s);
    assert_eq!(s.info.response_code, Some(403));
}

#[test]
fn empty_body_drops_length_and_type_and_head_has_no_body() {
    let h = host();
    let p = h.probe(script(
        json!({ "request_headers": [["local_response", 401, "", null, [["content-type", "x/y"]], -1]] }),
    ));
    let r = reply_of(FilterChain::new(vec![p]).on_request_headers(&mut get("/"), true));
    assert!(r.headers.get(b"content-type").is_none() && r.headers.get(b"content-length").is_none());

    let p = h.probe(script(json!({ "request_headers": [["local_response", 200, "", "body", [], -1]] })));
    let mut head = get("/");
    head.request_headers.replace(b":method", "HEAD");
    let r = reply_of(FilterChain::new(vec![p]).on_request_headers(&mut head, true));
    assert!(r.body.is_empty());
    assert_eq!(r.headers.get_str("content-length"), Some("4"));
}

#[test]
fn grpc_requests_get_trailers_only_replies() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [["local_response", 403, "", "no way", [], -1]] })));
    let mut s = get("/svc/M");
    s.request_headers.add(b"content-type", "application/grpc");
    let r = reply_of(FilterChain::new(vec![p]).on_request_headers(&mut s, true));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get_str("grpc-status"), Some("7"));
    assert_eq!(r.headers.get_str("grpc-message"), Some("no way"));
}

#[test]
fn reply_from_response_headers_replaces_the_upstream_response() {
    let h = host();
    let p = h.probe(script(json!({ "response_headers": [["local_response", 502, "", "bad", [], -1]] })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    chain.on_request_headers(&mut s, true);
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    let r = reply_of(chain.on_response_headers(&mut s, true));
    assert_eq!((r.status, &r.body[..]), (502, &b"bad"[..]));
}

#[test]
fn reply_after_the_response_started_resets_and_root_replies_do_nothing() {
    let h = host();
    let p = h.probe(script(json!({
        "configure": [["local_response", 500, "", "x", [], -1]],
        "response_body": [["local_response", 500, "", "x", [], -1]],
    })));
    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    assert!(is_continue(&chain.on_request_headers(&mut s, true)));
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    chain.on_response_headers(&mut s, false);
    chain.mark_response_started();
    s.response_body.extend_from_slice(b"data");
    assert!(matches!(chain.on_response_body(&mut s, true), Outcome::Close));
    assert_eq!(h.log.take()[0]["status"], 0, "from a root context: OK");
}

/// A reply the proxy makes itself (an upstream failure, say) runs through the filters'
/// response callbacks before the response phase, as Envoy's local replies pass its encoder
/// filters (`sendLocalReplyViaFilterChain`), with a filter's edits in what is sent; once the
/// filters saw the upstream's response headers it is returned as it is (Envoy then sends its
/// reply directly).
#[test]
fn the_proxys_own_replies_pass_response_callbacks_until_the_response_phase() {
    let h = host();
    let p = h.probe(script(json!({
        "response_headers": [["add_header", 2, "x-seen", "1"], ["replace_header", 2, ":status", "502"]],
    })));
    let reply = || LocalResponse {
        status: 503,
        headers: HeaderMap::from_pairs([("content-type", "text/plain")]),
        body: bytes::Bytes::from_static(b"down\n"),
        details: "upstream_reset_before_response_started".into(),
    };

    let mut chain = FilterChain::new(vec![p.clone()]);
    let mut s = get("/");
    assert!(is_continue(&chain.on_request_headers(&mut s, true)));
    let sent = chain.encode_reply(&mut s, reply());
    assert_eq!((sent.status, &sent.body[..]), (502, &b"down\n"[..]), "the filter's status, the reply's body");
    assert_eq!(sent.headers.get(b"x-seen").map(|v| &v[..]), Some(&b"1"[..]));
    assert_eq!(sent.details, "upstream_reset_before_response_started");
    chain.finish(&mut s);

    let mut chain = FilterChain::new(vec![p]);
    let mut s = get("/");
    assert!(is_continue(&chain.on_request_headers(&mut s, true)));
    s.response_headers = HeaderMap::from_pairs([(":status", "200")]).into();
    assert!(is_continue(&chain.on_response_headers(&mut s, false)));
    let sent = chain.encode_reply(&mut s, reply());
    assert_eq!((sent.status, sent.headers.get(b"x-seen")), (503, None), "after the response phase began");
    chain.finish(&mut s);
}
