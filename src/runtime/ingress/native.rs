//! The native NDJSON reader: one event per line, read with a reusable buffer
//! that never holds more than one line (a line over the limit is skipped to
//! its newline without being buffered). Every line yields exactly one of: an
//! event, a rejection with a reason code, or a skipped blank line.
//!
//! Parsing takes a fast path (straight into [`Event`], whose closed objects
//! deny unknown keys, then the per-kind checks) and, only when that fails, a
//! slow path over a JSON value that finds the first problem and names it
//! precisely: which field, what was expected, what was found.

use std::io::{self, BufRead};

use serde::Deserialize;
use serde_json::Value;

use super::provider;
use super::reject::RejectReason;
use crate::runtime::event::{Event, EventKind, Outcome, Timestamp};

/// The default line limit: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// One physical line.
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine<'a> {
    /// The line's bytes, without the newline (and without a trailing `\r`).
    Bytes(&'a [u8]),
    /// The line was longer than the limit; this many bytes were skipped.
    TooLong(u64),
}

/// Reads lines from any `BufRead`, holding at most one line (up to the limit).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        LineReader { inner, buf: Vec::new(), line: 0, max: max_line_bytes }
    }

    /// The line limit in bytes.
    pub fn limit(&self) -> usize {
        self.max
    }

    /// The rest of the input as chunks of lines, and the number of lines
    /// read so far. Nothing is lost: between lines, this reader buffers nothing.
    pub fn into_chunks(self) -> (super::chunks::ChunkReader<R>, u64) {
        let mut chunks = super::chunks::ChunkReader::new(self.inner, self.max);
        if self.line > 0 {
            chunks.not_at_start();
        }
        (chunks, self.line)
    }

    /// The number of the last line returned (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next line with its 1-based number, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, RawLine<'_>)>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let read = self.append_line(&mut buf);
        self.buf = buf;
        Ok(match read? {
            None => None,
            Some((line, Appended::TooLong(len))) => Some((line, RawLine::TooLong(len))),
            Some((line, Appended::Bytes(range))) => Some((line, RawLine::Bytes(self.buf.get(range).unwrap_or(&[])))),
        })
    }

    /// Reads the next line onto the end of `out` (nothing is appended for a
    /// line over the limit).
    fn append_line(&mut self, out: &mut Vec<u8>) -> io::Result<Option<(u64, Appended)>> {
        let start = out.len();
        let mut total: u64 = 0;
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            saw_any = true;
            let (chunk_len, found) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            total += chunk_len as u64;
            if !too_long {
                if out.len() - start + chunk_len > self.max {
                    too_long = true;
                    out.truncate(start);
                    if start == 0 {
                        out.shrink_to(self.max.min(64 * 1024));
                    }
                } else {
                    out.extend_from_slice(&available[..chunk_len]);
                }
            }
            self.inner.consume(chunk_len + usize::from(found));
            if found {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.line += 1;
        if too_long {
            return Ok(Some((self.line, Appended::TooLong(total))));
        }
        let mut end = out.len();
        if end > start && out.last() == Some(&b'\r') {
            end -= 1;
        }
        let mut begin = start;
        if self.line == 1 && out.get(start..end).is_some_and(|b| b.starts_with(b"\xEF\xBB\xBF")) {
            begin += 3;
        }
        Ok(Some((self.line, Appended::Bytes(begin..end))))
    }
}

/// Where [`LineReader::append_line`] put a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Appended {
    /// The line's bytes (without newline, `\r` or a leading byte order mark) are `out[range]`.
    Bytes(std::ops::Range<usize>),
    /// The line was longer than the limit; this many bytes were skipped.
    TooLong(u64),
}

/// What one line turned into.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Blank,
    Event(Box<Event>),
    Rejected { reason: RejectReason, request_id: Option<String>, detail: String },
}

fn rejected(reason: RejectReason, request_id: Option<String>, detail: impl Into<String>) -> Parsed {
    Parsed::Rejected { reason, request_id, detail: detail.into() }
}

/// Parses and validates one line (without its newline). Provider errors in
/// `error.raw` are normalised (see [`provider::normalize`]).
pub fn parse_line(bytes: &[u8]) -> Parsed {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return rejected(
                RejectReason::InvalidUtf8,
                None,
                format!("invalid UTF-8 byte at column {}", e.valid_up_to() + 1),
            );
        }
    };
    if blank(text) {
        return Parsed::Blank;
    }
    // What `serde_json::from_str` does (the same errors, in the same order),
    // with the event boxed straight out of the parse result and checked in
    // the box: the event is large, and each move of it is a copy.
    let mut de = serde_json::Deserializer::from_str(text);
    let mut event = match Event::deserialize(&mut de) {
        Ok(event) => Box::new(event),
        Err(e) => return diagnose(text, &e),
    };
    if let Err(e) = de.end() {
        return diagnose(text, &e);
    }
    match validate(&event) {
        Ok(ms) => event.ts_ms = ms,
        Err((reason, detail)) => return rejected(reason, Some(event.request_id), detail),
    }
    normalize_errors(&mut event);
    Parsed::Event(event)
}

/// Whether `s` is empty or all whitespace (`str::trim` empties it), with
/// the common case, a first byte that is ASCII and not whitespace, decided
/// without a call.
#[inline]
fn blank(s: &str) -> bool {
    match s.as_bytes().first() {
        Some(&b) if b.is_ascii() && !char::from(b).is_whitespace() => false,
        _ => s.trim().is_empty(),
    }
}

