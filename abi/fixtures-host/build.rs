//! Builds the test fixtures from source: the Rust SDK filters in `../fixtures` (a workspace of
//! its own, for wasm32-wasip1), the AssemblyScript filter in `../fixtures-as` (npm), the
//! examples, and the conformance suite's probes, and writes their paths into `fixtures.rs`.

use std::path::PathBuf;

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let rust = weir_wasm_build::build_workspace(&here.join("../fixtures"), &["probe", "trivial"]);

    let as_out = out.join("as_filter.wasm");
    let bin = format!("--binaryFile={}", as_out.display());
    let text = format!("--textFile={}", out.join("as_filter.wat").display());
    weir_wasm_build::build_npm_project(&here.join("../fixtures-as"), "build", &[&bin, &text], &as_out);

    // The examples filter authors copy (examples/): built the same way, so CI runs them.
    let examples = here.join("../../examples");
    let rust_example = weir_wasm_build::build_workspace(&examples.join("rust-filter"), &["hello_filter"]);
    let as_example = out.join("as_example.wasm");
    let bin = format!("--binaryFile={}", as_example.display());
    let text = format!("--textFile={}", out.join("as_example.wat").display());
    weir_wasm_build::build_npm_project(&examples.join("as-filter"), "build", &[&bin, &text], &as_example);

    // The conformance suite's family probes (conformance/probes/SPEC.md), one per SDK.
    let probes = here.join("../../conformance/probes");
    let family = weir_wasm_build::build_workspace(&probes.join("rust"), &["family-probe"]);
    let family_as = out.join("family_probe_as.wasm");
    let bin = format!("--binaryFile={}", family_as.display());
    let text = format!("--textFile={}", out.join("family_probe_as.wat").display());
    weir_wasm_build::build_npm_project(&probes.join("as"), "build", &[&bin, &text], &family_as);

    let mut code = String::new();
    code.push_str(&format!(
        "/// The Rust SDK family probe (`conformance/probes/rust`).\npub const FAMILY_PROBE: &str = {:?};\n",
        family[0].path
    ));
    code.push_str(&format!(
        "/// The AssemblyScript family probe (`conformance/probes/as`).\npub const FAMILY_PROBE_AS: &str = {family_as:?};\n"
    ));
    code.push_str(&format!(
        "/// `examples/rust-filter`, built as its README says.\npub const EXAMPLE_RUST: &str = {:?};\n",
        rust_example[0].path
    ));
    code.push_str(&format!(
        "/// `examples/as-filter`, built with npm.\npub const EXAMPLE_AS: &str = {as_example:?};\n"
    ));
    for a in &rust {
        code.push_str(&format!(
            "/// `{}.wasm`, built from `abi/fixtures`.\npub const {}: &str = {:?};\n",
            a.name,
            a.name.to_uppercase(),
            a.path
        ));
    }
    code.push_str(&format!(
        "/// The AssemblyScript filter built from `abi/fixtures-as`.\npub const AS_FILTER: &str = {as_out:?};\n"
    ));
    std::fs::write(out.join("fixtures.rs"), code).expect("write fixtures.rs");
}
