//! `rcv gate` through the real binary: one crafted candidate per
//! release-blocking rule must be rejected, one must be promoted; gate.json
//! and gate.md are checked and snapshotted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A fresh scratch directory, removed on drop, so also when the test fails.
/// `rcv gate` creates its `--out` directory, so tests pass `out` inside it.
fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("rcv-gate-{name}-")).tempdir().unwrap()
}

fn gate(candidate: &str, extra: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv"))
        .args(["gate", "--baseline", "tests/gate/base.rcv", "--candidate"])
        .arg(format!("tests/gate/{candidate}.rcv"))
        .arg("tests/gate/traces.ndjson")
        .arg("--out")
        .arg(out)
        .args(extra)
        .current_dir(ROOT)
        .output()
        .expect("rcv runs")
}

fn gate_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("gate.json")).unwrap()).unwrap()
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

#[test]
fn losing_a_high_risk_escalation_is_rejected() {
    let dir = scratch("lose");
    let out = dir.path().join("out");
    let o = gate("loses_escalation", &[], &out);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let v = gate_json(&out);
    assert_eq!(v["schema"], "rcv.gate/2");
    assert_eq!(v["verdict"], "reject");
    let r = reasons(&v);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contains("`high_server_error` loses its escalation"), "{r:?}");
    insta::assert_snapshot!("gate_loses_escalation_md", std::fs::read_to_string(out.join("gate.md")).unwrap());
}

#[test]
fn an_invariant_violating_candidate_is_rejected_with_the_compiler_reason() {
    let dir = scratch("inv");
    let out = dir.path().join("out");
    let o = gate("violates_invariant", &[], &out);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let v = gate_json(&out);
    assert_eq!(v["verdict"], "reject");
    assert!(v["candidate"].is_null());
    let r = reasons(&v);
    assert!(!r.is_empty() && r.iter().all(|x| x.contains("RCV407")), "{r:?}");
}

#[test]
fn more_critical_decisions_are_rejected() {
    let dir = scratch("crit");
    let out = dir.path().join("out");
    let o = gate("raises_critical", &[], &out);
    assert_eq!(o.status.code(), Some(1));
    let v = gate_json(&out);
    assert_eq!(v["counts"]["critical_decisions_baseline"], 1);
    assert_eq!(v["counts"]["critical_decisions_candidate"], 2);
    let r = reasons(&v);
    assert_eq!(r, vec!["release-blocking: decisions with a critical-severity reason rise from 1 to 2".to_string()]);
}

#[test]
fn a_safe_candidate_is_promoted() {
    let dir = scratch("promote");
    let out = dir.path().join("out");
    let o = gate("promote", &[], &out);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let v = gate_json(&out);
    assert_eq!(v["verdict"], "promote");
    assert!(reasons(&v).is_empty());
    assert_eq!(v["thresholds_from"], "candidate gate block");
    assert_eq!(v["counts"]["cases"], 3);
    insta::assert_snapshot!("gate_promote_md", std::fs::read_to_string(out.join("gate.md")).unwrap());
}

#[test]
fn a_thresholds_file_replaces_the_gate_block() {
    let dir = scratch("thresholds");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let t = out.join("thresholds.yaml");
    std::fs::write(&t, "min:\n  auto_recovered_rate: 0.9\nmax:\n  escalation_rate: 0.1\n").unwrap();
    let o = gate("promote", &["--thresholds", t.to_str().unwrap()], &out);
    assert_eq!(o.status.code(), Some(1));
    let r = reasons(&gate_json(&out));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("auto_recovered_rate 0.333333 breaks `min 0.9`"), "{r:?}");
    std::fs::write(&t, "min:\n  speed: 1\n").unwrap();
    let o = gate("promote", &["--thresholds", t.to_str().unwrap()], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown metric `speed`"));
}

#[test]
fn a_broken_baseline_is_an_input_error() {
    let dir = scratch("usage");
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_rcv"))
        .args(["gate", "--baseline", "tests/gate/missing.rcv", "--candidate", "tests/gate/base.rcv"])
        .arg("tests/gate/traces.ndjson")
        .arg("--out")
        .arg(&out)
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn an_engine_limit_that_may_break_an_invariant_is_rejected() {
    // compiles with an RCV408 warning: the budget's fallback can break an invariant
    let dir = scratch("at-risk");
    let out = dir.path().join("out");
    let o = gate("invariant_at_risk", &[], &out);
    assert_eq!(o.status.code(), Some(1));
    let r = reasons(&gate_json(&out));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contains("RCV408") && r[0].contains("critical requests stay on their model"), "{r:?}");
}