/// Fills the normalised error fields of the event and of its alternatives.
pub fn normalize_errors(event: &mut Event) {
    if let Some(err) = event.error.as_mut() {
        provider::normalize(err, &mut event.output);
    }
    if let Some(alternatives) = event.alternatives.as_mut() {
        for alt in alternatives.values_mut() {
            if let Some(err) = alt.error.as_mut() {
                provider::normalize(err, &mut alt.output);
            }
        }
    }
}

/// serde_json's message without the "line 1" part (lines are ours).
fn json_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &msg[..i], e.column()),
        None => msg,
    }
}

// ---------------------------------------------------------------------------
// The shape of a native event: mirrors the typed parse (closed objects deny
// unknown keys there too) and drives
// the precise diagnosis (slow path).

#[derive(Debug)]
enum Shape {
    Any,
    Str,
    /// A non-negative integer up to this maximum.
    UInt(u64),
    Int,
    /// A finite number.
    Num,
    Bool,
    /// A string out of a closed set.
    Enum(&'static [&'static str]),
    /// Epoch milliseconds or an RFC 3339 string.
    Time,
    /// An object with known fields; `open` ones ignore unknown keys.
    Object {
        fields: &'static [FieldShape],
        open: bool,
    },
    /// An object whose values all have one shape.
    MapOf(&'static Shape),
}

#[derive(Debug)]
struct FieldShape {
    name: &'static str,
    required: bool,
    shape: Shape,
}

const fn opt(name: &'static str, shape: Shape) -> FieldShape {
    FieldShape { name, required: false, shape }
}

const fn req(name: &'static str, shape: Shape) -> FieldShape {
    FieldShape { name, required: true, shape }
}

pub(crate) const KINDS: &[&str] = &["request", "model_call", "tool_call", "end"];
const RISKS: &[&str] = &["low", "medium", "high", "critical"];
const OUTCOMES: &[&str] = &["ok", "error"];
const RESET_SCOPES: &[&str] = &["context", "scratchpad", "checkpoint"];

const ERROR_SHAPE: Shape = Shape::Object {
    fields: &[
        opt("type", Shape::Str),
        opt("code", Shape::Str),
        opt("http_status", Shape::Int),
        opt("message", Shape::Str),
        opt("provider", Shape::Str),
        opt("param", Shape::Str),
        opt("status", Shape::Str),
        opt("raw", Shape::Any),
    ],
    open: true,
};

const OUTPUT_SHAPE: Shape = Shape::Object {
    fields: &[
        opt("schema_valid", Shape::Bool),
        opt("confidence", Shape::Num),
        opt("finish_reason", Shape::Str),
        opt("refusal", Shape::Bool),
    ],
    open: false,
};

const ALTERNATIVE_SHAPE: Shape = Shape::Object {
    fields: &[
        req("outcome", Shape::Enum(OUTCOMES)),
        opt("error", ERROR_SHAPE),
        opt("output", OUTPUT_SHAPE),
        opt("latency_ms", Shape::Num),
        opt("cost_usd", Shape::Num),
    ],
    open: false,
};

const EVENT_SHAPE: Shape = Shape::Object {
    fields: &[
        req("request_id", Shape::Str),
        req("seq", Shape::UInt(u64::MAX)),
        req("kind", Shape::Enum(KINDS)),
        opt("ts", Shape::Time),
        opt("intent", Shape::Str),
        opt("risk", Shape::Enum(RISKS)),
        opt(
            "budget",
            Shape::Object {
                fields: &[
                    opt("attempts", Shape::UInt(u32::MAX as u64)),
                    opt("cost_usd", Shape::Num),
                    opt("latency_ms", Shape::Num),
                ],
                open: false,
            },
        ),
        opt("metadata", Shape::Object { fields: &[], open: true }),
        opt("model", Shape::Str),
        opt(
            "tool",
            Shape::Object { fields: &[opt("name", Shape::Str), opt("side_effects", Shape::Bool)], open: false },
        ),
        opt("attempt", Shape::UInt(u32::MAX as u64)),
        opt("strategy", Shape::Str),
        opt("outcome", Shape::Enum(OUTCOMES)),
        opt("error", ERROR_SHAPE),
        opt("output", OUTPUT_SHAPE),
        opt("latency_ms", Shape::Num),
        opt("cost_usd", Shape::Num),
        opt("tokens_in", Shape::UInt(u64::MAX)),
        opt("tokens_out", Shape::UInt(u64::MAX)),
        opt("response_started", Shape::Bool),
        opt("reset", Shape::Enum(RESET_SCOPES)),
        opt("alternatives", Shape::MapOf(&ALTERNATIVE_SHAPE)),
    ],
    open: false,
};

/// Every top-level key of a native event, in documentation order.
pub fn event_fields() -> Vec<&'static str> {
    match &EVENT_SHAPE {
        Shape::Object { fields, .. } => fields.iter().map(|f| f.name).collect(),
        _ => Vec::new(),
    }
}

