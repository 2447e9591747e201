//! Builds `docs/COMPATIBILITY.md` from what cannot drift: the imports weir's linker provides, the
//! callbacks it knows, the `/// §10:` and `/// proves:` lines of the conformance tests, the
//! checklist (`conformance/checklist.txt`) and the notes in `conformance/differences.yaml`. Fails
//! when the committed table differs from the generated one, when a hostcall or callback has
//! neither a test nor a note, and when a checklist item has neither a test nor a reason.
//!
//! Regenerate: `WEIR_BLESS=1 cargo test -p weir --test conformance compatibility`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weir_abi::{AbiVersion, CALLBACKS, Runtime, RuntimeConfig, callback_params, import_versions};

/// One conformance test as its source declares it.
struct Declared {
    /// `file::name`.
    test: String,
    items: Vec<u32>,
    proves: Vec<String>,
}

/// `conformance/differences.yaml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Differences {
    /// Hostcall or callback → note.
    calls: BTreeMap<String, Note>,
    /// What WASI functions without a test or note of their own answer.
    wasi_default: String,
    /// Checklist item → why it is not (fully) proved by a conformance test.
    items: BTreeMap<u32, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    /// False when weir never calls the callback / does not implement the hostcall.
    #[serde(default = "yes")]
    supported: bool,
    /// The difference from Envoy, or where else the behaviour is tested.
    note: String,
}

