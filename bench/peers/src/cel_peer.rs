//! CEL (`cel` crate): one boolean program per rule, evaluated in order, the
//! first true one wins. (A single nested conditional would exceed the
//! parser's recursion limit of 96 on the 500-rule policy; lists of CEL
//! expressions evaluated in order are also how CEL is usually deployed.)
//! Each field is a variable; an absent field is `null`, and every test is
//! guarded with `!= null` so an absent field satisfies none, as in rcv.

use std::sync::Arc;

use cel::{Context, Env, Program, Value};
use rcv::check::ir::{Cond, Ord, Test};
use rcv::schema::Fact;

use crate::Peer;
use crate::rules::{Rules, key, rank, string_literal, value_text};

pub struct Cel<'r> {
    rules: &'r Rules,
    programs: Vec<Program>,
    env: Arc<Env>,
    pub text: Vec<String>,
}

fn atom_test(k: &str, test: &Test, ranked: bool) -> String {
    match test {
        Test::IsTrue => format!("{k} == true"),
        Test::Present => format!("{k} != null"),
        Test::Eq(v) => format!("{k} != null && {k} == {}", lit(v)),
        Test::In(vs) => {
            let items: Vec<String> = vs.iter().map(lit).collect();
            format!("{k} != null && {k} in [{}]", items.join(", "))
        }
        Test::Cmp(op, x) => {
            let op = match op {
                Ord::Lt => "<",
                Ord::Le => "<=",
                Ord::Gt => ">",
                Ord::Ge => ">=",
            };
            let k = if ranked { format!("{k}_rank") } else { k.to_string() };
            format!("{k} != null && {k} {op} {x:?}")
        }
        Test::Matches(p) => {
            assert!(!p.contains('\''), "regex `{p}` has a quote this encoding does not write");
            format!("{k} != null && {k}.matches(r'{p}')")
        }
    }
}

/// Numbers are doubles in the input, so literals are written as doubles.
fn lit(v: &rcv::check::ir::Value) -> String {
    match v {
        rcv::check::ir::Value::Num(x) => format!("{x:?}"),
        rcv::check::ir::Value::Str(s) | rcv::check::ir::Value::Sym(s) => string_literal(s),
        other => value_text(other, false),
    }
}

pub fn expr(c: &Cond) -> String {
    match c {
        Cond::True => "true".to_string(),
        Cond::Or(v) => format!("({})", v.iter().map(expr).collect::<Vec<_>>().join(" || ")),
        Cond::And(v) => format!("({})", v.iter().map(expr).collect::<Vec<_>>().join(" && ")),
        Cond::Not(x) => format!("!{}", expr(x)),
        Cond::Atom(a) => {
            let ranked = matches!(a.test, Test::Cmp(..)) && crate::rules::ordered(&a.path);
            format!("({})", atom_test(&key(&a.path), &a.test, ranked))
        }
    }
}

impl<'r> Cel<'r> {
    pub fn new(rules: &'r Rules) -> Cel<'r> {
        let env = Arc::new(Env::stdlib());
        let text: Vec<String> = rules.guards.iter().map(|g| g.as_ref().map_or("true".to_string(), expr)).collect();
        let programs = text
            .iter()
            .map(|t| env.compile(t).unwrap_or_else(|e| panic!("CEL does not compile `{t}`: {e:?}")))
            .collect();
        Cel { rules, programs, env, text }
    }
}

impl Peer for Cel<'_> {
    type Input = Context<'static, 'static>;

    fn prepare(&self, f: &rcv::schema::Facts<'_>) -> Self::Input {
        let mut c = Context::with_env(Arc::clone(&self.env));
        for s in &self.rules.slots {
            let v = s.get(f);
            let value = match v {
                Fact::Str(x) => Value::from(x.to_string()),
                Fact::Num(x) => Value::Float(x),
                Fact::Bool(b) => Value::Bool(b),
                Fact::Absent => Value::Null,
            };
            c.add_variable_from_value(s.key.clone(), value);
            if s.ranked {
                let r = match v {
                    Fact::Str(x) => rank(x).map_or(Value::Null, |r| Value::Float(r as f64)),
                    _ => Value::Null,
                };
                c.add_variable_from_value(format!("{}_rank", s.key), r);
            }
        }
        c
    }

    fn first(&mut self, input: &Self::Input) -> Option<usize> {
        self.programs.iter().position(|p| match p.execute(input) {
            Ok(Value::Bool(b)) => b,
            other => panic!("a CEL rule returned {other:?}"),
        })
    }
}
