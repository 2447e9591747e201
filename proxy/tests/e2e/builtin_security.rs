//! The built-in auth and rate-limit filters through weir (issue 4): the callout path for
//! auth, concurrency across workers for rate limiting.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::harness::FetchJson;
use crate::harness::*;

#[tokio::test]
async fn api_keys_identity_and_challenges() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        r#"clusters:
  origin: {{ endpoints: ["{origin}"] }}
plugins:
  auth: {{ builtin: auth }}
routes:
  - cluster: origin
    filters:
      - plugin: auth
        config:
          exempt_paths: ["/health"]
          api_keys: {{ header: x-api-key, query: api_key, keys: [{{ name: ci-bot, key: s3cr3t-key }}] }}
"#
    ));
    let c = client();
    let r = c.get(weir.url("/x")).header("x-auth-identity", "admin").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(c.get(weir.url("/x")).header("x-api-key", "wrong").send().await.unwrap().status(), 401);
    let body: Value =
        c.get(weir.url("/x")).header("x-api-key", "s3cr3t-key").header("x-auth-identity", "admin").fetch_json().await;
    assert_eq!(seen(&body, "x-auth-identity").as_deref(), Some("ci-bot"), "identity set, never the client's");
    let body: Value = c.get(weir.url("/x?api_key=s3cr3t-key")).fetch_json().await;
    assert_eq!(seen(&body, "x-auth-identity").as_deref(), Some("ci-bot"), "key in the query");
    let body: Value = c.get(weir.url("/health")).header("x-auth-identity", "admin").fetch_json().await;
    assert_eq!(seen(&body, "x-auth-identity"), None, "exempt, and still not spoofable");
}

#[tokio::test]
async fn external_authorization_by_callout() {
    let origin = origin("o");
    let (authz, checks) = authz_server();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let weir = Weir::start(&format!(
        r#"clusters:
  origin: {{ endpoints: ["{origin}"] }}
  authz: {{ endpoints: ["{authz}"] }}
  dead: {{ endpoints: ["{dead}"] }}
plugins:
  auth: {{ builtin: auth }}
routes:
  - match: {{ path_prefix: /down }}
    cluster: origin
    filters:
      - plugin: auth
        config: {{ external: {{ cluster: dead, path: /check, timeout_ms: 1000 }} }}
  - cluster: origin
    filters:
      - plugin: auth
        config:
          external: {{ cluster: authz, path: /check, timeout_ms: 1000, headers_to_send: [authorization], headers_from_response: [x-tenant] }}
"#
    ));
    let c = client();
    let r = c
        .post(weir.url("/orders"))
        .header("authorization", "Bearer allow")
        .header("x-tenant", "evil")
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(seen(&body, "x-tenant").as_deref(), Some("acme"), "header copied from the authz answer");
    assert_eq!(body["body_bytes"], 5, "the held body follows after the callout");
    assert_eq!(c.get(weir.url("/orders")).header("authorization", "Bearer deny").send().await.unwrap().status(), 403);
    assert_eq!(checks.load(Ordering::SeqCst), 2);
    assert_eq!(
        c.get(weir.url("/down")).send().await.unwrap().status(),
        403,
        "fails closed when the service is unreachable"
    );
}

#[tokio::test]
async fn rate_limit_holds_across_workers() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        r#"server: {{ threads: 2 }}
clusters:
  origin: {{ endpoints: ["{origin}"] }}
plugins:
  limiter: {{ builtin: rate-limit }}
routes:
  - cluster: origin
    filters:
      - plugin: limiter
        config: {{ rules: [{{ name: all, capacity: 30, refill_per_second: 0.001 }}] }}
"#
    ));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = weir.url("/");
        tasks.push(tokio::spawn(async move {
            // A fresh client per task: separate connections, spread over both workers.
            let c = client();
            let mut statuses = Vec::new();
            for _ in 0..20 {
                let r = c.get(&url).send().await.unwrap();
                if r.status() == 429 {
                    assert!(r.headers().get("retry-after").is_some());
                    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
                    assert_eq!(r.headers()["x-ratelimit-limit"], "30");
                }
                statuses.push(r.status().as_u16());
            }
            statuses
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        for s in t.await.unwrap() {
            match s {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    let refilled = (started.elapsed().as_secs_f64() * 0.001).ceil() as u32;
    // Creating the key is a compare-and-swap too (docs/filters/rate-limit.md); the margin of
    // two is the fail-open rule's, for a bucket contended 16 times in a row.
    assert!(ok >= 30 && ok <= 30 + refilled + 2, "admitted {ok} of 160 with a bucket of 30");
    assert_eq!(ok + limited, 160);
}

#[tokio::test]
async fn rate_limit_buckets_survive_a_reload_with_the_same_vm_id() {
    let origin = origin("o");
    let config = |capacity: u32| {
        format!(
            "listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nclusters:\n  origin: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  limiter: {{ builtin: rate-limit, vm_id: limits }}\nroutes:\n  - cluster: origin\n    filters:\n      - plugin: limiter\n        config: {{ rules: [{{ name: all, capacity: {capacity}, refill_per_second: 0.001 }}] }}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.yaml");
    let weir = Weir::start_in(dir, &config(3));
    let c = client();
    for _ in 0..3 {
        assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 200);
    }
    // A new configuration (a new generation with fresh VMs; capacity raised to 10) keeps the
    // emptied bucket: a reset one would admit 10 more requests.
    std::fs::write(&path, config(10)).unwrap();
    let r = c.post(weir.admin_url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 429, "the bucket was not reset by the reload");
}