fn yes() -> bool {
    true
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Reads every test file's `/// §10:` and `/// proves:` lines and the `async fn` they precede.
fn declared_tests() -> Vec<Declared> {
    let dir = repo().join("conformance/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut tests = Vec::new();
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let (mut items, mut proves) = (None, Vec::new());
        for line in text.lines().map(str::trim) {
            if let Some(list) = line.strip_prefix("/// §10:") {
                // `none`: a test of weir's own answer where it differs from Envoy on purpose.
                let list = if list.trim() == "none" { "" } else { list };
                items = Some(
                    list.split(',')
                        .filter(|n| !n.trim().is_empty())
                        .map(|n| n.trim().parse().unwrap_or_else(|_| panic!("{stem}: bad item in {line}")))
                        .collect(),
                );
            } else if let Some(list) = line.strip_prefix("/// proves:") {
                proves = list.split(',').map(|n| n.trim().to_owned()).collect();
            } else if let Some(rest) = line.strip_prefix("async fn ") {
                let name = rest.split('(').next().unwrap();
                if let Some(items) = items.take() {
                    tests.push(Declared {
                        test: format!("{stem}::{name}"),
                        items,
                        proves: std::mem::take(&mut proves),
                    });
                }
            }
        }
    }
    tests
}

/// `(number, text)` of every checklist item, with the group headings in between as number 0.
fn checklist() -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(repo().join("conformance/checklist.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') || l.starts_with("## "))
        .filter_map(|l| {
            if let Some(h) = l.strip_prefix("## ") {
                return Some((0, h.to_owned()));
            }
            let (n, rest) = l.split_once(". ")?;
            Some((n.parse().ok()?, rest.to_owned()))
        })
        .collect()
}

fn differences() -> Differences {
    let path = repo().join("conformance/differences.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Markdown table cell text: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn tests_cell(tests: &[&Declared]) -> String {
    tests.iter().map(|t| format!("`{}`", t.test)).collect::<Vec<_>>().join(", ")
}

fn versions_cells(supported: bool, available: impl Fn(AbiVersion) -> Option<String>) -> String {
    AbiVersion::ALL
        .iter()
        .map(|v| if !supported { "no".to_owned() } else { available(*v).unwrap_or_else(|| "—".to_owned()) })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The whole document, and the problems that make it incomplete.
fn generate() -> (String, Vec<String>) {
    let tests = declared_tests();
    let diffs = differences();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut problems = Vec::new();
    let proving =
        |name: &str| -> Vec<&Declared> { tests.iter().filter(|t| t.proves.iter().any(|p| p == name)).collect() };

    let mut doc = String::new();
    doc.push_str(
        "# Compatibility with Envoy's Proxy-Wasm host\n\n\
         Generated from the conformance suite (`conformance/tests/`), `conformance/differences.yaml`, \
         `conformance/checklist.txt` and the imports weir links; a test fails when this file is stale. \
         Regenerate with `WEIR_BLESS=1 cargo test -p weir --test conformance compatibility`.\n\n\
         Every test named here runs the real `weir` binary against a real origin, with probe filters built \
         from source (`conformance/probes/`: the Rust `proxy-wasm` SDK and AssemblyScript \
         `@solo-io/proxy-runtime`; `abi/fixtures/probe` for exact ABI-level results), and runs twice: \
         as written (`::plain`) and with a live reload before every request (`::under_reload`).\n\n\
         Columns 0.1.0, 0.2.0, 0.2.1: the ABI versions under which weir provides the function (✓), \
         or calls the callback (✓ with its parameter count); — when that version has no such function.\n\n",
    );

    let env: Vec<_> = runtime.provided_imports().into_iter().filter(|(m, _)| *m == "env").map(|(_, n)| n).collect();
    let wasi: Vec<_> = runtime
        .provided_imports()
        .into_iter()
        .filter(|(m, _)| *m == "wasi_snapshot_preview1")
        .map(|(_, n)| n)
        .collect();

    doc.push_str("## Host functions (`env` imports)\n\n| function | 0.1.0 | 0.2.0 | 0.2.1 | proved by | difference from Envoy, or note |\n|---|---|---|---|---|---|\n");
    for name in &env {
        let proved = proving(name);
        let note = diffs.calls.get(*name);
        if proved.is_empty() && note.is_none() {
            problems.push(format!("hostcall {name}: no conformance test proves it and differences.yaml has no note"));
        }
        let supported = note.is_none_or(|n| n.supported);
        let versions = versions_cells(supported, |v| import_versions(name).contains(&v).then(|| "✓".to_owned()));
        let _ = writeln!(
            doc,
            "| `{name}` | {versions} | {} | {} |",
            tests_cell(&proved),
            cell(note.map_or("", |n| &n.note))
        );
    }

    doc.push_str("\n## WASI (`wasi_snapshot_preview1`, also linked as `wasi_unstable`)\n\n| function | proved by | note |\n|---|---|---|\n");
    for name in &wasi {
        let proved = proving(name);
        let note = diffs.calls.get(*name).map(|n| n.note.as_str());
        let note = note.unwrap_or(if proved.is_empty() { &diffs.wasi_default } else { "" });
        let _ = writeln!(doc, "| `{name}` | {} | {} |", tests_cell(&proved), cell(note));
    }

    doc.push_str("\n## Callbacks (module exports weir calls)\n\n| callback | 0.1.0 | 0.2.0 | 0.2.1 | proved by | difference from Envoy, or note |\n|---|---|---|---|---|---|\n");
    for name in CALLBACKS {
        let proved = proving(name);
        let note = diffs.calls.get(*name);
        if proved.is_empty() && note.is_none() {
            problems.push(format!("callback {name}: no conformance test proves it and differences.yaml has no note"));
        }
        let supported = note.is_none_or(|n| n.supported);
        let versions = versions_cells(supported, |v| callback_params(name, v).map(|p| format!("✓ ({p})")));
        let _ = writeln!(
            doc,
            "| `{name}` | {versions} | {} | {} |",
            tests_cell(&proved),
            cell(note.map_or("", |n| &n.note))
        );
    }

    for name in diffs.calls.keys() {
        let known = env.contains(&name.as_str()) || wasi.contains(&name.as_str()) || CALLBACKS.contains(&name.as_str());
        if !known {
            problems.push(format!("differences.yaml names {name}, which weir neither provides nor calls"));
        }
    }

    let items = checklist();
    let numbered = items.iter().filter(|(n, _)| *n > 0).count();
    let proved_items = items.iter().filter(|(n, _)| *n > 0 && tests.iter().any(|t| t.items.contains(n))).count();
    let _ = write!(
        doc,
        "\n## The checklist\n\n{proved_items} of {numbered} items are proved by conformance tests; the others say why not. \
         Item texts are from `conformance/checklist.txt`.\n\n"
    );
    for (n, text) in &items {
        if *n == 0 {
            let _ = write!(doc, "\n### {text}\n\n| # | behaviour | proved by | note |\n|---|---|---|---|\n");
            continue;
        }
        let proved: Vec<_> = tests.iter().filter(|t| t.items.contains(n)).collect();
        let note = diffs.items.get(n).map(String::as_str).unwrap_or("");
        if proved.is_empty() && note.is_empty() {
            problems.push(format!("checklist item {n}: no conformance test and no reason in differences.yaml"));
        }
        let _ = writeln!(doc, "| {n} | {} | {} | {} |", cell(text), tests_cell(&proved), cell(note));
    }
    for t in &tests {
        for n in &t.items {
            if !items.iter().any(|(i, _)| i == n) {
                problems.push(format!("{} cites item {n}, which the checklist does not have", t.test));
            }
        }
    }
    (doc, problems)
}

#[test]
fn compatibility_table_is_complete_and_current() {
    let (doc, problems) = generate();
    assert!(problems.is_empty(), "the compatibility table is incomplete:\n  {}", problems.join("\n  "));
    let path = repo().join("docs/COMPATIBILITY.md");
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, &doc).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/COMPATIBILITY.md is stale: regenerate it with `WEIR_BLESS=1 cargo test -p weir --test conformance compatibility`"
    );
}
