//! `rcv fmt [--check] PATH...`: rewrites policy files in the canonical
//! layout (`docs/language.md`, "Formatting").
//!
//! Exit codes: 0 nothing to report; 1 a file does not parse, or (with
//! `--check`) a file is not formatted; 2 a path cannot be read or written.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::diag::{Diagnostic, Source};
use crate::span::LineIndex;
use crate::syntax::fmt::format_source;

#[derive(Args, Debug)]
pub struct FmtArgs {
    /// Write nothing; list the files that are not formatted, with a diff,
    /// and exit 1 if there is any
    #[arg(long)]
    pub check: bool,

    /// Policy files, or directories searched recursively for `*.rcv`;
    /// `-` reads standard input and writes the result to standard output
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// The worst outcome so far decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Clean = 0,
    Findings = 1,
    Failure = 2,
}

enum Target {
    Stdin,
    File(PathBuf),
}

pub fn run(args: &FmtArgs) -> ExitCode {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let outcome = run_with(args, &mut stdout.lock(), &mut stderr.lock());
    ExitCode::from(outcome as u8)
}

fn run_with(args: &FmtArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let mut outcome = Outcome::Clean;
    let mut targets: Vec<Target> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut stdin_seen = false;
    for path in &args.paths {
        if path.as_os_str() == "-" {
            if stdin_seen {
                let _ = writeln!(err, "error: `-` (standard input) may be given only once");
                return Outcome::Failure;
            }
            stdin_seen = true;
            targets.push(Target::Stdin);
            continue;
        }
        let found = match fs::metadata(path) {
            Ok(m) if m.is_dir() => match collect_dir(path) {
                Ok(files) => files,
                Err(e) => {
                    let _ = writeln!(err, "error: cannot read directory `{}`: {e}", path.display());
                    outcome = outcome.max(Outcome::Failure);
                    continue;
                }
            },
            Ok(_) => vec![path.clone()],
            Err(e) => {
                let _ = writeln!(err, "error: cannot read `{}`: {e}", path.display());
                outcome = outcome.max(Outcome::Failure);
                continue;
            }
        };
        for f in found {
            if !seen.contains(&f) {
                seen.push(f.clone());
                targets.push(Target::File(f));
            }
        }
    }
    for t in targets {
        let o = match t {
            Target::Stdin => format_stdin(args.check, out, err),
            Target::File(p) => format_file(&p, args.check, out, err),
        };
        outcome = outcome.max(o);
    }
    outcome
}

/// Every `*.rcv` file under `dir`, sorted; hidden directories and symbolic
/// links to directories are not entered.
fn collect_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if ty.is_dir() {
                if !hidden {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rcv") && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn format_stdin(check: bool, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let mut bytes = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut bytes) {
        let _ = writeln!(err, "error: cannot read standard input: {e}");
        return Outcome::Failure;
    }
    let Some((source, formatted)) = format_bytes("<stdin>", bytes, err) else {
        return Outcome::Findings;
    };
    if check {
        if formatted == source.text {
            return Outcome::Clean;
        }
        let _ = writeln!(out, "would reformat <stdin>");
        let _ = out.write_all(diff("<stdin>", &source.text, &formatted).as_bytes());
        return Outcome::Findings;
    }
    if let Err(e) = out.write_all(formatted.as_bytes()).and_then(|()| out.flush()) {
        let _ = writeln!(err, "error: cannot write standard output: {e}");
        return Outcome::Failure;
    }
    Outcome::Clean
}

fn format_file(path: &Path, check: bool, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let name = path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(err, "error: cannot read `{name}`: {e}");
            return Outcome::Failure;
        }
    };
    let Some((source, formatted)) = format_bytes(&name, bytes, err) else {
        return Outcome::Findings;
    };
    if formatted == source.text {
        return Outcome::Clean;
    }
    if check {
        let _ = writeln!(out, "would reformat {name}");
        let _ = out.write_all(diff(&name, &source.text, &formatted).as_bytes());
        return Outcome::Findings;
    }
    match write_atomic(path, &formatted) {
        Ok(()) => {
            let _ = writeln!(err, "reformatted {name}");
            Outcome::Clean
        }
        Err(e) => {
            let _ = writeln!(err, "error: cannot write `{name}`: {e}");
            Outcome::Failure
        }
    }
}

