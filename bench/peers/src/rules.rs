//! One ordered rule list (a policy's classify or recover rules) as the
//! peers see it: the checked guards, and the fields they read with the
//! names each engine's input gives them.

use rcv::check::ir::{Cond, Test, Value};
use rcv::schema::{Fact, Facts, FieldType, RISK_LEVELS};
use regex::Regex;

/// First-match semantics: the answer is the index of the first rule whose
/// guard holds; `None` guards are `otherwise`.
pub struct Rules {
    pub guards: Vec<Option<Cond>>,
    pub slots: Vec<Slot>,
    /// Every regex test, in the order of first appearance (Cedar has no
    /// regex: its input carries each result as a boolean, `re<N>`).
    pub regexes: Vec<RegexTest>,
}

/// One field the rules read.
pub struct Slot {
    pub path: String,
    /// The field's name in an engine's input: the path with `_` for `.`.
    pub key: String,
    index: Option<usize>,
    metadata: Option<String>,
    /// An ordered enum (risk) compared with `<`...: the input also carries
    /// its rank as `<key>_rank`.
    pub ranked: bool,
}

pub struct RegexTest {
    pub path: String,
    pub pattern: String,
    re: Regex,
    index: Option<usize>,
    metadata: Option<String>,
}

pub fn key(path: &str) -> String {
    path.replace('.', "_")
}

pub fn ordered(path: &str) -> bool {
    matches!(rcv::schema::lookup(path).map(|f| f.ty), Some(FieldType::Enum(k)) if k.is_ordered())
}

/// A rank for an ordered enum member.
pub fn rank(s: &str) -> Option<i64> {
    RISK_LEVELS.iter().position(|l| *l == s).map(|i| i as i64)
}

/// A number as an integer, for engines without floats (Cedar): the
/// comparison stops loudly rather than round.
pub fn integer(x: f64, what: &str) -> i64 {
    assert!(
        x.fract() == 0.0 && x.abs() < 9.0e15,
        "{what}: `{x}` is not an integer, which this encoding cannot express"
    );
    x as i64
}

impl Slot {
    pub fn get<'a>(&self, f: &Facts<'a>) -> Fact<'a> {
        match (&self.index, &self.metadata) {
            (Some(i), _) => f.get(*i),
            (None, Some(k)) => f.metadata(k),
            (None, None) => Fact::Absent,
        }
    }
}

impl RegexTest {
    pub fn test(&self, f: &Facts<'_>) -> bool {
        let v = match (&self.index, &self.metadata) {
            (Some(i), _) => f.get(*i),
            (None, Some(k)) => f.metadata(k),
            (None, None) => Fact::Absent,
        };
        matches!(v, Fact::Str(s) if self.re.is_match(s))
    }
}

impl Rules {
    pub fn new(guards: Vec<Option<Cond>>) -> Rules {
        let mut rules = Rules { guards, slots: Vec::new(), regexes: Vec::new() };
        let guards = std::mem::take(&mut rules.guards);
        for g in guards.iter().flatten() {
            rules.collect(g);
        }
        rules.guards = guards;
        rules
    }

    fn collect(&mut self, c: &Cond) {
        match c {
            Cond::True => {}
            Cond::Or(v) | Cond::And(v) => v.iter().for_each(|x| self.collect(x)),
            Cond::Not(x) => self.collect(x),
            Cond::Atom(a) => {
                let index = rcv::schema::index_of(&a.path);
                let metadata = a.path.strip_prefix(rcv::schema::METADATA_PREFIX).map(str::to_string);
                assert!(index.is_some() || metadata.is_some(), "unknown field `{}`", a.path);
                let ranked = matches!(a.test, Test::Cmp(..)) && ordered(&a.path);
                let k = key(&a.path);
                let ident = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                assert!(ident, "field `{}` has no name this encoding can write", a.path);
                let clash = self.slots.iter().any(|s| s.key == k && s.path != a.path);
                assert!(!clash, "fields `{}` and another share the name `{k}`", a.path);
                match self.slots.iter_mut().find(|s| s.path == a.path) {
                    Some(s) => s.ranked |= ranked,
                    None => self.slots.push(Slot {
                        path: a.path.clone(),
                        key: k,
                        index,
                        metadata: metadata.clone(),
                        ranked,
                    }),
                }
                if let Test::Matches(p) = &a.test
                    && !self.regexes.iter().any(|r| r.path == a.path && r.pattern == *p)
                {
                    let re = Regex::new(p).unwrap_or_else(|e| panic!("regex `{p}`: {e}"));
                    self.regexes.push(RegexTest { path: a.path.clone(), pattern: p.clone(), re, index, metadata });
                }
            }
        }
    }

    /// The `re<N>` name of a regex test.
    pub fn regex_name(&self, path: &str, pattern: &str) -> String {
        let n = self.regexes.iter().position(|r| r.path == path && r.pattern == pattern);
        format!("re{}", n.unwrap_or(usize::MAX))
    }
}

/// A literal value's JSON text (a string literal in CEL, Rego and Cedar
/// alike, for the plain strings policies hold).
pub fn string_literal(s: &str) -> String {
    assert!(!s.chars().any(char::is_control), "string `{s}` has control characters this encoding does not write");
    serde_json::to_string(s).unwrap_or_default()
}

pub fn value_text(v: &Value, integers_only: bool) -> String {
    match v {
        Value::Str(s) | Value::Sym(s) => string_literal(s),
        Value::Bool(b) => b.to_string(),
        Value::Num(x) if integers_only => integer(*x, "a literal").to_string(),
        Value::Num(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => format!("{}", *x as i64),
        Value::Num(x) => format!("{x:?}"),
    }
}
