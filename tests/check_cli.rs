//! `rcv check` through the real binary: exit codes, formats, directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

const CLEAN: &str = r#"policy clean version "1.0.0"

classes { timeout transient, unknown }
reasons { RETRY "transient error", STOP "no recovery" severity high }
classify {
  error.message ~ /timed out/i => timeout
  otherwise => unknown
}
recover {
  when class == timeout and attempt < 3 => retry backoff exponential(250ms, 2.0, 8s) jitter full, reason RETRY
  otherwise => escalate, reason STOP
}
"#;

const WARNS: &str = r#"policy warns version "1.0.0"

classes { timeout transient }
reasons { RETRY "transient error", OLD "never given" }
classify { otherwise => timeout }
recover {
  when attempt < 3 => retry, reason RETRY
  otherwise => escalate, reason RETRY
}
"#;

const BROKEN: &str = r#"policy broken version "1.0.0"

classes { timeout transient }
reasons { RETRY "transient error" }
classify { error.http_code == 504 => timout }
recover { otherwise => escalate, reason RETRY }
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rcv(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcv")).args(args).current_dir(dir).env_remove("NO_COLOR").output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A fresh scratch directory holding the given files; removed on drop,
/// so also when the test fails.
fn scratch(name: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("rcv-check-cli-{name}-")).tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn clean_policy_exits_zero() {
    let dir = scratch("clean", &[("clean.rcv", CLEAN)]);
    let o = rcv(&["check", "clean.rcv"], dir.path());
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o).trim(), "checked 1 file: 0 errors, 0 warnings");
}

#[test]
fn errors_exit_one_and_are_all_reported() {
    let dir = scratch("broken", &[("broken.rcv", BROKEN)]);
    let o = rcv(&["check", "broken.rcv", "--color", "never"], dir.path());
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(out.contains("[RCV108] Error: unknown field `error.http_code`"), "{out}");
    assert!(out.contains("[RCV101] Error: unknown class `timout`"), "{out}");
    assert!(out.contains("broken.rcv:5:12"), "{out}");
    assert!(!out.contains('\u{1b}'), "no colour with --color never");
    assert_eq!(stderr(&o).trim(), "checked 1 file: 2 errors, 0 warnings");
}

#[test]
fn color_always_colours() {
    let dir = scratch("color", &[("broken.rcv", BROKEN)]);
    let o = rcv(&["check", "broken.rcv", "--color", "always"], dir.path());
    assert!(stdout(&o).contains('\u{1b}'));
    // Not a terminal: auto means no colour.
    let o = rcv(&["check", "broken.rcv"], dir.path());
    assert!(!stdout(&o).contains('\u{1b}'));
}

#[test]
fn warnings_pass_unless_denied() {
    let dir = scratch("warns", &[("warns.rcv", WARNS)]);
    let o = rcv(&["check", "warns.rcv"], dir.path());
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("[RCV110] Warning: reason `OLD` is never used"), "{}", stdout(&o));
    assert_eq!(stderr(&o).trim(), "checked 1 file: 0 errors, 1 warning");
    let o = rcv(&["check", "--deny", "warnings", "warns.rcv"], dir.path());
    assert_eq!(code(&o), 1);
}

#[test]
fn missing_path_exits_two_and_names_it() {
    let dir = scratch("missing", &[("clean.rcv", CLEAN)]);
    let o = rcv(&["check", "clean.rcv", "nope/absent.rcv"], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("`nope/absent.rcv`: no such file or directory"), "{}", stderr(&o));
}

#[test]
fn bad_usage_exits_two() {
    let o = rcv(&["check", "--format", "xml"], repo());
    assert_eq!(code(&o), 2);
}

