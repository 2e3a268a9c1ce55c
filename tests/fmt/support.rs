//! Helpers shared by the formatter tests: AST comparison modulo spans and
//! the round-trip properties every formatted text must have.

use rcv::syntax::ast::Policy;
use serde_json::Value;

/// The policy as JSON with every position erased: `span`, `*_span` and
/// `keyword` keys, bare `{start, end}` spans inside tuples, the comments
/// (compared on their own) and the raw spelling of string literals (the
/// formatter re-escapes strings; their values are compared).
pub fn erase_spans(policy: &Policy) -> Value {
    let mut v = serde_json::to_value(policy).expect("the AST serialises");
    if let Value::Object(map) = &mut v {
        map.remove("comments");
    }
    erase(&mut v);
    v
}

fn is_span(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 2 && m.contains_key("start") && m.contains_key("end"))
}

fn erase(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| k != "span" && k != "keyword" && !k.ends_with("_span"));
            if matches!(map.get("value"), Some(Value::Object(o)) if o.contains_key("Str")) {
                map.remove("text");
            }
            for (_, x) in map.iter_mut() {
                erase(x);
            }
        }
        Value::Array(items) => {
            for x in items.iter_mut() {
                if is_span(x) {
                    *x = Value::Null;
                } else {
                    erase(x);
                }
            }
        }
        _ => {}
    }
}

pub fn comment_texts(policy: &Policy) -> Vec<String> {
    policy.comments.iter().map(|c| c.text.clone()).collect()
}

/// Formats `src` and checks the formatter's promises: the output parses to
/// the same policy (modulo positions), keeps every comment in order, is a
/// fixed point, ends with exactly one newline and has no trailing blanks.
/// Returns the formatted text, or a description of the broken promise.
pub fn roundtrip(src: &str) -> Result<String, String> {
    let p1 = rcv::syntax::parse(src).map_err(|e| format!("input does not parse: {e:?}\n--- input\n{src}"))?;
    let f1 = rcv::syntax::fmt::format(&p1, src);
    let p2 = rcv::syntax::parse(&f1)
        .map_err(|e| format!("formatted text does not parse: {e:?}\n--- input\n{src}\n--- formatted\n{f1}"))?;
    if erase_spans(&p1) != erase_spans(&p2) {
        return Err(format!("formatting changed the policy\n--- input\n{src}\n--- formatted\n{f1}"));
    }
    if comment_texts(&p1) != comment_texts(&p2) {
        return Err(format!(
            "formatting changed the comments: {:?} -> {:?}\n--- input\n{src}\n--- formatted\n{f1}",
            comment_texts(&p1),
            comment_texts(&p2)
        ));
    }
    let f2 = rcv::syntax::fmt::format(&p2, &f1);
    if f1 != f2 {
        return Err(format!("not idempotent\n--- input\n{src}\n--- once\n{f1}\n--- twice\n{f2}"));
    }
    if !f1.ends_with('\n') || f1.ends_with("\n\n") {
        return Err(format!("output must end with exactly one newline\n--- formatted\n{f1:?}"));
    }
    if let Some(line) = f1.lines().find(|l| l.ends_with(' ') || l.ends_with('\t')) {
        return Err(format!("trailing whitespace on `{line}`"));
    }
    Ok(f1)
}
