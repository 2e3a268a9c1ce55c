//! The policy hash: `sha256:<hex>` over a canonical serialisation of the
//! checked declarations and rules and of the compiled table, with every
//! source span removed. Comments, formatting and positions do not change
//! it; any change of meaning does (a literal, a rule, a declaration, their
//! order, since first match wins and declaration order is output order).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
    let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
    strip_spans(&mut v);
    v.to_string()
}

pub fn hash(policy: &CheckedPolicy, columns: &[Column], tables: &Tables) -> String {
    let digest = Sha256::digest(canonical(policy, columns, tables).as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether a value is a serialised span (`{"start": n, "end": n}`) or a
/// missing optional one.
fn is_span(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            m.len() == 2 && m.get("start").is_some_and(Value::is_u64) && m.get("end").is_some_and(Value::is_u64)
        }
        _ => false,
    }
}

/// Removes every `span` field holding a span (names declared by the user,
/// which are map keys whose values are objects, are never spans).
fn strip_spans(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m
                .iter()
                .filter(|(k, v)| (k.as_str() == "span" || k.as_str() == "keyword") && is_span(v))
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                m.shift_remove(&k);
            }
            m.values_mut().for_each(strip_spans);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_spans),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_spans_but_not_user_names() {
        let mut v = serde_json::json!({
            "span": {"start": 1, "end": 2},
            "consts": {"span": {"value": {"num": 1.0}, "span": {"start": 3, "end": 4}}},
            "budget": {"span": null, "attempts": 3},
        });
        strip_spans(&mut v);
        assert_eq!(v, serde_json::json!({"consts": {"span": {"value": {"num": 1.0}}}, "budget": {"attempts": 3}}));
    }
}
