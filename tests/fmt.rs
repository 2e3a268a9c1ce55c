//! The canonical formatter: snapshots of every input under `tests/fmt/`,
//! the bundled policy as a fixed point, and `rcv fmt` run as a binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "fmt/support.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

#[test]
fn formatted_inputs() {
    insta::glob!("fmt/*.rcv", |path| {
        let src = fs::read_to_string(path).unwrap();
        let out = support::roundtrip(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        insta::assert_snapshot!(out);
    });
}

#[test]
fn bundled_policy_is_a_fixed_point() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tool_chain.rcv");
    let src = fs::read_to_string(&path).unwrap();
    let out = support::roundtrip(&src).unwrap();
    if out != src {
        let diff =
            similar::TextDiff::from_lines(&src, &out).unified_diff().header("as written", "formatted").to_string();
        panic!("policies/tool_chain.rcv is not in canonical form:\n{diff}");
    }
}

#[test]
fn every_rule_form_breaks_the_same_way() {
    let long = "a_rather_long_field_name.with_a_segment";
    let cond = format!("{long} and {long} and {long}");
    let src = format!(
        "policy p version \"1\"\nclassify {{ {cond} => some_class_name_that_is_long }}\n\
         recover {{ when {cond} => escalate queue \"q\", reason R }}\n\
         accept {{ require {cond} else abort, reason R }}\n\
         fleet {{ breaker failures 5 window 30s cooldown 60s => fallback a_backup_model_with_a_long_name strategy a_long_strategy_name_here, reason SOME_REASON }}\n"
    );
    let out = support::roundtrip(&src).unwrap();
    for cont in
        ["    => some_class_name_that_is_long", "    => escalate queue \"q\", reason R", "    else abort, reason R"]
    {
        assert!(out.lines().any(|l| l == cont), "missing `{cont}` in\n{out}");
    }
    assert!(out.contains("  breaker failures 5 window 30s cooldown 60s\n    => fallback"), "{out}");
    for line in out.lines() {
        let head_only = line.starts_with("  ") && !line.starts_with("    ");
        if head_only && line.chars().count() > rcv::syntax::fmt::MAX_WIDTH {
            // A head line may be long only when it was broken already.
            assert!(!line.contains("=>") && !line.contains(" else "), "unbroken long line: {line}");
        }
    }
}

// ---------- the binary ----------

fn rcv(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcv"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh directory for one test, under the target's scratch directory as
/// before; removed on drop, so also when the test fails.
fn scratch(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("rcv-fmt-cli-{name}-")).tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

const MESSY: &str = "policy p version \"1\"  classes{a transient,b}\nrecover{when class==a=>abort,reason R}\n";
const TIDY: &str = "policy p version \"1\"\n\nclasses {\n  a transient\n  b\n}\n\nrecover {\n  when class == a => abort, reason R\n}\n";

#[test]
fn check_passes_on_a_formatted_file() {
    let dir = scratch("check-ok");
    let f = dir.path().join("p.rcv");
    fs::write(&f, TIDY).unwrap();
    let o = rcv(&["fmt", "--check", f.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
}

#[test]
fn check_fails_on_an_unformatted_file_and_writes_nothing() {
    let dir = scratch("check-bad");
    let f = dir.path().join("p.rcv");
    fs::write(&f, MESSY).unwrap();
    let o = rcv(&["fmt", "--check", f.to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    assert!(out.starts_with(&format!("would reformat {}\n", f.display())), "{out}");
    assert!(out.contains("\n+  when class == a => abort, reason R\n"), "{out}");
    assert!(out.contains("\n-recover{when class==a=>abort,reason R}\n"), "{out}");
    assert_eq!(fs::read_to_string(&f).unwrap(), MESSY);
}

#[test]
fn rewrites_directories_in_place() {
    let tmp = scratch("rewrite");
    let dir = tmp.path();
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::create_dir_all(dir.join(".hidden")).unwrap();
    fs::write(dir.join("b.rcv"), MESSY).unwrap();
    fs::write(dir.join("sub/a.rcv"), MESSY).unwrap();
    fs::write(dir.join("tidy.rcv"), TIDY).unwrap();
    fs::write(dir.join("notes.txt"), "not a policy").unwrap();
    fs::write(dir.join(".hidden/c.rcv"), MESSY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("b.rcv"), fs::Permissions::from_mode(0o640)).unwrap();
    }
    let o = rcv(&["fmt", dir.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let expected =
        format!("reformatted {}\nreformatted {}\n", dir.join("b.rcv").display(), dir.join("sub/a.rcv").display());
    assert_eq!(text(&o.stderr), expected);
    assert_eq!(fs::read_to_string(dir.join("b.rcv")).unwrap(), TIDY);
    assert_eq!(fs::read_to_string(dir.join("sub/a.rcv")).unwrap(), TIDY);
    assert_eq!(fs::read_to_string(dir.join("tidy.rcv")).unwrap(), TIDY);
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "not a policy");
    assert_eq!(fs::read_to_string(dir.join(".hidden/c.rcv")).unwrap(), MESSY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("b.rcv")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
    // No temporary file is left behind.
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, [".hidden", "b.rcv", "notes.txt", "sub", "tidy.rcv"]);
    // A second run has nothing to do.
    let again = rcv(&["fmt", "--check", dir.to_str().unwrap()], None);
    assert_eq!(code(&again), 0, "{}", text(&again.stdout));
}

#[test]
fn stdin_is_formatted_to_stdout() {
    let o = rcv(&["fmt", "-"], Some(MESSY.as_bytes()));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), TIDY);
    let o = rcv(&["fmt", "--check", "-"], Some(MESSY.as_bytes()));
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).starts_with("would reformat <stdin>\n"));
    let o = rcv(&["fmt", "--check", "-"], Some(TIDY.as_bytes()));
    assert_eq!(code(&o), 0);
    assert!(o.stdout.is_empty());
}

#[test]
fn a_syntax_error_is_reported_and_the_file_left_alone() {
    let dir = scratch("syntax");
    let bad = dir.path().join("bad.rcv");
    let good = dir.path().join("good.rcv");
    let broken = "policy p version \"1\"\nrecover { when class == timeout => retry }\n";
    fs::write(&bad, broken).unwrap();
    fs::write(&good, MESSY).unwrap();
    let o = rcv(&["fmt", bad.to_str().unwrap(), good.to_str().unwrap()], None);
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(err.starts_with(&format!("{}:2:42: error[RCV001]: expected", bad.display())), "{err}");
    assert!(err.contains("help: every decision names a declared reason"), "{err}");
    assert_eq!(fs::read_to_string(&bad).unwrap(), broken);
    // The other file is still formatted.
    assert_eq!(fs::read_to_string(&good).unwrap(), TIDY);
    // Through stdin: the diagnostic, and nothing on stdout.
    let o = rcv(&["fmt", "-"], Some(broken.as_bytes()));
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert!(text(&o.stderr).starts_with("<stdin>:2:42: error[RCV001]"), "{}", text(&o.stderr));
}

#[test]
fn missing_files_and_bad_usage_exit_2() {
    let dir = scratch("missing");
    let missing = dir.path().join("nope.rcv");
    let o = rcv(&["fmt", missing.to_str().unwrap()], None);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains(&format!("error: cannot read `{}`", missing.display())), "{}", text(&o.stderr));
    assert_eq!(code(&rcv(&["fmt"], None)), 2);
    assert_eq!(code(&rcv(&["fmt", "-", "-"], None)), 2);
    assert_eq!(code(&rcv(&["fmt", "--bogus", "x.rcv"], None)), 2);
}
