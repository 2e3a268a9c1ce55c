//! `rcv check [PATH...]`: parse, check and analyse policy files, and report
//! every diagnostic. Exit 0 when clean, 1 on errors (or on warnings with
//! `--deny warnings`), 2 on usage or I/O errors.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use indexmap::IndexSet;
use rayon::prelude::*;

use crate::diag::{self, Diagnostic, Source, render};

/// The directory checked when no path is given.
pub const DEFAULT_DIR: &str = "policies";

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Policy files, directories searched recursively for `*.rcv`, or `-` for
    /// standard input [default: policies/]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format, written to stdout (the human format ends with a summary line on stderr)
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Treat warnings as errors for the exit code
    #[arg(long, value_enum, value_name = "WHAT")]
    pub deny: Vec<Deny>,

    /// Colour for human output: auto uses colour only when stdout is a terminal (and NO_COLOR is unset)
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    Warnings,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Decodes, parses, checks and compiles one file; every diagnostic, sorted.
pub fn diagnose(name: &str, bytes: Vec<u8>) -> (Source, Vec<Diagnostic>) {
    let (source, not_text) = Source::from_bytes(name, bytes);
    let mut diags = crate::compile::diagnostics(&source);
    if let Some(d) = not_text {
        diags.push(d);
        diag::sort(&mut diags);
    }
    (source, diags)
}

/// The files named by `paths`: files as given, directories walked
/// recursively for `*.rcv` (sorted; hidden entries skipped). A path that
/// does not exist is an error naming it.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out: IndexSet<PathBuf> = IndexSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.insert(path.clone());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|e| io_message(path, &e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.insert(path.clone());
        }
    }
    Ok(out.into_iter().collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_message(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_message(dir, &e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type().map_err(|e| io_message(&path, &e))?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rcv") && (ty.is_file() || path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

fn io_message(path: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("`{}`: no such file or directory", path.display()),
        std::io::ErrorKind::PermissionDenied => format!("`{}`: permission denied", path.display()),
        _ => format!("`{}`: {e}", path.display()),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn run(args: CheckArgs) -> ExitCode {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(DEFAULT_DIR)] } else { args.paths.clone() };
    let files = match collect_files(&paths) {
        Ok(files) if files.is_empty() => {
            let shown: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
            eprintln!("error: no `.rcv` files in {}", shown.join(", "));
            return ExitCode::from(2);
        }
        Ok(files) => files,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let mut inputs = Vec::with_capacity(files.len());
    for f in &files {
        if f.as_os_str() == "-" {
            let mut bytes = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes) {
                eprintln!("error: cannot read standard input: {e}");
                return ExitCode::from(2);
            }
            inputs.push(("<stdin>".to_string(), bytes));
            continue;
        }
        match std::fs::read(f) {
            Ok(bytes) => inputs.push((f.display().to_string(), bytes)),
            Err(e) => {
                eprintln!("error: {}", io_message(f, &e));
                return ExitCode::from(2);
            }
        }
    }
    let results: Vec<(Source, Vec<Diagnostic>)> =
        inputs.into_par_iter().map(|(name, bytes)| diagnose(&name, bytes)).collect();

    let errors = results.iter().flat_map(|(_, d)| d).filter(|d| d.is_error()).count();
    let warnings = results.iter().flat_map(|(_, d)| d).filter(|d| !d.is_error()).count();
    let mut stdout = std::io::stdout().lock();
    let written = match args.format {
        Format::Human => {
            let color = match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            let mut text = String::new();
            for (src, diags) in &results {
                text.push_str(&render::human(diags, src, color));
            }
            stdout.write_all(text.as_bytes())
        }
        Format::Json => writeln!(stdout, "{:#}", render::json(&results)),
        Format::Sarif => writeln!(stdout, "{:#}", render::sarif(&results)),
    };
    if let Err(e) = written.and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write the report: {e}");
        return ExitCode::from(2);
    }
    if args.format == Format::Human {
        eprintln!(
            "checked {}: {}, {}",
            plural(results.len(), "file", "files"),
            plural(errors, "error", "errors"),
            plural(warnings, "warning", "warnings")
        );
    }
    let deny_warnings = args.deny.contains(&Deny::Warnings);
    if errors > 0 || (deny_warnings && warnings > 0) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
