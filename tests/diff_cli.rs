//! `rcv diff` through the real binary: no semantic change for a reformat,
//! a threshold change with its regions and replay impact (snapshotted),
//! JSON output, `REV:path`, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(ROOT).output().expect("rcv runs")
}

#[test]
fn same_policy_reformatted_is_no_semantic_change() {
    // Removed on drop, so also when the test fails.
    let dir = tempfile::Builder::new().prefix("rcv-diff-fmt-").tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{ROOT}/tests/gate/base.rcv")).unwrap();
    let reformatted = text
        .replace("recover {", "# reordered whitespace and a comment\nrecover   {")
        .replace(", reason", ",   reason");
    let path = dir.path().join("reformatted.rcv");
    std::fs::write(&path, reformatted).unwrap();
    let o = rcv(&["diff", "tests/gate/base.rcv", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("no semantic change (same hash)"), "{out}");
}

#[test]
fn a_changed_rule_lists_regions_and_replay_impact() {
    let o = rcv(&[
        "diff",
        "tests/gate/base.rcv",
        "tests/gate/loses_escalation.rcv",
        "--traces",
        "tests/gate/traces.ndjson",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("diff_loses_escalation", String::from_utf8(o.stdout).unwrap());
}

#[test]
fn json_output_has_regions_with_examples() {
    let o = rcv(&["diff", "tests/gate/base.rcv", "tests/gate/promote.rcv", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "rcv.diff/1");
    assert_eq!(v["semantic_change"], true);
    let regions = v["regions"].as_array().unwrap();
    // attempts 1-2 now wait before retrying; attempt 3 retries instead of escalating
    assert_eq!(regions.len(), 2, "{regions:?}");
    let changes = |r: &serde_json::Value| -> Vec<String> {
        r["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(changes(&regions[0]), ["delay"]);
    assert_eq!(regions[1]["block"], "recover");
    assert_eq!(regions[1]["example"], "risk = low, class = rate_limited, attempt = 3");
    assert_eq!(changes(&regions[1]), ["action", "delay", "reason"]);
    assert_eq!(regions[1]["old"]["rule"]["index"], 2);
    assert_eq!(regions[1]["new"]["rule"]["index"], 1);
    assert_eq!(v["rules"][0]["change"], "changed");
}

#[test]
fn git_revisions_and_errors() {
    // HEAD:path reads the committed file through `git show`
    let o = rcv(&["diff", "HEAD:policies/tool_chain.rcv", "policies/tool_chain.rcv"]);
    if o.status.code() == Some(2) && String::from_utf8_lossy(&o.stderr).contains("git show") {
        // not a git checkout (e.g. a source archive): nothing to compare
    } else {
        assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = rcv(&["diff", "tests/gate/nope.rcv", "tests/gate/base.rcv"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rcv(&["diff", "tests/gate/base.rcv", "tests/gate/violates_invariant.rcv"]);
    assert_eq!(o.status.code(), Some(2));
}
