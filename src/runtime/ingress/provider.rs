//! Provider error extraction: fills the normalised fields of an
//! [`ErrorInfo`] (`type`, `code`, `http_status`, `message`, `provider`,
//! `param`, `status`) and `output.finish_reason` from the `raw` payload, in
//! whatever shape it was logged:
//!
//! - JSON: OpenAI `{error:{message,type,param,code}}`, Anthropic
//!   `{type:"error",error:{type,message}}`, Gemini `{error:{code,message,
//!   status,details}}`, Azure content filters (`innererror`,
//!   `content_filter_results`), JSON-RPC / MCP errors and `isError` tool
//!   results, Gemini `candidates[].finishReason` envelopes, Magentic-One
//!   `is_in_loop` ledgers;
//! - the same embedded in text: SDK exception text (`openai.RateLimitError:
//!   Error code: 429 - {...}`), Python reprs (single quotes, `None`,
//!   `True`), Node inspect dumps (`status: 529, error: { type: '...' }`),
//!   JSON serialised inside a string field of other JSON, fragments without
//!   their outer braces, and truncated JSON;
//! - plain text: the exception class (`module.Class: message`) becomes the
//!   type, the rest the message, and an HTTP status is read from cues such as
//!   `Error code: 429`, `status: 529`, `429 Too Many Requests`, `401 Client
//!   Error`, `status code 403`.
//!
//! The innermost error object wins; outer layers and text cues only fill
//! what is still missing. Work per payload is bounded: text beyond
//! [`MAX_SCAN`] bytes is not scanned, at most [`MAX_CANDIDATES`] embedded
//! objects are tried, nesting is capped, and the tolerant parser is a
//! single-pass recursive descent (no backtracking).

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::runtime::event::{ErrorInfo, Output};

/// Bytes of text scanned for embedded JSON and cues.
pub const MAX_SCAN: usize = 256 * 1024;
/// Embedded objects tried per text.
pub const MAX_CANDIDATES: usize = 64;
/// Nesting depth of objects (and of JSON inside strings).
const MAX_DEPTH: usize = 48;
/// Longest message kept from plain text.
const MAX_MESSAGE: usize = 4096;

/// Fills the missing normalised fields of `err` (and `output.finish_reason`)
/// from `err.raw`. Fields already set are kept.
pub fn normalize(err: &mut ErrorInfo, output: &mut Option<Output>) {
    let Some(raw) = &err.raw else { return };
    let found = extract(raw);
    let fill = |slot: &mut Option<String>, v: Option<String>| {
        if slot.is_none() {
            *slot = v;
        }
    };
    fill(&mut err.kind, found.kind);
    fill(&mut err.code, found.code);
    fill(&mut err.message, found.message);
    fill(&mut err.provider, found.provider);
    fill(&mut err.param, found.param);
    fill(&mut err.status, found.status);
    if err.http_status.is_none() {
        err.http_status = found.http_status;
    }
    if let Some(reason) = found.finish_reason {
        let out = output.get_or_insert_with(Output::default);
        if out.finish_reason.is_none() {
            out.finish_reason = Some(reason);
        }
    }
}

/// What extraction found in a payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub kind: Option<String>,
    pub code: Option<String>,
    pub http_status: Option<i64>,
    pub message: Option<String>,
    pub provider: Option<String>,
    pub param: Option<String>,
    pub status: Option<String>,
    pub finish_reason: Option<String>,
}

impl Found {
    /// Fills this one's missing fields from `other`.
    fn fill(&mut self, other: Found) {
        fn f<T>(slot: &mut Option<T>, v: Option<T>) {
            if slot.is_none() {
                *slot = v;
            }
        }
        f(&mut self.kind, other.kind);
        f(&mut self.code, other.code);
        f(&mut self.http_status, other.http_status);
        f(&mut self.message, other.message);
        f(&mut self.provider, other.provider);
        f(&mut self.param, other.param);
        f(&mut self.status, other.status);
        f(&mut self.finish_reason, other.finish_reason);
    }

    /// How much a candidate says about the error (picks the most specific).
    fn score(&self) -> u32 {
        let w = |b: bool, n: u32| if b { n } else { 0 };
        w(self.kind.is_some(), 4)
            + w(self.code.is_some(), 3)
            + w(self.status.is_some(), 2)
            + w(self.finish_reason.is_some(), 4)
            + w(self.http_status.is_some(), 1)
            + w(self.message.is_some(), 1)
            + w(self.provider.is_some(), 1)
    }

    fn is_empty(&self) -> bool {
        *self == Found::default()
    }
}

/// Extracts what a raw payload says (a JSON value, or a string holding text
/// that may embed JSON).
pub fn extract(raw: &Value) -> Found {
    match raw {
        Value::String(s) => from_text(s, 0),
        Value::Object(map) => from_object::<Value>(map, 0),
        Value::Array(items) => best(items.iter().filter_map(|v| v.as_object()).map(|m| from_object::<Value>(m, 0))),
        _ => Found::default(),
    }
}

/// The most specific candidate, with the others filling its gaps.
fn best(candidates: impl Iterator<Item = Found>) -> Found {
    let mut all: Vec<Found> = candidates.filter(|f| !f.is_empty()).collect();
    // Stable: on equal scores the earlier candidate wins.
    all.sort_by_key(|f| std::cmp::Reverse(f.score()));
    let mut it = all.into_iter();
    let mut out = it.next().unwrap_or_default();
    for other in it {
        out.fill(other);
    }
    out
}

// ---------------------------------------------------------------------------
// JSON values
//
// Extraction reads objects through [`Node`] and [`Obj`], implemented for
// `serde_json` values (a `raw` that is JSON already) and for [`Lv`], the
// light form that JSON and loose literals found in text are read into: its
// objects keep their entries in a list (no hashing), and a key given twice
// counts with its last value, as a map would keep it. Each object is read
// in one pass over its entries ([`Keys`]).

/// A JSON value in the light form read from text; strings without escapes
/// borrow from it.
#[derive(Debug, Clone, PartialEq)]
enum Lv<'t> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'t, str>),
    Arr(Vec<Lv<'t>>),
    Obj(LObj<'t>),
}

/// The entries of an object, in order; a repeated key counts with its last
/// value.
#[derive(Debug, Clone, PartialEq, Default)]
struct LObj<'t>(Vec<(Cow<'t, str>, Lv<'t>)>);

impl<'t> LObj<'t> {
    fn insert(&mut self, key: Cow<'t, str>, value: Lv<'t>) {
        self.0.push((key, value));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// At least two distinct keys.
    fn has_two_keys(&self) -> bool {
        self.0.first().is_some_and(|(k0, _)| self.0.iter().any(|(k, _)| k != k0))
    }
}

/// Reads JSON text into [`Lv`] exactly as into a `serde_json` value
/// (numbers, the recursion limit, a raw-value key), without building maps.
impl<'de> serde::Deserialize<'de> for Lv<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LvVisitor)
    }
}

/// The key `serde_json` reads a raw value under.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

struct LvVisitor;

