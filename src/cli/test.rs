//! `rcv test [PATH...]`: runs policy unit tests (`*.rcvtest.yaml`, see
//! `docs/testing.md`) and reports rule coverage. Exit 0 when every case
//! passes (and coverage meets `--min-coverage`), 1 on failures, 2 on usage
//! or input errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::report::atomic;
use crate::report::policy_test::{self, FileResult};

use super::common::{Failure, load_policy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Test files or directories searched for `*.rcvtest.yaml` [default: policies/].
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Fail when fewer than PCT percent of the rules are exercised.
    #[arg(long, value_name = "PCT")]
    pub min_coverage: Option<f64>,
}

const SUFFIX: &str = ".rcvtest.yaml";

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Failure::Io(format!("cannot read `{}`: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                collect(&p, out)?;
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(SUFFIX)) {
                out.push(p);
            }
        }
        Ok(())
    } else if path.exists() {
        out.push(path.to_path_buf());
        Ok(())
    } else {
        Err(Failure::Io(format!("no such file or directory `{}`", path.display())))
    }
}

fn run_file(path: &Path) -> Result<FileResult, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::Io(format!("cannot read `{}`: {e}", path.display())))?;
    let file = policy_test::parse(&text).map_err(|e| Failure::Input(format!("`{}`: {e}", path.display())))?;
    let policy_path = path.parent().unwrap_or(Path::new("")).join(&file.policy);
    let (source, policy) = load_policy(&policy_path)?;
    Ok(policy_test::run(&path.display().to_string(), &file, &policy, &policy_path.display().to_string(), &source.text))
}

fn execute(args: &TestArgs) -> Result<bool, Failure> {
    let roots = if args.paths.is_empty() { vec![PathBuf::from("policies")] } else { args.paths.clone() };
    let mut files = Vec::new();
    for r in &roots {
        collect(r, &mut files)?;
    }
    if files.is_empty() {
        return Err(Failure::Input(format!("no `*{SUFFIX}` files under {}", display(&roots))));
    }
    let results = files.iter().map(|f| run_file(f)).collect::<Result<Vec<_>, _>>()?;
    match args.format {
        Format::Human => print!("{}", policy_test::human(&results)),
        Format::Json => println!("{}", policy_test::json(&results)),
    }
    if let Some(j) = &args.junit {
        atomic::write(j, policy_test::junit(&results).as_bytes())
            .map_err(|e| Failure::Io(format!("cannot write `{}`: {e}", j.display())))?;
    }
    let failed = results.iter().any(|r| r.failed() > 0);
    let (covered, total) = policy_test::coverage_totals(&results);
    let pct = policy_test::percent(covered, total);
    let low = args.min_coverage.is_some_and(|min| pct < min);
    if low {
        eprintln!("error: rule coverage {pct}% is below the minimum {}%", args.min_coverage.unwrap_or_default());
    }
    Ok(!failed && !low)
}

fn display(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
}

pub fn run(args: TestArgs) -> ExitCode {
    if let Some(m) = args.min_coverage
        && !(0.0..=100.0).contains(&m)
    {
        eprintln!("error: `--min-coverage` takes a percentage from 0 to 100");
        return ExitCode::from(2);
    }
    match execute(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(f) => super::common::exit(Err(f)),
    }
}
