//! Conditions: every field path resolves in `crate::schema`, every operator
//! applies to its field, every value has the field's type. Lowers the AST
//! expression to `ir::Cond` (`!=` and `not in` become `Not`, groups vanish,
//! units are converted, enum members become symbols).

use super::ir::{Atom, Cond, Ord, Test, Value};
use super::{Ctx, Kind, article, lit_type, unknown_name};
use crate::diag::{Code, Diagnostic};
use crate::schema::{self, EnumKind, Field, FieldType, RISK_LEVELS, Scope};
use crate::span::Span;
use crate::syntax::ast::{CmpOp, Expr, Ident, LitValue, Literal, Operand, Path, RegexLit};

/// Where a condition is written: `classify` sees only the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    Classify,
    Recover,
    Accept,
    Invariant,
}

/// Types and lowers a condition. Parts with errors become `Cond::True`
/// (the policy is rejected anyway).
pub(crate) fn cond(cx: &mut Ctx, e: &Expr, site: Site) -> Cond {
    match e {
        Expr::Or(items, _) => Cond::Or(items.iter().map(|x| cond(cx, x, site)).collect()),
        Expr::And(items, _) => Cond::And(items.iter().map(|x| cond(cx, x, site)).collect()),
        Expr::Not(inner, _) => Cond::Not(Box::new(cond(cx, inner, site))),
        Expr::Group(inner, _) => cond(cx, inner, site),
        Expr::Truthy(path) => truthy(cx, path, site),
        Expr::Has(path, span) => match field(cx, path, site) {
            Some(_) => atom(path, Test::Present, *span),
            None => Cond::True,
        },
        Expr::Compare { path, op, op_span, rhs, span } => compare(cx, path, *op, *op_span, rhs, *span, site),
        Expr::In { path, negated, items, span, .. } => membership(cx, path, *negated, items, *span, site),
        Expr::Match { path, regex, span } => matches(cx, path, regex, *span, site),
    }
}

fn atom(path: &Path, test: Test, span: Span) -> Cond {
    Cond::Atom(Atom { path: path.text.clone(), test, span })
}

/// Resolves a field path; reports unknown paths and engine state in `classify`.
fn field(cx: &mut Ctx, path: &Path, site: Site) -> Option<Field> {
    let Some(f) = schema::lookup(&path.text) else {
        let d = Diagnostic::new(
            Code::UnknownField,
            format!("unknown field `{}`", path.text),
            path.span,
            "not a field of the event schema",
        );
        let d = match schema::suggest(&path.text) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help("`docs/language.md` lists the fields; request metadata is `metadata.<key>`"),
        };
        cx.push(d);
        return None;
    };
    if site == Site::Classify && f.scope == Scope::State {
        cx.push(
            Diagnostic::new(
                Code::StateInClassify,
                format!("`{}` is not known yet in `classify`", path.text),
                path.span,
                "computed by the engine after classification",
            )
            .with_help("`classify` sees only the event; test this in `recover`, `accept` or an `invariant`"),
        );
    }
    Some(f)
}

/// The operand names of an expression whose field is unknown still count
/// as mentions, so their declarations are not also reported unused.
fn mention_operands(cx: &mut Ctx, operands: &[&Operand]) {
    for o in operands {
        if let Operand::Name(id) = o {
            cx.mark_any(&id.name, id.span);
        }
    }
}

fn truthy(cx: &mut Ctx, path: &Path, site: Site) -> Cond {
    let Some(f) = field(cx, path, site) else { return Cond::True };
    if f.ty == FieldType::Bool {
        return atom(path, Test::IsTrue, path.span);
    }
    let help = match f.ty {
        FieldType::Str => format!("test it with `==`, `in` or `~`, or its presence with `has {}`", path.text),
        t if t.is_numeric() => format!("compare it, e.g. `{} > 0`", path.text),
        _ => "compare it with `==` or `in`".to_string(),
    };
    cx.push(
        Diagnostic::new(
            Code::BadOperator,
            format!("`{}` is {} field, not a condition", path.text, article(f.ty.name())),
            path.span,
            format!("{} field", article(f.ty.name())),
        )
        .with_help(help),
    );
    Cond::True
}

