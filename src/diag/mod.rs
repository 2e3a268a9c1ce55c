//! Diagnostics: one type for every problem rcv reports about a source file,
//! with a stable code, a severity, labelled spans and help. Rendering lives
//! in `render` (human via ariadne, json, sarif).

pub mod codes;
pub mod render;

use serde::Serialize;

use crate::span::Span;

pub use codes::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A labelled span inside a diagnostic. The first label is the primary one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A problem found in a source file.
///
/// Messages follow one style: lowercase, no final period, user input in
/// backticks, no internal type or rule names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub level: Level,
    pub message: String,
    /// Primary label first.
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic at the level its code defaults to.
    pub fn new(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            code,
            level: code.default_level(),
            message: message.into(),
            labels: vec![Label { span, message: label.into() }],
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into() });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// The primary span (the first label), or an empty span at the start.
    pub fn span(&self) -> Span {
        self.labels.first().map_or(Span::default(), |l| l.span)
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// Diagnostics of one run, in a stable order (by position, then code).
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (a.span().start, a.code, &a.message).cmp(&(b.span().start, b.code, &b.message)));
}

/// A named source text that diagnostics point into.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user wrote it (or `<stdin>`).
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source { name: name.into(), text: text.into() }
    }

    /// Decodes file bytes. Invalid UTF-8 yields a lossy text and an RCV002
    /// diagnostic pointing at the first bad byte.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> (Source, Option<Diagnostic>) {
        match String::from_utf8(bytes) {
            Ok(text) => (Source::new(name, text), None),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let d = Diagnostic::new(
                    Code::NotText,
                    "the file is not valid UTF-8",
                    Span::new(at, at + 1),
                    "invalid byte here",
                )
                .with_help("save the policy as UTF-8 text");
                (Source::new(name, text), Some(d))
            }
        }
    }
}
