//! Rendering of diagnostics: human (ariadne, colour only on request), json
//! and SARIF 2.1.0.