/// Decodes, parses and formats; prints the diagnostics and returns `None`
/// when the text is not a valid policy.
fn format_bytes(name: &str, bytes: Vec<u8>, err: &mut dyn Write) -> Option<(Source, String)> {
    let (source, bad_utf8) = Source::from_bytes(name, bytes);
    let result = match bad_utf8 {
        Some(d) => Err(vec![d]),
        None => format_source(&source.text),
    };
    match result {
        // A safety net: never write a text that no longer parses.
        Ok(formatted) if crate::syntax::parse(&formatted).is_err() => {
            let _ = writeln!(err, "error: formatting `{name}` produced text that does not parse; it is left unchanged");
            let _ = writeln!(err, "  note: this is a bug in `rcv fmt`; please report it with the file");
            None
        }
        Ok(formatted) => Some((source, formatted)),
        Err(mut diags) => {
            crate::diag::sort(&mut diags);
            for d in &diags {
                let _ = err.write_all(render(&source, d).as_bytes());
            }
            None
        }
    }
}

/// Widest stretch of a source line shown under a diagnostic, in characters.
const SNIPPET_WIDTH: usize = 100;

/// `path:line:col: error[CODE]: message`, the source line with a caret under
/// the primary position, then help and notes.
fn render(source: &Source, d: &Diagnostic) -> String {
    let text = &source.text;
    let at = d.span().start.min(text.len());
    let (line, col) = LineIndex::new(text).line_col(text, at);
    let mut s = format!("{}:{line}:{col}: {}[{}]: {}\n", source.name, d.level.as_str(), d.code, d.message);
    let line_start = text.get(..at).and_then(|b| b.rfind('\n')).map_or(0, |i| i + 1);
    let line_text = text.get(line_start..).and_then(|r| r.split('\n').next()).unwrap_or("");
    let chars: Vec<char> = line_text.trim_end_matches('\r').chars().collect();
    if !chars.is_empty() {
        // Show a window of the line around the column; replace control
        // characters so that the caret stays aligned.
        let caret = col.saturating_sub(1).min(chars.len());
        let from = caret.saturating_sub(SNIPPET_WIDTH / 2);
        let to = (from + SNIPPET_WIDTH).min(chars.len());
        let shown: String =
            chars.get(from..to).unwrap_or(&[]).iter().map(|&c| if c.is_control() { ' ' } else { c }).collect();
        let gutter = line.to_string();
        let pad = " ".repeat(gutter.len());
        let ellipsis = if from > 0 { "…" } else { "" };
        s.push_str(&format!("{gutter} | {ellipsis}{shown}\n"));
        let label = d.labels.first().map_or("", |l| l.message.as_str());
        let offset = " ".repeat(caret - from + ellipsis.chars().count());
        s.push_str(&format!("{pad} | {offset}^ {label}\n"));
    }
    if let Some(h) = &d.help {
        s.push_str(&format!("  help: {h}\n"));
    }
    for n in &d.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(name, &format!("{name} (formatted)"))
        .to_string()
}

/// Replaces `path` by `content` through a temporary file in the same
/// directory and a rename, so that a reader never sees a half-written file.
/// A symbolic link is followed: the file it points to is replaced.
fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let real = fs::canonicalize(path)?;
    let dir = real.parent().unwrap_or(Path::new("."));
    let file_name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.rcv-fmt.{}.tmp", std::process::id()));
    let permissions = fs::metadata(&real)?.permissions();
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::set_permissions(&tmp, permissions)?;
        fs::rename(&tmp, &real)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::span::Span;

    #[test]
    fn render_points_at_the_column() {
        let src = Source::new("p.rcv", "policy p version \"1\"\nrecover { x }\n");
        let d = Diagnostic::new(Code::Syntax, "expected `when`, found `x`", Span::new(31, 32), "found `x`")
            .with_help("write `when`");
        let r = render(&src, &d);
        assert_eq!(
            r,
            "p.rcv:2:11: error[RCV001]: expected `when`, found `x`\n2 | recover { x }\n  |           ^ found `x`\n  help: write `when`\n"
        );
    }

    #[test]
    fn render_windows_long_lines() {
        let text = format!("{}x", "a".repeat(10_000));
        let src = Source::new("p.rcv", text);
        let d = Diagnostic::new(Code::Syntax, "bad", Span::new(10_000, 10_001), "here");
        let r = render(&src, &d);
        assert!(r.len() < 400, "{r}");
        assert!(r.contains("1:10001:"), "{r}");
    }
}
