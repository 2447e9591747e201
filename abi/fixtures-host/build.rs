//! Builds the test fixtures from source: the Rust SDK filters in `../fixtures` (a workspace of
//! its own, for wasm32-wasip1), the examples, and the conformance suite's probes (Rust SDK and
//! AssemblyScript), and writes their paths into `fixtures.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let examples = here.join("../../examples");
    let probes = here.join("../../conformance/probes");

    let mut fixtures: Vec<(String, String, PathBuf)> = Vec::new();
    for a in weir_wasm_build::build_workspace(&here.join("../fixtures"), &["probe", "trivial"]) {
        fixtures.push((a.name.to_uppercase(), format!("`{}.wasm`, built from `abi/fixtures`.", a.name), a.path));
    }
    // The examples filter authors copy: built as their READMEs say, so CI runs them.
    let rust_example = weir_wasm_build::build_workspace(&examples.join("rust-filter"), &["hello_filter"]);
    fixtures.push((
        "EXAMPLE_RUST".into(),
        "`examples/rust-filter`, built as its README says.".into(),
        rust_example[0].path.clone(),
    ));
    let as_example = assemblyscript(&examples.join("as-filter"), &out, "as_example");
    fixtures.push(("EXAMPLE_AS".into(), "`examples/as-filter`, built with npm.".into(), as_example));
    // The conformance suite's family probes (conformance/probes/SPEC.md), one per SDK.
    let family = weir_wasm_build::build_workspace(&probes.join("rust"), &["family-probe"]);
    fixtures.push((
        "FAMILY_PROBE".into(),
        "The Rust SDK family probe (`conformance/probes/rust`).".into(),
        family[0].path.clone(),
    ));
    let family_as = assemblyscript(&probes.join("as"), &out, "family_probe_as");
    fixtures.push((
        "FAMILY_PROBE_AS".into(),
        "The AssemblyScript family probe (`conformance/probes/as`).".into(),
        family_as,
    ));

    let mut code = String::new();
    for (name, doc, path) in fixtures {
        let _ = writeln!(code, "/// {doc}\npub const {name}: &str = {path:?};");
    }
    std::fs::write(out.join("fixtures.rs"), code).expect("write fixtures.rs");
}

/// Builds the AssemblyScript project in `dir` with npm into `<out>/<name>.wasm` (and `.wat`).
fn assemblyscript(dir: &Path, out: &Path, name: &str) -> PathBuf {
    let wasm = out.join(format!("{name}.wasm"));
    let bin = format!("--binaryFile={}", wasm.display());
    let text = format!("--textFile={}", out.join(format!("{name}.wat")).display());
    weir_wasm_build::build_npm_project(dir, "build", &[&bin, &text], &wasm);
    wasm
}
