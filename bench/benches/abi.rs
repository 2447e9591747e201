//! Micro benchmarks of the Proxy-Wasm host. Group names: `<layer> - <what> - <case>`.
//!
//! Run: `cargo bench -p weir-bench --bench abi`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_abi::{FilterChain, Vm};
use weir_bench::{request, runtime, trivial};

fn instantiate(c: &mut Criterion) {
    let rt = runtime();
    let plugin = trivial(&rt, "");
    let wasm = weir_test_fixtures::read(weir_test_fixtures::TRIVIAL);
    c.bench_function("vm - instantiate - cached module (start functions + root context)", |b| {
        b.iter(|| {
            let mut vm = Vm::new(&plugin.vm).unwrap();
            black_box(vm.start_plugin(&plugin).unwrap());
        })
    });
    c.bench_function("module - load - cache hit", |b| b.iter(|| black_box(rt.load_module(&wasm).unwrap())));
    let mut g = c.benchmark_group("module - load");
    g.sample_size(10);
    g.bench_function("compile (no cache)", |b| {
        b.iter(|| {
            let fresh = runtime();
            black_box(fresh.load_module(&wasm).unwrap())
        })
    });
    g.finish();
}

fn callbacks(c: &mut Criterion) {
    let rt = runtime();
    for (name, config, headers) in [
        ("callback - on_request_headers - trivial", "", 8),
        ("hostcall - get_header_map_pairs - 20 headers", "pairs", 20),
        ("hostcall - add_header_map_value - 1 header", "header", 8),
    ] {
        let plugin = trivial(&rt, config);
        let mut chain = FilterChain::new(vec![plugin]);
        let mut s = request(headers);
        chain.on_request_headers(&mut s, true);
        let base = s.request_headers.clone();
        c.bench_function(name, |b| {
            b.iter(|| {
                s.request_headers.clone_from(&base);
                black_box(chain.on_request_headers(&mut s, true))
            })
        });
    }
    let plugin = trivial(&rt, "");
    c.bench_function("chain - whole request - trivial filter (create, headers, log, done, delete)", |b| {
        b.iter(|| {
            let mut chain = FilterChain::new(vec![plugin.clone()]);
            let mut s = request(8);
            black_box(chain.on_request_headers(&mut s, true));
            chain.finish(&mut s);
        })
    });
}

/// One whole request (headers both ways, log) through each built-in filter, with a typical
/// configuration.
fn builtins(c: &mut Criterion) {
    let rt = runtime();
    rt.set_clusters(["stable".to_string(), "canary".to_string()]);
    let cases: [(&str, &str); 4] = [
        (
            "header-rewrite",
            r#"{"request":{"set":[{"name":"x-client","value":"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}]},"response":{"set":[{"name":"x-served-by","value":"weir"}]}}"#,
        ),
        (
            "ab-routing",
            r#"{"variants":[{"name":"stable","cluster":"stable","weight":90},{"name":"canary","cluster":"canary","weight":10}],"sticky":{"header":"x-user"}}"#,
        ),
        (
            "rate-limit",
            r#"{"rules":[{"name":"per-client","descriptors":["client_address"],"capacity":1000000000,"refill_per_second":1000000}]}"#,
        ),
        ("auth", r#"{"api_keys":{"header":"x-api-key","keys":[{"name":"bench","key":"bench-key-0123456789"}]}}"#),
    ];
    for (name, config) in cases {
        let wasm = weir::builtin::module(name).expect("built-in");
        let module = rt.load_module(wasm).unwrap();
        let vm = rt.vm(module, weir_abi::VmConfig { vm_id: name.into(), ..Default::default() }).unwrap();
        let plugin = rt.plugin(
            &vm,
            weir_abi::PluginConfig { name: name.into(), configuration: config.into(), ..Default::default() },
        );
        c.bench_function(&format!("filter - whole request - {name}"), |b| {
            b.iter(|| {
                let mut chain = FilterChain::new(vec![plugin.clone()]);
                let mut s = request(12);
                s.request_headers.add(b"x-api-key", "bench-key-0123456789");
                s.request_headers.add(b"x-user", "user-42");
                s.info.source = Some("10.0.0.1:4000".parse().unwrap());
                black_box(chain.on_request_headers(&mut s, true));
                s.response_headers =
                    weir_abi::HeaderMap::from_pairs([(":status", "200"), ("content-length", "2")]).into();
                black_box(chain.on_response_headers(&mut s, true));
                chain.finish(&mut s);
            })
        });
    }
}

criterion_group!(benches, instantiate, callbacks, builtins);
criterion_main!(benches);