/// Required top-level keys of every event.
pub const REQUIRED_FIELDS: &[&str] = &["request_id", "seq", "kind"];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn list(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

type Problem = (RejectReason, String);

/// Checks one value against its shape; the first problem found.
fn check_value(path: &str, shape: &Shape, v: &Value) -> Option<Problem> {
    let wrong = |expected: &str| {
        Some((RejectReason::WrongType, format!("field `{path}` must be {expected}, got {}", type_name(v))))
    };
    match shape {
        Shape::Any => None,
        Shape::Str => {
            if v.is_string() {
                None
            } else {
                wrong("a string")
            }
        }
        Shape::Bool => {
            if v.is_boolean() {
                None
            } else {
                wrong("a boolean")
            }
        }
        Shape::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => None,
            Value::Number(n) => {
                Some((RejectReason::InvalidValue, format!("field `{path}` must be an integer, got `{n}`")))
            }
            _ => wrong("an integer"),
        },
        Shape::UInt(max) => match v {
            Value::Number(n) => match n.as_u64() {
                Some(x) if x <= *max => None,
                _ => Some((
                    RejectReason::InvalidValue,
                    format!("field `{path}` must be a non-negative integer up to {max}, got `{n}`"),
                )),
            },
            _ => wrong("a non-negative integer"),
        },
        Shape::Num => {
            if v.is_number() {
                None
            } else {
                wrong("a number")
            }
        }
        Shape::Enum(options) => match v {
            Value::String(s) if options.contains(&s.as_str()) => None,
            Value::String(s) => {
                let reason = if path == "kind" { RejectReason::UnknownKind } else { RejectReason::InvalidValue };
                Some((reason, format!("field `{path}` must be {}, got `{s}`", list(options))))
            }
            _ => wrong(&format!("a string ({})", list(options))),
        },
        Shape::Time => match v {
            Value::Number(_) | Value::String(_) => None,
            _ => wrong("a number (epoch milliseconds) or an RFC 3339 string"),
        },
        Shape::Object { fields, open } => {
            let Value::Object(map) = v else { return wrong("an object") };
            for f in fields.iter().filter(|f| f.required) {
                if map.get(f.name).is_none_or(Value::is_null) {
                    return Some((RejectReason::MissingField, format!("missing field `{}`", join(path, f.name))));
                }
            }
            for (key, value) in map {
                match fields.iter().find(|f| f.name == key) {
                    Some(f) if value.is_null() && !f.required => {}
                    Some(f) => {
                        if let Some(p) = check_value(&join(path, key), &f.shape, value) {
                            return Some(p);
                        }
                    }
                    None if *open => {}
                    None => return Some((RejectReason::UnknownField, format!("unknown field `{}`", join(path, key)))),
                }
            }
            None
        }
        Shape::MapOf(inner) => {
            let Value::Object(map) = v else { return wrong("an object") };
            map.iter().find_map(|(key, value)| check_value(&join(path, key), inner, value))
        }
    }
}

/// The slow path: the typed parse failed; find out why.
fn diagnose(text: &str, typed_error: &serde_json::Error) -> Parsed {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return rejected(RejectReason::MalformedJson, None, json_message(&e)),
    };
    let Value::Object(map) = &value else {
        return rejected(RejectReason::NotAnObject, None, format!("expected a JSON object, got {}", type_name(&value)));
    };
    let request_id = map.get("request_id").and_then(Value::as_str).map(str::to_string);
    // Missing required fields first, then the kind, then every field.
    for name in REQUIRED_FIELDS {
        if map.get(*name).is_none_or(Value::is_null) {
            return rejected(RejectReason::MissingField, request_id, format!("missing field `{name}`"));
        }
    }
    if let Some(kind) = map.get("kind")
        && let Some(p) = check_value("kind", &Shape::Enum(KINDS), kind)
    {
        return rejected(p.0, request_id, p.1);
    }
    if let Some((reason, detail)) = check_value("", &EVENT_SHAPE, &value) {
        return rejected(reason, request_id, detail);
    }
    // The shape accepted what serde did not: report serde's own words.
    rejected(RejectReason::InvalidValue, request_id, json_message(typed_error))
}

// ---------------------------------------------------------------------------
// Per-kind checks on a parsed event.

/// `Err` when `v` is set and negative or not finite. `path` is `prefix` then `field`.
#[inline]
fn non_negative(prefix: &str, field: &str, v: Option<f64>) -> Result<(), Problem> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(not_non_negative(prefix, field, x)),
        _ => Ok(()),
    }
}

#[cold]
#[inline(never)]
fn not_non_negative(prefix: &str, field: &str, x: f64) -> Problem {
    (RejectReason::InvalidValue, format!("field `{prefix}{field}` must be a non-negative number, got `{x}`"))
}

#[cold]
#[inline(never)]
fn missing(path: &str, kind: EventKind) -> Problem {
    (RejectReason::MissingField, format!("missing field `{path}` (required on `{}` events)", kind.as_str()))
}

#[cold]
#[inline(never)]
fn misplaced(path: &str, kind: EventKind) -> Problem {
    (RejectReason::InvalidValue, format!("field `{path}` does not belong on a `{}` event", kind.as_str()))
}

#[inline]
fn check_error_fields(path: &str, outcome: Outcome, has_error: bool) -> Result<(), Problem> {
    match (outcome, has_error) {
        (Outcome::Error, false) | (Outcome::Ok, true) => Err(error_fields_mismatch(path, outcome)),
        _ => Ok(()),
    }
}

#[cold]
#[inline(never)]
fn error_fields_mismatch(path: &str, outcome: Outcome) -> Problem {
    let detail = match outcome {
        Outcome::Error => format!("`{path}outcome` is `error` but `{path}error` is missing"),
        Outcome::Ok => format!("`{path}outcome` is `ok` but `{path}error` is set"),
    };
    (RejectReason::InvalidValue, detail)
}