fn compare(cx: &mut Ctx, path: &Path, op: CmpOp, op_span: Span, rhs: &Operand, span: Span, site: Site) -> Cond {
    let Some(f) = field(cx, path, site) else {
        mention_operands(cx, &[rhs]);
        return Cond::True;
    };
    let ord = match op {
        CmpOp::Eq | CmpOp::Ne => {
            let Some(v) = value(cx, &f, path, rhs) else { return Cond::True };
            let a = atom(path, Test::Eq(v), span);
            return if op == CmpOp::Ne { Cond::Not(Box::new(a)) } else { a };
        }
        CmpOp::Lt => Ord::Lt,
        CmpOp::Le => Ord::Le,
        CmpOp::Gt => Ord::Gt,
        CmpOp::Ge => Ord::Ge,
    };
    let ordered = f.ty.is_numeric() || matches!(f.ty, FieldType::Enum(k) if k.is_ordered());
    if !ordered {
        let help = match f.ty {
            FieldType::Str => "compare strings with `==`, `in` or `~ /regex/`",
            FieldType::Bool => "test a bool alone, or with `== true` / `== false`",
            _ => "compare it with `==` or `in`",
        };
        mention_operands(cx, &[rhs]);
        cx.push(
            Diagnostic::new(
                Code::BadOperator,
                format!("`{}` does not apply to `{}`, {} field", op.as_str(), path.text, article(f.ty.name())),
                op_span,
                "needs a number, duration, amount or risk level",
            )
            .with_label(path.span, format!("{} field", article(f.ty.name())))
            .with_help(help),
        );
        return Cond::True;
    }
    match value(cx, &f, path, rhs) {
        Some(Value::Num(n)) => atom(path, Test::Cmp(ord, n), span),
        Some(Value::Sym(level)) => match RISK_LEVELS.iter().position(|l| *l == level) {
            Some(i) => atom(path, Test::Cmp(ord, i as f64), span),
            None => Cond::True,
        },
        _ => Cond::True,
    }
}

fn membership(cx: &mut Ctx, path: &Path, negated: bool, items: &[Operand], span: Span, site: Site) -> Cond {
    let Some(f) = field(cx, path, site) else {
        mention_operands(cx, &items.iter().collect::<Vec<_>>());
        return Cond::True;
    };
    let mut values = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match value(cx, &f, path, item) {
            Some(v) => {
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            None => ok = false,
        }
    }
    if !ok {
        return Cond::True;
    }
    let a = atom(path, Test::In(values), span);
    if negated { Cond::Not(Box::new(a)) } else { a }
}

fn matches(cx: &mut Ctx, path: &Path, regex: &RegexLit, span: Span, site: Site) -> Cond {
    let Some(f) = field(cx, path, site) else { return Cond::True };
    let mut ok = true;
    if f.ty != FieldType::Str {
        cx.push(
            Diagnostic::new(
                Code::BadOperator,
                format!("`~` does not apply to `{}`, {} field", path.text, article(f.ty.name())),
                path.span,
                format!("{} field", article(f.ty.name())),
            )
            .with_help("`~` matches string fields; compare this one with `==` or `in`"),
        );
        ok = false;
    }
    let pattern = compile_regex(cx, regex);
    match pattern {
        Some(p) if ok => atom(path, Test::Matches(p), span),
        _ => Cond::True,
    }
}

