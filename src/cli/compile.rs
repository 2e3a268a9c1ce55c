//! `rcv compile POLICY [--format text|json|yaml] [-o FILE]`: builds a
//! policy, prints its decision table (with the policy hash and the proven
//! bound on decisions per request), and reports the analysis findings.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::cli::check::ColorChoice;
use crate::compile::{self, CompiledPolicy};
use crate::diag::{Diagnostic, Source, render};

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The policy file (`-` reads standard input)
    pub policy: PathBuf,
    /// Output format of the table
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the table to FILE (atomically) instead of standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Colour for diagnostics on stderr: auto uses colour only when stderr is a terminal (and NO_COLOR is unset)
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

/// Reads a policy file (or stdin for `-`) and builds it.
pub fn read_and_build(path: &Path) -> Result<(Source, compile::Build), String> {
    let name = path.display().to_string();
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| format!("cannot read stdin: {e}"))?;
        buf
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read `{name}`: {e}"))?
    };
    let name = if name == "-" { "<stdin>".to_string() } else { name };
    Ok(compile::build_bytes(name, bytes))
}

/// The table in the chosen format.
pub fn render(policy: &CompiledPolicy, format: Format, source_text: &str) -> Result<String, String> {
    match format {
        Format::Text => Ok(policy.to_text(Some(source_text))),
        Format::Json => serde_json::to_string_pretty(&policy.view(Some(source_text)))
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| format!("cannot serialise the table: {e}")),
        Format::Yaml => yaml_serde::to_string(&policy.view(Some(source_text)))
            .map_err(|e| format!("cannot serialise the table: {e}")),
    }
}

/// Writes `text` to `path` through a temporary file in the same directory,
/// renamed into place, so readers never see a partial file.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "out".to_string());
    let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn run(args: CompileArgs) -> ExitCode {
    let (source, build) = match read_and_build(&args.policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    if !build.diagnostics.is_empty() {
        eprint!("{}", render::human(&build.diagnostics, &source, color));
    }
    let Some(policy) = build.policy.filter(|_| !build.diagnostics.iter().any(Diagnostic::is_error)) else {
        return ExitCode::from(1);
    };
    let text = match render(&policy, args.format, &source.text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = write_atomic(path, &text) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
