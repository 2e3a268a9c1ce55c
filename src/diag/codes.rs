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

            /// The code's name, e.g. `UnknownName` (SARIF rule names).
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => stringify!($variant),)* }
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

    // ---- check: names, types, recovery lints ----

    /// A name is used but never declared: a class, reason, model, strategy,
    /// prompt, constant, gate metric, or a member of a built-in set such as
    /// the risk levels. The message suggests the closest declared name.
    ///
    /// ```rcv
    /// classes { timeout transient }
    /// classify { error.message ~ /timed out/ => timout }   # `timout`
    /// ```
    ///
    /// Fix: correct the spelling, or declare the name in its block.
    UnknownName = "RCV101", Error, "unknown name";

    /// The same name is declared twice in one namespace (two classes, two
    /// reasons, two constants...). The second label shows the first one.
    ///
    /// ```rcv
    /// classes { timeout transient, timeout permanent }
    /// ```
    ///
    /// Fix: remove or rename one of the declarations.
    DuplicateName = "RCV102", Error, "duplicate declaration";

    /// A setting is written twice: a model property (`tier`, `cost_per_1k`,
    /// `context`), a budget limit, a fleet setting or guard, or a gate bound
    /// on the same metric.
    ///
    /// ```rcv
    /// budget { attempts 4 attempts 6 }
    /// ```
    ///
    /// Fix: keep one value.
    DuplicateSetting = "RCV103", Error, "setting repeated";

    /// A block that may appear once appears twice. Only `const` and
    /// `invariant` may repeat.
    ///
    /// ```rcv
    /// classes { timeout transient }
    /// classes { server_error transient }
    /// ```
    ///
    /// Fix: merge the two blocks into one.
    RepeatedBlock = "RCV104", Error, "block repeated";

    /// A policy needs `classes`, `reasons`, `classify` and `recover` blocks:
    /// without them no failure can be classified or recovered.
    ///
    /// ```rcv
    /// policy p version "1.0.0"
    /// classes { timeout transient }
    /// reasons { R "retry" }
    /// classify { otherwise => timeout }
    /// # no `recover` block
    /// ```
    ///
    /// Fix: add the missing block.
    MissingBlock = "RCV105", Error, "required block missing";

    /// The policy version is not a semantic version `X.Y.Z`, optionally
    /// followed by `-prerelease` and `+build`. Reports and traces stamp it,
    /// so it must be comparable.
    ///
    /// ```rcv
    /// policy tool_chain version "2.3"
    /// ```
    ///
    /// Fix: write three numbers without leading zeros, e.g. `"2.3.0"`.
    BadVersion = "RCV106", Error, "version is not semver";

    /// The policy name is not lowercase `snake_case` (letters, digits and
    /// `_`, starting with a letter, at most 64 characters). Reports, traces
    /// and metric labels carry the name.
    ///
    /// ```rcv
    /// policy ToolChain version "1.0.0"
    /// ```
    ///
    /// Fix: rename it, e.g. `tool_chain`.
    PolicyName = "RCV107", Warning, "policy name is not snake_case";

    /// A condition tests a field path that the event schema does not have.
    /// `docs/language.md` lists every field; `metadata.<key>` reaches free
    /// request metadata.
    ///
    /// ```rcv
    /// classify { error.http_code == 429 => rate_limited }
    /// ```
    ///
    /// Fix: use a field of the schema (here `error.http_status`).
    UnknownField = "RCV108", Error, "unknown field";

    /// `classify` sees only the raw event. Fields the engine computes
    /// (`class`, `attempt`, `class_attempts`, `resets`, `fallbacks`,
    /// `spent.*`, `fleet.*`) do not exist yet when classification runs.
    ///
    /// ```rcv
    /// classify { attempt > 3 => timeout }
    /// ```
    ///
    /// Fix: move the test to `recover`, `accept` or an `invariant`.
    StateInClassify = "RCV109", Error, "engine state used in classify";

    /// A declaration is never used: a class that `classify` never assigns, a
    /// reason no decision gives, a model, strategy, prompt or constant that
    /// nothing names. The first declared model is the primary and always
    /// counts as used.
    ///
    /// ```rcv
    /// reasons { RETRY "retry", OLD "no longer used" }
    /// ```
    ///
    /// Fix: remove the declaration, or use it.
    Unused = "RCV110", Warning, "unused declaration";

    /// Two models declare the same provider id. Events name models by
    /// provider id, so the engine cannot tell which of the two served a call.
    ///
    /// ```rcv
    /// models { fast "gpt-4o" tier 1, careful "gpt-4o" tier 2 }
    /// ```
    ///
    /// Fix: give each model its own provider id.
    SharedProviderId = "RCV111", Warning, "two models share a provider id";

    /// A fleet guard has a setting that belongs to the other guard:
    /// `retry_budget` takes `ratio`, `min` and `window`; `breaker` takes
    /// `failures`, `window` and `cooldown`.
    ///
    /// ```rcv
    /// fleet { retry_budget ratio 0.2 min 10 window 60s cooldown 30s => abort, reason SHED }
    /// ```
    ///
    /// Fix: remove the setting, or move it to the guard it belongs to.
    MisplacedSetting = "RCV112", Error, "setting not allowed here";

    /// A fleet guard lacks a setting it needs: `retry_budget` needs `ratio`,
    /// `min` and `window`; `breaker` needs `failures`, `window` and
    /// `cooldown`.
    ///
    /// ```rcv
    /// fleet { breaker failures 5 window 30s => fallback backup, reason OPEN }
    /// ```
    ///
    /// Fix: add the missing setting (here `cooldown 60s`).
    MissingSetting = "RCV113", Error, "required setting missing";

    /// A value does not have the type its place needs: a condition compares
    /// a field with a value of another type, or a setting (budget, fleet,
    /// gate, constant used in a comparison) is written in the wrong unit.
    /// Durations are written `250ms`, `8s`; money `$0.05`; class, model,
    /// strategy and risk names without quotes.
    ///
    /// ```rcv
    /// classify { error.http_status == "429" => rate_limited }
    /// ```
    ///
    /// Fix: write the value in the field's type (here `429`).
    TypeMismatch = "RCV201", Error, "type mismatch";

    /// An operator does not apply to the field: `<`, `<=`, `>`, `>=` need a
    /// number, duration, amount or risk level; `~` needs a string field; a
    /// field alone as a condition must be a bool.
    ///
    /// ```rcv
    /// classify { error.code > 5 => server_error }
    /// ```
    ///
    /// Fix: use `==`, `in` or `~` as the field's type allows.
    BadOperator = "RCV202", Error, "operator does not apply to this field";

    /// A regex does not compile, or uses a flag other than `i`, `m`, `s`
    /// and `x`.
    ///
    /// ```rcv
    /// classify { error.message ~ /timed (out/ => timeout }
    /// ```
    ///
    /// Fix: correct the pattern; the syntax is that of the Rust `regex`
    /// crate (no look-around, no backreferences).
    BadRegex = "RCV203", Error, "invalid regex";

    /// A value is outside the range its setting allows: budget limits and
    /// model tiers and context windows are positive integers, a retry-budget
    /// ratio is in `(0, 1]`, a gate rate in `[0, 1]`, durations and costs
    /// are not negative.
    ///
    /// ```rcv
    /// fleet { retry_budget ratio 1.5 min 10 window 60s => abort, reason SHED }
    /// ```
    ///
    /// Fix: use a value within the range the message names.
    OutOfRange = "RCV204", Error, "value out of range";

    /// A backoff has arguments of the wrong kind or order:
    /// `fixed(DELAY)`, `linear(INITIAL, STEP, MAX)` with three durations,
    /// `exponential(INITIAL, FACTOR, MAX)` with a factor of at least 1 and a
    /// maximum not below the initial delay.
    ///
    /// ```rcv
    /// recover { otherwise => retry backoff exponential(8s, 2.0, 250ms), reason R }
    /// ```
    ///
    /// Fix: put the arguments in order: `exponential(250ms, 2.0, 8s)`.
    BadBackoff = "RCV205", Error, "invalid backoff";

    /// A gate has a `min` above its `max` for the same metric, so no run can
    /// ever pass it.
    ///
    /// ```rcv
    /// gate { min auto_recovered_rate 0.9  max auto_recovered_rate 0.8 }
    /// ```
    ///
    /// Fix: correct one of the two bounds.
    GateContradiction = "RCV206", Error, "gate can never pass";

    /// A rule retries (directly, or after a reset) a class declared
    /// `permanent`. A permanent failure (exhausted quota, rejected
    /// credentials) fails the same way again: the retry only spends budget.
    ///
    /// ```rcv
    /// classes { quota_exhausted permanent }
    /// recover { when class == quota_exhausted => retry, reason R }
    /// ```
    ///
    /// Fix: escalate or fall back instead, or declare the class `transient`
    /// if it really is.
    RetryPermanent = "RCV301", Warning, "retrying a permanent failure";

    /// A rule that can handle a context overflow (a class whose name
    /// mentions `context` or `overflow`) falls back to a model with a smaller
    /// `context` window than the model it applies to (or than the largest
    /// declared model, when the rule does not test `model`). The same input
    /// overflows again.
    ///
    /// ```rcv
    /// models { big "gpt-4o" context 128000, small "gpt-4o-mini" context 16000 }
    /// recover { when class == context_overflow => fallback small, reason R }
    /// ```
    ///
    /// Fix: fall back to a model with a larger window, or `reset context`
    /// first.
    FallbackShrinksContext = "RCV302", Warning, "fallback to a smaller context window";

    /// Fallback decisions form a cycle: a rule moves from `a` to `b` and
    /// another from `b` back to `a`, so a request can bounce between models
    /// until a budget ends it. Rules guarded by `fallbacks < N` are not
    /// counted.
    ///
    /// ```rcv
    /// recover {
    ///   when model == primary => fallback backup, reason R
    ///   when model == backup => fallback primary, reason R
    /// }
    /// ```
    ///
    /// Fix: end the chain with `escalate`, or guard it with `fallbacks < N`.
    FallbackCycle = "RCV303", Warning, "fallback cycle";

    /// The worst case the rules allow (first call, plus retries bounded by
    /// `attempt < N` / `class_attempts < N` guards, plus fallbacks to
    /// distinct models, plus resets) is more calls than `budget.attempts`,
    /// so the budget, not the rules, ends some requests.
    ///
    /// ```rcv
    /// budget { attempts 3 => escalate, reason OUT }
    /// recover {
    ///   when class == timeout and attempt < 4 => retry, reason R
    ///   when model == primary => fallback backup, reason F
    /// }
    /// ```
    ///
    /// Fix: raise `attempts`, or tighten the guards.
    FanOutOverBudget = "RCV304", Warning, "worst case exceeds the attempts budget";

    /// A retry sets a `jitter` but no `backoff`: with no delay there is
    /// nothing to jitter, and the setting does nothing.
    ///
    /// ```rcv
    /// recover { otherwise => retry jitter full, reason R }
    /// ```
    ///
    /// Fix: add a backoff (`backoff exponential(250ms, 2.0, 8s) jitter full`)
    /// or remove the jitter.
    JitterWithoutBackoff = "RCV305", Warning, "jitter without backoff";

    /// A budget sets limits but not what happens when one is reached. The
    /// engine then escalates with the built-in reason `budget_exhausted`,
    /// which no one reading the policy will see.
    ///
    /// ```rcv
    /// budget { attempts 4 cost $0.50 }
    /// ```
    ///
    /// Fix: add the decision: `=> escalate queue "budget", reason OUT_OF_BUDGET`.
    BudgetWithoutDecision = "RCV306", Warning, "budget without an exhausted decision";

    /// A rule that only fires at `high` or `critical` risk escalates or
    /// aborts with a reason of severity `info` (the default), so alerting
    /// and reports rank it as routine.
    ///
    /// ```rcv
    /// reasons { REVIEW "side effect at high risk" }
    /// recover { when risk >= high => escalate, reason REVIEW }
    /// ```
    ///
    /// Fix: give the reason a severity: `REVIEW "..." severity critical`.
    QuietHighRisk = "RCV307", Warning, "high-risk escalation with an info reason";

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
    /// `budget` decision (taken instead of a rule's retry, fallback or reset
    /// when a cap is hit) or a `fleet` decision (taken instead of a retry
    /// when the fleet retry budget is spent or a breaker is open), on events
    /// the invariant covers. Whether it happens depends on runtime state the
    /// table cannot see, so this is a warning, not an error.
    ///
    /// ```rcv
    /// budget { cost $1.00 => fallback backup, reason OUT_OF_BUDGET }
    /// recover { when attempt < 3 => retry, reason RETRY ... }
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
}

