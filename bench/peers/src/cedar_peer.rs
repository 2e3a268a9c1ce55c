//! Cedar (`cedar-policy`): Cedar has no first match and no rule order, so
//! each rule is one `permit` policy whose id is its index, the facts are
//! the request's context, and the answer is the lowest index among the
//! policies the response names as determining (`diagnostics().reason()`).
//! An absent field is an absent context attribute, every test is guarded
//! with `context has`. Cedar has no regex (`like` has only `*` wildcards
//! and no case folding), so each regex test is computed with the `regex`
//! crate while building the context and passed as a boolean attribute
//! `re<N>`: that part of the work is outside Cedar. Cedar has no floats:
//! a comparison with a non-integer stops loudly.

use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression,
};
use rcv::check::ir::{Cond, Ord, Test};
use rcv::schema::Fact;

use crate::Peer;
use crate::rules::{Rules, integer, key, ordered, rank, value_text};

pub struct Cedar<'r> {
    rules: &'r Rules,
    set: PolicySet,
    authorizer: Authorizer,
    entities: Entities,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    pub text: Vec<String>,
}

fn atom(rules: &Rules, path: &str, test: &Test) -> String {
    let k = key(path);
    let has = |k: &str| format!("context has {k}");
    match test {
        Test::IsTrue => format!("({} && context.{k} == true)", has(&k)),
        Test::Present => has(&k),
        Test::Eq(v) => format!("({} && context.{k} == {})", has(&k), value_text(v, true)),
        Test::In(vs) => {
            let items: Vec<String> = vs.iter().map(|v| value_text(v, true)).collect();
            format!("({} && [{}].contains(context.{k}))", has(&k), items.join(", "))
        }
        Test::Cmp(op, x) => {
            let op = match op {
                Ord::Lt => "<",
                Ord::Le => "<=",
                Ord::Gt => ">",
                Ord::Ge => ">=",
            };
            let k = if ordered(path) { format!("{k}_rank") } else { k };
            format!("({} && context.{k} {op} {})", has(&k), integer(*x, "a comparison"))
        }
        Test::Matches(p) => format!("context.{}", rules.regex_name(path, p)),
    }
}

pub fn expr(rules: &Rules, c: &Cond) -> String {
    match c {
        Cond::True => "true".to_string(),
        Cond::Or(v) => format!("({})", v.iter().map(|x| expr(rules, x)).collect::<Vec<_>>().join(" || ")),
        Cond::And(v) => format!("({})", v.iter().map(|x| expr(rules, x)).collect::<Vec<_>>().join(" && ")),
        Cond::Not(x) => format!("!{}", expr(rules, x)),
        Cond::Atom(a) => atom(rules, &a.path, &a.test),
    }
}

fn uid(s: &str) -> EntityUid {
    EntityUid::from_str(s).unwrap_or_else(|e| panic!("entity `{s}`: {e}"))
}

impl<'r> Cedar<'r> {
    pub fn new(rules: &'r Rules) -> Cedar<'r> {
        let mut set = PolicySet::new();
        let mut text = Vec::new();
        for (i, g) in rules.guards.iter().enumerate() {
            let t = match g {
                Some(c) => format!("permit(principal, action, resource) when {{ {} }};", expr(rules, c)),
                None => "permit(principal, action, resource);".to_string(),
            };
            let policy = Policy::parse(Some(PolicyId::new(i.to_string())), &t)
                .unwrap_or_else(|e| panic!("Cedar does not parse `{t}`: {e}"));
            set.add(policy).unwrap_or_else(|e| panic!("Cedar policy set: {e}"));
            text.push(t);
        }
        Cedar {
            rules,
            set,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            principal: uid(r#"Agent::"agent""#),
            action: uid(r#"Action::"decide""#),
            resource: uid(r#"Call::"call""#),
            text,
        }
    }
}

impl Peer for Cedar<'_> {
    type Input = Request;

    fn prepare(&self, f: &rcv::schema::Facts<'_>) -> Request {
        let mut pairs = Vec::with_capacity(self.rules.slots.len() + self.rules.regexes.len());
        for s in &self.rules.slots {
            let v = s.get(f);
            let value = match v {
                Fact::Str(x) => RestrictedExpression::new_string(x.to_string()),
                Fact::Num(x) => RestrictedExpression::new_long(integer(x, &s.path)),
                Fact::Bool(b) => RestrictedExpression::new_bool(b),
                Fact::Absent => continue,
            };
            pairs.push((s.key.clone(), value));
            if s.ranked
                && let Fact::Str(x) = v
                && let Some(r) = rank(x)
            {
                pairs.push((format!("{}_rank", s.key), RestrictedExpression::new_long(r)));
            }
        }
        for (n, r) in self.rules.regexes.iter().enumerate() {
            pairs.push((format!("re{n}"), RestrictedExpression::new_bool(r.test(f))));
        }
        let context = Context::from_pairs(pairs).unwrap_or_else(|e| panic!("Cedar context: {e}"));
        Request::new(self.principal.clone(), self.action.clone(), self.resource.clone(), context, None)
            .unwrap_or_else(|e| panic!("Cedar request: {e}"))
    }

    fn first(&mut self, input: &Request) -> Option<usize> {
        let response = self.authorizer.is_authorized(input, &self.set, &self.entities);
        let d = response.diagnostics();
        if let Some(e) = d.errors().next() {
            panic!("a Cedar policy failed: {e}");
        }
        d.reason().filter_map(|id| AsRef::<str>::as_ref(id).parse::<usize>().ok()).min()
    }
}
