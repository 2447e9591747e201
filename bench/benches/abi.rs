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

criterion_group!(benches, instantiate, callbacks);
criterion_main!(benches);
