//! The docs cannot drift from the code: every complete configuration shown in the README and
//! `docs/` parses with weir's configuration types, `docs/configuration.md` documents every
//! key those types accept, and every section of `docs/abi.md` a source comment points to
//! exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for dir in ["docs", "docs/filters", "examples"] {
        if let Ok(entries) = std::fs::read_dir(root().join(dir)) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
        }
    }
    files
}

fn yaml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn complete_configurations_in_the_docs_parse() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in yaml_blocks(&text) {
            if !block.contains("listeners:") || !block.contains("routes:") {
                continue;
            }
            if let Err(errors) = weir::config::parse(block.clone(), Some(file.clone())) {
                panic!("{}: a documented configuration does not parse:\n{block}\n{errors:#?}", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found only {checked} complete configurations to check");
}

#[test]
fn the_quickstart_configuration_is_valid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir")).arg("show-quickstart").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    weir::config::parse(text, None).expect("the embedded quick-start configuration parses");
}

#[test]
fn the_configuration_reference_names_every_key() {
    let reference = std::fs::read_to_string(root().join("docs/configuration.md")).expect("docs/configuration.md");
    let source = std::fs::read_to_string(root().join("proxy/src/config/mod.rs")).unwrap();
    // Every `pub field:` of the configuration structs, with serde's renames applied.
    let mut missing = Vec::new();
    let mut rename: Option<String> = None;
    let mut in_config_type = false;
    for line in source.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("pub struct ") {
            // Loader bookkeeping (`Loaded`, `ConfigError`) is not configuration.
            in_config_type = !name.starts_with("Loaded") && !name.starts_with("ConfigError");
            continue;
        }
        if let Some(r) = line.strip_prefix("#[serde(").and_then(|a| a.split("rename = \"").nth(1)) {
            rename = r.split('"').next().map(str::to_owned);
            continue;
        }
        match line.strip_prefix("pub ").and_then(|l| l.split_once(':')) {
            Some((field, _)) if in_config_type && !field.contains(' ') && !field.contains('(') => {
                let key = rename.take().unwrap_or_else(|| field.to_owned());
                if !reference.contains(&format!("`{key}`")) {
                    missing.push(key);
                }
            }
            _ if !line.starts_with("#[") && !line.starts_with("///") => rename = None,
            _ => {}
        }
    }
    assert!(missing.is_empty(), "docs/configuration.md does not document: {missing:?}");
}

/// Source files (Rust, AssemblyScript, text) under `dir`, skipping build output and packages.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git" | "build") {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".ts") || name.ends_with(".txt") {
            out.push(path);
        }
    }
}

#[test]
fn every_abi_section_a_comment_cites_exists() {
    let abi = std::fs::read_to_string(root().join("docs/abi.md")).unwrap();
    let mut files = Vec::new();
    for dir in ["abi", "proxy", "conformance", "filters", "examples", "bench", "wasm-build"] {
        sources(&root().join(dir), &mut files);
    }
    let mut cited = 0;
    // This file names the patterns it looks for.
    for file in files.into_iter().filter(|f| !f.ends_with("tests/e2e/docs.rs")) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // The design notes the comments cited before docs/abi.md, which never were in the repository.
        let old_notes = concat!("ABI", ".md");
        assert!(!text.contains(old_notes), "{}: cites {old_notes}; point to docs/abi.md", file.display());
        for (i, _) in text.match_indices("docs/abi.md#") {
            let anchor: String = text[i + "docs/abi.md#".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            assert!(
                abi.contains(&format!("<a id=\"{anchor}\"></a>")),
                "{}: docs/abi.md#{anchor} does not exist",
                file.display()
            );
            cited += 1;
        }
    }
    assert!(cited > 50, "the sources cite docs/abi.md ({cited} links found)");
}
