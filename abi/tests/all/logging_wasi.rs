//! Logging and WASI (docs/abi.md#logging, #time; checklist items 108, 131–134).

use serde_json::json;
use weir_abi::*;

use crate::common::*;

#[test]
fn log_levels_and_stdio() {
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["log", 6, "x"], ["log", 4, "an error"], ["get_log_level"], ["fd_write", 1, "to stdout\n"], ["fd_write", 2, "to stderr"], ["fd_write", 3, "x"],
    ]})));
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let raw = h.log.raw();
    let find = |m: &str| raw.iter().find(|(_, l)| l == m).map(|(lvl, _)| *lvl);
    assert_eq!(find("an error"), Some(LogLevel::Error));
    assert_eq!(find("to stdout"), Some(LogLevel::Info), "one trailing newline removed");
    assert_eq!(find("to stderr"), Some(LogLevel::Error));
    let probe: Vec<_> = raw
        .iter()
        .filter_map(|(_, m)| m.strip_prefix("probe "))
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap())
        .collect();
    assert_eq!(probe[0]["status"], 2, "level 6: BAD_ARGUMENT");
    assert_eq!(probe[2]["level"], 0, "the sink's level");
    assert_eq!(probe[3]["errno"], 0);
    assert_eq!(probe[3]["size"], 10);
    assert_eq!(probe[5]["errno"], 8, "other fds: BADF");
}

#[test]
fn clocks_random_environment_arguments() {
    let h = host();
    let vm = VmConfig { environment: vec![("ONLY".into(), "this".into())], ..Default::default() };
    let p = h.probe_with(
        script(json!({ "request_headers": [
            ["clock", 0], ["clock", 1], ["clock", 1], ["clock", 9], ["random", 16], ["random", 65537], ["environ"], ["args"], ["time"],
        ]})),
        vm,
        FailurePolicy::FailClosed,
    );
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    let l = h.log.take();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let wall = l[0]["nanos"].as_u64().unwrap();
    assert!(now - wall < 5_000_000_000, "realtime agrees with the wall clock");
    assert!(l[2]["nanos"].as_u64() >= l[1]["nanos"].as_u64(), "monotonic");
    assert_eq!(l[3]["errno"], 58, "unknown clock: NOTSUP");
    assert_eq!((l[4]["errno"].clone(), l[5]["errno"].clone()), (json!(0), json!(28)));
    assert_eq!(l[6]["value"], "ONLY=this", "only configured variables");
    assert_eq!((l[7]["size"].clone(), l[7]["value"].clone()), (json!(0), json!("0")));
    assert!(l[8]["nanos"].as_u64().unwrap() >= wall);
}

#[test]
fn a_huge_fd_write_is_bounded_by_the_host() {
    // 1,000 vectors over one 64 KiB buffer: 62.5 MiB nominal. Only the 1 MiB a log line keeps
    // is copied, every byte is reported written (no retry), and more than 1,024 vectors
    // (POSIX's IOV_MAX) is EINVAL.
    let h = host();
    let p = h.probe(script(json!({ "request_headers": [
        ["fd_write_many", 1, 1000, 65536], ["fd_write_many", 1, 1025, 1],
    ]})));
    let started = std::time::Instant::now();
    exchange(&mut FilterChain::new(vec![p]), &mut get("/"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    let raw = h.log.raw();
    let logged = raw.iter().find(|(_, m)| m.starts_with("xxx")).map(|(_, m)| m.len());
    assert_eq!(logged, Some(1 << 20), "one line, capped at 1 MiB");
    let probe: Vec<_> = raw
        .iter()
        .filter_map(|(_, m)| m.strip_prefix("probe "))
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap())
        .collect();
    assert_eq!((probe[0]["errno"].clone(), probe[0]["size"].clone()), (json!(0), json!(1000 * 65536)));
    assert_eq!(probe[1]["errno"], 28, "over IOV_MAX: EINVAL");
}
