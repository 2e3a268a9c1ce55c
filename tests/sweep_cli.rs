//! `rcv sweep` through the real binary on the bundled fixture: a constant
//! with flip points (snapshotted), JSON, budget settings, usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(ROOT).output().expect("rcv runs")
}

#[test]
fn transient_retries_sweep_has_flip_points() {
    let o = rcv(&[
        "sweep",
        "policies/tool_chain.rcv",
        "--set",
        "max_transient=2..4/1",
        "fixtures/tool_chain_failures.ndjson",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("sweep_max_transient", String::from_utf8(o.stdout).unwrap());
}

#[test]
fn json_sweep_of_a_budget_setting() {
    let o = rcv(&[
        "sweep",
        "policies/tool_chain.rcv",
        "--set",
        "budget.attempts=3..5/1",
        "fixtures/tool_chain_failures.ndjson",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "rcv.sweep/1");
    assert_eq!(v["current"], "5");
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
    // at 5 the policy is the bundled one: its hash
    let compiled = rcv(&["compile", "policies/tool_chain.rcv", "--format", "json"]);
    let c: serde_json::Value = serde_json::from_slice(&compiled.stdout).unwrap();
    assert_eq!(v["points"][2]["hash"], c["hash"]);
    let flips = v["flip_points"].as_array().unwrap();
    assert_eq!(flips.len(), 1);
    assert_eq!((flips[0]["from"].as_f64(), flips[0]["to"].as_f64()), (Some(3.0), Some(4.0)));
    assert_eq!(flips[0]["cases"].as_array().unwrap().len(), 4);
}

#[test]
fn usage_errors_exit_2() {
    let trace = "fixtures/tool_chain_failures.ndjson";
    for set in ["nope=1..2/1", "max_transient=1..2", "max_transient=1.5..2/1", "budget.resets=1..2/1"] {
        let o = rcv(&["sweep", "policies/tool_chain.rcv", "--set", set, trace]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", String::from_utf8_lossy(&o.stdout));
    }
}