#[inline]
fn check_error_info(prefix: &str, err: &crate::runtime::event::ErrorInfo) -> Result<(), Problem> {
    match err.http_status {
        Some(status) if !(100..=599).contains(&status) => Err((
            RejectReason::InvalidValue,
            format!("field `{prefix}error.http_status` must be an HTTP status (100..599), got `{status}`"),
        )),
        _ => Ok(()),
    }
}

#[inline]
fn check_output(prefix: &str, output: &crate::runtime::event::Output) -> Result<(), Problem> {
    match output.confidence {
        Some(c) if !(0.0..=1.0).contains(&c) => Err((
            RejectReason::InvalidValue,
            format!("field `{prefix}output.confidence` must be within 0..1, got `{c}`"),
        )),
        _ => Ok(()),
    }
}

/// The first call-only field set on `e`, in documentation order.
fn first_call_field(e: &Event) -> Option<&'static str> {
    const NAMES: [&str; 14] = [
        "model",
        "tool",
        "attempt",
        "strategy",
        "outcome",
        "error",
        "output",
        "latency_ms",
        "cost_usd",
        "tokens_in",
        "tokens_out",
        "response_started",
        "reset",
        "alternatives",
    ];
    // Whether each field of `NAMES` is set, in the same order.
    let set = [
        e.model.is_some(),
        e.tool.is_some(),
        e.attempt.is_some(),
        e.strategy.is_some(),
        e.outcome.is_some(),
        e.error.is_some(),
        e.output.is_some(),
        e.latency_ms.is_some(),
        e.cost_usd.is_some(),
        e.tokens_in.is_some(),
        e.tokens_out.is_some(),
        e.response_started.is_some(),
        e.reset.is_some(),
        e.alternatives.is_some(),
    ];
    NAMES.iter().zip(set).find_map(|(name, is_set)| is_set.then_some(*name))
}

/// The first request-only field set on `e`, in documentation order.
fn first_request_field(e: &Event) -> Option<&'static str> {
    if e.intent.is_some() {
        Some("intent")
    } else if e.risk.is_some() {
        Some("risk")
    } else if e.budget.is_some() {
        Some("budget")
    } else if e.metadata.is_some() {
        Some("metadata")
    } else {
        None
    }
}

/// Checks an `alternatives` key: `retry`, `retry:STRATEGY`,
/// `fallback:MODEL`, `reset:SCOPE`.
pub fn check_alternative_key(key: &str) -> Result<(), String> {
    let (action, arg) = match key.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (key, None),
    };
    match (action, arg) {
        ("retry", None) => Ok(()),
        ("retry" | "fallback", Some(arg)) if !arg.trim().is_empty() => Ok(()),
        ("reset", Some(scope)) if RESET_SCOPES.contains(&scope) => Ok(()),
        ("reset", _) => Err(format!(
            "alternative `{key}` must name a scope: {}",
            list(&["reset:context", "reset:scratchpad", "reset:checkpoint"])
        )),
        _ => Err(format!(
            "alternative `{key}` must be one of `retry`, `retry:STRATEGY`, `fallback:MODEL`, `reset:SCOPE`"
        )),
    }
}

