//! The examples in `examples/` build (by the fixtures' build script, as their READMEs say) and
//! do what they say, with their own configurations (ports and paths adjusted for the test).

use serde_json::Value;

use crate::harness::FetchJson;
use crate::harness::*;

/// An example configuration with its listener, admin and origins moved to test addresses and
/// the module paths pointed at the built artifacts.
fn example_config(name: &str, origins: &[(&str, std::net::SocketAddr)], modules: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs").join(name);
    let mut text = std::fs::read_to_string(path).unwrap();
    text = text.replace("127.0.0.1:8080", "127.0.0.1:0").replace("127.0.0.1:9901", "127.0.0.1:0");
    for (from, to) in origins {
        text = text.replace(from, &to.to_string());
    }
    for (from, to) in modules {
        text = text.replace(from, to);
    }
    text
}

#[tokio::test]
async fn rust_example_filter() {
    let origin = origin("o");
    let weir = Weir::start(&example_config(
        "rust-filter.yaml",
        &[("127.0.0.1:9000", origin)],
        &[("../rust-filter/target/wasm32-wasip1/release/hello_filter.wasm", weir_test_fixtures::EXAMPLE_RUST)],
    ));
    let c = client();
    let r = c.get(weir.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-hello").is_some());
    let r = c.get(weir.url("/example/ping")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "pong\n");
    let metrics = c.get(weir.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("example_requests_total"), "{metrics}");
}

#[tokio::test]
async fn assemblyscript_example_filter() {
    let origin = origin("o");
    let weir = Weir::start(&example_config(
        "as-filter.yaml",
        &[("127.0.0.1:9000", origin)],
        &[("../as-filter/build/as_example.wasm", weir_test_fixtures::EXAMPLE_AS)],
    ));
    let c = client();
    let r = c.get(weir.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-hello-as").is_some());
    assert_eq!(c.get(weir.url("/example/as-ping")).send().await.unwrap().text().await.unwrap(), "pong from as\n");
}

#[tokio::test]
async fn auth_and_rate_limit_and_ab_split_examples() {
    let (blue, green) = (origin("blue"), origin("green"));
    let weir = Weir::start(&example_config("auth-and-ratelimit.yaml", &[("127.0.0.1:9000", blue)], &[]));
    let c = client();
    assert_eq!(c.get(weir.url("/")).send().await.unwrap().status(), 401);
    let r = c.get(weir.url("/")).header("x-api-key", "example-key-123").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-ratelimit-limit").is_some());
    drop(weir);

    let weir =
        Weir::start(&example_config("ab-split.yaml", &[("127.0.0.1:9000", blue), ("127.0.0.1:9001", green)], &[]));
    let forced: Value = c.get(weir.url("/")).header("x-variant", "green").fetch_json().await;
    assert_eq!(forced["origin"], "green");
}

#[tokio::test]
async fn development_loop_example_picks_up_a_rebuilt_filter() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    // The filter's build output, as `cargo build` leaves it; the config points at it.
    let module = dir.path().join("hello_filter.wasm");
    std::fs::copy(weir_test_fixtures::EXAMPLE_RUST, &module).unwrap();
    let config = example_config(
        "dev-reload.yaml",
        &[("127.0.0.1:9000", origin)],
        &[("../rust-filter/target/wasm32-wasip1/release/hello_filter.wasm", module.to_str().unwrap())],
    );
    let weir = Weir::start_in(dir, &config);
    let c = client();
    let greeting =
        async || c.get(weir.url("/")).send().await.unwrap().headers()["x-hello"].to_str().unwrap().to_owned();
    assert_eq!(greeting().await, "hello from the development loop");
    // "Rebuild" the filter: the same code as a different module (a custom section added).
    let mut wasm = std::fs::read(weir_test_fixtures::EXAMPLE_RUST).unwrap();
    wasm.extend_from_slice(&[0, 4, 3, b'd', b'e', b'v']);
    std::fs::write(&module, &wasm).unwrap();
    let c2 = client();
    assert!(
        eventually(async || {
            let ready: Value = c2.get(weir.admin_url("/ready")).fetch_json().await;
            ready["generation"].as_u64().unwrap() >= 2
        })
        .await,
        "the rebuilt module was loaded"
    );
    assert_eq!(greeting().await, "hello from the development loop", "and serves");
}
