//! The registry of diagnostic codes: each code is defined once, here, with
//! its level and its documentation. `docs/diagnostics.md` is generated from
//! this table (see the `diagnostics_doc_is_current` test), so a code cannot
//! exist without documentation.

use serde::{Serialize, Serializer};

use super::Level;

macro_rules! codes {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $code:literal, $level:ident, $title:literal;
    )*) => {
        /// A stable diagnostic code (`RCV001`...). Codes are never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            pub fn default_level(self) -> Level {
                match self { $(Code::$variant => Level::$level,)* }
            }

            /// A short title, e.g. "unknown name".
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// The long documentation: what it means, an example, how to fix it.
            pub fn doc(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc, "\n",)*),)* }
            }
        }
    };
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

codes! {
    /// The file does not follow the grammar. The message names what was
    /// expected at the first position that could not be read.
    ///
    /// ```rcv
    /// recover { when class == timeout => retry }   # missing `, reason NAME`
    /// ```
    ///
    /// Fix: write what the message expects; `docs/language.md` has the grammar.
    Syntax = "RCV001", Error, "syntax error";

    /// The file could not be read as text: it is not valid UTF-8, contains a
    /// NUL byte, or is empty.
    ///
    /// Fix: save the policy as UTF-8 text.
    NotText = "RCV002", Error, "not a policy text";

    /// Parentheses, brackets or braces nest deeper than the parser allows
    /// (64 levels). Deeper nesting is never needed and is refused before
    /// parsing so that no input can exhaust the stack.
    ///
    /// Fix: flatten the expression.
    TooDeep = "RCV003", Error, "nesting too deep";

    /// A literal cannot be represented: an integer out of range, a number
    /// that is not finite, an unknown escape in a string.
    ///
    /// ```rcv
    /// const huge = 99999999999999999999
    /// ```
    ///
    /// Fix: use a value within range.
    BadLiteral = "RCV004", Error, "invalid literal";
}
