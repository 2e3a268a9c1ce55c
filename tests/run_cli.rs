//! `rcv run` and `rcv decide` through the real binary: outputs on the
//! bundled fixtures (snapshotted), determinism across thread counts,
//! `--replay`, stdin, rejected lines and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rcv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(ROOT).output().expect("rcv runs")
}

fn rcv_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
        .args(args)
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rcv runs");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    child.wait_with_output().expect("rcv finishes")
}

/// A fresh scratch directory, removed on drop, so also when the test fails.
fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("rcv-run-{name}-")).tempdir().expect("temp dir")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn run_fixture(out: &Path, jobs: &str) -> Output {
    rcv(&[
        "run",
        "policies/tool_chain.rcv",
        "fixtures/tool_chain_failures.ndjson",
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        jobs,
    ])
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn tool_chain_replay_outputs() {
    let out = scratch("fixture");
    let o = run_fixture(out.path(), "2");
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let stdout = text(&o.stdout).replace(out.path().to_str().unwrap(), "OUT");
    insta::assert_snapshot!("run_stdout", stdout);

    let report: serde_json::Value = serde_json::from_str(&read(out.path(), "report.json")).unwrap();
    insta::assert_json_snapshot!("run_report", report);
    insta::assert_snapshot!("run_summary", read(out.path(), "summary.md"));

    // Every record carries the policy stamp; records come in three types.
    let trace = read(out.path(), "trace.ndjson");
    let mut by_type = std::collections::BTreeMap::new();
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["policy"]["hash"], report["policy"]["hash"]);
        *by_type.entry(v["type"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(by_type.get("case").copied(), report["totals"]["cases"].as_u64());
    assert_eq!(by_type.get("decision").copied(), report["totals"]["decisions"].as_u64());
    // The decisions of a few cases in full: one per outcome source at least.
    let picked: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "decision")
        .fold(Vec::new(), |mut acc, v| {
            let src = v["outcome"]["source"].clone();
            if !acc.iter().any(|a: &serde_json::Value| a["outcome"]["source"] == src) {
                acc.push(v);
            }
            acc
        });
    insta::assert_json_snapshot!("run_trace_samples", picked);
}

#[test]
fn output_is_byte_identical_for_any_thread_count() {
    let one = scratch("jobs1");
    let four = scratch("jobs4");
    assert!(run_fixture(one.path(), "1").status.success());
    assert!(run_fixture(four.path(), "4").status.success());
    for name in ["trace.ndjson", "report.json", "summary.md"] {
        assert_eq!(read(one.path(), name), read(four.path(), name), "{name} differs between --jobs 1 and --jobs 4");
    }
}

/// Many batches in flight at once (a generated trace of 1,500 interleaved
/// requests, then a file of bad lines, as two inputs): the pipelined driver
/// must hand results over in input order whatever the thread count.
#[test]
fn pipelined_batches_are_byte_identical_for_any_thread_count() {
    let dir = scratch("pipeline");
    let trace = dir.path().join("gen.ndjson");
    let o = rcv(&["gen", "trace", "--cases", "1500", "--seed", "7", "--interleave", "16"]);
    assert!(o.status.success());
    std::fs::write(&trace, &o.stdout).unwrap();
    let run = |jobs: &str| {
        let out = dir.path().join(format!("out{jobs}"));
        let o = rcv(&[
            "run",
            "policies/tool_chain.rcv",
            trace.to_str().unwrap(),
            "fixtures/bad_lines.ndjson",
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            jobs,
        ]);
        // Bad lines make the run exit 1; the outputs are still written.
        assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
        out
    };
    let one = run("1");
    let report: serde_json::Value = serde_json::from_str(&read(&one, "report.json")).unwrap();
    assert_eq!(report["totals"]["cases"], 1500 + 3, "the generated cases and the three good cases of bad_lines");
    assert!(report["input"]["rejected"].as_u64().unwrap() > 0);
    for jobs in ["2", "3"] {
        let other = run(jobs);
        for name in ["trace.ndjson", "report.json", "summary.md"] {
            assert!(read(&one, name) == read(&other, name), "{name} differs between --jobs 1 and --jobs {jobs}");
        }
    }
}

#[test]
fn seeds_change_simulated_outcomes_only() {
    let a = scratch("seed-a");
    let b = scratch("seed-b");
    let run = |dir: &Path, seed: &str| {
        rcv(&[
            "run",
            "policies/tool_chain.rcv",
            "fixtures/tool_chain_failures.ndjson",
            "--out",
            dir.to_str().unwrap(),
            "--seed",
            seed,
        ])
    };
    assert!(run(a.path(), "1").status.success());
    assert!(run(b.path(), "2").status.success());
    let ra: serde_json::Value = serde_json::from_str(&read(a.path(), "report.json")).unwrap();
    let rb: serde_json::Value = serde_json::from_str(&read(b.path(), "report.json")).unwrap();
    assert_eq!(ra["snapshot"]["seed"], 1);
    assert_eq!(rb["snapshot"]["seed"], 2);
    // Recorded outcomes do not depend on the seed.
    assert_eq!(ra["sources"]["decisions"]["recorded"], rb["sources"]["decisions"]["recorded"]);
    assert_eq!(ra["totals"]["cases"], rb["totals"]["cases"]);
}

#[test]
fn replay_reproduces_and_detects_changes() {
    let dir = scratch("replay");
    let input = dir.path().join("input.ndjson");
    std::fs::copy(Path::new(ROOT).join("fixtures/tool_chain_failures.ndjson"), &input).unwrap();
    let out = dir.path().join("out");
    let o = rcv(&["run", "policies/tool_chain.rcv", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = out.join("report.json");
    let o = rcv(&["run", "--replay", report.to_str().unwrap()]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("replay identical"), "{}", text(&o.stdout));
    // The snapshot names each input by the BLAKE3 of its bytes.
    let stored: serde_json::Value = serde_json::from_str(&read(&out, "report.json")).unwrap();
    let expected = format!("blake3:{}", blake3::hash(&std::fs::read(&input).unwrap()).to_hex());
    assert_eq!(stored["snapshot"]["inputs"][0]["digest"], expected.as_str());

    // A report of an older layout is refused by name, not by a missing field.
    let old = dir.path().join("old.json");
    std::fs::write(&old, read(&out, "report.json").replacen("rcv.report/2", "rcv.report/1", 1)).unwrap();
    let o = rcv(&["run", "--replay", old.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("has schema `rcv.report/1`"), "{}", text(&o.stderr));

    // Change one input byte: the replay refuses and says which input.
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&input, bytes).unwrap();
    let o = rcv(&["run", "--replay", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("changed"), "{}", text(&o.stderr));

    // Restore the input but tamper with the stored trace: the outputs differ.
    std::fs::copy(Path::new(ROOT).join("fixtures/tool_chain_failures.ndjson"), &input).unwrap();
    let trace = out.join("trace.ndjson");
    let tampered = read(&out, "trace.ndjson").replacen("RETRY_TRANSIENT", "RETRY_TAMPERED", 1);
    std::fs::write(&trace, tampered).unwrap();
    let o = rcv(&["run", "--replay", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("trace.ndjson differs"), "{}", text(&o.stderr));
}

#[test]
fn one_request_from_stdin() {
    let out = scratch("stdin");
    let input = std::fs::read(Path::new(ROOT).join("fixtures/single_request.ndjson")).unwrap();
    let o = rcv_stdin(
        &["run", "policies/tool_chain.rcv", "-", "--out", out.path().to_str().unwrap(), "--format", "json"],
        &input,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(report["totals"]["cases"], 1);
    assert_eq!(report["totals"]["auto_recovered"], 1);
    assert_eq!(report["snapshot"]["inputs"][0]["path"], "-");
}

#[test]
fn rejected_lines_are_counted_and_traced() {
    let out = scratch("bad");
    let o =
        rcv(&["run", "policies/tool_chain.rcv", "fixtures/bad_lines.ndjson", "--out", out.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "rejected lines exit 1; stderr: {}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&read(out.path(), "report.json")).unwrap();
    let input = &report["input"];
    let lines = input["lines"].as_u64().unwrap();
    let accounted = input["accepted_events"].as_u64().unwrap()
        + input["blank_lines"].as_u64().unwrap()
        + input["rejected"].as_u64().unwrap();
    assert_eq!(lines, accounted, "every input line is accounted for: {input}");
    let rejected: Vec<serde_json::Value> = read(out.path(), "trace.ndjson")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "rejected")
        .collect();
    assert_eq!(rejected.len() as u64, input["rejected"].as_u64().unwrap());
    assert!(rejected.iter().all(|r| r["line"].as_u64().is_some_and(|n| n >= 1) && r["reason"].is_string()));
    insta::assert_json_snapshot!("run_bad_lines_input", input);
}

#[test]
fn otlp_input_replays() {
    let out = scratch("otlp");
    let o =
        rcv(&["run", "policies/tool_chain.rcv", "fixtures/otlp_sample.json", "--out", out.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&read(out.path(), "report.json")).unwrap();
    assert!(report["totals"]["cases"].as_u64().unwrap() >= 1);
    assert!(report["totals"]["decisions"].as_u64().unwrap() >= 1);
}

#[test]
fn a_policy_with_errors_runs_nothing() {
    let dir = scratch("badpolicy");
    let policy = dir.path().join("p.rcv");
    std::fs::write(&policy, "policy p version \"1.0.0\"\nrecover { otherwise => retry, reason NOPE }\n").unwrap();
    let out = dir.path().join("out");
    let o = rcv(&["run", policy.to_str().unwrap(), "fixtures/single_request.ndjson", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.join("report.json").exists());
    let o = rcv(&["run", "policies/tool_chain.rcv", "no/such/file.ndjson", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no/such/file.ndjson"));
}

#[test]
fn decide_answers_one_failure() {
    let input = std::fs::read(Path::new(ROOT).join("fixtures/decide_input.json")).unwrap();
    let o = rcv_stdin(&["decide", "policies/tool_chain.rcv"], &input);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answer: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    insta::assert_json_snapshot!("decide_answer", answer);

    // A success that passes `accept` needs no decision and ends the step.
    let ok = br#"{"event": {"kind": "model_call", "model": "gpt-4o", "outcome": "ok",
                  "output": {"schema_valid": true, "confidence": 0.9}}, "state": {"attempt": 2}}"#;
    let o = rcv_stdin(&["decide", "--compact", "policies/tool_chain.rcv"], ok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answer: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert!(answer["decision"].is_null());
    assert_eq!(answer["state"]["attempt"], 0);
    assert_eq!(answer["state"]["steps_done"], 1);

    // Garbage in: exit 2 with a message, never a panic.
    let o = rcv_stdin(&["decide", "policies/tool_chain.rcv"], b"{not json");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("stdin"));

    // A misspelt field is an error, as in traces, not silently ignored.
    let typo = br#"{"event": {"kind": "model_call", "outcome": "error", "latncy_ms": 80}}"#;
    let o = rcv_stdin(&["decide", "policies/tool_chain.rcv"], typo);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown field `latncy_ms`"), "{}", text(&o.stderr));
}

#[test]
fn idle_limit_keeps_results_when_requests_are_close_together() {
    let a = scratch("idle-none");
    let b = scratch("idle-limit");
    assert!(run_fixture(a.path(), "1").status.success());
    let o = rcv(&[
        "run",
        "policies/tool_chain.rcv",
        "fixtures/tool_chain_failures.ndjson",
        "--out",
        b.path().to_str().unwrap(),
        "--close-idle-lines",
        "200",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ra: serde_json::Value = serde_json::from_str(&read(a.path(), "report.json")).unwrap();
    let rb: serde_json::Value = serde_json::from_str(&read(b.path(), "report.json")).unwrap();
    // The fixture's requests span far fewer than 200 lines: same cases, same outcomes.
    assert_eq!(ra["totals"], rb["totals"]);
    assert_eq!(ra["input"], rb["input"]);
    assert_eq!(rb["snapshot"]["close_idle_lines"], 200);
    assert!(ra["snapshot"].get("close_idle_lines").is_none());
    // The option is part of the snapshot, so --replay reproduces it.
    let o = rcv(&["run", "--replay", b.path().join("report.json").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// Piped input arrives in pieces of the pipe's size, so `--jobs 2` cuts it
/// into other chunks than a file: the outputs, with lines over
/// `--max-line-bytes` among them, are still those of one job.
#[test]
fn piped_input_gives_the_same_outputs_for_one_and_two_jobs() {
    let dir = scratch("piped");
    let mut input = Vec::new();
    for _ in 0..6 {
        input.extend(std::fs::read(Path::new(ROOT).join("fixtures/tool_chain_failures.ndjson")).unwrap());
    }
    input.extend(std::fs::read(Path::new(ROOT).join("fixtures/bad_lines.ndjson")).unwrap());
    let run = |jobs: &str| {
        let out = dir.path().join(format!("out{jobs}"));
        let args = ["run", "policies/tool_chain.rcv", "-", "--max-line-bytes", "700", "--jobs", jobs, "--out"];
        let o = rcv_stdin(&[&args[..], &[out.to_str().unwrap()]].concat(), &input);
        assert_eq!(o.status.code(), Some(1), "rejected lines exit 1; stderr: {}", text(&o.stderr));
        out
    };
    let (one, two) = (run("1"), run("2"));
    let report: serde_json::Value = serde_json::from_str(&read(&one, "report.json")).unwrap();
    assert!(report["input"]["rejected_by_reason"]["line_too_long"].as_u64().unwrap_or(0) > 0, "{}", report["input"]);
    for name in ["trace.ndjson", "report.json", "summary.md"] {
        assert!(read(&one, name) == read(&two, name), "{name} differs between --jobs 1 and --jobs 2");
    }
}
