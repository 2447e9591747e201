//! Builds weir's built-in filters (`filters/*`, Rust proxy-wasm SDK) for wasm32-wasip1 and
//! embeds them: `builtin.rs` in OUT_DIR lists them with their bytes.

use std::path::PathBuf;

/// (config name, package) of every built-in filter.
const BUILTINS: &[(&str, &str)] = &[
    ("auth", "weir-filter-auth"),
    ("header-rewrite", "weir-filter-header-rewrite"),
    ("ab-routing", "weir-filter-ab-routing"),
    ("rate-limit", "weir-filter-rate-limit"),
];

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = here.parent().expect("proxy/ is inside the workspace").to_path_buf();
    println!("cargo:rerun-if-env-changed=WEIR_NO_BUILTINS");
    let mut code =
        String::from("/// Built-in filters: (name, module bytes).\npub static BUILTINS: &[(&str, &[u8])] = &[\n");
    if std::env::var_os("WEIR_NO_BUILTINS").is_some() {
        // A developer build of the proxy alone (`WEIR_NO_BUILTINS=1`): no filters embedded.
        code.push_str("];\n");
        write(code);
        return;
    }
    let packages: Vec<&str> = BUILTINS.iter().map(|(_, p)| *p).collect();
    let artifacts = weir_wasm_build::build_with_profile(&root, &packages, "filter");
    for ((name, _), a) in BUILTINS.iter().zip(&artifacts) {
        code.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", a.path));
    }
    code.push_str("];\n");
    write(code);
}

fn write(code: String) {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("builtin.rs"), code).expect("write builtin.rs");
}
