//! The admin listener behind a bearer token (`admin.token_file`): every endpoint but `/ready`
//! (probed by load balancers and kubelets without credentials) needs it, and rotating the
//! file's content takes effect without a restart.

use crate::harness::*;

#[tokio::test]
async fn admin_requests_need_the_token_except_ready() {
    let origin = origin("o");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "s3cret\n").unwrap();
    let token_dir = dir.path().to_path_buf();
    let weir = Weir::start_in(
        dir,
        &format!(
            "admin: {{ address: 127.0.0.1:0, token_file: admin.token }}\nclusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nroutes:\n  - cluster: o\n"
        ),
    );
    let c = client();
    assert_eq!(c.get(weir.admin_url("/ready")).send().await.unwrap().status(), 200, "probes need no token");
    let endpoints = [
        ("GET", "/metrics"),
        ("HEAD", "/metrics"),
        ("GET", "/config"),
        ("GET", "/plugins"),
        ("GET", "/clusters"),
        ("GET", "/server_info"),
        ("GET", "/logging"),
        ("POST", "/logging?level=info"),
        ("POST", "/reload"),
    ];
    for (method, path) in endpoints {
        let url = weir.admin_url(path);
        let without = c.request(method.parse().unwrap(), &url).send().await.unwrap();
        assert_eq!(without.status(), 401, "{method} {path} without the token");
        assert_eq!(without.headers()["www-authenticate"], "Bearer");
        let wrong = c.request(method.parse().unwrap(), &url).bearer_auth("s3cre").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
        let right = c.request(method.parse().unwrap(), &url).bearer_auth("s3cret").send().await.unwrap();
        assert_eq!(right.status(), 200, "{method} {path} with the token");
    }
    // Rotation: the file is read at each request.
    std::fs::write(token_dir.join("admin.token"), "n3w").unwrap();
    let old = c.get(weir.admin_url("/metrics")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(old.status(), 401);
    let new = c.get(weir.admin_url("/metrics")).bearer_auth("n3w").send().await.unwrap();
    assert_eq!(new.status(), 200);
}

#[test]
fn an_unreadable_or_empty_token_file_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.token"), " \n").unwrap();
    for (file, expected) in [("missing.token", "cannot read"), ("empty.token", "is empty")] {
        let path = dir.path().join("weir.yaml");
        std::fs::write(
            &path,
            format!("listeners: [{{ address: 127.0.0.1:0 }}]\nadmin: {{ token_file: {file} }}\nclusters:\n  o: {{ endpoints: [\"127.0.0.1:1\"] }}\nroutes:\n  - cluster: o\n"),
        )
        .unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_weir")).arg("-t").arg("-c").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(said.contains("admin.token_file") && said.contains(expected), "{said}");
    }
}

/// `/plugins` reports each VM's resident memory (pages the guests touched, as the kernel
/// counts them) next to the linear memory they have and the limit they may reach.
#[tokio::test]
async fn plugins_report_resident_memory_per_vm() {
    let origin = origin("o");
    let weir = Weir::start(&format!(
        "clusters:\n  o: {{ endpoints: [\"{origin}\"] }}\nplugins:\n  t: {{ module: {} }}\nroutes:\n  - cluster: o\n    filters: [{{ plugin: t }}]\n",
        trivial()
    ));
    assert_eq!(client().get(weir.url("/")).send().await.unwrap().status(), 200);
    let plugins = client().get(weir.admin_url("/plugins")).fetch_json().await;
    let t = &plugins["plugins"]["t"];
    let (resident, memory, limit) = (
        t["resident_bytes"].as_u64().unwrap(),
        t["memory_bytes"].as_u64().unwrap(),
        t["memory_limit_bytes"].as_u64().unwrap(),
    );
    assert!(resident > 0 && resident <= memory && memory < limit, "{t}");
}
