//! One fixture policy per diagnostic code under `tests/diagnostics/`, each
//! snapshotted as its source followed by the rendered diagnostics, so a
//! reviewer reads both in one file. A code without a fixture that triggers
//! it fails `every_code_has_a_fixture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rcv::cli::check::diagnose;
use rcv::diag::{Code, codes, render};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics")
}

/// The fixture's text (lossy for non-UTF-8 bytes) and its plain rendering.
fn render_fixture(path: &Path) -> (String, String) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (src, diags) = diagnose(&name, bytes);
    let out = render::human(&diags, &src, false);
    (src.text, out)
}

#[test]
fn fixtures() {
    insta::glob!("diagnostics/*.rcv", |path| {
        let (text, out) = render_fixture(path);
        insta::assert_snapshot!(format!("{text}\n----- diagnostics -----\n{out}"));
    });
}

#[test]
fn every_code_has_a_fixture() {
    let mut rendered = String::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rcv"))
        .collect();
    paths.sort();
    for p in &paths {
        rendered.push_str(&render_fixture(p).1);
    }
    let missing: Vec<&str> =
        Code::ALL.iter().map(|c| c.as_str()).filter(|c| !rendered.contains(&format!("[{c}]"))).collect();
    assert!(missing.is_empty(), "codes without a triggering fixture in tests/diagnostics/: {missing:?}");
}

#[test]
fn fixture_names_start_with_their_code() {
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let code = name.get(..6).unwrap_or("").to_ascii_uppercase();
        assert!(Code::ALL.iter().any(|c| c.as_str() == code), "fixture `{name}` is not named after a code");
        let (_, out) = render_fixture(&path);
        assert!(out.contains(&format!("[{code}]")), "fixture `{name}` does not trigger {code}:\n{out}");
    }
}

#[test]
fn diagnostics_doc_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md");
    let expected = codes::diagnostics_markdown();
    if std::env::var_os("RCV_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/diagnostics.md is out of date; regenerate it with `RCV_BLESS=1 cargo test --test diagnostics diagnostics_doc_is_current`"
    );
}
