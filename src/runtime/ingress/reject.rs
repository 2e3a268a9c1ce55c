//! Why an input line was not accepted, and the counts of a whole read.

use serde::Serialize;

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal;)*) => {
        /// Why a line (or span) was rejected. The names are stable: reports
        /// and CI scripts match on them. `docs/trace-format.md` lists each
        /// with an example.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RejectReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl RejectReason {
            /// Every reason, in documentation order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$variant,)*];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(RejectReason::$variant => $name,)* }
            }
        }
    };
}

reasons! {
    /// The line is not valid UTF-8.
    InvalidUtf8 = "invalid_utf8";
    /// The line is longer than the reader's limit (1 MiB by default).
    LineTooLong = "line_too_long";
    /// The line is not valid JSON.
    MalformedJson = "malformed_json";
    /// The line is JSON but not an object.
    NotAnObject = "not_an_object";
    /// `kind` is not one of `request`, `model_call`, `tool_call`, `end`.
    UnknownKind = "unknown_kind";
    /// The object has a key the format does not define (put free data in the request's `metadata`).
    UnknownField = "unknown_field";
    /// A field required for this kind of event is absent.
    MissingField = "missing_field";
    /// A field has the wrong JSON type.
    WrongType = "wrong_type";
    /// A field has the right type but a value outside its domain.
    InvalidValue = "invalid_value";
    /// The event repeats the `seq` of an earlier event of its request.
    DuplicateSeq = "duplicate_seq";
    /// The event's `seq` is smaller than an earlier event's of its request.
    OutOfOrderSeq = "out_of_order_seq";
    /// Calls of a request whose `request` event never came.
    NoRequestEvent = "no_request_event";
    /// A second `request` event for a request id.
    DuplicateRequest = "duplicate_request";
    /// An event for a request that an `end` event already closed.
    EventAfterEnd = "event_after_end";
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input line (or, for span formats, one span) that was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Rejection {
    /// The input's name: its path, or `-` for standard input.
    pub file: String,
    /// 1-based line number; for span formats, the span's 1-based position
    /// in document order.
    pub line: u64,
    /// The request the line belongs to, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub reason: RejectReason,
    /// What exactly was wrong, e.g. "field `latency_ms` must be a non-negative number, got `-3`".
    pub detail: String,
}

/// Counts of one read. Every input line is exactly one of: accepted,
/// rejected, or blank.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Lines read (span formats: spans read).
    pub lines: u64,
    /// Events accepted (including `request` and `end` events).
    pub accepted: u64,
    /// Blank or whitespace-only lines, skipped.
    pub skipped_blank: u64,
    /// Spans that are neither calls nor failures (span formats only).
    pub skipped_spans: u64,
    /// Failing spans whose error a failing descendant explains, so the
    /// failure is counted once, at its leaf (span formats only).
    pub explained_spans: u64,
    /// Completed cases.
    pub cases: u64,
    /// Rejections by reason, in [`RejectReason::ALL`] order; zero counts omitted.
    pub rejected: indexmap::IndexMap<RejectReason, u64>,
}

impl Stats {
    /// Total rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub(crate) fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_insert(0) += 1;
        self.rejected.sort_unstable_keys();
    }
}
