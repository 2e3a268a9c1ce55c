//! Editor queries over policy source text: declarations, the token at an
//! offset, definitions, references, hover text, completions and the
//! document outline. Pure functions (no I/O); `rcv lsp` serves them.
//!
//! Names are found lexically (identifiers outside comments, strings and
//! regexes that are not part of a dotted field path), so the queries work
//! on a half-typed file; declarations come from the last AST that parsed.

use crate::schema;
use crate::span::Span;
use crate::syntax::ast::{Item, Persistence, Policy};

/// What a declared name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclKind {
    Class,
    Reason,
    Model,
    Strategy,
    Prompt,
    Const,
}

impl DeclKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclKind::Class => "class",
            DeclKind::Reason => "reason",
            DeclKind::Model => "model",
            DeclKind::Strategy => "strategy",
            DeclKind::Prompt => "prompt",
            DeclKind::Const => "const",
        }
    }
}

/// One declaration: its name's span and the whole declaration's span.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decl {
    pub name: String,
    pub kind: DeclKind,
    pub name_span: Span,
    pub span: Span,
    /// A one-line summary (class persistence; empty otherwise).
    pub detail: String,
}

/// Every declaration of a parsed policy, in source order.
pub fn declarations(ast: &Policy) -> Vec<Decl> {
    let mut out = Vec::new();
    let mut push = |name: &crate::syntax::ast::Ident, kind, span, detail: String| {
        out.push(Decl { name: name.name.clone(), kind, name_span: name.span, span, detail });
    };
    for item in &ast.items {
        match item {
            Item::Const(c) => push(&c.name, DeclKind::Const, c.span, String::new()),
            Item::Classes(b) => {
                for c in &b.entries {
                    let detail = match c.persistence.map(|p| p.0) {
                        Some(Persistence::Transient) => "transient: retrying may succeed",
                        Some(Persistence::Permanent) => "permanent: retrying the same call cannot succeed",
                        None => "persistence not declared",
                    };
                    push(&c.name, DeclKind::Class, c.span, detail.to_string());
                }
            }
            Item::Reasons(b) => b.entries.iter().for_each(|r| push(&r.name, DeclKind::Reason, r.span, String::new())),
            Item::Models(b) => b.entries.iter().for_each(|m| push(&m.name, DeclKind::Model, m.span, String::new())),
            Item::Strategies(b) => {
                b.entries.iter().for_each(|s| push(&s.name, DeclKind::Strategy, s.span, String::new()))
            }
            Item::Prompts(b) => b.entries.iter().for_each(|p| push(&p.name, DeclKind::Prompt, p.span, String::new())),
            _ => {}
        }
    }
    out
}

/// A lexical token the queries care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub span: Span,
    pub text: String,
    /// Part of a dotted path (`error.http_status`): a field, never a name.
    pub dotted: bool,
}