/// Validates a regex literal and folds its flags into the pattern.
pub(crate) fn compile_regex(cx: &mut Ctx, regex: &RegexLit) -> Option<String> {
    let mut flags = String::new();
    for c in regex.flags.chars() {
        if !matches!(c, 'i' | 'm' | 's' | 'x') {
            cx.push(
                Diagnostic::new(Code::BadRegex, format!("unsupported regex flag `{c}`"), regex.span, "in these flags")
                    .with_help(
                        "the flags are `i` (ignore case), `m` (multi-line), `s` (dot matches newline), `x` (verbose)",
                    ),
            );
            return None;
        }
        if !flags.contains(c) {
            flags.push(c);
        }
    }
    let pattern = if flags.is_empty() { regex.pattern.clone() } else { format!("(?{flags}){}", regex.pattern) };
    // Parsed only, with the parser the `regex` crate uses: compiling is the
    // compiler's job (it reports a pattern too large to compile); compiling
    // here as well cost about 1 ms per load of `tool_chain`.
    match regex_syntax::Parser::new().parse(&pattern) {
        Ok(_) => Some(pattern),
        Err(e) => {
            let text = e.to_string();
            let why = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or("the pattern does not parse")
                .to_string();
            cx.push(
                Diagnostic::new(Code::BadRegex, "invalid regex", regex.span, why)
                    .with_help("the syntax is that of the Rust `regex` crate: no look-around, no backreferences"),
            );
            None
        }
    }
}

/// A literal of a non-enum field's type, converted to its IR value.
fn lit_fits(ty: FieldType, v: &LitValue) -> Option<Value> {
    match (ty, v) {
        (FieldType::Str, LitValue::Str(s)) => Some(Value::Str(s.clone())),
        (FieldType::Int, LitValue::Int(n)) => Some(Value::Num(*n as f64)),
        (FieldType::Float, LitValue::Int(n)) => Some(Value::Num(*n as f64)),
        (FieldType::Float, LitValue::Float(x)) => Some(Value::Num(*x)),
        (FieldType::Duration, LitValue::Duration(ms)) => Some(Value::Num(*ms)),
        (FieldType::Money, LitValue::Money(usd)) => Some(Value::Num(*usd)),
        (FieldType::Bool, LitValue::Bool(b)) => Some(Value::Bool(*b)),
        _ => None,
    }
}

/// A help for a literal of the wrong type, when the fix is obvious.
fn lit_help(ty: FieldType, lit: &Literal) -> Option<String> {
    let text = &lit.text;
    match (ty, &lit.value) {
        (FieldType::Int | FieldType::Float, LitValue::Str(s)) if s.trim().parse::<f64>().is_ok() => {
            Some(format!("write the number without quotes: `{}`", s.trim()))
        }
        (FieldType::Str, LitValue::Int(_) | LitValue::Float(_) | LitValue::Bool(_)) => {
            Some(format!("quote it: `\"{text}\"`"))
        }
        (FieldType::Duration, LitValue::Int(_) | LitValue::Float(_)) => {
            Some(format!("write the unit: `{text}ms` or `{text}s`"))
        }
        (FieldType::Money, LitValue::Int(_) | LitValue::Float(_)) => Some(format!("write it as an amount: `${text}`")),
        (FieldType::Bool, LitValue::Str(s)) if s == "true" || s == "false" => {
            Some(format!("write `{s}` without quotes"))
        }
        (FieldType::Int, LitValue::Float(_)) => Some("this field counts whole units".to_string()),
        _ => None,
    }
}

/// The typed value of an operand compared with field `f`.
fn value(cx: &mut Ctx, f: &Field, path: &Path, operand: &Operand) -> Option<Value> {
    if let FieldType::Enum(kind) = f.ty {
        return enum_value(cx, kind, f, path, operand);
    }
    match operand {
        Operand::Lit(lit) => {
            let v = lit_fits(f.ty, &lit.value);
            if v.is_none() {
                let d = mismatch(path, f, format!("{} `{}`", article(&lit_type(&lit.value)), lit.text), lit.span);
                cx.push(match lit_help(f.ty, lit) {
                    Some(h) => d.with_help(h),
                    None => d,
                });
            }
            v
        }
        Operand::Name(id) => const_value(cx, f, path, id),
    }
}

