//! Rendering of diagnostics: human (ariadne, colour only on request), json
//! and SARIF 2.1.0.

use super::{Diagnostic, Source};
use crate::span::LineIndex;

/// Placeholder rendering: `file:line:col: level[CODE]: message`.
pub fn human(diags: &[Diagnostic], src: &Source, _color: bool) -> String {
    let idx = LineIndex::new(&src.text);
    let mut out = String::new();
    for d in diags {
        let (line, col) = idx.line_col(&src.text, d.span().start);
        out.push_str(&format!("{}:{line}:{col}: {}[{}]: {}\n", src.name, d.level.as_str(), d.code, d.message));
    }
    out
}