/// An object key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::de::Visitor<'de> for LvVisitor {
    type Value = Lv<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Lv<'de>, E> {
        Ok(Lv::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Lv<'de>, E> {
        Ok(Lv::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Lv<'de>, E> {
        Ok(Lv::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Lv<'de>, E> {
        Ok(Number::from_f64(v).map_or(Lv::Null, Lv::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Lv<'de>, E> {
        Ok(Lv::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Lv<'de>, E> {
        Ok(Lv::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Lv<'de>, E> {
        Ok(Lv::Str(Cow::Owned(v)))
    }
    fn visit_none<E>(self) -> Result<Lv<'de>, E> {
        Ok(Lv::Null)
    }
    fn visit_unit<E>(self) -> Result<Lv<'de>, E> {
        Ok(Lv::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Lv<'de>, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Lv<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Lv::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Lv<'de>, A::Error> {
        let Some(Key(first)) = map.next_key::<Key>()? else { return Ok(Lv::Obj(LObj::default())) };
        if first == RAW_VALUE_TOKEN {
            // As `serde_json` does: the string is JSON text of its own.
            let inner: String = map.next_value()?;
            return serde_json::from_str::<Lv>(&inner).map(Lv::into_owned).map_err(serde::de::Error::custom);
        }
        let mut obj = LObj::default();
        let value = map.next_value()?;
        obj.insert(first, value);
        while let Some((Key(k), v)) = map.next_entry()? {
            obj.insert(k, v);
        }
        Ok(Lv::Obj(obj))
    }
}

impl Lv<'_> {
    /// The same value owning all its strings.
    fn into_owned(self) -> Lv<'static> {
        match self {
            Lv::Null => Lv::Null,
            Lv::Bool(b) => Lv::Bool(b),
            Lv::Num(n) => Lv::Num(n),
            Lv::Str(s) => Lv::Str(Cow::Owned(s.into_owned())),
            Lv::Arr(items) => Lv::Arr(items.into_iter().map(Lv::into_owned).collect()),
            Lv::Obj(o) => {
                Lv::Obj(LObj(o.0.into_iter().map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned())).collect()))
            }
        }
    }
}

/// A JSON value as extraction reads it.
trait Node: Sized {
    type Obj: Obj<Self>;
    fn text(&self) -> Option<&str>;
    fn boolean(&self) -> Option<bool>;
    fn number(&self) -> Option<&Number>;
    fn items(&self) -> Option<&[Self]>;
    fn object(&self) -> Option<&Self::Obj>;
}

/// A JSON object as extraction reads it.
trait Obj<N> {
    /// The value of `key` (the last one given).
    fn get<'s>(&'s self, key: &str) -> Option<&'s N>
    where
        N: 's;
    /// Every entry, in order.
    fn each<'s>(&'s self, f: impl FnMut(&'s str, &'s N))
    where
        N: 's;
}

impl Node for Value {
    type Obj = Map<String, Value>;
    fn text(&self) -> Option<&str> {
        self.as_str()
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    fn items(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn object(&self) -> Option<&Map<String, Value>> {
        self.as_object()
    }
}

impl Obj<Value> for Map<String, Value> {
    fn get<'s>(&'s self, key: &str) -> Option<&'s Value>
    where
        Value: 's,
    {
        Map::get(self, key)
    }
    fn each<'s>(&'s self, mut f: impl FnMut(&'s str, &'s Value))
    where
        Value: 's,
    {
        for (k, v) in self {
            f(k, v);
        }
    }
}

