//! Checked policy -> decision table: lowering, analysis (gaps, shadowed
//! rules, termination, invariants), the policy hash, and table evaluation
//! used by the runtime.

use serde::Serialize;

use crate::check::CheckedPolicy;
use crate::diag::{Diagnostic, Source};
use crate::schema::Facts;
use crate::syntax::ast::ActionKind;

/// A rule hit: `rule` indexes the checked policy's rule list of that block
/// (`classify`, `recover` or `accept`), `row` the table row that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub rule: usize,
    pub row: usize,
}

/// A compiled policy: the checked declarations and rules, their decision
/// table, and the hash that every output stamps.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledPolicy {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the canonical compiled form.
    pub hash: String,
    /// Declarations and rules the table rows point back into.
    pub source: CheckedPolicy,
}

impl CompiledPolicy {
    /// The first `classify` rule that matches.
    pub fn classify(&self, _facts: &Facts<'_>) -> Option<Hit> {
        None
    }

    /// The first `recover` rule that matches.
    pub fn recover(&self, _facts: &Facts<'_>) -> Option<Hit> {
        None
    }

    /// The first `accept` requirement that fails.
    pub fn accept(&self, _facts: &Facts<'_>) -> Option<Hit> {
        None
    }

    /// Indices (into `source.invariants`) of invariants that taking
    /// `action` in this situation would violate.
    pub fn violated_invariants(&self, _facts: &Facts<'_>, _action: ActionKind) -> Vec<usize> {
        Vec::new()
    }
}

/// Everything one source file produced: diagnostics of every stage, and the
/// compiled policy when there was no error.
#[derive(Debug)]
pub struct Build {
    pub policy: Option<CompiledPolicy>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Build {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Runs the whole front end on one source: parse, check, compile, analyse.
pub fn build(source: &Source) -> Build {
    let ast = match crate::syntax::parse(&source.text) {
        Ok(ast) => ast,
        Err(diagnostics) => return Build { policy: None, diagnostics },
    };
    let (checked, mut diagnostics) = crate::check::check(&ast);
    let policy = checked.map(|source| compile(source, &mut diagnostics));
    crate::diag::sort(&mut diagnostics);
    let policy = if diagnostics.iter().any(Diagnostic::is_error) { None } else { policy };
    Build { policy, diagnostics }
}

/// Lowers a checked policy and runs the analyses, appending their findings.
pub fn compile(source: CheckedPolicy, _diagnostics: &mut Vec<Diagnostic>) -> CompiledPolicy {
    CompiledPolicy { name: source.name.clone(), version: source.version.clone(), hash: String::new(), source }
}
