//! Rego (`regorus`): the rules as one `else` chain (Rego's own first-match
//! form): `first := 0 if { ... } else := 1 if { ... }`. A top-level `or`
//! becomes several `else` branches with the same value; a nested `or` or a
//! negated compound becomes a helper rule. An absent field is an absent
//! key: an expression over it is undefined, so a test fails and its `not`
//! holds, as in rcv.

use rcv::check::ir::{Cond, Ord, Test};
use rcv::schema::Fact;
use regorus::Value;

use crate::Peer;
use crate::rules::{Rules, key, ordered, rank, value_text};

pub struct Rego<'r> {
    rules: &'r Rules,
    engine: regorus::Engine,
    pub text: String,
}

struct Writer {
    helpers: Vec<String>,
}

impl Writer {
    fn atom(&mut self, path: &str, test: &Test) -> String {
        let k = format!("input.{}", key(path));
        match test {
            Test::IsTrue => format!("{k} == true"),
            Test::Present => format!("{k} != null"),
            Test::Eq(v) => format!("{k} == {}", value_text(v, false)),
            Test::In(vs) => {
                let items: Vec<String> = vs.iter().map(|v| value_text(v, false)).collect();
                format!("{k} in {{{}}}", items.join(", "))
            }
            Test::Cmp(op, x) => {
                let op = match op {
                    Ord::Lt => "<",
                    Ord::Le => "<=",
                    Ord::Gt => ">",
                    Ord::Ge => ">=",
                };
                let k = if ordered(path) { format!("{k}_rank") } else { k };
                let x = value_text(&rcv::check::ir::Value::Num(*x), false);
                format!("{k} {op} {x}")
            }
            Test::Matches(p) => {
                assert!(!p.contains('`'), "regex `{p}` has a backquote this encoding does not write");
                format!("regex.match(`{p}`, {k})")
            }
        }
    }

    /// The bodies (conjunctions of literals) any of which makes `c` hold.
    fn bodies(&mut self, c: &Cond) -> Vec<Vec<String>> {
        match c {
            Cond::Or(v) => v.iter().flat_map(|x| self.bodies(x)).collect(),
            _ => vec![self.literals(c)],
        }
    }

    fn literals(&mut self, c: &Cond) -> Vec<String> {
        match c {
            Cond::True => vec!["true".to_string()],
            Cond::And(v) => v.iter().flat_map(|x| self.literals(x)).collect(),
            Cond::Atom(a) => vec![self.atom(&a.path, &a.test)],
            Cond::Not(x) => match &**x {
                Cond::Atom(a) => vec![format!("not {}", self.atom(&a.path, &a.test))],
                other => vec![format!("not {}", self.helper(other))],
            },
            Cond::Or(_) => vec![self.helper(c)],
        }
    }

    fn helper(&mut self, c: &Cond) -> String {
        let slot = self.helpers.len();
        let name = format!("h{slot}");
        self.helpers.push(String::new());
        let mut text = String::new();
        for body in self.bodies(c) {
            text.push_str(&format!("{name} if {{ {} }}\n", body.join("; ")));
        }
        self.helpers[slot] = text;
        name
    }
}

pub fn program(rules: &Rules) -> String {
    let mut w = Writer { helpers: Vec::new() };
    let mut chain = Vec::new();
    for (i, g) in rules.guards.iter().enumerate() {
        match g {
            Some(c) => {
                for body in w.bodies(c) {
                    chain.push(format!("{i} if {{ {} }}", body.join("; ")));
                }
            }
            None => {
                chain.push(format!("{i} if {{ true }}"));
                break;
            }
        }
    }
    let mut text = String::from("package rcv\n\n");
    for (n, c) in chain.iter().enumerate() {
        text.push_str(if n == 0 { "first := " } else { "else := " });
        text.push_str(c);
        text.push('\n');
    }
    text.push('\n');
    for h in &w.helpers {
        text.push_str(h);
    }
    text
}

impl<'r> Rego<'r> {
    pub fn new(rules: &'r Rules) -> Rego<'r> {
        let text = program(rules);
        let mut engine = regorus::Engine::new();
        if let Err(e) = engine.add_policy("rcv.rego".to_string(), text.clone()) {
            panic!("Rego does not load the policy: {e}\n{text}");
        }
        Rego { rules, engine, text }
    }
}

impl Peer for Rego<'_> {
    type Input = Value;

    fn prepare(&self, f: &rcv::schema::Facts<'_>) -> Value {
        let mut input = Value::new_object();
        if let Ok(obj) = input.as_object_mut() {
            for s in &self.rules.slots {
                let v = s.get(f);
                let value = match v {
                    Fact::Str(x) => Value::from(x),
                    Fact::Num(x) => Value::from(x),
                    Fact::Bool(b) => Value::from(b),
                    Fact::Absent => continue,
                };
                obj.insert(Value::from(s.key.as_str()), value);
                if s.ranked
                    && let Fact::Str(x) = v
                    && let Some(r) = rank(x)
                {
                    obj.insert(Value::from(format!("{}_rank", s.key)), Value::from(r));
                }
            }
        }
        input
    }

    fn first(&mut self, input: &Value) -> Option<usize> {
        self.engine.set_input(input.clone());
        match self.engine.eval_rule("data.rcv.first".to_string()) {
            Ok(Value::Number(n)) => n.as_u64().map(|n| n as usize),
            Ok(Value::Undefined) => None,
            other => panic!("Rego returned {other:?}"),
        }
    }
}
