//! The header, the block structure and the declarations (constants,
//! classes, reasons, models, strategies, prompts).

use indexmap::IndexMap;

use super::ir::{ClassInfo, ConstInfo, ModelInfo, PromptInfo, ReasonInfo, StrategyInfo, Value};
use super::{ConstDecl, Ctx, Kind};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Ident, Item, LitValue, ModelDecl, ModelKey, Policy, Severity};

/// The span of `policy NAME version "X"`.
pub(crate) fn header_span(policy: &Policy) -> Span {
    policy.name.span.join(policy.version.span)
}

/// The version is semver; the name is snake_case.
pub(crate) fn header(cx: &mut Ctx, policy: &Policy) {
    let version = &policy.version.value;
    if let Err(why) = semver(version) {
        cx.push(
            Diagnostic::new(
                Code::BadVersion,
                format!("version `{version}` is not a semantic version"),
                policy.version.span,
                why,
            )
            .with_help("write `MAJOR.MINOR.PATCH`, e.g. `\"1.0.0\"` or `\"2.1.0-rc.1\"`"),
        );
    }
    let name = &policy.name.name;
    if !is_snake_case(name) {
        let suggestion = to_snake_case(name);
        let d = Diagnostic::new(
            Code::PolicyName,
            format!("policy name `{name}` is not snake_case"),
            policy.name.span,
            "reports and metric labels carry this name",
        );
        let d = if is_snake_case(&suggestion) {
            d.with_help(format!("rename it `{suggestion}`"))
        } else {
            d.with_help("use lowercase letters, digits and `_`, starting with a letter, at most 64 characters")
        };
        cx.push(d);
    }
}

/// `X.Y.Z` with optional `-pre` and `+build`, per semver 2.0.
pub(crate) fn semver(v: &str) -> Result<(), &'static str> {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return Err("expected three numbers `X.Y.Z`");
    }
    for p in &parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("each of `X.Y.Z` must be a number");
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err("numbers must not have leading zeros");
        }
        if p.parse::<u64>().is_err() {
            return Err("number too large");
        }
    }
    let ident_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !ident_ok(id) {
                return Err("invalid pre-release part");
            }
            if id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) {
                return Err("numbers must not have leading zeros");
            }
        }
    }
    if let Some(build) = build
        && !build.split('.').all(ident_ok)
    {
        return Err("invalid build part");
    }
    Ok(())
}

fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn to_snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.trim_start_matches('_').to_string()
}

/// A block's kind, for the repeated/missing checks.
fn block_name(item: &Item) -> &'static str {
    match item {
        Item::Const(_) => "const",
        Item::Classes(_) => "classes",
        Item::Reasons(_) => "reasons",
        Item::Models(_) => "models",
        Item::Strategies(_) => "strategies",
        Item::Prompts(_) => "prompts",
        Item::Budget(_) => "budget",
        Item::Fleet(_) => "fleet",
        Item::Classify(_) => "classify",
        Item::Recover(_) => "recover",
        Item::Accept(_) => "accept",
        Item::Invariant(_) => "invariant",
        Item::Gate(_) => "gate",
    }
}

/// The keyword span of a block (the whole item for `const`/`invariant`).
fn keyword_span(item: &Item) -> Span {
    match item {
        Item::Classes(b) => b.keyword,
        Item::Reasons(b) => b.keyword,
        Item::Models(b) => b.keyword,
        Item::Strategies(b) => b.keyword,
        Item::Prompts(b) => b.keyword,
        Item::Budget(b) => b.keyword,
        Item::Fleet(f) => f.keyword,
        Item::Classify(b) => b.keyword,
        Item::Recover(b) => b.keyword,
        Item::Accept(b) => b.keyword,
        Item::Gate(b) => b.keyword,
        Item::Const(_) | Item::Invariant(_) => item.span(),
    }
}

