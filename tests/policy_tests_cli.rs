//! `rcv test` through the real binary: the bundled policies' tests pass
//! with full rule coverage; a failing test file (on purpose) gives the
//! snapshotted human, JSON and JUnit outputs; coverage thresholds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use tempfile::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(ROOT).output().expect("rcv runs")
}

/// A fresh scratch directory, removed on drop, so also when the test fails.
fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("rcv-test-{name}-")).tempdir().unwrap()
}

#[test]
fn bundled_policy_tests_pass_with_full_coverage() {
    let o = rcv(&["test", "--min-coverage", "100"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.ends_with("42 passed, 0 failed · coverage 53/53 rules (100%)\n"), "{out}");
}

#[test]
fn failing_file_human_output() {
    let o = rcv(&["test", "tests/policy_tests"]);
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("policy_tests_human", String::from_utf8(o.stdout).unwrap());
}

#[test]
fn failing_file_json_and_junit() {
    let dir = scratch("junit");
    let junit = dir.path().join("junit.xml");
    let o = rcv(&["test", "tests/policy_tests", "--format", "json", "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "rcv.test/1");
    assert_eq!((v["passed"].as_u64(), v["failed"].as_u64()), (Some(1), Some(3)));
    assert_eq!(v["coverage"]["covered"], 4.0);
    assert_eq!(v["coverage"]["total"], 5.0);
    assert_eq!(v["coverage"]["percent"], 80.0);
    insta::assert_json_snapshot!("policy_tests_json", v);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("name=\"wrong on purpose &lt;the &quot;server&quot; &amp; its reason&gt;\""));
    insta::assert_snapshot!("policy_tests_junit", xml);
}

#[test]
fn coverage_threshold_and_usage_errors() {
    // every case of the bundled tool_chain tests passes; coverage alone decides
    let o = rcv(&["test", "policies/tool_chain.rcvtest.yaml", "--min-coverage", "100"]);
    assert_eq!(o.status.code(), Some(0));
    let dir = scratch("cov");
    let policy = format!("{ROOT}/tests/gate/base.rcv");
    let file = dir.path().join("one.rcvtest.yaml");
    std::fs::write(
        &file,
        format!("policy: {policy}\ncases:\n  - name: a 429 retries\n    event: {{error: {{http_status: 429}}}}\n    expect: {{action: retry}}\n"),
    )
    .unwrap();
    let o = rcv(&["test", file.to_str().unwrap(), "--min-coverage", "50"]);
    assert_eq!(o.status.code(), Some(1), "2 of 5 rules: below 50%");
    assert!(String::from_utf8_lossy(&o.stderr).contains("rule coverage 40% is below the minimum 50%"));
    let o = rcv(&["test", file.to_str().unwrap(), "--min-coverage", "40"]);
    assert_eq!(o.status.code(), Some(0));
    std::fs::write(&file, "policy: nope.rcv\ncases: []\n").unwrap();
    assert_eq!(rcv(&["test", file.to_str().unwrap()]).status.code(), Some(2));
    std::fs::write(&file, "cases: 3\n").unwrap();
    assert_eq!(rcv(&["test", file.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(rcv(&["test", "tests/policy_tests/missing"]).status.code(), Some(2));
}
