//! `rcv compile`: formats, output file, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).current_dir(root()).args(args).output().unwrap()
}

/// A fresh scratch directory, removed on drop, so also when the test fails.
fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("rcv-compile-cli-{name}-")).tempdir().unwrap()
}

#[test]
fn text_output_starts_with_name_hash_and_bound() {
    let out = rcv(&["compile", "policies/tool_chain.rcv"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with("policy tool_chain 2.3.0 sha256:"), "{first}");
    assert_eq!(first.len(), "policy tool_chain 2.3.0 sha256:".len() + 64);
    let bound = lines.next().unwrap();
    let n = bound.strip_prefix("max decisions per request: ").unwrap();
    assert!(n.parse::<u32>().is_ok(), "{bound}");
}

#[test]
fn warnings_go_to_stderr_and_do_not_fail() {
    let out = rcv(&["compile", "tests/diagnostics/rcv404_shadowed_rule.rcv", "--color", "never"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RCV404"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("policy shadowed 1.0.0 sha256:"));
}

#[test]
fn json_output_is_the_table_view() {
    let out = rcv(&["compile", "policies/tool_chain.rcv", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"], "tool_chain");
    assert!(v["max_decisions"].is_u64());
    assert!(v["hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["recover"].as_array().unwrap().len(), 7);
    assert_eq!(v["recover"][0]["when"]["risk"], "{high,critical}");
}

#[test]
fn output_file_is_written_whole_and_alone() {
    let dir = scratch("out");
    let target = dir.path().join("table.yaml");
    let out = rcv(&["compile", "policies/tool_chain.rcv", "--format", "yaml", "-o", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&target).unwrap();
    let stdout = rcv(&["compile", "policies/tool_chain.rcv", "--format", "yaml"]).stdout;
    assert_eq!(written.as_bytes(), stdout.as_slice());
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 1, "no temporary file left: {entries:?}");
}

#[test]
fn analysis_errors_exit_1_and_write_nothing() {
    let dir = scratch("err");
    let target = dir.path().join("table.txt");
    let out = rcv(&[
        "compile",
        "tests/diagnostics/rcv406_unbounded_retry.rcv",
        "--color",
        "never",
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RCV406") && err.contains("the policy can retry forever"), "{err}");
    assert!(!target.exists());
}

#[test]
fn reads_standard_input() {
    let compile_stdin = |text: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
            .args(["compile", "-"])
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text).unwrap();
        child.wait_with_output().unwrap()
    };
    let text = std::fs::read(root().join("policies/tool_chain.rcv")).unwrap();
    let out = compile_stdin(&text);
    assert_eq!(out.status.code(), Some(0));
    let from_file = rcv(&["compile", "policies/tool_chain.rcv"]).stdout;
    // same table and hash; line numbers and all
    assert_eq!(out.stdout, from_file);
    // diagnostics name the input `<stdin>`
    let mut with_warning = text.clone();
    with_warning.extend_from_slice(b"\nconst never_used = 1\n");
    let out = compile_stdin(&with_warning);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<stdin>") && err.contains("RCV110"), "{err}");
}

#[test]
fn io_and_usage_errors_exit_2() {
    let out = rcv(&["compile", "policies/no_such_policy.rcv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_policy.rcv"));
    let out = rcv(&["compile", "policies/tool_chain.rcv", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rcv(&["compile", "policies/tool_chain.rcv", "-o", "/nonexistent-dir/x/table.txt"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn not_text_exits_1() {
    let dir = scratch("bin");
    let bad = dir.path().join("bad.rcv");
    std::fs::write(&bad, b"policy x version \"1.0.0\"\n\xff\xfe\n").unwrap();
    let out = rcv(&["compile", bad.to_str().unwrap(), "--color", "never"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RCV002"));
}