/// The per-kind rules of `docs/trace-format.md`. Returns `ts` in epoch
/// milliseconds (it has to be read to be checked).
/// Epoch milliseconds of the common UTC form `YYYY-MM-DDTHH:MM:SS[.fff]Z`
/// (1 to 9 fraction digits, years 1970 to 9998: jiff stops in 9999), read without a general
/// RFC 3339 parser; `None` for anything else, which jiff then reads. Same
/// result as jiff's `as_millisecond` wherever it answers (a test holds it).
fn utc_millis(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    // The digit at `i` (every index is below the 20 checked above).
    let d = |i: usize| -> Option<i64> {
        let c = b[i].wrapping_sub(b'0');
        (c < 10).then_some(i64::from(c))
    };
    let year = d(0)? * 1000 + d(1)? * 100 + d(2)? * 10 + d(3)?;
    let (month, day) = (d(5)? * 10 + d(6)?, d(8)? * 10 + d(9)?);
    let (hour, minute, second) = (d(11)? * 10 + d(12)?, d(14)? * 10 + d(15)?, d(17)? * 10 + d(18)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1970..=9998).contains(&year) || day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Milliseconds from the fraction: its first three digits, the rest truncated.
    let (millis, zone) = if b[19] == b'.' {
        let frac = &b[20..];
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        let digit = |k: usize| if k < digits { i64::from(frac[k] - b'0') } else { 0 };
        (digit(0) * 100 + digit(1) * 10 + digit(2), &frac[digits..])
    } else {
        (0, &b[19..])
    };
    if zone != b"Z" {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

pub fn validate(e: &Event) -> Result<Option<f64>, Problem> {
    if blank(&e.request_id) {
        return Err((RejectReason::InvalidValue, "field `request_id` must not be empty".into()));
    }
    let ts_ms = match &e.ts {
        Some(Timestamp::Millis(ms)) => {
            non_negative("", "ts", Some(*ms))?;
            Some(*ms)
        }
        Some(Timestamp::Text(t)) => {
            match utc_millis(t).map_or_else(|| t.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()), Ok) {
                Ok(ms) => Some(ms as f64),
                Err(_) => {
                    return Err((
                        RejectReason::InvalidValue,
                        format!("field `ts` must be an RFC 3339 timestamp or epoch milliseconds, got `{t}`"),
                    ));
                }
            }
        }
        None => None,
    };
    let kind = e.kind;
    match kind {
        EventKind::Request | EventKind::End => {
            if let Some(name) = first_call_field(e) {
                return Err(misplaced(name, kind));
            }
            if kind == EventKind::End
                && let Some(name) = first_request_field(e)
            {
                return Err(misplaced(name, kind));
            }
            if kind == EventKind::Request {
                if e.risk.is_none() {
                    return Err(missing("risk", kind));
                }
                if let Some(b) = &e.budget {
                    if b.attempts == Some(0) {
                        return Err((RejectReason::InvalidValue, "field `budget.attempts` must be at least 1".into()));
                    }
                    non_negative("budget.", "cost_usd", b.cost_usd)?;
                    non_negative("budget.", "latency_ms", b.latency_ms)?;
                }
            }
        }
        EventKind::ModelCall | EventKind::ToolCall => {
            if let Some(name) = first_request_field(e) {
                return Err(misplaced(name, kind));
            }
            if kind == EventKind::ModelCall {
                if e.model.as_deref().is_none_or(blank) {
                    return Err(missing("model", kind));
                }
            } else {
                match &e.tool {
                    None => return Err(missing("tool", kind)),
                    Some(t) if t.name.as_deref().is_none_or(blank) => {
                        return Err(missing("tool.name", kind));
                    }
                    Some(_) => {}
                }
            }
            let Some(outcome) = e.outcome else {
                return Err(missing("outcome", kind));
            };
            check_error_fields("", outcome, e.error.is_some())?;
            if e.attempt == Some(0) {
                return Err((RejectReason::InvalidValue, "field `attempt` must be at least 1".into()));
            }
            non_negative("", "latency_ms", e.latency_ms)?;
            non_negative("", "cost_usd", e.cost_usd)?;
            if let Some(err) = &e.error {
                check_error_info("", err)?;
            }
            if let Some(out) = &e.output {
                check_output("", out)?;
            }
            if let Some(alts) = &e.alternatives {
                for (key, alt) in alts.iter() {
                    check_alternative_key(key).map_err(|d| (RejectReason::InvalidValue, d))?;
                    let path = format!("alternatives.{key}.");
                    check_error_fields(&path, alt.outcome, alt.error.is_some())?;
                    non_negative(&path, "latency_ms", alt.latency_ms)?;
                    non_negative(&path, "cost_usd", alt.cost_usd)?;
                    if let Some(err) = &alt.error {
                        check_error_info(&path, err)?;
                    }
                    if let Some(out) = &alt.output {
                        check_output(&path, out)?;
                    }
                }
            }
        }
    }
    Ok(ts_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> Option<RejectReason> {
        match parse_line(line.as_bytes()) {
            Parsed::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    fn detail(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Parsed::Rejected { detail, .. } => detail,
            other => panic!("accepted: {other:?}"),
        }
    }

    const CALL: &str = r#""request_id":"r","seq":1,"kind":"model_call","model":"m","outcome":"ok""#;

    /// Call-only fields on `request` and `end` events, and request-only
    /// fields on `end` and call events, are named first in documentation
    /// order, however many are set.
    #[test]
    fn misplaced_fields_are_named_in_documentation_order() {
        let call_fields = [
            ("model", r#""m""#),
            ("tool", r#"{"name":"t"}"#),
            ("attempt", "1"),
            ("strategy", r#""s""#),
            ("outcome", r#""ok""#),
            ("error", "{}"),
            ("output", "{}"),
            ("latency_ms", "1"),
            ("cost_usd", "1"),
            ("tokens_in", "1"),
            ("tokens_out", "1"),
            ("response_started", "true"),
            ("reset", r#""context""#),
            ("alternatives", "{}"),
        ];
        for kind in ["request", "end"] {
            let risk = if kind == "request" { r#","risk":"low""# } else { "" };
            for first in 0..call_fields.len() {
                // Set fields `first..`, written in reverse order.
                let extra: String = call_fields[first..].iter().rev().map(|(k, v)| format!(r#","{k}":{v}"#)).collect();
                let line = format!(r#"{{"request_id":"r","seq":1,"kind":"{kind}"{risk}{extra}}}"#);
                let name = call_fields[first].0;
                assert_eq!(detail(&line), format!("field `{name}` does not belong on a `{kind}` event"), "{line}");
            }
        }
        let request_fields = [("intent", r#""i""#), ("risk", r#""low""#), ("budget", "{}"), ("metadata", "{}")];
        for (kind, base) in [("end", ""), ("model_call", r#","model":"m","outcome":"ok""#)] {
            for first in 0..request_fields.len() {
                let extra: String =
                    request_fields[first..].iter().rev().map(|(k, v)| format!(r#","{k}":{v}"#)).collect();
                let line = format!(r#"{{"request_id":"r","seq":1,"kind":"{kind}"{base}{extra}}}"#);
                let name = request_fields[first].0;
                assert_eq!(detail(&line), format!("field `{name}` does not belong on a `{kind}` event"), "{line}");
            }
        }
    }

    #[test]
    fn blank_is_trim_is_empty() {
        for s in [
            "",
            " ",
            "\t\n\r",
            "\x0b\x0c",
            "\u{a0}",
            "\u{3000} \u{2003}",
            "\u{feff}",
            "x",
            " x",
            "\u{a0}x",
            "\0",
            "é",
            "\u{85}",
            "{}",
            "\x0bx",
        ] {
            assert_eq!(blank(s), s.trim().is_empty(), "{s:?}");
        }
        for b in 0..=0x7fu8 {
            let s = format!("{}rest", char::from(b));
            assert_eq!(blank(&s), s.trim().is_empty(), "{b:#x}");
            let s = char::from(b).to_string();
            assert_eq!(blank(&s), s.trim().is_empty(), "{b:#x}");
        }
    }

    /// The parse reads the whole line as `serde_json::from_str` does:
    /// anything after the object is rejected with serde's own message.
    #[test]
    fn trailing_text_after_the_event_is_rejected_as_before() {
        for tail in [" x", "{}", " {\"a\":1}", ",", "]"] {
            let line = format!("{{{CALL}}}{tail}");
            let typed = serde_json::from_str::<Event>(&line).expect_err("trailing text");
            assert_eq!(reason(&line), Some(RejectReason::MalformedJson), "{line}");
            assert_eq!(detail(&line), json_message(&typed), "{line}");
        }
        assert!(matches!(parse_line(format!("{{{CALL}}}  \t").as_bytes()), Parsed::Event(_)));
    }

    /// Numbers that must not be negative name their full path, on the event,
    /// its budget and its alternatives; so do the other value checks.
    #[test]
    fn value_checks_name_the_full_path() {
        for (extra, want) in [
            (r#","latency_ms":-1"#, "field `latency_ms` must be a non-negative number, got `-1`"),
            (r#","cost_usd":-0.5"#, "field `cost_usd` must be a non-negative number, got `-0.5`"),
            (r#","ts":-3"#, "field `ts` must be a non-negative number, got `-3`"),
            (r#","output":{"confidence":2}"#, "field `output.confidence` must be within 0..1, got `2`"),
            (
                r#","outcome":"error","error":{"http_status":42}"#,
                "field `error.http_status` must be an HTTP status (100..599), got `42`",
            ),
            (
                r#","alternatives":{"retry":{"outcome":"ok","latency_ms":-2}}"#,
                "field `alternatives.retry.latency_ms` must be a non-negative number, got `-2`",
            ),
            (
                r#","alternatives":{"fallback:x":{"outcome":"ok","cost_usd":-2}}"#,
                "field `alternatives.fallback:x.cost_usd` must be a non-negative number, got `-2`",
            ),
            (
                r#","alternatives":{"retry":{"outcome":"error","error":{"http_status":7}}}"#,
                "field `alternatives.retry.error.http_status` must be an HTTP status (100..599), got `7`",
            ),
            (
                r#","alternatives":{"retry":{"outcome":"ok","output":{"confidence":-1}}}"#,
                "field `alternatives.retry.output.confidence` must be within 0..1, got `-1`",
            ),
            (
                r#","alternatives":{"retry":{"outcome":"error"}}"#,
                "`alternatives.retry.outcome` is `error` but `alternatives.retry.error` is missing",
            ),
            (r#","error":{}"#, "`outcome` is `ok` but `error` is set"),
        ] {
            let outcome = if extra.starts_with(r#","outcome""#) { "" } else { r#","outcome":"ok""# };
            let line = format!(r#"{{"request_id":"r","seq":1,"kind":"model_call","model":"m"{outcome}{extra}}}"#);
            assert_eq!(detail(&line), want, "{line}");
        }
        let budget = r#"{"request_id":"r","seq":1,"kind":"request","risk":"low","budget":{"latency_ms":-1}}"#;
        assert_eq!(detail(budget), "field `budget.latency_ms` must be a non-negative number, got `-1`");
    }

    #[test]
    fn accepts_a_minimal_call_and_request() {
        assert!(matches!(parse_line(format!("{{{CALL}}}").as_bytes()), Parsed::Event(_)));
        let req = r#"{"request_id":"r","seq":0,"kind":"request","risk":"high","intent":"x","metadata":{"k":"v"}}"#;
        assert!(matches!(parse_line(req.as_bytes()), Parsed::Event(_)));
        assert!(matches!(parse_line(b"   \t "), Parsed::Blank));
        assert!(matches!(parse_line(b""), Parsed::Blank));
    }

    #[test]
    fn reason_codes() {
        assert_eq!(reason("{\"a\":\u{0}"), Some(RejectReason::MalformedJson));
        assert_eq!(reason("not json"), Some(RejectReason::MalformedJson));
        assert_eq!(reason("\"just a string\""), Some(RejectReason::NotAnObject));
        assert_eq!(reason(r#"{"request_id":"r","seq":1,"kind":"plan"}"#), Some(RejectReason::UnknownKind));
        assert_eq!(reason(r#"{"request_id":"r","seq":1,"kind":7}"#), Some(RejectReason::WrongType));
        assert_eq!(reason(r#"{"seq":1,"kind":"end"}"#), Some(RejectReason::MissingField));
        assert_eq!(reason(&format!("{{{CALL},\"latncy_ms\":3}}")), Some(RejectReason::UnknownField));
        assert_eq!(reason(&format!("{{{CALL},\"output\":{{\"confidense\":1}}}}")), Some(RejectReason::UnknownField));
        assert_eq!(reason(&format!("{{{CALL},\"tokens_in\":-1}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(&format!("{{{CALL},\"latency_ms\":\"fast\"}}")), Some(RejectReason::WrongType));
        assert_eq!(reason(&format!("{{{CALL},\"latency_ms\":-1}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(&format!("{{{CALL},\"output\":{{\"confidence\":1.5}}}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(&format!("{{{CALL},\"ts\":\"yesterday\"}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(&format!("{{{CALL},\"reset\":\"everything\"}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(&format!("{{{CALL},\"intent\":\"x\"}}")), Some(RejectReason::InvalidValue));
        assert_eq!(reason(r#"{"request_id":"r","seq":0,"kind":"request"}"#), Some(RejectReason::MissingField));
        assert_eq!(
            reason(r#"{"request_id":"r","seq":0,"kind":"request","risk":"severe"}"#),
            Some(RejectReason::InvalidValue)
        );
        assert_eq!(reason(r#"{"request_id":"","seq":0,"kind":"end"}"#), Some(RejectReason::InvalidValue));
        assert_eq!(
            reason(r#"{"request_id":"r","seq":1,"kind":"tool_call","outcome":"ok"}"#),
            Some(RejectReason::MissingField)
        );
        assert_eq!(
            reason(r#"{"request_id":"r","seq":1,"kind":"tool_call","tool":{},"outcome":"ok"}"#),
            Some(RejectReason::MissingField)
        );
        assert_eq!(
            reason(r#"{"request_id":"r","seq":1,"kind":"model_call","model":"m","outcome":"error"}"#),
            Some(RejectReason::InvalidValue)
        );
        assert_eq!(
            reason(r#"{"request_id":"r","seq":1,"kind":"model_call","model":"m","outcome":"failed"}"#),
            Some(RejectReason::InvalidValue)
        );
    }

    #[test]
    fn details_name_the_field() {
        assert_eq!(
            detail(&format!("{{{CALL},\"latency_ms\":\"fast\"}}")),
            "field `latency_ms` must be a number, got a string"
        );
        assert_eq!(
            detail(r#"{"request_id":"r","seq":"2","kind":"end"}"#),
            "field `seq` must be a non-negative integer, got a string"
        );
        assert_eq!(
            detail(r#"{"request_id":"r","seq":2,"kind":"plan"}"#),
            "field `kind` must be `request`, `model_call`, `tool_call` or `end`, got `plan`"
        );
        assert_eq!(
            detail(&format!("{{{CALL},\"tool\":{{\"name\":\"x\",\"side_effect\":true}}}}")),
            "unknown field `tool.side_effect`"
        );
        assert_eq!(
            detail(&format!("{{{CALL},\"alternatives\":{{\"retry\":{{\"latency_ms\":3}}}}}}")),
            "missing field `alternatives.retry.outcome`"
        );
        assert_eq!(
            detail(r#"{"request_id":"r","seq":1,"kind":"model_call","outcome":"ok"}"#),
            "missing field `model` (required on `model_call` events)"
        );
        assert!(detail("{\"request_id\":").starts_with("EOF while parsing"));
    }

    #[test]
    fn alternatives_keys() {
        for ok in ["retry", "retry:step_by_step", "fallback:backup", "reset:context"] {
            assert!(check_alternative_key(ok).is_ok(), "{ok}");
        }
        for bad in ["retry:", "fallback", "reset", "reset:everything", "escalate", "fallback: "] {
            assert!(check_alternative_key(bad).is_err(), "{bad}");
        }
        let line = format!("{{{CALL},\"alternatives\":{{\"abort\":{{\"outcome\":\"ok\"}}}}}}");
        assert_eq!(reason(&line), Some(RejectReason::InvalidValue));
        let line = r#"{"request_id":"r","seq":1,"kind":"model_call","model":"m","outcome":"error","error":{"type":"x"},"alternatives":{"retry":{"outcome":"error"}}}"#;
        assert_eq!(reason(line), Some(RejectReason::InvalidValue));
    }

    #[test]
    fn provider_errors_are_normalised_on_read() {
        let line = r#"{"request_id":"r","seq":1,"kind":"model_call","model":"m","outcome":"error","error":{"raw":"Error code: 429 - {'error': {'code': 'rate_limit_exceeded', 'message': 'slow'}}"}}"#;
        let Parsed::Event(e) = parse_line(line.as_bytes()) else { panic!("rejected") };
        let err = e.error.unwrap();
        assert_eq!(err.http_status, Some(429));
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    }

    #[test]
    fn every_known_key_is_a_field_of_event() {
        // A fully populated event serialises exactly the keys the shape knows.
        let line = r#"{"request_id":"r","seq":1,"kind":"model_call","ts":1,"model":"m","tool":{"name":"t","side_effects":true},
            "attempt":1,"strategy":"s","outcome":"error","error":{"type":"x"},"output":{"confidence":0.5},"latency_ms":1,
            "cost_usd":0.1,"tokens_in":1,"tokens_out":1,"response_started":true,"reset":"context",
            "alternatives":{"retry":{"outcome":"ok"}}}"#;
        let Parsed::Event(e) = parse_line(line.replace('\n', "").as_bytes()) else { panic!("rejected") };
        let v = serde_json::to_value(&*e).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.extend(["intent", "risk", "budget", "metadata"]);
        let mut known = event_fields();
        keys.sort_unstable();
        known.sort_unstable();
        assert_eq!(keys, known);
    }

    #[test]
    fn line_reader_limits_and_crlf() {
        let data = b"a\r\nbbbbbbbbbb\nc\n\xEF\xBB\xBFd".to_vec();
        let mut r = LineReader::new(std::io::Cursor::new(data), 4);
        assert_eq!(r.next_line().unwrap(), Some((1, RawLine::Bytes(b"a"))));
        assert_eq!(r.next_line().unwrap(), Some((2, RawLine::TooLong(10))));
        assert_eq!(r.next_line().unwrap(), Some((3, RawLine::Bytes(b"c"))));
        // A BOM is only stripped on line 1.
        assert_eq!(r.next_line().unwrap(), Some((4, RawLine::Bytes(b"\xEF\xBB\xBFd"))));
        assert_eq!(r.next_line().unwrap(), None);
        let mut r = LineReader::new(std::io::Cursor::new(b"\xEF\xBB\xBFx\n\n".to_vec()), 8);
        assert_eq!(r.next_line().unwrap(), Some((1, RawLine::Bytes(b"x"))));
        assert_eq!(r.next_line().unwrap(), Some((2, RawLine::Bytes(b""))));
        assert_eq!(r.next_line().unwrap(), None);
    }

    /// A reader turned into chunks after its first line goes on from line
    /// 2, and strips no byte order mark from it.
    #[test]
    fn into_chunks_goes_on_after_the_lines_read() {
        let mut r = LineReader::new(std::io::Cursor::new(b"a\n\xEF\xBB\xBFb\nc".to_vec()), 8);
        assert_eq!(r.next_line().unwrap(), Some((1, RawLine::Bytes(b"a"))));
        let (mut chunks, before) = r.into_chunks();
        assert_eq!(before, 1);
        let mut chunk = super::super::chunks::Chunk::default();
        assert!(!chunks.next_chunk(&mut chunk).unwrap());
        let lines: Vec<_> = chunk.lines(8).collect();
        use super::super::chunks::ChunkLine;
        assert_eq!(lines, [ChunkLine::Bytes(b"\xEF\xBB\xBFb"), ChunkLine::Bytes(b"c")]);
    }

    /// Lines appended to one shared buffer read the same as lines read one
    /// by one, whatever the read size, long lines and line endings.
    #[test]
    fn appended_lines_match_single_lines() {
        let data = b"\xEF\xBB\xBFfirst\r\nbbbbbbbbbbbbbbbbbbbb\n\nlast-but-one\r\nzz".to_vec();
        for read_size in [1, 3, 7, 64] {
            let mut one =
                LineReader::new(std::io::BufReader::with_capacity(read_size, std::io::Cursor::new(data.clone())), 12);
            let mut expected = Vec::new();
            while let Some((n, raw)) = one.next_line().unwrap() {
                expected.push(match raw {
                    RawLine::Bytes(b) => (n, Ok(b.to_vec())),
                    RawLine::TooLong(len) => (n, Err(len)),
                });
            }
            let mut shared =
                LineReader::new(std::io::BufReader::with_capacity(read_size, std::io::Cursor::new(data.clone())), 12);
            let mut buf = b"earlier lines".to_vec();
            let mut got = Vec::new();
            while let Some((n, appended)) = shared.append_line(&mut buf).unwrap() {
                got.push(match appended {
                    Appended::Bytes(range) => (n, Ok(buf[range].to_vec())),
                    Appended::TooLong(len) => (n, Err(len)),
                });
            }
            assert_eq!(got, expected, "read size {read_size}");
            assert_eq!(expected.len(), 5);
            assert!(buf.starts_with(b"earlier lines"), "what was there stays");
        }
    }

    /// The fast timestamp read agrees with jiff on everything it answers,
    /// and answers the common forms.
    fn same_as_jiff(t: &str) {
        let jiff = t.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond());
        if let Some(fast) = utc_millis(t) {
            assert_eq!(Some(fast), jiff, "{t}");
        }
    }

    #[test]
    fn utc_millis_reads_the_common_form_like_jiff() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2025-03-11T09:00:47.084Z",
            "2024-02-29T23:59:59.999999999Z",
            "2000-02-29T12:00:00.5Z",
            "2100-12-31T23:59:59.12Z",
            "9998-12-31T23:59:59Z",
        ] {
            assert!(utc_millis(t).is_some(), "{t}");
            same_as_jiff(t);
        }
        for t in [
            "2023-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-03-11T24:00:00Z",
            "2025-03-11T23:59:60Z",
            "2025-03-11T09:00:47.Z",
            "2025-03-11T09:00:47.0123456789Z",
            "2025-03-11T09:00:47+01:00",
            "2025-03-11t09:00:47z",
            "1969-12-31T23:59:59.5Z",
            "9999-12-30T00:00:00Z",
            "2025-03-11 09:00:47Z",
            "+2025-03-11T09:00:47Z",
        ] {
            assert_eq!(utc_millis(t), None, "{t}");
            same_as_jiff(t);
        }
    }

    proptest::proptest! {
        #[test]
        fn utc_millis_agrees_with_jiff(
            y in 1960i64..10000, mo in 0i64..14, d in 0i64..33, h in 0i64..25, mi in 0i64..61, sec in 0i64..62,
            frac in proptest::option::of("[0-9]{1,10}"), zone in "Z|z|\\+00:00|",
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            same_as_jiff(&format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{frac}{zone}"));
        }

        #[test]
        fn never_panics_on_any_line(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn never_panics_on_near_valid_lines(s in r#"\{"request_id":"[a-z]{0,3}","seq":-?[0-9]{1,3},"kind":"(request|model_call|tool_call|end|x)"(,"[a-z_]{1,12}":("[a-z]{0,3}"|-?[0-9.]{1,4}|true|null|\{\}|\[\]))*\}"#) {
            let _ = parse_line(s.as_bytes());
        }
    }
}