/// Identifiers and dotted paths of `src`, outside comments, strings and regexes.
pub fn tokens(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'#' => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'"' | b'/' => {
                i += 1;
                while let Some(&d) = b.get(i) {
                    if d == b'\\' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if d == c || d == b'\n' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                let mut dotted = false;
                loop {
                    while b.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_') {
                        i += 1;
                    }
                    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') {
                        dotted = true;
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text = src.get(start..i).unwrap_or_default().to_string();
                out.push(Token { span: Span::new(start, i), text, dotted });
            }
            c if c.is_ascii_digit() || c == b'$' => {
                // numbers, durations (`250ms`) and money: never names
                i += 1;
                while b.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The identifier or path at byte `offset` (the cursor may sit just after it).
pub fn token_at(tokens: &[Token], offset: usize) -> Option<&Token> {
    tokens.iter().find(|t| t.span.start <= offset && offset <= t.span.end)
}

/// The declaration a name token refers to.
pub fn definition<'a>(decls: &'a [Decl], tokens: &[Token], offset: usize) -> Option<&'a Decl> {
    let t = token_at(tokens, offset).filter(|t| !t.dotted)?;
    decls.iter().find(|d| d.name == t.text)
}

/// Every occurrence of the name at `offset` (its declaration included when
/// `include_declaration`), in source order.
pub fn references(decls: &[Decl], tokens: &[Token], offset: usize, include_declaration: bool) -> Vec<Span> {
    let Some(decl) = definition(decls, tokens, offset) else { return Vec::new() };
    tokens
        .iter()
        .filter(|t| !t.dotted && t.text == decl.name)
        .filter(|t| include_declaration || t.span != decl.name_span)
        .map(|t| t.span)
        .collect()
}

/// Hover text (markdown) for the token at `offset`: a declaration, or a
/// field path with its type, scope and documentation.
pub fn hover(src: &str, decls: &[Decl], tokens: &[Token], offset: usize) -> Option<(Span, String)> {
    let t = token_at(tokens, offset)?;
    if !t.dotted
        && let Some(d) = decls.iter().find(|d| d.name == t.text)
    {
        let text = src.get(d.span.range()).unwrap_or_default();
        let mut md = format!("**{}** `{}`\n\n```rcv\n{}\n```", d.kind.as_str(), d.name, text.trim());
        if !d.detail.is_empty() {
            md.push_str(&format!("\n\n{}", d.detail));
        }
        return Some((t.span, md));
    }
    field_hover(&t.text).map(|md| (t.span, md))
}

fn field_hover(path: &str) -> Option<String> {
    if let Some(key) = path.strip_prefix("metadata.") {
        return Some(format!(
            "`{path}`: request metadata key `{key}` (string, number or bool; missing when absent)\n\nscope: event"
        ));
    }
    let f = schema::lookup(path)?;
    let scope = match f.scope {
        schema::Scope::Event => "event (usable everywhere)",
        schema::Scope::State => "engine state (not in `classify`)",
    };
    Some(format!("`{}`: {}\n\n{}\n\nscope: {scope}", f.path, f.ty.name(), f.doc))
}

/// What a completion item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionKind {
    Decl(DeclKind),
    Field,
    Keyword,
    Value,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
    /// The text the completion replaces (the partial word before the cursor).
    pub replace: Span,
}

const BLOCKS: &[&str] = &[
    "const",
    "classes",
    "reasons",
    "models",
    "strategies",
    "prompts",
    "budget",
    "fleet",
    "classify",
    "recover",
    "accept",
    "invariant",
    "gate",
];
const ACTIONS: &[&str] = &["retry", "fallback", "reset", "escalate", "abort"];
const RULE_WORDS: &[&str] = &["when", "otherwise", "and", "or", "not", "in", "has", "require", "else", "reason"];

