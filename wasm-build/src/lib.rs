//! Compiles a Cargo workspace of Proxy-Wasm filters for `wasm32-wasip1` from a build script.
//!
//! weir embeds its built-in filters and its tests load fixture filters built from source, so
//! `cargo build` / `cargo test` must produce `.wasm` files without a separate step. This crate
//! runs a nested `cargo build --release --target wasm32-wasip1` with a clean environment and its
//! own target directory, and installs the target with rustup when the toolchain lacks it.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every filter is built for.
pub const TARGET: &str = "wasm32-wasip1";

/// One `.wasm` produced by [`build_workspace`].
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The package's library name (`-` replaced by `_`), as Cargo names the file.
    pub name: String,
    /// Absolute path of the `.wasm` file.
    pub path: PathBuf,
}

/// Builds every package of the workspace at `manifest_dir` for [`TARGET`] in release mode and
/// returns the `.wasm` files it produced, named after `packages`.
///
/// Call it from a build script. It prints the `rerun-if-changed` lines for the workspace's
/// sources itself.
///
/// # Panics
///
/// Panics (failing the build with the message) when the target cannot be installed or the
/// nested build fails: a build script has no better way to report either.
pub fn build_workspace(manifest_dir: &Path, packages: &[&str]) -> Vec<Artifact> {
    build_with_profile(manifest_dir, packages, "release")
}

/// Like [`build_workspace`], with a named Cargo profile (e.g. a size-optimised one).
///
/// # Panics
///
/// As [`build_workspace`].
pub fn build_with_profile(manifest_dir: &Path, packages: &[&str], profile: &str) -> Vec<Artifact> {
    ensure_target_installed();
    watch_sources(manifest_dir);

    let target_dir = wasm_target_dir();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir)
        .arg("build")
        .arg("--profile")
        .arg(profile)
        .arg("--locked")
        .arg("--target")
        .arg(TARGET)
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    clean_env(&mut cmd);
    let status = cmd.status().unwrap_or_else(|e| panic!("weir-wasm-build: could not run cargo: {e}"));
    if !status.success() {
        panic!(
            "weir-wasm-build: building the filters in {} for {TARGET} failed (see the cargo output above)",
            manifest_dir.display()
        );
    }

    packages
        .iter()
        .map(|p| {
            let name = p.replace('-', "_");
            let path = target_dir.join(TARGET).join(profile).join(format!("{name}.wasm"));
            assert!(path.exists(), "weir-wasm-build: {} was not produced; is package `{p}` a cdylib?", path.display());
            Artifact { name, path }
        })
        .collect()
}

/// The nested build's target directory: beside the outer one, shared by debug and release
/// builds of the host so filters are compiled once.
fn wasm_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    out_dir.ancestors().nth(4).map(|t| t.join("wasm")).unwrap_or_else(|| out_dir.join("wasm"))
}

/// Variables that would leak the host build's settings into the wasm build.
fn clean_env(cmd: &mut Command) {
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "CARGO_INCREMENTAL",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PROFILE_") || k.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(&*k);
        }
    }
}

fn watch_sources(dir: &Path) {
    if dir.join("wasm-build").exists() {
        // The host workspace itself: only the filter sources matter.
        for entry in ["Cargo.toml", "Cargo.lock", "filters"] {
            println!("cargo:rerun-if-changed={}", dir.join(entry).display());
        }
        return;
    }
    for entry in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(entry).display());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Makes sure the active toolchain has the wasm target, adding it with rustup if it does not:
/// `rust-toolchain.toml` names the target, but rustup only installs targets together with a new
/// toolchain.
fn ensure_target_installed() {
    if target_installed() {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed for the filters)");
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Some(tc) = env::var_os("RUSTUP_TOOLCHAIN") {
        cmd.arg("--toolchain").arg(tc);
    }
    let added = cmd.status().map(|s| s.success()).unwrap_or(false);
    if !added || !target_installed() {
        panic!(
            "weir needs the {TARGET} Rust target to build its filters, and `rustup target add {TARGET}` \
             did not succeed. Install it by hand (`rustup target add {TARGET}`) and build again."
        );
    }
}

fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let out = Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]).output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&dir)
                .read_dir()
                .map(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd"))))
                .unwrap_or(false)
        }
        _ => false,
    }
}

/// Builds an npm project (an AssemblyScript filter): `npm ci` when `node_modules` is missing,
/// then `npm run <script> -- <extra args>`. The script is expected to write `output`.
///
/// # Panics
///
/// Panics with a message saying what to install when npm is missing or a step fails.
pub fn build_npm_project(dir: &Path, script: &str, extra_args: &[&str], output: &Path) {
    for entry in ["package.json", "package-lock.json", "asconfig.json", "assembly"] {
        println!("cargo:rerun-if-changed={}", dir.join(entry).display());
    }
    let npm = |args: &[&str]| {
        let status = Command::new("npm").current_dir(dir).args(args).status().unwrap_or_else(|e| {
            panic!(
                "weir-wasm-build: could not run npm ({e}). Node.js and npm are needed to build the \
                     AssemblyScript filter in {}; install them (e.g. `apt-get install nodejs npm`).",
                dir.display()
            )
        });
        if !status.success() {
            panic!("weir-wasm-build: `npm {}` failed in {}", args.join(" "), dir.display());
        }
    };
    if !dir.join("node_modules").exists() {
        npm(&["ci", "--no-audit", "--no-fund"]);
    }
    let mut args = vec!["run", script, "--silent", "--"];
    args.extend_from_slice(extra_args);
    npm(&args);
    assert!(output.exists(), "weir-wasm-build: `npm run {script}` did not produce {}", output.display());
}
