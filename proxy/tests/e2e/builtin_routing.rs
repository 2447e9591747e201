//! The built-in header-rewrite and ab-routing filters through weir (issue 4).

use std::collections::HashMap;

use serde_json::Value;

use crate::harness::FetchJson;
use crate::harness::*;

#[tokio::test]
async fn header_rewrite_edits_headers_path_and_query() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        r#"clusters:
  origin: {{ endpoints: ["{origin}"] }}
plugins:
  rewrite: {{ builtin: header-rewrite }}
routes:
  - match: {{ path_prefix: /api/ }}
    cluster: origin
    filters:
      - plugin: rewrite
        config:
          request:
            remove: [x-internal]
            set: [{{ name: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }}, {{ name: x-rid, value: "%REQUEST_ID%" }}]
            add: [{{ name: x-version, value: "%PATH_CAPTURE(1)%" }}]
          response:
            set: [{{ name: x-served-by, value: weir }}]
            remove: [x-demo-origin]
          path: {{ regex: {{ pattern: "^/api/v(\\d+)/(.*)$", substitution: "/\\2" }} }}
          query: {{ add: [{{ name: api-version, value: "%PATH_CAPTURE(1)%" }}], remove: [debug] }}
"#
    ));
    let resp = client()
        .get(weir.url("/api/v2/orders/42?debug=1&keep=yes"))
        .header("x-internal", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-served-by"], "weir");
    assert!(resp.headers().get("x-demo-origin").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/orders/42?keep=yes&api-version=2");
    assert_eq!(seen(&body, "x-internal"), None);
    assert_eq!(seen(&body, "x-client").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen(&body, "x-version").as_deref(), Some("2"));
    assert_eq!(seen(&body, "x-rid"), seen(&body, "x-request-id"));
}

fn split_config(stable: std::net::SocketAddr, canary: std::net::SocketAddr) -> String {
    format!(
        r#"clusters:
  stable: {{ endpoints: ["{stable}"] }}
  canary: {{ endpoints: ["{canary}"] }}
plugins:
  split: {{ builtin: ab-routing }}
routes:
  - cluster: stable
    filters:
      - plugin: split
        config:
          variants: [{{ name: stable, cluster: stable, weight: 70 }}, {{ name: canary, cluster: canary, weight: 30 }}]
          sticky: {{ header: x-user }}
          override: {{ header: x-variant }}
          set_cookie: {{ name: weir_variant, max_age_seconds: 60 }}
"#
    )
}

#[tokio::test]
async fn ab_routing_splits_by_weight_sticks_and_overrides() {
    let (stable, canary) = (origin("stable"), origin("canary"));
    let weir = Weir::start(&split_config(stable, canary));
    let c = client();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let n = 600;
    for i in 0..n {
        let body: Value = c.get(weir.url("/")).header("x-user", format!("user-{i}")).fetch_json().await;
        assert_eq!(seen(&body, "x-weir-variant").as_deref(), body["origin"].as_str(), "the origin is told the variant");
        *counts.entry(body["origin"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let canary_share = f64::from(counts["canary"]) / f64::from(n);
    assert!((0.24..=0.36).contains(&canary_share), "canary got {canary_share:.3} of requests, configured 0.30");

    let first: Value = c.get(weir.url("/")).header("x-user", "alice").fetch_json().await;
    for _ in 0..5 {
        let again: Value = c.get(weir.url("/")).header("x-user", "alice").fetch_json().await;
        assert_eq!(again["origin"], first["origin"], "sticky on x-user");
    }
    let forced: Value = c.get(weir.url("/")).header("x-user", "alice").header("x-variant", "canary").fetch_json().await;
    assert_eq!(forced["origin"], "canary");

    let resp = c.get(weir.url("/")).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("weir_variant=") && cookie.contains("Max-Age=60"), "{cookie}");
    let pinned = cookie.split(';').next().unwrap().to_owned();
    let variant = pinned.split('=').nth(1).unwrap().to_owned();
    for _ in 0..5 {
        let r = c.get(weir.url("/")).header("cookie", &pinned).send().await.unwrap();
        assert!(r.headers().get("set-cookie").is_none(), "no new cookie once pinned");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["origin"].as_str(), Some(variant.as_str()));
    }
}