#[test]
fn empty_directory_exits_two() {
    let dir = scratch("empty", &[("notes.txt", "nothing here")]);
    let o = rcv(&["check", "."], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no `.rcv` files"), "{}", stderr(&o));
}

#[test]
fn directories_are_walked_recursively_in_order() {
    let dir = scratch(
        "tree",
        &[
            ("policies/b.rcv", BROKEN),
            ("policies/a.rcv", CLEAN),
            ("policies/nested/deeper/c.rcv", WARNS),
            ("policies/readme.md", "not a policy"),
            ("policies/.hidden/d.rcv", BROKEN),
        ],
    );
    let o = rcv(&["check", "policies", "--format", "json"], dir.path());
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files: Vec<&str> = v["diagnostics"].as_array().unwrap().iter().map(|d| d["file"].as_str().unwrap()).collect();
    let b = Path::new("policies").join("b.rcv").display().to_string();
    let c = Path::new("policies").join("nested").join("deeper").join("c.rcv").display().to_string();
    assert_eq!(files, vec![b.as_str(), b.as_str(), c.as_str()]);
    // With no path, `policies/` is checked.
    let o = rcv(&["check"], dir.path());
    assert_eq!(stderr(&o).lines().last().unwrap(), "checked 3 files: 2 errors, 1 warning");
}

#[test]
fn json_format() {
    let dir = scratch("json", &[("broken.rcv", BROKEN)]);
    let o = rcv(&["check", "--format", "json", "broken.rcv"], dir.path());
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "", "no summary line in json mode");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], 1);
    let d = &v["diagnostics"][1];
    assert_eq!(d["code"], "RCV101");
    assert_eq!(d["level"], "error");
    assert_eq!(d["message"], "unknown class `timout`");
    assert_eq!(d["file"], "broken.rcv");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(5), Some(38)));
    assert_eq!((d["end_line"].as_u64(), d["end_column"].as_u64()), (Some(5), Some(44)));
    assert_eq!(d["help"], "did you mean `timeout`?");
    assert_eq!(d["labels"][0]["message"], "no class has this name");
}

#[test]
fn sarif_format() {
    let dir = scratch("sarif", &[("broken.rcv", BROKEN)]);
    let o = rcv(&["check", "--format", "sarif", "broken.rcv"], dir.path());
    assert_eq!(code(&o), 1);
    let mut v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif"));
    let driver = &v["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "rcv");
    let rules = driver["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), rcv::diag::Code::ALL.len());
    assert!(rules.iter().any(|r| r["id"] == "RCV101" && r["helpUri"] == "docs/diagnostics.md#rcv101"));
    // The rule list grows with every new code and the version with every
    // release; the snapshot keeps the results and one rule.
    let run = &mut v["runs"][0];
    run["tool"]["driver"]["version"] = "<version>".into();
    let rule = rules.iter().find(|r| r["id"] == "RCV101").unwrap().clone();
    run["tool"]["driver"]["rules"] = serde_json::json!([rule]);
    insta::assert_json_snapshot!("sarif_broken", v);
}

#[test]
fn bundled_policies_have_no_errors() {
    let o = rcv(&["check", "--color", "never"], repo());
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(": 0 errors"), "{}", stderr(&o));
}

#[test]
fn invalid_utf8_is_reported() {
    let dir = scratch("utf8", &[]);
    let mut bytes = CLEAN.as_bytes().to_vec();
    bytes.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(dir.path().join("latin1.rcv"), bytes).unwrap();
    let o = rcv(&["check", "latin1.rcv"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("[RCV002]"), "{}", stdout(&o));
}

#[test]
fn a_hundred_files_check_fast() {
    let files: Vec<(String, &str)> = (0..100).map(|i| (format!("p{i:03}.rcv"), CLEAN)).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let dir = scratch("hundred", &refs);
    let start = std::time::Instant::now();
    let o = rcv(&["check", "."], dir.path());
    let took = start.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("checked 100 files"));
    assert!(took.as_secs_f64() < 5.0, "100 files took {took:?}");
}

#[test]
fn reads_standard_input() {
    use std::io::Write;
    use std::process::Stdio;
    let check = |text: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
            .args(["check", "--color", "never", "-"])
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text).unwrap();
        child.wait_with_output().unwrap()
    };
    let clean = std::fs::read(repo().join("policies/tool_chain.rcv")).unwrap();
    let o = check(&clean);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("checked 1 file: 0 errors, 0 warnings"), "{}", stderr(&o));
    let o = check(b"policy p version \"1.0.0\"\nrecover { otherwise => escalate, reason NOPE }\n");
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("<stdin>") && stdout(&o).contains("RCV101"), "{}", stdout(&o));
}
