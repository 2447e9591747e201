//! Builds weir's built-in filters (`filters/*`, Rust proxy-wasm SDK) for wasm32-wasip1 and
//! embeds them: `builtin.rs` in OUT_DIR lists them with their bytes. Also records the build's
//! facts for `weir --version`, `/server_info` and `weir_build_info`: the commit and the
//! Wasmtime and Pingora versions in `Cargo.lock` (`WEIR_BUILD_*`; see `src/build_info.rs`).

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
    build_facts(&root);
    let mut code =
        String::from("/// Built-in filters: (name, module bytes).\npub static BUILTINS: &[(&str, &[u8])] = &[\n");
    if std::env::var_os("WEIR_NO_BUILTINS").is_some() {
        // A developer build of the proxy alone (`WEIR_NO_BUILTINS=1`): no filters embedded.
        code.push_str("];\n");
        write(code);
        return;
    }
    let packages: Vec<&str> = BUILTINS.iter().map(|(_, p)| *p).collect();
    // The `filter` profile (its optimization level) lives in the workspace manifest.
    println!("cargo:rerun-if-changed={}", root.join("Cargo.toml").display());
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

/// `WEIR_BUILD_COMMIT` (from `WEIR_COMMIT` when the builder sets it, as an image build without
/// `.git` does; else `git`; else `unknown`), `WEIR_BUILD_WASMTIME` and `WEIR_BUILD_PINGORA`.
/// Two values do not justify a build-info crate and its dependencies.
fn build_facts(root: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=WEIR_COMMIT");
    let commit = std::env::var("WEIR_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| git_commit(root));
    println!("cargo:rustc-env=WEIR_BUILD_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    let lock = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let lock = std::fs::read_to_string(lock).unwrap_or_default();
    for (var, package) in [("WEIR_BUILD_WASMTIME", "wasmtime"), ("WEIR_BUILD_PINGORA", "pingora")] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, package).unwrap_or("unknown"));
    }
}

/// The checked-out commit (short), rebuilt when HEAD or the branch it names moves.
fn git_commit(root: &std::path::Path) -> Option<String> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let git_dir = root.join(git(&["rev-parse", "--git-dir"])?);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let file = git_dir.join(&reference);
        let watched = if file.exists() { file } else { git_dir.join("packed-refs") };
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// The version of `package` in a Cargo.lock's text.
fn locked_version<'a>(lock: &'a str, package: &str) -> Option<&'a str> {
    let entry = lock.split("[[package]]").find(|e| e.lines().any(|l| l.trim() == format!("name = \"{package}\"")))?;
    entry.lines().find_map(|l| l.trim().strip_prefix("version = \"")?.strip_suffix('"'))
}