fn mismatch(path: &Path, f: &Field, found: String, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("`{}` is {} field, found {found}", path.text, article(f.ty.name())),
        span,
        format!("expected {}", article(f.ty.name())),
    )
    .with_label(path.span, format!("{} field", article(f.ty.name())))
}

/// A bare name compared with a non-enum field: a constant of the field's type.
fn const_value(cx: &mut Ctx, f: &Field, path: &Path, id: &Ident) -> Option<Value> {
    let Some(c) = cx.consts.get(&id.name).cloned() else {
        let consts = cx.names(Kind::Const);
        let mut d = unknown_name("constant", &id.name, id.span, &consts, Some(Kind::Const.declare_hint()));
        if f.ty == FieldType::Str && d.help.as_deref().is_none_or(|h| !h.starts_with("did you mean")) {
            d = d.with_help(format!("to compare with the text, quote it: `\"{}\"`", id.name));
        }
        let d = cx.note_other_kind(d, &id.name, "constant");
        cx.push(d);
        cx.mark_guess(Kind::Const, &id.name, id.span);
        return None;
    };
    cx.mark_used(Kind::Const, &id.name, id.span);
    let v = lit_fits(f.ty, &c.value);
    if v.is_none() {
        cx.push(
            mismatch(path, f, format!("the {} constant `{}`", lit_type(&c.value), id.name), id.span)
                .with_label(c.info.span, "declared here"),
        );
    }
    v
}

/// The members of an enum field: declared names or the built-in set.
fn members(cx: &Ctx, kind: EnumKind) -> Vec<String> {
    let declared = match kind {
        EnumKind::Class => Some(Kind::Class),
        EnumKind::Model => Some(Kind::Model),
        EnumKind::Strategy => Some(Kind::Strategy),
        _ => None,
    };
    match declared {
        Some(k) => cx.names(k).into_iter().map(str::to_string).collect(),
        None => kind.builtin_members().unwrap_or(&[]).iter().map(|s| s.to_string()).collect(),
    }
}

fn declared_kind(kind: EnumKind) -> Option<Kind> {
    match kind {
        EnumKind::Class => Some(Kind::Class),
        EnumKind::Model => Some(Kind::Model),
        EnumKind::Strategy => Some(Kind::Strategy),
        _ => None,
    }
}

/// The declared model whose provider id is `id`.
fn model_by_provider_id(cx: &Ctx, id: &str) -> Option<String> {
    cx.models.iter().find(|(_, m)| m.provider_id == id).map(|(name, _)| name.clone())
}

