//! The policy hash: `sha256:<hex>` over a canonical serialisation of the
//! checked declarations and rules and of the compiled table, with every
//! source span removed. Comments, formatting and positions do not change
//! it; any change of meaning does (a literal, a rule, a declaration, their
//! order, since first match wins and declaration order is output order).

use serde::Serialize;

use super::Tables;
use super::columns::Column;
use crate::check::CheckedPolicy;

/// Bumped whenever the canonical form changes meaning.
const FORMAT: &str = "rcv-compiled/1";

#[derive(Serialize)]
struct Canonical<'a> {
    format: &'static str,
    policy: &'a CheckedPolicy,
    columns: &'a [Column],
    tables: &'a Tables,
}

/// The canonical JSON text the hash is computed over.
pub fn canonical(policy: &CheckedPolicy, columns: &[Column], tables: &Tables) -> String {
    let c = Canonical { format: FORMAT, policy, columns, tables };
    let raw = serde_json::to_vec(&c).unwrap_or_default();
    String::from_utf8(strip_spans(&raw)).unwrap_or_default()
}

pub fn hash(policy: &CheckedPolicy, columns: &[Column], tables: &Tables) -> String {
    crate::digest::sha256_tagged(canonical(policy, columns, tables).as_bytes())
}

/// Length of a serialised span (`{"start":N,"end":N}`) or `null` at the
/// start of `b`.
fn span_value_len(b: &[u8]) -> Option<usize> {
    if b.starts_with(b"null") {
        return Some(4);
    }
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = b"{\"start\":".len();
    if !b.starts_with(b"{\"start\":") {
        return None;
    }
    let n = digits(b.get(i..)?);
    if n == 0 {
        return None;
    }
    i += n;
    if !b.get(i..)?.starts_with(b",\"end\":") {
        return None;
    }
    i += b",\"end\":".len();
    let n = digits(b.get(i..)?);
    if n == 0 || b.get(i + n) != Some(&b'}') {
        return None;
    }
    Some(i + n + 1)
}

/// Removes every `"span"` member holding a span from compact JSON. A key
/// is recognised only right after `{` or `,`, where JSON strings cannot
/// be (inside a string every quote is escaped), so user text and user
/// names (map keys whose values are objects, never spans) are kept.
fn strip_spans(json: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"\"span\":";
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while let Some(&c) = json.get(i) {
        if (c == b',' || c == b'{') && json.get(i + 1..).is_some_and(|r| r.starts_with(KEY)) {
            let v = i + 1 + KEY.len();
            if let Some(n) = json.get(v..).and_then(span_value_len) {
                let mut next = v + n;
                if c == b'{' {
                    out.push(b'{');
                    if json.get(next) == Some(&b',') {
                        next += 1;
                    }
                }
                i = next;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_spans_but_not_user_names_or_text() {
        let v = serde_json::json!({
            "span": {"start": 1, "end": 2},
            "consts": {"span": {"value": {"num": 1.0}, "span": {"start": 3, "end": 4}}},
            "budget": {"span": null, "attempts": 3},
            "text": ",\"span\":{\"start\":1,\"end\":2}",
            "last": {"a": 1, "span": {"start": 5, "end": 6}},
        });
        let out = strip_spans(v.to_string().as_bytes());
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            got,
            serde_json::json!({
                "consts": {"span": {"value": {"num": 1.0}}},
                "budget": {"attempts": 3},
                "text": ",\"span\":{\"start\":1,\"end\":2}",
                "last": {"a": 1},
            })
        );
    }
}
