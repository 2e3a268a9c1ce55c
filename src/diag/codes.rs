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

    // ---- compile: table analysis ----

    /// A rule's condition expands into more than 512 table rows. The
    /// compiler puts every condition in disjunctive normal form (an `or` of
    /// `and`s); a conjunction of many `or`s over different fields multiplies
    /// out. The limit keeps compile time and table size bounded.
    ///
    /// ```rcv
    /// when (error.code == "a" or error.type == "b") and (error.code == "c" or error.type == "d") and ...
    /// ```
    ///
    /// Fix: split the rule into several simpler rules, or test one field per
    /// `or` (`error.code in ["a", "c"]` is one row).
    RuleTooComplex = "RCV401", Error, "condition too complex";

    /// Some events reach the end of `recover` without matching any rule, so
    /// the policy says nothing about how to recover from them. The message
    /// gives each uncovered region as a condition and a concrete example.
    ///
    /// ```rcv
    /// recover {
    ///   when class == timeout and attempt < 3 => retry, reason RETRY
    ///   when class == auth_failed => escalate, reason AUTH
    /// }   # timeout at attempt 3 matches nothing
    /// ```
    ///
    /// Fix: add rules for the regions listed, or end the block with
    /// `otherwise => ...`.
    RecoverGap = "RCV402", Error, "unhandled events";

    /// Some events match no `classify` rule and there is no `otherwise`:
    /// they get no failure class, so no `recover` rule that tests `class`
    /// can match them.
    ///
    /// ```rcv
    /// classify {
    ///   error.http_status == 429 => rate_limited
    /// }   # a 500 gets no class
    /// ```
    ///
    /// Fix: add `otherwise => unknown` (with a declared class `unknown`) or
    /// rules for the regions listed.
    ClassifyGap = "RCV403", Warning, "unclassified events";

    /// Every event this rule matches is already matched by earlier rules
    /// (first match wins), so it never fires. The labels show the rules that
    /// cover it.
    ///
    /// ```rcv
    /// when class in {timeout, rate_limited} => retry, reason RETRY
    /// when class == timeout and attempt >= 3 => escalate, reason GIVE_UP   # never fires
    /// ```
    ///
    /// Fix: move the rule above the rules that cover it, narrow those, or
    /// delete it.
    ShadowedRule = "RCV404", Warning, "shadowed rule";

    /// The rule's condition cannot hold for any event: it contradicts itself
    /// or asks for values a field never takes (`attempt < 1`, a risk above
    /// `critical`).
    ///
    /// ```rcv
    /// when attempt < 3 and attempt > 5 => retry, reason RETRY
    /// ```
    ///
    /// Fix: correct the comparison or delete the rule.
    UnreachableRule = "RCV405", Warning, "rule never matches";

    /// The policy can keep retrying, falling back or resetting forever: some
    /// non-terminal rule has no bound on how often it fires (no `attempt`,
    /// `class_attempts`, `resets` or `fallbacks` limit in its condition) and no
    /// engine cap in `budget` stops it.
    ///
    /// ```rcv
    /// recover {
    ///   when class == timeout => retry, reason RETRY   # no attempt limit
    ///   otherwise => escalate, reason GIVE_UP
    /// }
    /// ```
    ///
    /// Fix: add `attempt < N` to the rule, or `attempts N` to `budget`.
    UnboundedRetry = "RCV406", Error, "unbounded retries";

    /// A reachable rule takes an action that an invariant forbids (`never`)
    /// or fails to take the action it requires (`always`) for some events
    /// the invariant covers. The message gives a concrete event.
    ///
    /// ```rcv
    /// recover { otherwise => retry, reason RETRY }
    /// invariant "no retried side effects": never retry when tool.side_effects
    /// ```
    ///
    /// Fix: add a rule above it that handles the invariant's events with an
    /// allowed action, or narrow the rule's condition.
    InvariantViolated = "RCV407", Error, "invariant violated";

    /// A decision the engine takes on its own may break an invariant: the
    /// `budget` decision (taken when a cap is hit, whatever the event) or a
    /// `fleet` decision (taken instead of a retry when the fleet retry budget
    /// is spent or a breaker is open). Whether it happens depends on runtime
    /// state the table cannot see, so this is a warning, not an error.
    ///
    /// ```rcv
    /// budget { attempts 3 => fallback backup, reason OUT_OF_ATTEMPTS }
    /// invariant "pinned model at high risk": never fallback when risk >= high
    /// ```
    ///
    /// Fix: make the engine decision one the invariant allows (an
    /// `escalate`, usually).
    InvariantAtRisk = "RCV408", Warning, "engine decision may violate an invariant";

    /// The table is too wide for the analyses to finish within their bounds
    /// (20,000 regions per pass): the message says which checks (gaps,
    /// shadowed rules, invariants) were not completed. Results that were
    /// reported are still correct; missing ones are not proven absent.
    ///
    /// Fix: split the policy, or simplify rules that combine many fields.
    AnalysisIncomplete = "RCV409", Warning, "analysis incomplete";

    /// A regex cannot be compiled into a matcher within the size limit.
    ///
    /// ```rcv
    /// error.message ~ /(a{1000}){1000}/ => unknown
    /// ```
    ///
    /// Fix: use a smaller pattern.
    BadRegex = "RCV410", Error, "regex too large";
}