/// The top-level block enclosing `offset` (`classify`, `recover`...), if any.
pub fn enclosing_block(src: &str, offset: usize) -> Option<String> {
    let toks = tokens(src);
    let b = src.as_bytes();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut last_top: Option<String> = None;
    let mut ti = 0;
    let mut i = 0;
    let end = offset.min(b.len());
    // Walk braces outside strings, comments and regexes (token-aware).
    let mut skip = skips(src);
    skip.sort_by_key(|s| s.start);
    let mut si = 0;
    while i < end {
        if let Some(s) = skip.get(si)
            && i >= s.start
        {
            i = s.end.max(i + 1);
            si += 1;
            continue;
        }
        while let Some(t) = toks.get(ti)
            && t.span.start <= i
        {
            if depth == 0 && BLOCKS.contains(&t.text.as_str()) {
                last_top = Some(t.text.clone());
            }
            ti += 1;
        }
        match b.get(i) {
            Some(b'{') => {
                if depth == 0 {
                    current = last_top.clone();
                }
                depth += 1;
            }
            Some(b'}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    current = None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth > 0 { current } else { last_top.filter(|t| t == "invariant") }
}

/// Spans of comments, strings and regexes.
fn skips(src: &str) -> Vec<Span> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'#' => {
                let s = i;
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                out.push(Span::new(s, i));
            }
            b'"' | b'/' => {
                let s = i;
                i += 1;
                while let Some(&d) = b.get(i) {
                    if d == b'\\' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if d == c || d == b'\n' {
                        break;
                    }
                }
                out.push(Span::new(s, i.min(b.len())));
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                while b.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Completions at `offset`: declared names where the text before the cursor
/// calls for them (`reason `, `fallback `, `strategy `, `prompt `, a class
/// test, a classify target), otherwise field paths, actions and keywords.
pub fn completions(src: &str, decls: &[Decl], offset: usize) -> Vec<Completion> {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or_default();
    let line = before.rsplit('\n').next().unwrap_or_default();
    let word_len: usize = line
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .map(char::len_utf8)
        .sum();
    let replace = Span::new(offset - word_len, offset);
    let head = line.get(..line.len() - word_len).unwrap_or_default().trim_end();
    let last_word = head.rsplit(|c: char| c.is_whitespace()).next().unwrap_or_default();
    let names = |kind: DeclKind| -> Vec<Completion> {
        decls
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| Completion {
                label: d.name.clone(),
                kind: CompletionKind::Decl(kind),
                detail: decl_detail(src, d),
                replace,
            })
            .collect()
    };
    let words = |list: &[&str], kind: CompletionKind, detail: &str| -> Vec<Completion> {
        list.iter().map(|w| Completion { label: w.to_string(), kind, detail: detail.to_string(), replace }).collect()
    };
    match last_word {
        "reason" => return names(DeclKind::Reason),
        "fallback" => return names(DeclKind::Model),
        "strategy" => return names(DeclKind::Strategy),
        "prompt" => return names(DeclKind::Prompt),
        _ => {}
    }
    let block = enclosing_block(src, offset);
    if let Some(kind) = value_test(head) {
        return match kind {
            ValueTest::Decl(k) => names(k),
            ValueTest::Risk => words(&schema::RISK_LEVELS, CompletionKind::Value, "risk level"),
        };
    }
    if head.ends_with("=>") {
        return match block.as_deref() {
            Some("classify") => names(DeclKind::Class),
            _ => words(ACTIONS, CompletionKind::Keyword, "action"),
        };
    }
    if block.is_none() {
        return words(BLOCKS, CompletionKind::Keyword, "block");
    }
    let mut out: Vec<Completion> = schema::FIELDS
        .iter()
        .filter(|f| !(block.as_deref() == Some("classify") && f.scope == schema::Scope::State))
        .map(|f| Completion {
            label: f.path.to_string(),
            kind: CompletionKind::Field,
            detail: format!("{}: {}", f.ty.name(), f.doc),
            replace,
        })
        .collect();
    out.extend(names(DeclKind::Const));
    out.extend(words(RULE_WORDS, CompletionKind::Keyword, "keyword"));
    out.extend(words(ACTIONS, CompletionKind::Keyword, "action"));
    out
}

enum ValueTest {
    Decl(DeclKind),
    Risk,
}

/// Whether the text before the cursor is a comparison or membership test
/// of an enum field awaiting its value: `class == `, `model in {a, `.
fn value_test(head: &str) -> Option<ValueTest> {
    // Strip an open list or set and the items typed so far.
    let mut h = head;
    if let Some(open) = h.rfind(['{', '[']) {
        let inside = h.get(open + 1..).unwrap_or_default();
        if !inside.contains(['}', ']']) {
            h = h.get(..open).unwrap_or_default().trim_end();
            h = h.strip_suffix("not in").or_else(|| h.strip_suffix("in")).unwrap_or(h);
        }
    } else {
        let ops = ["==", "!=", ">=", "<=", ">", "<"];
        h = ops.iter().find_map(|op| h.strip_suffix(op)).unwrap_or("");
    }
    let field = h.trim_end().rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default();
    match field {
        "class" => Some(ValueTest::Decl(DeclKind::Class)),
        "model" => Some(ValueTest::Decl(DeclKind::Model)),
        "strategy" => Some(ValueTest::Decl(DeclKind::Strategy)),
        "risk" => Some(ValueTest::Risk),
        _ => None,
    }
}

fn decl_detail(src: &str, d: &Decl) -> String {
    let text = src.get(d.span.range()).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default().trim();
    format!("{}: {first}", d.kind.as_str())
}

/// An entry of the document outline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Symbol {
    pub name: String,
    /// `block`, `rule`, or a declaration kind.
    pub kind: &'static str,
    pub span: Span,
    pub selection: Span,
    pub children: Vec<Symbol>,
}

/// The outline: blocks, their declarations and rules.
pub fn outline(src: &str, ast: &Policy) -> Vec<Symbol> {
    let decls = declarations(ast);
    let first_line = |s: Span| src.get(s.range()).and_then(|t| t.lines().next()).unwrap_or_default().trim().to_string();
    let children_of = |span: Span| -> Vec<Symbol> {
        decls
            .iter()
            .filter(|d| span.start <= d.span.start && d.span.end <= span.end)
            .map(|d| Symbol {
                name: d.name.clone(),
                kind: d.kind.as_str(),
                span: d.span,
                selection: d.name_span,
                children: Vec::new(),
            })
            .collect()
    };
    let rules = |spans: Vec<Span>| -> Vec<Symbol> {
        spans
            .into_iter()
            .map(|s| Symbol { name: first_line(s), kind: "rule", span: s, selection: s, children: Vec::new() })
            .collect()
    };
    let block = |name: &str, span: Span, keyword: Span, children: Vec<Symbol>| Symbol {
        name: name.to_string(),
        kind: "block",
        span,
        selection: keyword,
        children,
    };
    ast.items
        .iter()
        .map(|item| match item {
            Item::Const(c) => Symbol {
                name: c.name.name.clone(),
                kind: "const",
                span: c.span,
                selection: c.name.span,
                children: Vec::new(),
            },
            Item::Classes(b) => block("classes", b.span, b.keyword, children_of(b.span)),
            Item::Reasons(b) => block("reasons", b.span, b.keyword, children_of(b.span)),
            Item::Models(b) => block("models", b.span, b.keyword, children_of(b.span)),
            Item::Strategies(b) => block("strategies", b.span, b.keyword, children_of(b.span)),
            Item::Prompts(b) => block("prompts", b.span, b.keyword, children_of(b.span)),
            Item::Budget(b) => block("budget", b.span, b.keyword, Vec::new()),
            Item::Fleet(f) => block("fleet", f.span, f.keyword, rules(f.guards.iter().map(|g| g.span).collect())),
            Item::Classify(b) => {
                block("classify", b.span, b.keyword, rules(b.entries.iter().map(|r| r.span).collect()))
            }
            Item::Recover(b) => block("recover", b.span, b.keyword, rules(b.entries.iter().map(|r| r.span).collect())),
            Item::Accept(b) => block("accept", b.span, b.keyword, rules(b.entries.iter().map(|r| r.span).collect())),
            Item::Invariant(i) => Symbol {
                name: format!("invariant {:?}", i.text.value),
                kind: "block",
                span: i.span,
                selection: i.text.span,
                children: Vec::new(),
            },
            Item::Gate(b) => block("gate", b.span, b.keyword, rules(b.entries.iter().map(|r| r.span).collect())),
        })
        .collect()
}

/// A zero-based line and UTF-16 column, as the Language Server Protocol counts.
pub fn position(src: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or_else(|| {
        // not a char boundary: step back to one
        let mut o = offset;
        while !src.is_char_boundary(o) {
            o -= 1;
        }
        src.get(..o).unwrap_or_default()
    });
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = before.get(start..).unwrap_or_default().chars().map(char::len_utf16).sum();
    (line as u32, col as u32)
}

/// The byte offset of a zero-based line and UTF-16 column (clamped to the
/// line's end and the text's end).
pub fn offset(src: &str, line: u32, character: u32) -> usize {
    let mut start = 0;
    for _ in 0..line {
        match src.get(start..).and_then(|s| s.find('\n')) {
            Some(i) => start += i + 1,
            None => return src.len(),
        }
    }
    let mut units = 0u32;
    for (i, c) in src.get(start..).unwrap_or_default().char_indices() {
        if units >= character || c == '\n' {
            return start + i;
        }
        units += c.len_utf16() as u32;
    }
    src.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"policy t version "1.0.0"
# a comment naming R
classes { slow transient, other }
reasons { R "retry it", E "give up" severity high }
models { primary "gpt-4o" tier 1, backup "haiku" }
const max_tries = 3
classify {
  error.message ~ /slow R/ => slow
  otherwise => other
}
recover {
  when class == slow and attempt < max_tries => retry, reason R
  when model == primary => fallback backup, reason R
  otherwise => escalate, reason E
}
"#;

    fn ast() -> Policy {
        crate::syntax::parse(SRC).expect("parses")
    }

    fn at(needle: &str, nth: usize) -> usize {
        SRC.match_indices(needle).nth(nth).map(|(i, _)| i).expect("found")
    }

    #[test]
    fn references_skip_comments_regexes_and_paths() {
        let decls = declarations(&ast());
        let toks = tokens(SRC);
        let refs = references(&decls, &toks, at("reason R", 0) + 7, true);
        // declaration + two uses; not the comment, the string or the regex
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0], Span::new(at("R \"retry", 0), at("R \"retry", 0) + 1));
        let d = definition(&decls, &toks, at("max_tries =>", 0).min(at("< max_tries", 0) + 3)).expect("const");
        assert_eq!(d.kind, DeclKind::Const);
        // a field path is never a name
        assert!(definition(&decls, &toks, at("error.message", 0) + 2).is_none());
    }

    #[test]
    fn hover_for_declarations_and_fields() {
        let decls = declarations(&ast());
        let toks = tokens(SRC);
        let (_, md) = hover(SRC, &decls, &toks, at("== slow", 0) + 4).expect("hover");
        assert!(md.contains("**class** `slow`") && md.contains("transient"), "{md}");
        let (_, md) = hover(SRC, &decls, &toks, at("attempt <", 0)).expect("hover");
        assert!(md.starts_with("`attempt`: int"), "{md}");
    }

    #[test]
    fn completion_contexts() {
        let decls = declarations(&ast());
        let labels = |src: &str| -> Vec<String> {
            completions(src, &decls, src.len()).into_iter().map(|c| c.label).collect::<Vec<_>>()
        };
        let cut = |needle: &str| &SRC[..at(needle, 0) + needle.len()];
        assert_eq!(labels(cut("retry, reason ")), ["R", "E"]);
        assert_eq!(labels(cut("fallback ")), ["primary", "backup"]);
        assert_eq!(labels(cut("class == ")), ["slow", "other"]);
        assert_eq!(labels(cut("/slow R/ => ")), ["slow", "other"]);
        assert!(labels(cut("when class == slow and ")).contains(&"error.http_status".to_string()));
        assert!(labels(cut("when class == slow and ")).contains(&"max_tries".to_string()));
        assert!(labels("policy t version \"1.0.0\"\n").contains(&"recover".to_string()));
        // classify may not test engine state
        assert!(!labels(cut("classify {\n  ")).contains(&"attempt".to_string()));
    }

    #[test]
    fn utf16_positions_round_trip() {
        let s = "a\n\u{1F600}é = 1\nx";
        let o = s.find('=').expect("eq");
        assert_eq!(position(s, o), (1, 4));
        assert_eq!(offset(s, 1, 4), o);
        assert_eq!(offset(s, 9, 0), s.len());
        assert_eq!(offset(s, 1, 99), s.find("\nx").expect("nl"));
    }

    #[test]
    fn outline_lists_blocks_declarations_and_rules() {
        let o = outline(SRC, &ast());
        let names: Vec<&str> = o.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["classes", "reasons", "models", "max_tries", "classify", "recover"]);
        assert_eq!(o[5].children.len(), 3);
        assert_eq!(o[0].children[0].name, "slow");
    }
}