impl Code {
    /// The documentation with the one leading space of each doc line removed.
    pub fn doc_text(self) -> String {
        let mut out = String::new();
        for line in self.doc().lines() {
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    /// The anchor of this code's section in `docs/diagnostics.md`.
    pub fn anchor(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// The text of `docs/diagnostics.md`, generated from [`Code::ALL`].
pub fn diagnostics_markdown() -> String {
    let mut out = String::from(
        "# Diagnostics\n\n\
         <!-- Generated from `src/diag/codes.rs` by `diagnostics_markdown()`; do not edit by hand.\n     \
         Regenerate with `RCV_BLESS=1 cargo test --test diagnostics diagnostics_doc_is_current`. -->\n\n\
         Every problem `rcv` reports carries a stable code. Codes are never reused.\n\
         Errors stop a policy from compiling; warnings do not, unless `rcv check --deny warnings` is used.\n\n\
         | Code | Level | Title |\n|---|---|---|\n",
    );
    for code in Code::ALL {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} |\n",
            code.as_str(),
            code.anchor(),
            code.default_level().as_str(),
            code.title()
        ));
    }
    for code in Code::ALL {
        out.push_str(&format!(
            "\n## {}\n\n**{}** ({})\n\n{}\n",
            code.as_str(),
            code.title(),
            code.default_level().as_str(),
            code.doc_text()
        ));
    }
    out
}