/// Blocks that may appear once appear once; the required ones are present.
pub(crate) fn structure(cx: &mut Ctx, policy: &Policy) {
    let mut first: IndexMap<&'static str, Span> = IndexMap::new();
    for item in &policy.items {
        let name = block_name(item);
        if matches!(item, Item::Const(_) | Item::Invariant(_)) {
            continue;
        }
        let kw = keyword_span(item);
        match first.get(name) {
            Some(&prev) => cx.push(
                Diagnostic::new(Code::RepeatedBlock, format!("`{name}` block repeated"), kw, "repeated here")
                    .with_label(prev, format!("first `{name}` block here"))
                    .with_help(format!("merge the two `{name}` blocks into one")),
            ),
            None => {
                first.insert(name, kw);
            }
        }
    }
    let required: [(&str, &str); 4] = [
        ("classes", "classes { timeout transient, unknown }"),
        ("reasons", "reasons { RETRY \"transient error\" }"),
        ("classify", "classify { otherwise => unknown }"),
        ("recover", "recover { otherwise => escalate, reason NAME }"),
    ];
    for (name, example) in required {
        if !first.contains_key(name) {
            cx.push(
                Diagnostic::new(
                    Code::MissingBlock,
                    format!("missing `{name}` block"),
                    header_span(policy),
                    format!("this policy has no `{name}` block"),
                )
                .with_help(format!("add one, e.g. `{example}`")),
            );
        }
    }
}

/// Declares `id` in `kind`; reports a duplicate and returns `false` if it
/// was declared before.
fn declare(cx: &mut Ctx, kind: Kind, id: &Ident) -> bool {
    let key = (kind, id.name.clone());
    if let Some(&prev) = cx.name_spans.get(&key) {
        cx.push(
            Diagnostic::new(
                Code::DuplicateName,
                format!("{} `{}` is declared twice", kind.noun(), id.name),
                id.span,
                "declared again here",
            )
            .with_label(prev, "first declared here")
            .with_help("remove or rename one of them"),
        );
        return false;
    }
    cx.name_spans.insert(key, id.span);
    true
}

fn const_value(v: &LitValue) -> Value {
    match v {
        LitValue::Int(i) => Value::Num(*i as f64),
        LitValue::Float(x) | LitValue::Duration(x) | LitValue::Money(x) => Value::Num(*x),
        LitValue::Str(s) => Value::Str(s.clone()),
        LitValue::Bool(b) => Value::Bool(*b),
    }
}

/// Collects every declaration, reporting duplicates and bad model settings.
pub(crate) fn declarations(cx: &mut Ctx, policy: &Policy) {
    for item in &policy.items {
        match item {
            Item::Const(c) if declare(cx, Kind::Const, &c.name) => {
                let info = ConstInfo { value: const_value(&c.value.value), span: c.span };
                cx.consts.insert(c.name.name.clone(), ConstDecl { value: c.value.value.clone(), info });
            }
            Item::Classes(b) => {
                for d in &b.entries {
                    if declare(cx, Kind::Class, &d.name) {
                        let info = ClassInfo { persistence: d.persistence.map(|p| p.0), span: d.span };
                        cx.classes.insert(d.name.name.clone(), info);
                    }
                }
            }
            Item::Reasons(b) => {
                for d in &b.entries {
                    if declare(cx, Kind::Reason, &d.name) {
                        let info = ReasonInfo {
                            text: d.text.value.clone(),
                            severity: d.severity.map_or(Severity::Info, |s| s.0),
                            span: d.span,
                        };
                        cx.reasons.insert(d.name.name.clone(), info);
                    }
                }
            }
            Item::Models(b) => {
                for d in &b.entries {
                    let info = model(cx, d);
                    if declare(cx, Kind::Model, &d.name) {
                        cx.models.insert(d.name.name.clone(), info);
                    }
                }
            }
            Item::Strategies(b) => {
                for d in &b.entries {
                    if declare(cx, Kind::Strategy, &d.name) {
                        let info = StrategyInfo { text: d.text.as_ref().map(|t| t.value.clone()), span: d.span };
                        cx.strategies.insert(d.name.name.clone(), info);
                    }
                }
            }
            Item::Prompts(b) => {
                for d in &b.entries {
                    if declare(cx, Kind::Prompt, &d.name) {
                        cx.prompts.insert(d.name.name.clone(), PromptInfo::new(d.text.value.clone(), d.span));
                    }
                }
            }
            _ => {}
        }
    }
    shared_provider_ids(cx, policy);
}