fn enum_value(cx: &mut Ctx, kind: EnumKind, f: &Field, path: &Path, operand: &Operand) -> Option<Value> {
    let members = members(cx, kind);
    match operand {
        Operand::Name(id) => {
            if members.contains(&id.name) {
                if let Some(k) = declared_kind(kind) {
                    cx.mark_used(k, &id.name, id.span);
                }
                return Some(Value::Sym(id.name.clone()));
            }
            if let Some(c) = cx.consts.get(&id.name).cloned() {
                cx.mark_used(Kind::Const, &id.name, id.span);
                if let (EnumKind::Model, LitValue::Str(s)) = (kind, &c.value)
                    && let Some(model) = model_by_provider_id(cx, s)
                {
                    cx.mark_used(Kind::Model, &model, id.span);
                    return Some(Value::Sym(model));
                }
                cx.push(
                    mismatch(path, f, format!("the {} constant `{}`", lit_type(&c.value), id.name), id.span)
                        .with_label(c.info.span, "declared here"),
                );
                return None;
            }
            let refs: Vec<&str> = members.iter().map(String::as_str).collect();
            let hint = declared_kind(kind).map(Kind::declare_hint);
            let d = unknown_name(kind.as_str(), &id.name, id.span, &refs, hint);
            let d = cx.note_other_kind(d, &id.name, kind.as_str());
            cx.push(d);
            if let Some(k) = declared_kind(kind) {
                cx.mark_guess(k, &id.name, id.span);
            }
            None
        }
        Operand::Lit(lit) => {
            if let (EnumKind::Model, LitValue::Str(s)) = (kind, &lit.value) {
                if let Some(model) = model_by_provider_id(cx, s) {
                    cx.mark_used(Kind::Model, &model, lit.span);
                    return Some(Value::Sym(model));
                }
                let d = Diagnostic::new(
                    Code::UnknownName,
                    format!("no declared model has the provider id `{s}`"),
                    lit.span,
                    "not a declared provider id",
                );
                let d = if members.iter().any(|m| m == s) {
                    d.with_help(format!("to name the model, write it without quotes: `{s}`"))
                } else {
                    let ids: Vec<&str> = cx.models.values().map(|m| m.provider_id.as_str()).collect();
                    match crate::names::closest(s, ids) {
                        Some(best) => d.with_help(format!("did you mean `\"{best}\"`?")),
                        None => d.with_help(format!("declare it: `models {{ NAME \"{s}\" }}`")),
                    }
                };
                cx.push(d);
                return None;
            }
            let mut d = mismatch(path, f, format!("{} `{}`", article(&lit_type(&lit.value)), lit.text), lit.span);
            d = match &lit.value {
                LitValue::Str(s) if members.iter().any(|m| m == s) => {
                    d.with_help(format!("write `{s}` without quotes"))
                }
                _ if !members.is_empty() && members.len() <= 8 => {
                    let shown: Vec<String> = members.iter().map(|m| format!("`{m}`")).collect();
                    d.with_help(format!("use one of {}", shown.join(", ")))
                }
                _ => d,
            };
            cx.push(d);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::{Item, Policy};

    const BASE: &str = r#"policy p version "1.0.0"
const floor = 0.7
const limit = 3
const wait = 2s
classes { timeout transient, quota permanent }
reasons { R "r" }
models { primary "gpt-4o" context 128000, backup "claude-3-5-haiku" }
strategies { careful }
classify { otherwise => timeout }
recover { otherwise => escalate, reason R }
"#;

    fn parse_with(extra: &str) -> Policy {
        crate::syntax::parse(&format!("{BASE}accept {{ require {extra} else abort, reason R }}\n")).expect("parses")
    }

    /// Types `expr` as an `accept` condition against the base declarations.
    fn typed(expr: &str) -> (Cond, Vec<Diagnostic>) {
        let policy = parse_with(expr);
        let mut cx = Ctx::default();
        super::super::decls::declarations(&mut cx, &policy);
        let Some(Item::Accept(b)) = policy.items.last() else { panic!("no accept block") };
        let rule = b.entries.first().expect("rule");
        let c = cond(&mut cx, &rule.require, Site::Accept);
        (c, cx.diags)
    }

    fn ok(expr: &str) -> Cond {
        let (c, d) = typed(expr);
        assert!(d.is_empty(), "{expr}: {d:?}");
        c
    }

    fn codes(expr: &str) -> Vec<Code> {
        typed(expr).1.into_iter().map(|d| d.code).collect()
    }

    fn test_of(c: &Cond) -> &Test {
        match c {
            Cond::Atom(a) => &a.test,
            Cond::Not(inner) => test_of(inner),
            other => panic!("not an atom: {other:?}"),
        }
    }

    #[test]
    fn risk_levels_compare_by_index() {
        assert_eq!(test_of(&ok("risk >= high")), &Test::Cmp(Ord::Ge, 2.0));
        assert_eq!(test_of(&ok("risk < medium")), &Test::Cmp(Ord::Lt, 1.0));
        assert_eq!(test_of(&ok("risk == critical")), &Test::Eq(Value::Sym("critical".into())));
    }

    #[test]
    fn provider_ids_resolve_to_model_names() {
        assert_eq!(test_of(&ok("model == \"gpt-4o\"")), &Test::Eq(Value::Sym("primary".into())));
        assert_eq!(test_of(&ok("model == backup")), &Test::Eq(Value::Sym("backup".into())));
        assert_eq!(codes("model == \"gpt-5\""), vec![Code::UnknownName]);
    }

    #[test]
    fn units_are_converted() {
        assert_eq!(test_of(&ok("latency > 1.5s")), &Test::Cmp(Ord::Gt, 1500.0));
        assert_eq!(test_of(&ok("spent.cost >= $0.25")), &Test::Cmp(Ord::Ge, 0.25));
        assert_eq!(test_of(&ok("output.confidence < 1")), &Test::Cmp(Ord::Lt, 1.0));
        assert_eq!(test_of(&ok("spent.latency < wait")), &Test::Cmp(Ord::Lt, 2000.0));
    }

    #[test]
    fn negations_lower_to_not() {
        let c = ok("error.code != \"x\"");
        assert!(matches!(c, Cond::Not(_)), "{c:?}");
        let c = ok("class not in {timeout, quota}");
        let Cond::Not(inner) = &c else { panic!("{c:?}") };
        assert_eq!(test_of(inner), &Test::In(vec![Value::Sym("timeout".into()), Value::Sym("quota".into())]));
    }

    #[test]
    fn false_stays_an_equality() {
        assert_eq!(test_of(&ok("output.schema_valid == false")), &Test::Eq(Value::Bool(false)));
        assert_eq!(test_of(&ok("tool.side_effects")), &Test::IsTrue);
    }

    #[test]
    fn groups_vanish_and_consts_resolve() {
        let c = ok("(output.confidence >= floor) and attempt < limit");
        let Cond::And(parts) = &c else { panic!("{c:?}") };
        assert_eq!(test_of(&parts[0]), &Test::Cmp(Ord::Ge, 0.7));
        assert_eq!(test_of(&parts[1]), &Test::Cmp(Ord::Lt, 3.0));
    }

    #[test]
    fn regex_flags_fold_into_the_pattern() {
        assert_eq!(test_of(&ok("error.message ~ /time.?out/is")), &Test::Matches("(?is)time.?out".into()));
        assert_eq!(codes("error.message ~ /(/"), vec![Code::BadRegex]);
    }

    #[test]
    fn type_errors_are_reported() {
        assert_eq!(codes("error.http_status == \"429\""), vec![Code::TypeMismatch]);
        assert_eq!(codes("latency > 5"), vec![Code::TypeMismatch]);
        assert_eq!(codes("attempt < floor"), vec![Code::TypeMismatch]);
        assert_eq!(codes("error.code > 3"), vec![Code::BadOperator]);
        assert_eq!(codes("error.http_status ~ /5../"), vec![Code::BadOperator]);
        assert_eq!(codes("error.code"), vec![Code::BadOperator]);
        assert_eq!(codes("class < timeout"), vec![Code::BadOperator]);
        assert_eq!(codes("class == \"timeout\""), vec![Code::TypeMismatch]);
    }

    #[test]
    fn unknown_names_and_fields_are_reported() {
        assert_eq!(codes("class == timout"), vec![Code::UnknownName]);
        assert_eq!(codes("risk == hgih"), vec![Code::UnknownName]);
        assert_eq!(codes("error.code == overloaded"), vec![Code::UnknownName]);
        assert_eq!(codes("error.http_code == 429"), vec![Code::UnknownField]);
        assert_eq!(test_of(&ok("metadata.tenant == \"acme\"")), &Test::Eq(Value::Str("acme".into())));
    }

    #[test]
    fn every_error_of_a_condition_is_reported() {
        let found = codes("class == timout or error.http_code == 1 or latency > 5 or risk == hgih");
        assert_eq!(found, vec![Code::UnknownName, Code::UnknownField, Code::TypeMismatch, Code::UnknownName]);
    }
}
