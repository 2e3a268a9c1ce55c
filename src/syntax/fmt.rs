//! The canonical formatter (`rcv fmt`).

use super::ast::Policy;

/// Formats a parsed policy canonically, keeping its comments.
pub fn format(_policy: &Policy, src: &str) -> String {
    src.to_string()
}