/// A model's settings: each once, tiers and windows positive whole numbers,
/// costs not negative.
fn model(cx: &mut Ctx, d: &ModelDecl) -> ModelInfo {
    let mut info = ModelInfo {
        provider_id: d.provider_id.value.clone(),
        tier: None,
        cost_per_1k: None,
        context: None,
        span: d.span,
    };
    let mut seen: IndexMap<&'static str, Span> = IndexMap::new();
    for p in &d.props {
        let key = p.key.as_str();
        if let Some(&prev) = seen.get(key) {
            cx.push(
                Diagnostic::new(
                    Code::DuplicateSetting,
                    format!("`{key}` is set twice for model `{}`", d.name.name),
                    p.span,
                    "set again here",
                )
                .with_label(prev, "first set here")
                .with_help("keep one value"),
            );
            continue;
        }
        seen.insert(key, p.span);
        let whole = !p.text.contains('.');
        match p.key {
            ModelKey::Tier | ModelKey::Context => {
                if !whole {
                    cx.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("`{key}` takes a whole number, found `{}`", p.text),
                            p.span,
                            "not a whole number",
                        )
                        .with_help(if p.key == ModelKey::Tier {
                            "tiers are 1, 2, 3..."
                        } else {
                            "write the window in tokens, e.g. `context 128000`"
                        }),
                    );
                    continue;
                }
                let max = if p.key == ModelKey::Tier { f64::from(u32::MAX) } else { 1e12 };
                if p.value < 1.0 || p.value > max {
                    cx.push(
                        Diagnostic::new(
                            Code::OutOfRange,
                            format!("`{key}` must be at least 1, found `{}`", p.text),
                            p.span,
                            "out of range",
                        )
                        .with_help(if p.key == ModelKey::Tier {
                            "tier 1 is the preferred model"
                        } else {
                            "the context window is a number of tokens"
                        }),
                    );
                    continue;
                }
                if p.key == ModelKey::Tier {
                    info.tier = Some(p.value as u32);
                } else {
                    info.context = Some(p.value as u64);
                }
            }
            ModelKey::CostPer1k => {
                if p.value < 0.0 {
                    cx.push(
                        Diagnostic::new(
                            Code::OutOfRange,
                            format!("`cost_per_1k` must not be negative, found `{}`", p.text),
                            p.span,
                            "negative cost",
                        )
                        .with_help("write the price in US dollars per 1000 tokens, e.g. `cost_per_1k 0.005`"),
                    );
                    continue;
                }
                info.cost_per_1k = Some(p.value);
            }
        }
    }
    info
}

fn shared_provider_ids(cx: &mut Ctx, policy: &Policy) {
    let mut seen: IndexMap<String, (String, Span)> = IndexMap::new();
    let mut found = Vec::new();
    for item in &policy.items {
        if let Item::Models(b) = item {
            for d in &b.entries {
                match seen.get(&d.provider_id.value) {
                    Some((other, prev)) if *other != d.name.name => {
                        found.push(
                            Diagnostic::new(
                                Code::SharedProviderId,
                                format!(
                                    "models `{other}` and `{}` share the provider id `{}`",
                                    d.name.name, d.provider_id.value
                                ),
                                d.provider_id.span,
                                "same provider id",
                            )
                            .with_label(*prev, format!("also the id of `{other}`"))
                            .with_help("events name models by provider id; give each model its own"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(d.provider_id.value.clone(), (d.name.name.clone(), d.provider_id.span));
                    }
                }
            }
        }
    }
    cx.diags.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_accepts_full_versions_only() {
        for ok in ["1.0.0", "0.0.1", "2.3.0", "1.0.0-rc.1", "1.0.0+build.5", "1.0.0-alpha-1+x.y"] {
            assert!(semver(ok).is_ok(), "{ok}");
        }
        for bad in ["1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0+", "v1.0.0", "1.0.0-01", "a.b.c", ""] {
            assert!(semver(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn snake_case_names() {
        assert!(is_snake_case("tool_chain"));
        assert!(is_snake_case("p2"));
        assert!(!is_snake_case("ToolChain"));
        assert!(!is_snake_case("_x"));
        assert_eq!(to_snake_case("ToolChain"), "tool_chain");
    }
}