impl<'t> Node for Lv<'t> {
    type Obj = LObj<'t>;
    fn text(&self) -> Option<&str> {
        match self {
            Lv::Str(s) => Some(s),
            _ => None,
        }
    }
    fn boolean(&self) -> Option<bool> {
        match self {
            Lv::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn number(&self) -> Option<&Number> {
        match self {
            Lv::Num(n) => Some(n),
            _ => None,
        }
    }
    fn items(&self) -> Option<&[Lv<'t>]> {
        match self {
            Lv::Arr(items) => Some(items),
            _ => None,
        }
    }
    fn object(&self) -> Option<&LObj<'t>> {
        match self {
            Lv::Obj(o) => Some(o),
            _ => None,
        }
    }
}

impl<'t> Obj<Lv<'t>> for LObj<'t> {
    fn get<'s>(&'s self, key: &str) -> Option<&'s Lv<'t>>
    where
        't: 's,
    {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn each<'s>(&'s self, mut f: impl FnMut(&'s str, &'s Lv<'t>))
    where
        't: 's,
    {
        for (k, v) in &self.0 {
            f(k, v);
        }
    }
}

/// A string that means "nothing" (`None`, `null`, empty).
fn none_like(s: &str) -> bool {
    matches!(s.trim(), "" | "None" | "none" | "null" | "NULL" | "undefined" | "nil")
}

/// The string value of `key` unless it means nothing.
fn str_field<'a, N: Node + 'a>(map: &'a N::Obj, key: &str) -> Option<&'a str> {
    map.get(key).and_then(N::text).filter(|s| !none_like(s))
}

/// A string value unless it means nothing.
fn str_of<N: Node>(v: Option<&N>) -> Option<&str> {
    v.and_then(N::text).filter(|s| !none_like(s))
}

fn http_like(n: i64) -> Option<i64> {
    (100..=599).contains(&n).then_some(n)
}

/// A Google RPC status word (`RESOURCE_EXHAUSTED`, `UNAVAILABLE`).
fn status_word(s: &str) -> bool {
    s.len() >= 3 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') && s.bytes().any(|b| b != b'_')
}

fn int_of<N: Node>(v: &N) -> Option<i64> {
    if let Some(n) = v.number() {
        return n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
    }
    v.text().and_then(|s| s.trim().parse().ok())
}

/// A string that may hold JSON worth parsing.
fn may_hold_json(s: &str) -> bool {
    s.contains('{')
}

/// JSON-RPC reserved codes.
fn jsonrpc_name(code: i64) -> Option<&'static str> {
    Some(match code {
        -32700 => "parse_error",
        -32600 => "invalid_request",
        -32601 => "method_not_found",
        -32602 => "invalid_params",
        -32603 => "internal_error",
        -32002 => "resource_not_found",
        _ => return None,
    })
}

fn text_of_content<N: Node>(v: &N) -> Option<String> {
    if let Some(s) = v.text() {
        return (!none_like(s)).then(|| s.to_string());
    }
    let items = v.items()?;
    let texts: Vec<&str> = items.iter().filter_map(N::object).filter_map(|o| o.get("text").and_then(N::text)).collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// The entries of an object that extraction reads, found in one pass (a
/// repeated key: the last value).
struct Keys<'a, N> {
    error: Option<&'a N>,
    errors: Option<&'a N>,
    body: Option<&'a N>,
    response: Option<&'a N>,
    detail: Option<&'a N>,
    jsonrpc: Option<&'a N>,
    result: Option<&'a N>,
    is_error: Option<&'a N>,
    content: Option<&'a N>,
    candidates: Option<&'a N>,
    prompt_feedback: Option<&'a N>,
    choices: Option<&'a N>,
    stop_reason: Option<&'a N>,
    is_in_loop: Option<&'a N>,
    kind: Option<&'a N>,
    code: Option<&'a N>,
    message: Option<&'a N>,
    status: Option<&'a N>,
    http_status: [Option<&'a N>; 4],
    param: Option<&'a N>,
    inner_error: [Option<&'a N>; 2],
    content_filter: bool,
    details: Option<&'a N>,
}

impl<'a, N: Node + 'a> Keys<'a, N> {
    fn read(map: &'a N::Obj) -> Self {
        let mut k = Keys {
            error: None,
            errors: None,
            body: None,
            response: None,
            detail: None,
            jsonrpc: None,
            result: None,
            is_error: None,
            content: None,
            candidates: None,
            prompt_feedback: None,
            choices: None,
            stop_reason: None,
            is_in_loop: None,
            kind: None,
            code: None,
            message: None,
            status: None,
            http_status: [None; 4],
            param: None,
            inner_error: [None; 2],
            content_filter: false,
            details: None,
        };
        map.each(|key, v| {
            let slot = match key {
                "error" => &mut k.error,
                "errors" => &mut k.errors,
                "body" => &mut k.body,
                "response" => &mut k.response,
                "detail" => &mut k.detail,
                "jsonrpc" => &mut k.jsonrpc,
                "result" => &mut k.result,
                "isError" => &mut k.is_error,
                "content" => &mut k.content,
                "candidates" => &mut k.candidates,
                "promptFeedback" => &mut k.prompt_feedback,
                "choices" => &mut k.choices,
                "stop_reason" => &mut k.stop_reason,
                "is_in_loop" => &mut k.is_in_loop,
                "type" => &mut k.kind,
                "code" => &mut k.code,
                "message" => &mut k.message,
                "status" => &mut k.status,
                "http_status" => &mut k.http_status[0],
                "status_code" => &mut k.http_status[1],
                "statusCode" => &mut k.http_status[2],
                "httpStatus" => &mut k.http_status[3],
                "param" => &mut k.param,
                "innererror" => &mut k.inner_error[0],
                "inner_error" => &mut k.inner_error[1],
                "details" => &mut k.details,
                "content_filter_results" | "content_filter_result" => {
                    k.content_filter = true;
                    return;
                }
                _ => return,
            };
            *slot = Some(v);
        });
        k
    }
}

fn from_object<N: Node>(map: &N::Obj, depth: usize) -> Found {
    let mut f = Found::default();
    // What text cues inside string fields said: weaker than any field.
    let mut cues = Found::default();
    if depth > MAX_DEPTH {
        return f;
    }
    let k = Keys::<N>::read(map);

    // Inner layers first: they are the most specific.
    for (key, value) in
        [("error", k.error), ("errors", k.errors), ("body", k.body), ("response", k.response), ("detail", k.detail)]
    {
        let Some(value) = value else { continue };
        if let Some(inner) = value.object() {
            f.fill(from_object::<N>(inner, depth + 1));
        } else if let Some(items) = value.items() {
            if key == "errors"
                && let Some(first) = items.iter().find_map(N::object)
            {
                f.fill(from_object::<N>(first, depth + 1));
            }
        } else if let Some(s) = value.text()
            && !none_like(s)
        {
            if may_hold_json(s) {
                let (json, text_cues) = text_parts(s, depth + 1);
                f.fill(json);
                if matches!(key, "error" | "detail") {
                    cues.fill(text_cues);
                }
            } else if matches!(key, "error" | "detail") {
                cues.message = Some(clip(s, MAX_MESSAGE));
            }
        }
    }

    // JSON-RPC (MCP): the rpc code names the error.
    if k.jsonrpc.is_some() {
        let name = k
            .error
            .and_then(N::object)
            .and_then(|e| e.get("code"))
            .and_then(int_of)
            .and_then(jsonrpc_name)
            .map(str::to_string);
        f.fill(Found { provider: Some("mcp".into()), kind: name, ..Found::default() });
        if let Some(result) = k.result.and_then(N::object)
            && result.get("isError").and_then(N::boolean) == Some(true)
        {
            f.fill(Found {
                kind: Some("tool_error".into()),
                message: result.get("content").and_then(text_of_content),
                ..Found::default()
            });
        }
    }
    // An MCP tool result on its own.
    if k.is_error.and_then(N::boolean) == Some(true) {
        f.fill(Found {
            kind: Some("tool_error".into()),
            message: k.content.and_then(text_of_content),
            ..Found::default()
        });
    }

    // Generation envelopes: Gemini candidates, OpenAI choices, Anthropic stop_reason.
    if let Some(cands) = k.candidates.and_then(N::items) {
        let reason = cands
            .iter()
            .filter_map(|c| c.object().and_then(|o| o.get("finishReason")).and_then(N::text))
            .find(|r| !matches!(*r, "STOP" | "FINISH_REASON_UNSPECIFIED"));
        if let Some(r) = reason {
            f.fill(Found { finish_reason: Some(r.to_string()), provider: Some("gemini".into()), ..Found::default() });
        }
    }
    if let Some(block) = k.prompt_feedback.and_then(N::object).and_then(|p| p.get("blockReason")).and_then(N::text) {
        f.fill(Found { finish_reason: Some(block.to_string()), provider: Some("gemini".into()), ..Found::default() });
    }
    if let Some(choices) = k.choices.and_then(N::items) {
        let reason = choices
            .iter()
            .filter_map(|c| c.object().and_then(|o| o.get("finish_reason")).and_then(N::text))
            .find(|r| !matches!(*r, "stop" | "tool_calls"));
        if let Some(r) = reason {
            f.fill(Found { finish_reason: Some(r.to_string()), ..Found::default() });
        }
    }
    if let Some(r) = str_of(k.stop_reason).filter(|r| !matches!(*r, "end_turn" | "tool_use" | "stop_sequence")) {
        f.fill(Found { finish_reason: Some(r.to_string()), ..Found::default() });
    }

    // Magentic-One orchestrator ledger.
    if let Some(lp) = k.is_in_loop.and_then(N::object)
        && lp.get("answer").and_then(N::boolean) == Some(true)
    {
        f.fill(Found {
            kind: Some("loop_detected".into()),
            message: str_field::<N>(lp, "reason").map(str::to_string),
            provider: Some("magentic_one".into()),
            ..Found::default()
        });
    }

    // This level's own fields.
    let mut own = Found::default();
    if let Some(t) = str_of(k.kind).filter(|t| *t != "error") {
        own.kind = Some(t.to_string());
    }
    if let Some(code) = k.code
        && (code.number().is_some() || code.text().is_some())
    {
        match (int_of(code), code.text()) {
            (Some(n), _) if http_like(n).is_some() => own.http_status = Some(n),
            (_, Some(s)) if !none_like(s) => own.code = Some(s.to_string()),
            (Some(n), _) => own.code = Some(n.to_string()),
            _ => {}
        }
    }
    if let Some(m) = str_of(k.message) {
        if may_hold_json(m) {
            // JSON serialised into the message: the inner error is more
            // specific than this wrapper; the text is only a fallback.
            let (json, text_cues) = text_parts(m, depth + 1);
            f.fill(json);
            cues.fill(text_cues);
        } else {
            own.message = Some(m.to_string());
        }
    }
    if let Some(v) = k.status {
        match v.text() {
            Some(s) if status_word(s) => own.status = Some(s.to_string()),
            _ => own.http_status = own.http_status.or(int_of(v).and_then(http_like)),
        }
    }
    for v in k.http_status.into_iter().flatten() {
        if let Some(n) = int_of(v).and_then(http_like) {
            own.http_status = own.http_status.or(Some(n));
        }
    }
    if let Some(p) = str_of(k.param) {
        own.param = Some(p.to_string());
    }
    // Azure: the inner error names the policy.
    for inner in k.inner_error.into_iter().flatten().filter_map(N::object) {
        if own.code.is_none() {
            own.code = str_field::<N>(inner, "code").map(str::to_string);
        }
        own.provider = Some("azure_openai".into());
    }
    if k.content_filter {
        own.provider = Some("azure_openai".into());
    }
    // Gemini details: ErrorInfo.reason, QuotaFailure quota ids.
    if let Some(details) = k.details.and_then(N::items) {
        for d in details.iter().filter_map(N::object) {
            let ty = str_field::<N>(d, "@type").unwrap_or("");
            if own.code.is_none()
                && let Some(reason) = str_field::<N>(d, "reason")
            {
                own.code = Some(reason.to_string());
            }
            if own.code.is_none() && ty.ends_with("QuotaFailure") {
                own.code = d
                    .get("violations")
                    .and_then(N::items)
                    .and_then(|v| v.iter().find_map(|x| x.object().and_then(|o| o.get("quotaId")).and_then(N::text)))
                    .map(str::to_string);
            }
            if ty.contains("googleapis.com") {
                own.provider = Some("gemini".into());
            }
        }
    }
    // A tool message with an error status (LangChain `ToolMessage`).
    if own.message.is_none() && str_of(k.status) == Some("error") {
        own.message = k.content.and_then(text_of_content);
        own.status = Some("error".into());
    }
    // Provider from the shape.
    if own.provider.is_none() {
        if k.kind.and_then(N::text) == Some("error") && k.error.is_some_and(|e| e.object().is_some()) {
            own.provider = Some("anthropic".into());
        } else if own.status.as_deref().is_some_and(status_word) && own.status.as_deref() != Some("error") {
            own.provider = Some("gemini".into());
        } else if k.param.is_some() && k.kind.is_some() {
            own.provider = Some("openai".into());
        }
    }
    f.fill(own);
    f.fill(cues);
    f
}

// ---------------------------------------------------------------------------
// Text

fn from_text(text: &str, depth: usize) -> Found {
    let (mut json, cues) = text_parts(text, depth);
    json.fill(cues);
    json
}

/// What a text says: from the objects embedded in it, and from cues in the
/// prose (exception class, HTTP status, provider words, the message).
fn text_parts(text: &str, depth: usize) -> (Found, Found) {
    let mut cut = text.len().min(MAX_SCAN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = &text[..cut];
    let trimmed = text.trim();
    if trimmed.is_empty() || depth > MAX_DEPTH {
        return (Found::default(), Found::default());
    }
    // Plain JSON.
    if (trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"'))
        && let Ok(v) = serde_json::from_str::<Lv>(trimmed)
    {
        return match v {
            Lv::Str(s) => text_parts(&s, depth + 1),
            Lv::Obj(m) => (from_object::<Lv>(&m, depth + 1), Found::default()),
            Lv::Arr(items) => {
                (best(items.iter().filter_map(Lv::object).map(|m| from_object::<Lv>(m, depth + 1))), Found::default())
            }
            _ => (Found::default(), Found::default()),
        };
    }

    // Embedded objects (JSON, Python repr, Node inspect, fragments).
    let candidates = embedded_objects(trimmed);
    let mut json_start = trimmed.len();
    let mut found: Vec<Found> = Vec::new();
    for (start, value) in candidates {
        if let Lv::Obj(m) = &value {
            let f = from_object::<Lv>(m, depth + 1);
            if !f.is_empty() {
                json_start = json_start.min(start);
                found.push(f);
            }
        }
    }
    let json = best(found.into_iter());

    // Cues in the prose before the first embedded error.
    let prefix = &trimmed[..json_start];
    let classes = exception_chain(prefix);
    let rest = strip_classes(prefix.trim(), &classes);
    let cues = Found {
        kind: classes.last().map(|c| c.to_string()),
        http_status: http_status_in(trimmed),
        provider: provider_in(prefix, &classes),
        message: if !rest.is_empty() {
            Some(clip(rest, MAX_MESSAGE))
        } else if json.is_empty() {
            Some(clip(trimmed, MAX_MESSAGE))
        } else {
            None
        },
        ..Found::default()
    };
    (json, cues)
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Leading `module.Class: ` prefixes, outermost first:
/// `BadRequestError: litellm.BadRequestError: OpenAIException - ...` gives
/// `BadRequestError`, `litellm.BadRequestError`, `OpenAIException`.
fn exception_chain(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while out.len() < 8 {
        let b = rest.as_bytes();
        if b.is_empty() || !is_ident_start(b[0]) {
            break;
        }
        let mut i = 0;
        loop {
            while i < b.len() && is_ident_byte(b[i]) {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && is_ident_start(b[i + 1]) {
                i += 1;
                continue;
            }
            break;
        }
        let name = &rest[..i];
        let last = name.rfind('.').map_or(name, |dot| &name[dot + 1..]);
        let looks_like_class = last.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
            && (last.ends_with("Error")
                || last.ends_with("Exception")
                || last.ends_with("Timeout")
                || last.as_bytes().windows(5).any(|w| w == b"Error"));
        let after = &rest[i..];
        let sep = if after.starts_with(": ") || after.starts_with(":\n") {
            2
        } else if after.starts_with(" - ") {
            3
        } else if after == ":" {
            1
        } else {
            0
        };
        if !looks_like_class || sep == 0 {
            break;
        }
        out.push(name);
        rest = after[sep..].trim_start();
    }
    out
}

/// The text after the exception-class prefixes.
fn strip_classes<'a>(text: &'a str, classes: &[&str]) -> &'a str {
    let mut rest = text;
    for c in classes {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(c) {
            rest = r.trim_start_matches([':', ' ', '-', '\n']);
        }
    }
    rest.trim()
}

fn provider_in(prefix: &str, classes: &[&str]) -> Option<String> {
    let by_text = [
        ("anthropic", "anthropic"),
        ("openai", "openai"),
        ("azure", "azure_openai"),
        ("vertex", "gemini"),
        ("gemini", "gemini"),
        ("google", "gemini"),
    ];
    // SDK module prefixes first (`openai.RateLimitError`), then words.
    for c in classes {
        let module = c.split('.').next().unwrap_or("");
        if let Some((_, p)) = by_text.iter().find(|(k, _)| module.eq_ignore_ascii_case(k)) {
            return Some((*p).to_string());
        }
    }
    // A whole word, or the head of a CamelCase one (`AnthropicException`),
    // not a prefix of a longer lowercase word (`googlemaps`): one pass over
    // the text, noting which names occur.
    let b = prefix.as_bytes();
    let mut seen = [false; 6];
    for start in 0..b.len() {
        // Every name starts with one of these letters (in either case:
        // setting bit 5 maps only `A`/`a` to `a`, and so on).
        if !matches!(b[start] | 0x20, b'a' | b'o' | b'v' | b'g') || start > 0 && b[start - 1].is_ascii_alphabetic() {
            continue;
        }
        for (n, (k, _)) in by_text.iter().enumerate() {
            let end = start + k.len();
            if !seen[n]
                && b.get(start..end).is_some_and(|w| w.eq_ignore_ascii_case(k.as_bytes()))
                && b.get(end).is_none_or(|c| !c.is_ascii_lowercase())
            {
                seen[n] = true;
            }
        }
    }
    by_text.iter().zip(seen).find(|(_, s)| *s).map(|((_, p), _)| (*p).to_string())
}

/// Words that follow an HTTP status in logs (`429 Too Many Requests`).
const REASON_PHRASES: &[&str] = &[
    "client error",
    "server error",
    "too many requests",
    "bad request",
    "unauthorized",
    "forbidden",
    "not found",
    "unavailable",
    "service unavailable",
    "internal server error",
    "overloaded",
    "gateway timeout",
    "bad gateway",
    "request timeout",
    "payment required",
    "unprocessable",
    "resource_exhausted",
    "permission_denied",
    "unauthenticated",
    "invalid_argument",
    "internal",
];

/// The first HTTP status announced by a cue in the text: `Error code: 429`,
/// `status: 529`, `status code 403`, `429 Too Many Requests`, `401 Client
/// Error`, or a status right before an embedded object (`401 {...}`).
pub fn http_status_in(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    // Every standalone 3-digit number, judged by what surrounds it; the
    // first one announced by a cue wins.
    let mut i = 0;
    while i + 3 <= b.len() {
        // A digit run needs all three bytes: skip past any non-digit.
        if !b[i + 2].is_ascii_digit() {
            i += 3;
            continue;
        }
        if !b[i + 1].is_ascii_digit() {
            i += 2;
            continue;
        }
        let is_num = b[i..i + 3].iter().all(u8::is_ascii_digit)
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'.' | b',' | b'-' | b'=' | b'/')))
            && (i + 3 == b.len()
                || !(b[i + 3].is_ascii_alphanumeric()
                    || matches!(b[i + 3], b'.' | b',') && b.get(i + 4).is_some_and(u8::is_ascii_digit)));
        if !is_num {
            i += 1;
            continue;
        }
        let code = i64::from(b[i] - b'0') * 100 + i64::from(b[i + 1] - b'0') * 10 + i64::from(b[i + 2] - b'0');
        if http_like(code).is_some() && status_cue_around(text, i) {
            return Some(code);
        }
        i += 3;
    }
    None
}

/// Whether the 3-digit number at `i` is announced as a status: by a word
/// before it (compared without regard to ASCII case), a reason phrase after
/// it, or an object right after it.
fn status_cue_around(text: &str, i: usize) -> bool {
    let b = text.as_bytes();
    let mut end = i;
    while end > 0 && matches!(b[end - 1], b' ' | b':' | b'\t' | b'=') {
        end -= 1;
    }
    let before = &b[..end];
    let word_end = |cue: &str| {
        before.len() >= cue.len()
            && before[before.len() - cue.len()..].eq_ignore_ascii_case(cue.as_bytes())
            && !(before.len() > cue.len() && before[before.len() - cue.len() - 1].is_ascii_alphabetic())
    };
    if ["error code", "status code", "status_code", "statuscode", "status", "http", "code"].iter().any(|c| word_end(c))
    {
        return true;
    }
    let mut start = i + 3;
    while start < b.len() && matches!(b[start], b' ' | b':') {
        start += 1;
    }
    let after_t = &b[start..];
    // Every phrase starts with a letter.
    if after_t.first().is_some_and(u8::is_ascii_alphabetic)
        && REASON_PHRASES.iter().any(|c| after_t.get(..c.len()).is_some_and(|w| w.eq_ignore_ascii_case(c.as_bytes())))
    {
        return true;
    }
    text[i + 3..].trim_start().starts_with('{')
}

// ---------------------------------------------------------------------------
// Embedded objects

/// Objects found in text, with their start offsets, outermost first and
/// non-overlapping. Tries, in order: the whole text as an object body
/// without braces (`"error": {...}`, `status: 529, error: {...}`), a
/// leading `Name(key=value, ...)` repr, then every `{`.
fn embedded_objects(text: &str) -> Vec<(usize, Lv<'_>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut tries = 0;

    // A body without braces at the start.
    if let Some((v, end)) = Loose::new(text, 0).body() {
        out.push((0, v));
        pos = end;
    } else if let Some((v, end)) = Loose::new(text, 0).call_at_start() {
        out.push((0, v));
        pos = end;
    }
    while pos < bytes.len() && tries < MAX_CANDIDATES {
        let Some(off) = bytes[pos..].iter().position(|&b| b == b'{') else { break };
        let start = pos + off;
        tries += 1;
        let mut p = Loose::new(text, start);
        match p.value(0) {
            Some(v @ Lv::Obj(_)) => {
                out.push((start, v));
                pos = p.pos.max(start + 1);
            }
            _ => pos = start + 1,
        }
    }
    out
}

/// A tolerant single-pass parser for JSON, Python literals and Node
/// inspect output: single or double quotes, `None`/`True`/`False`,
/// unquoted keys, trailing commas, tuples, `Name(k=v)` calls; a document cut
/// short at the end of the text is closed where it stops.
struct Loose<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Loose<'a> {
    fn new(text: &'a str, pos: usize) -> Self {
        Loose { s: text.as_bytes(), text, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.pos >= self.s.len()
    }

    fn ident(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.peek().is_some_and(|b| is_ident_start(b) || b == b'$') {
            return None;
        }
        while self.peek().is_some_and(|b| is_ident_byte(b) || b == b'$' || b == b'-') {
            self.pos += 1;
        }
        Some(&self.text[start..self.pos])
    }

    /// `key: value, key: value` up to the end of the text or a missing comma,
    /// with at least two members (one when keys are quoted).
    fn body(mut self) -> Option<(Lv<'a>, usize)> {
        let mut map = LObj::default();
        let mut quoted = false;
        let mut end = self.pos;
        loop {
            self.ws();
            let key = match self.peek() {
                Some(q @ (b'"' | b'\'')) => {
                    quoted = true;
                    self.string(q)?
                }
                Some(_) => Cow::Borrowed(self.ident()?),
                None => break,
            };
            self.ws();
            if self.peek() != Some(b':') {
                return None;
            }
            self.pos += 1;
            let value = self.value(1)?;
            map.insert(key, value);
            end = self.pos;
            self.ws();
            if self.peek() == Some(b',') {
                self.pos += 1;
                end = self.pos;
            } else {
                break;
            }
        }
        let enough = if quoted { !map.is_empty() } else { map.has_two_keys() };
        enough.then_some((Lv::Obj(map), end))
    }

    /// `Name(key=value, ...)` at the start of the text.
    fn call_at_start(mut self) -> Option<(Lv<'a>, usize)> {
        self.ws();
        self.ident()?;
        if self.peek() != Some(b'(') {
            return None;
        }
        let v = self.call(1)?;
        Some((v, self.pos))
    }

    fn call(&mut self, depth: usize) -> Option<Lv<'a>> {
        // At `(`.
        self.pos += 1;
        let mut map = LObj::default();
        let mut args = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                None => break,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {}
            }
            let save = self.pos;
            let kw = self.ident();
            self.ws();
            match kw {
                Some(k) if self.peek() == Some(b'=') => {
                    self.pos += 1;
                    let v = self.value(depth + 1)?;
                    map.insert(Cow::Borrowed(k), v);
                }
                _ => {
                    self.pos = save;
                    args.push(self.value(depth + 1)?);
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                None => break,
                Some(_) => return None,
            }
        }
        if !args.is_empty() {
            map.insert(Cow::Borrowed("args"), Lv::Arr(args));
        }
        Some(Lv::Obj(map))
    }

    fn value(&mut self, depth: usize) -> Option<Lv<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth, b']'),
            b'(' => self.array(depth, b')'),
            q @ (b'"' | b'\'') => self.string(q).map(Lv::Str),
            b'-' | b'0'..=b'9' => self.number().map(Lv::Num),
            _ => {
                let save = self.pos;
                let word = self.ident()?;
                match word {
                    "None" | "null" | "undefined" | "NaN" | "nil" => Some(Lv::Null),
                    "True" | "true" => Some(Lv::Bool(true)),
                    "False" | "false" => Some(Lv::Bool(false)),
                    _ if self.peek() == Some(b'(') => self.call(depth),
                    _ => {
                        self.pos = save;
                        None
                    }
                }
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Lv<'a>> {
        self.pos += 1;
        let mut map = LObj::default();
        loop {
            if self.at_end() {
                return Some(Lv::Obj(map)); // cut short: close it
            }
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Some(Lv::Obj(map));
            }
            let key = match self.peek()? {
                q @ (b'"' | b'\'') => self.string(q)?,
                b'0'..=b'9' | b'-' => Cow::Owned(self.number()?.to_string()),
                _ => Cow::Borrowed(self.ident()?),
            };
            if self.at_end() {
                return Some(Lv::Obj(map));
            }
            if self.peek() != Some(b':') {
                return None;
            }
            self.pos += 1;
            if self.at_end() {
                return Some(Lv::Obj(map));
            }
            let v = self.value(depth + 1)?;
            map.insert(key, v);
            if self.at_end() {
                return Some(Lv::Obj(map));
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize, close: u8) -> Option<Lv<'a>> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if self.at_end() {
                return Some(Lv::Arr(items));
            }
            if self.peek() == Some(close) {
                self.pos += 1;
                return Some(Lv::Arr(items));
            }
            items.push(self.value(depth + 1)?);
            if self.at_end() {
                return Some(Lv::Arr(items));
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b if b == close => {}
                _ => return None,
            }
        }
    }

    fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
            self.pos += 1;
        }
        let t = &self.text[start..self.pos];
        if let Ok(i) = t.parse::<i64>() {
            return Some(i.into());
        }
        t.parse::<f64>().ok().and_then(Number::from_f64)
    }

    /// A quoted string (either quote), escapes decoded. Cut short at the
    /// end of the text, it ends there.
    fn string(&mut self, quote: u8) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        // Without escapes the string is a slice of the text.
        match self.s[start..].iter().position(|&b| b == quote || b == b'\\') {
            Some(off) if self.s[start + off] == quote => {
                self.pos = start + off + 1;
                return Some(Cow::Borrowed(&self.text[start..start + off]));
            }
            None => {
                self.pos = self.s.len();
                return Some(Cow::Borrowed(&self.text[start..]));
            }
            Some(_) => {}
        }
        let mut out = String::new();
        let mut run = self.pos;
        while let Some(b) = self.peek() {
            if b == quote {
                out.push_str(&self.text[run..self.pos]);
                self.pos += 1;
                return Some(Cow::Owned(out));
            }
            if b == b'\\' {
                out.push_str(&self.text[run..self.pos]);
                self.pos += 1;
                let Some(e) = self.peek() else { break };
                self.pos += 1;
                match e {
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'r' => out.push('\r'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'0' => out.push('\0'),
                    b'u' => out.push(self.unicode_escape()),
                    b'x' => {
                        let hex = self.text.get(self.pos..self.pos + 2).and_then(|h| u32::from_str_radix(h, 16).ok());
                        match hex.and_then(char::from_u32) {
                            Some(c) => {
                                out.push(c);
                                self.pos += 2;
                            }
                            None => out.push('x'),
                        }
                    }
                    _ => {
                        // `\"`, `\'`, `\\`, `\/` and unknown escapes: the character itself.
                        let ch_start = self.pos - 1;
                        let ch = self.text[ch_start..].chars().next().unwrap_or('\\');
                        self.pos = ch_start + ch.len_utf8();
                        out.push(ch);
                    }
                }
                run = self.pos;
                continue;
            }
            // Multi-byte characters are copied with the run.
            self.pos += 1;
        }
        // End of text inside the string.
        self.pos = self.s.len();
        out.push_str(&self.text[run.min(self.s.len())..]);
        Some(Cow::Owned(out))
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.text.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn unicode_escape(&mut self) -> char {
        let Some(hi) = self.hex4() else { return 'u' };
        if (0xD800..0xDC00).contains(&hi) && self.text.get(self.pos..self.pos + 2) == Some("\\u") {
            let save = self.pos;
            self.pos += 2;
            if let Some(lo) = self.hex4().filter(|lo| (0xDC00..0xE000).contains(lo)) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(c).unwrap_or('\u{FFFD}');
            }
            self.pos = save;
        }
        char::from_u32(hi).unwrap_or('\u{FFFD}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> Found {
        extract(&Value::String(s.to_string()))
    }

    #[test]
    fn openai_json() {
        let f = extract(
            &json!({"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        );
        assert_eq!(f.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(f.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(f.param.as_deref(), Some("messages"));
        assert_eq!(f.provider.as_deref(), Some("openai"));
        assert!(f.message.as_deref().is_some_and(|m| m.starts_with("This model's")));
    }

    #[test]
    fn python_sdk_repr_with_quotes_inside_strings() {
        let f = text(
            "openai.BadRequestError: Error code: 400 - {'error': {'message': \"This model's maximum context length is 8192 tokens, isn't it\", 'type': 'invalid_request_error', 'param': None, 'code': 'context_length_exceeded'}}",
        );
        assert_eq!(f.http_status, Some(400));
        assert_eq!(f.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(f.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(f.param, None);
        assert_eq!(f.message.as_deref(), Some("This model's maximum context length is 8192 tokens, isn't it"));
        assert_eq!(f.provider.as_deref(), Some("openai"));
    }

    #[test]
    fn anthropic_json_behind_text_prefix() {
        let f = text(
            r#"litellm.RateLimitError: AnthropicException - {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit"}}"#,
        );
        assert_eq!(f.kind.as_deref(), Some("rate_limit_error"));
        assert_eq!(f.provider.as_deref(), Some("anthropic"));
        assert_eq!(f.message.as_deref(), Some("This request would exceed the rate limit"));
    }

    #[test]
    fn node_inspect_dump() {
        let f = text(
            "status: 529,\n  headers: {\n    'content-type': 'application/json',\n    connection: 'keep-alive'\n  },\n  request_id: 'req_1',\n  error: {\n    type: 'error',\n    error: { type: 'overloaded_error', message: 'Overloaded' }\n  }\n\n  InternalServerError: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
        );
        assert_eq!(f.kind.as_deref(), Some("overloaded_error"));
        assert_eq!(f.http_status, Some(529));
        assert_eq!(f.message.as_deref(), Some("Overloaded"));
    }

    #[test]
    fn json_double_wrapped_in_a_string_field() {
        let inner = json!({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "RequestsPerMinutePerProject"}]}]}});
        let raw = json!({"error": {"message": serde_json::to_string_pretty(&inner).unwrap(), "code": 429, "status": "Too Many Requests"}});
        let f = text(&format!("got status: 429 Too Many Requests. {raw}"));
        assert_eq!(f.status.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(f.http_status, Some(429));
        assert_eq!(f.message.as_deref(), Some("Quota exceeded"));
        assert_eq!(f.code.as_deref(), Some("RequestsPerMinutePerProject"));
        assert_eq!(f.provider.as_deref(), Some("gemini"));
    }

    #[test]
    fn inner_json_followed_by_text_in_a_message() {
        let raw = r#"API Error: 400 {"error":{"message":"{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"max_tokens: 9000 > 4096\"}}. Received Model Group=x","type":"None","param":"None","code":"400"}}"#;
        let f = text(raw);
        assert_eq!(f.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(f.message.as_deref(), Some("max_tokens: 9000 > 4096"));
        assert_eq!(f.http_status, Some(400));
        assert_eq!(f.param, None);
    }

    #[test]
    fn python_repr_with_json_in_a_string_value() {
        let f = text(
            "Anthropic completion error: {'error': \"There was an error: {'type': 'error', 'error': {'details': None, 'type': 'overloaded_error', 'message': 'Overloaded'}}\"}",
        );
        assert_eq!(f.kind.as_deref(), Some("overloaded_error"));
        assert_eq!(f.provider.as_deref(), Some("anthropic"));
    }

    #[test]
    fn jsonrpc_error_and_tool_result() {
        let f =
            extract(&json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Unknown tool: nope"}}));
        assert_eq!(f.code.as_deref(), Some("-32602"));
        assert_eq!(f.kind.as_deref(), Some("invalid_params"));
        assert_eq!(f.provider.as_deref(), Some("mcp"));
        assert_eq!(f.message.as_deref(), Some("Unknown tool: nope"));
        assert_eq!(f.http_status, None);
        let f = extract(
            &json!({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "boom"}], "isError": true}}),
        );
        assert_eq!(f.kind.as_deref(), Some("tool_error"));
        assert_eq!(f.message.as_deref(), Some("boom"));
    }

    #[test]
    fn gemini_finish_reason_and_truncated_json() {
        let f = text(
            "{\n \"candidates\": [\n {\"finishReason\": \"SAFETY\", \"safetyRatings\": [{\"category\": \"X\", \"blocked\": true}]}\n ],\n \"usageMetadata\": {\"promptTokenCount\": 7,",
        );
        assert_eq!(f.finish_reason.as_deref(), Some("SAFETY"));
        let mut err = ErrorInfo {
            raw: Some(json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]})),
            ..ErrorInfo::default()
        };
        let mut out = None;
        normalize(&mut err, &mut out);
        assert_eq!(out.and_then(|o| o.finish_reason).as_deref(), Some("MALFORMED_FUNCTION_CALL"));
    }

    #[test]
    fn gemini_fragment_without_braces() {
        let f = text(
            "\"error\": {\n \"code\": 400,\n \"message\": \"API key not valid.\",\n \"status\": \"INVALID_ARGUMENT\",\n \"details\": [{\"@type\": \"type.googleapis.com/google.rpc.ErrorInfo\", \"reason\": \"API_KEY_INVALID\"}]\n }",
        );
        assert_eq!(f.code.as_deref(), Some("API_KEY_INVALID"));
        assert_eq!(f.http_status, Some(400));
        assert_eq!(f.status.as_deref(), Some("INVALID_ARGUMENT"));
    }

    #[test]
    fn azure_content_filter() {
        let f = text(
            "openai.BadRequestError: Error code: 400 - {'error': {'inner_error': {'code': 'ResponsibleAIPolicyViolation', 'content_filter_results': {'jailbreak': {'filtered': True}}}, 'code': 'content_filter', 'message': 'filtered', 'param': 'prompt', 'type': None}}",
        );
        assert_eq!(f.code.as_deref(), Some("content_filter"));
        assert_eq!(f.provider.as_deref(), Some("azure_openai"));
        assert_eq!(f.kind.as_deref(), Some("openai.BadRequestError"));
        let f = extract(&json!({"error": {"innererror": {"code": "ResponsibleAIPolicyViolation"}, "message": "m"}}));
        assert_eq!(f.code.as_deref(), Some("ResponsibleAIPolicyViolation"));
    }

    #[test]
    fn http_status_cues() {
        let cases = [
            ("Error code: 429 - x", Some(429)),
            ("status: 529,", Some(529)),
            ("got status: 429 Too Many Requests.", Some(429)),
            ("LLM request failed: status 400 Bad Request (url=x)", Some(400)),
            ("API returned unexpected status code: 429: Rate limit reached", Some(429)),
            ("requests.exceptions.HTTPError: 401 Client Error: PermissionDenied for url: https://x/y?q=1", Some(401)),
            ("geopy.adapters.AdapterHTTPError: Non-successful status code 403", Some(403)),
            ("Error with Client #685962: 503 UNAVAILABLE.", Some(503)),
            ("[ANTHROPIC] 401 {\"type\":\"error\"}", Some(401)),
            ("Limit 30000, Used 14567, Requested 200 tokens", None),
            ("of 200,000 input tokens per minute", None),
            ("HTTPSConnectionPool(host='x', port=443): Read timed out. (read timeout=1)", None),
        ];
        for (t, want) in cases {
            assert_eq!(http_status_in(t), want, "{t}");
        }
    }

    #[test]
    fn plain_text_exceptions() {
        let f = text(
            "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='a', port=443): Read timed out. (read timeout=10)",
        );
        assert_eq!(f.kind.as_deref(), Some("requests.exceptions.ReadTimeout"));
        assert!(f.message.as_deref().is_some_and(|m| m.starts_with("HTTPSConnectionPool")));
        let f = text("TimeoutError: [Errno 110] Connection timed out");
        assert_eq!(f.kind.as_deref(), Some("TimeoutError"));
        assert_eq!(f.message.as_deref(), Some("[Errno 110] Connection timed out"));
        let f = text("NameError: name 'search' is not defined");
        assert_eq!(f.kind.as_deref(), Some("NameError"));
        let f = text("Something odd happened");
        assert_eq!(f.kind, None);
        assert_eq!(f.message.as_deref(), Some("Something odd happened"));
    }

    #[test]
    fn python_call_repr() {
        let f = text(
            "ToolMessage(\n content=\"Error: t2 is not a valid tool, try one of [t1].\",\n name=\"t2\",\n status=\"error\",\n)",
        );
        assert_eq!(f.message.as_deref(), Some("Error: t2 is not a valid tool, try one of [t1]."));
        assert_eq!(f.status.as_deref(), Some("error"));
    }

    #[test]
    fn loop_ledger_fragment() {
        let f = text("\"is_in_loop\": {\n \"reason\": \"same page again\",\n \"answer\": true\n }");
        assert_eq!(f.kind.as_deref(), Some("loop_detected"));
        assert_eq!(f.message.as_deref(), Some("same page again"));
    }

    #[test]
    fn fields_already_set_are_kept() {
        let mut err = ErrorInfo {
            kind: Some("mine".into()),
            raw: Some(json!({"error": {"type": "theirs", "code": "c"}})),
            ..ErrorInfo::default()
        };
        normalize(&mut err, &mut None);
        assert_eq!(err.kind.as_deref(), Some("mine"));
        assert_eq!(err.code.as_deref(), Some("c"));
    }

    #[test]
    fn sse_error_event_mid_stream() {
        let f = text(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n",
        );
        assert_eq!(f.kind.as_deref(), Some("overloaded_error"));
        assert_eq!(f.message.as_deref(), Some("Overloaded"));
        assert_eq!(f.provider.as_deref(), Some("anthropic"));
    }

    #[test]
    fn none_like_strings_are_absent() {
        let f = extract(&json!({"error": {"message": "m", "type": "None", "param": "null", "code": ""}}));
        assert_eq!(f.kind, None);
        assert_eq!(f.param, None);
        assert_eq!(f.code, None);
    }

    #[test]
    fn raw_json_values_and_arrays() {
        let f = extract(&json!([{"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}}]));
        assert_eq!(f.http_status, Some(503));
        assert_eq!(f.status.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(extract(&json!(42)), Found::default());
        let f = extract(&json!({"choices": [{"finish_reason": "content_filter"}]}));
        assert_eq!(f.finish_reason.as_deref(), Some("content_filter"));
    }

    #[test]
    fn hostile_inputs_stay_bounded() {
        let deep = "{'a': ".repeat(10_000);
        let _ = text(&deep);
        let many = "{".repeat(200_000);
        let _ = text(&many);
        let quotes = "'\"".repeat(100_000);
        let _ = text(&quotes);
        let nums = "429 ".repeat(100_000);
        assert_eq!(text(&nums).http_status, None);
        let _ = text("\\u");
        let _ = text("{'a': '\\ud800\\u");
        let _ = text("é{é:é}é");
    }

    /// The light form as a `serde_json` value (a repeated key keeps its
    /// first place and its last value, as a map insert does).
    fn to_value(v: &Lv) -> Value {
        match v {
            Lv::Null => Value::Null,
            Lv::Bool(b) => Value::Bool(*b),
            Lv::Num(n) => Value::Number(n.clone()),
            Lv::Str(s) => Value::String(s.to_string()),
            Lv::Arr(items) => Value::Array(items.iter().map(to_value).collect()),
            Lv::Obj(o) => Value::Object(o.0.iter().map(|(k, v)| (k.to_string(), to_value(v))).collect()),
        }
    }

    #[test]
    fn light_values_read_json_like_serde_values() {
        let texts = [
            r#"{"error": {"type": "a", "code": 429}, "error": {"type": "b"}, "x": [1, -2, 3.5, 1e2, 18446744073709551615, true, null]}"#,
            r#"{"message": "{\"type\": \"é\\u00e9\"}", "k\u00e9y": "v\n"}"#,
            r#"{"$serde_json::private::RawValue": "{\"error\": {\"code\": 503}}"}"#,
            r#"[{"a": {}}, [], "s", 0]"#,
        ];
        for t in texts {
            let light: Lv = serde_json::from_str(t).unwrap();
            let full: Value = serde_json::from_str(t).unwrap();
            assert_eq!(to_value(&light), full, "{t}");
            // Read from text (light form) or given as JSON: the same findings.
            let (from_text, _) = text_parts(t, 0);
            let from_json = match &full {
                Value::Object(m) => from_object::<Value>(m, 1),
                Value::Array(items) => {
                    best(items.iter().filter_map(Value::as_object).map(|m| from_object::<Value>(m, 1)))
                }
                _ => Found::default(),
            };
            assert_eq!(from_text, from_json, "{t}");
        }
        // A raw-value key whose value is not JSON text fails as it does for `serde_json`.
        let bad = r#"{"$serde_json::private::RawValue": 5}"#;
        assert!(serde_json::from_str::<Lv>(bad).is_err());
        assert!(serde_json::from_str::<Value>(bad).is_err());
    }

    #[test]
    fn repeated_keys_count_with_their_last_value() {
        let f = extract(&json!({"error": {"type": "a"}}));
        assert_eq!(f.kind.as_deref(), Some("a"));
        let f = text(r#"{"error": {"type": "a", "code": "c1"}, "error": {"type": "b"}}"#);
        assert_eq!(f.kind.as_deref(), Some("b"));
        assert_eq!(f.code, None);
        let f = text("Err: {'type': 'a', 'param': 'p', 'type': 'b'}");
        assert_eq!(f.kind.as_deref(), Some("b"));
        assert_eq!(f.provider.as_deref(), Some("openai"));
        // A body without braces needs two distinct unquoted keys.
        assert!(Loose::new("a: 1, a: 2", 0).body().is_none());
        assert!(Loose::new("a: 1, b: 2", 0).body().is_some());
        assert!(Loose::new("'a': 1", 0).body().is_some());
    }

    #[test]
    fn loose_strings_borrow_unless_escaped() {
        let mut p = Loose::new("'plain é' rest", 0);
        assert!(matches!(p.string(b'\''), Some(Cow::Borrowed("plain é"))));
        assert_eq!(p.pos, 10);
        let mut p = Loose::new(r#""a\"b\u00e9\x41\q" rest"#, 0);
        assert_eq!(p.string(b'"').as_deref(), Some("a\"béAq"));
        let mut p = Loose::new("'cut short", 0);
        assert!(matches!(p.string(b'\''), Some(Cow::Borrowed("cut short"))));
        assert_eq!(p.pos, 10);
        let mut p = Loose::new("'cut \\n short", 0);
        assert_eq!(p.string(b'\'').as_deref(), Some("cut \n short"));
        let mut p = Loose::new("'", 0);
        assert!(matches!(p.string(b'\''), Some(Cow::Borrowed(""))));
    }

    #[test]
    fn cues_ignore_ascii_case_and_respect_word_edges() {
        assert_eq!(http_status_in("STATUS: 503"), Some(503));
        assert_eq!(http_status_in("HTTP 502 BAD GATEWAY"), Some(502));
        assert_eq!(http_status_in("substatus 503"), None);
        assert_eq!(http_status_in("é 418 Service Unavailable"), Some(418));
        assert_eq!(http_status_in("id 777 code 404"), Some(404));
        assert_eq!(http_status_in("200 ok, then 999 {}"), None);
        assert_eq!(http_status_in("12 and 500\u{a0}{"), Some(500));
        assert_eq!(provider_in("call to AnthropicException failed", &[]).as_deref(), Some("anthropic"));
        assert_eq!(provider_in("googlemaps said no", &[]), None);
        assert_eq!(provider_in("éOpenAI error via Google", &[]).as_deref(), Some("openai"));
        assert_eq!(provider_in("x", &["Vertex.Error"]).as_deref(), Some("gemini"));
        assert_eq!(provider_in("a google then azure", &[]).as_deref(), Some("azure_openai"));
    }

    #[test]
    fn scanning_stops_at_max_scan_on_a_char_boundary() {
        let pad = "é".repeat(MAX_SCAN / 2 - 1);
        let before = format!("{pad}x {{'type': 'rate_limit_error'}}");
        assert_eq!(text(&before).kind, None);
        let early = format!("Err: {{'type': 'rate_limit_error', 'message': '{pad}'}}");
        let f = text(&early);
        assert_eq!(f.kind.as_deref(), Some("rate_limit_error"));
        assert!(f.message.is_some_and(|m| m.len() < MAX_SCAN && m.chars().all(|c| c == 'é')));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,400}") {
            let _ = text(&s);
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[a-zA-Z: ]{0,12}[{}\[\]()'",:=\\ a-z0-9.]{0,200}"#) {
            let _ = text(&s);
        }
    }
}
