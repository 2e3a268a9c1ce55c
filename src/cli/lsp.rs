//! `rcv lsp`: a Language Server Protocol server over stdio. This file is
//! the protocol side only (messages, positions, documents); the language
//! queries are the pure functions of [`crate::ide`], and diagnostics come
//! from the same front end as `rcv check` ([`crate::compile::build`]).

use std::process::ExitCode;

use clap::Args;
use indexmap::IndexMap;
use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use serde_json::{Value, json};

use crate::diag::{Diagnostic, Level, Source};
use crate::ide::{self, CompletionKind, Decl, DeclKind, Symbol, Token};
use crate::span::Span;

#[derive(Args, Debug)]
pub struct LspArgs {
    /// Accepted for editors that pass it; stdio is the only transport.
    #[arg(long)]
    pub stdio: bool,
}

/// One open document: its text and what the last successful parse knew.
struct Doc {
    text: String,
    tokens: Vec<Token>,
    /// Declarations of the last text that parsed.
    decls: Vec<Decl>,
    outline: Vec<Symbol>,
    /// Whether `decls` and `outline` belong to `text` (false after an edit
    /// that does not parse: they are the last good ones).
    current: bool,
}

pub fn run(_args: LspArgs) -> ExitCode {
    let (conn, io) = Connection::stdio();
    let result = serve(&conn);
    drop(conn);
    let joined = io.join();
    match (result, joined) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("error: language server: {e}");
            ExitCode::from(2)
        }
        (_, Err(e)) => {
            eprintln!("error: language server i/o: {e}");
            ExitCode::from(2)
        }
    }
}

fn capabilities() -> Value {
    json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "referencesProvider": true,
        "documentFormattingProvider": true,
        "documentSymbolProvider": true,
        "completionProvider": {"triggerCharacters": [" ", ".", "{", "[", ","]},
    })
}

fn serve(conn: &Connection) -> Result<(), String> {
    conn.initialize(capabilities()).map_err(|e| e.to_string())?;
    let mut docs: IndexMap<String, Doc> = IndexMap::new();
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let resp = respond(&docs, req);
                conn.sender.send(Message::Response(resp)).map_err(|e| e.to_string())?;
            }
            Message::Notification(n) => {
                if n.method == "exit" {
                    return Ok(());
                }
                if let Some(publish) = notify(&mut docs, n) {
                    conn.sender.send(Message::Notification(publish)).map_err(|e| e.to_string())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

/// Handles a notification; returns the diagnostics to publish, if any.
fn notify(docs: &mut IndexMap<String, Doc>, n: Notification) -> Option<Notification> {
    let (uri, text) = match n.method.as_str() {
        "textDocument/didOpen" => {
            let p: lsp::DidOpenTextDocumentParams = serde_json::from_value(n.params).ok()?;
            (p.text_document.uri.as_str().to_string(), p.text_document.text)
        }
        "textDocument/didChange" => {
            let p: lsp::DidChangeTextDocumentParams = serde_json::from_value(n.params).ok()?;
            // Full sync: the last change holds the whole text.
            (p.text_document.uri.as_str().to_string(), p.content_changes.into_iter().last()?.text)
        }
        "textDocument/didClose" => {
            let p: lsp::DidCloseTextDocumentParams = serde_json::from_value(n.params).ok()?;
            let uri = p.text_document.uri.as_str().to_string();
            docs.shift_remove(&uri);
            return Some(Notification::new(
                "textDocument/publishDiagnostics".into(),
                json!({"uri": uri, "diagnostics": []}),
            ));
        }
        _ => return None,
    };
    let diagnostics = update(docs, &uri, text);
    Some(Notification::new("textDocument/publishDiagnostics".into(), json!({"uri": uri, "diagnostics": diagnostics})))
}

/// Stores the new text, re-checks it, and returns its LSP diagnostics.
fn update(docs: &mut IndexMap<String, Doc>, uri: &str, text: String) -> Vec<Value> {
    let build = crate::compile::build(&Source::new(uri, text.clone()));
    let diagnostics = build.diagnostics.iter().map(|d| lsp_diagnostic(&text, uri, d)).collect();
    let tokens = ide::tokens(&text);
    let parsed = crate::syntax::parse(&text).ok();
    let (decls, outline, current) = match (&parsed, docs.shift_remove(uri)) {
        (Some(ast), _) => (ide::declarations(ast), ide::outline(&text, ast), true),
        (None, Some(old)) => (old.decls, old.outline, false),
        (None, None) => (Vec::new(), Vec::new(), false),
    };
    docs.insert(uri.to_string(), Doc { text, tokens, decls, outline, current });
    diagnostics
}

fn range(text: &str, span: Span) -> Value {
    let (l1, c1) = ide::position(text, span.start);
    let (l2, c2) = ide::position(text, span.end.max(span.start));
    json!({"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}})
}

fn lsp_diagnostic(text: &str, uri: &str, d: &Diagnostic) -> Value {
    let primary = d.labels.first().map_or(Span::default(), |l| l.span);
    let mut message = d.message.clone();
    if let Some(l) = d.labels.first().filter(|l| !l.message.is_empty()) {
        message.push_str(&format!(": {}", l.message));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    for n in &d.notes {
        message.push_str(&format!("\nnote: {n}"));
    }
    let related: Vec<Value> = d
        .labels
        .iter()
        .skip(1)
        .map(|l| json!({"location": {"uri": uri, "range": range(text, l.span)}, "message": l.message}))
        .collect();
    let mut v = json!({
        "range": range(text, primary),
        "severity": match d.level { Level::Error => 1, Level::Warning => 2 },
        "code": d.code.as_str(),
        "source": "rcv",
        "message": message,
    });
    if !related.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("relatedInformation".into(), Value::Array(related));
    }
    v
}

/// Declarations usable against the current text: the parsed ones, or (when
/// the text does not parse) the last good ones re-anchored at the first
/// occurrence of each name.
fn live_decls(doc: &Doc) -> Vec<Decl> {
    if doc.current {
        return doc.decls.clone();
    }
    doc.decls
        .iter()
        .filter_map(|d| {
            let t = doc.tokens.iter().find(|t| !t.dotted && t.text == d.name)?;
            let line_start = doc.text.get(..t.span.start).and_then(|s| s.rfind('\n')).map_or(0, |i| i + 1);
            let line_end =
                doc.text.get(t.span.start..).and_then(|s| s.find('\n')).map_or(doc.text.len(), |i| t.span.start + i);
            Some(Decl { name_span: t.span, span: Span::new(line_start, line_end), ..d.clone() })
        })
        .collect()
}

fn text_position(v: &Value) -> Option<(String, u32, u32)> {
    let uri = v.get("textDocument")?.get("uri")?.as_str()?.to_string();
    let pos = v.get("position")?;
    Some((uri, pos.get("line")?.as_u64()? as u32, pos.get("character")?.as_u64()? as u32))
}

fn respond(docs: &IndexMap<String, Doc>, req: Request) -> Response {
    let id: RequestId = req.id.clone();
    match answer(docs, &req) {
        Ok(v) => Response::new_ok(id, v),
        Err(msg) => Response::new_err(id, lsp_server::ErrorCode::InvalidParams as i32, msg),
    }
}

fn answer(docs: &IndexMap<String, Doc>, req: &Request) -> Result<Value, String> {
    let params = &req.params;
    let doc_of = |uri: &str| docs.get(uri);
    match req.method.as_str() {
        "textDocument/hover" => {
            let (uri, line, ch) = text_position(params).ok_or("bad hover parameters")?;
            let Some(doc) = doc_of(&uri) else { return Ok(Value::Null) };
            let off = ide::offset(&doc.text, line, ch);
            Ok(match ide::hover(&doc.text, &live_decls(doc), &doc.tokens, off) {
                Some((span, md)) => {
                    json!({"contents": {"kind": "markdown", "value": md}, "range": range(&doc.text, span)})
                }
                None => Value::Null,
            })
        }
        "textDocument/definition" => {
            let (uri, line, ch) = text_position(params).ok_or("bad definition parameters")?;
            let Some(doc) = doc_of(&uri) else { return Ok(Value::Null) };
            let off = ide::offset(&doc.text, line, ch);
            let decls = live_decls(doc);
            Ok(match ide::definition(&decls, &doc.tokens, off) {
                Some(d) => json!({"uri": uri, "range": range(&doc.text, d.name_span)}),
                None => Value::Null,
            })
        }
        "textDocument/references" => {
            let (uri, line, ch) = text_position(params).ok_or("bad references parameters")?;
            let Some(doc) = doc_of(&uri) else { return Ok(Value::Null) };
            let include = params
                .get("context")
                .and_then(|c| c.get("includeDeclaration"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let off = ide::offset(&doc.text, line, ch);
            let decls = live_decls(doc);
            let refs = ide::references(&decls, &doc.tokens, off, include);
            Ok(Value::Array(refs.into_iter().map(|s| json!({"uri": uri, "range": range(&doc.text, s)})).collect()))
        }
        "textDocument/completion" => {
            let (uri, line, ch) = text_position(params).ok_or("bad completion parameters")?;
            let Some(doc) = doc_of(&uri) else { return Ok(Value::Null) };
            let off = ide::offset(&doc.text, line, ch);
            let items: Vec<Value> = ide::completions(&doc.text, &live_decls(doc), off)
                .into_iter()
                .map(|c| {
                    json!({
                        "label": c.label,
                        "kind": completion_kind(c.kind),
                        "detail": c.detail,
                        "textEdit": {"range": range(&doc.text, c.replace), "newText": c.label},
                    })
                })
                .collect();
            Ok(json!({"isIncomplete": false, "items": items}))
        }
        "textDocument/formatting" => {
            let uri = params.get("textDocument").and_then(|t| t.get("uri")).and_then(Value::as_str).unwrap_or("");
            let Some(doc) = doc_of(uri) else { return Ok(Value::Null) };
            Ok(match crate::syntax::fmt::format_source(&doc.text) {
                Ok(new) if new != doc.text => {
                    json!([{"range": range(&doc.text, Span::new(0, doc.text.len())), "newText": new}])
                }
                Ok(_) => json!([]),
                // A file that does not parse is left alone (its diagnostics say why).
                Err(_) => Value::Null,
            })
        }
        "textDocument/documentSymbol" => {
            let uri = params.get("textDocument").and_then(|t| t.get("uri")).and_then(Value::as_str).unwrap_or("");
            let Some(doc) = doc_of(uri) else { return Ok(Value::Null) };
            if !doc.current {
                // Spans of the last good parse do not fit the current text.
                return Ok(Value::Null);
            }
            Ok(Value::Array(doc.outline.iter().map(|s| symbol(&doc.text, s)).collect()))
        }
        other => Err(format!("unsupported request `{other}`")),
    }
}

fn symbol(text: &str, s: &Symbol) -> Value {
    // LSP SymbolKind numbers.
    let kind = match s.kind {
        "block" => 3,     // namespace
        "rule" => 24,     // event
        "class" => 22,    // enum member
        "reason" => 14,   // constant
        "model" => 5,     // class
        "strategy" => 12, // function
        "prompt" => 15,   // string
        _ => 14,          // const
    };
    let name = if s.name.is_empty() { "(rule)".to_string() } else { s.name.clone() };
    json!({
        "name": name,
        "kind": kind,
        "range": range(text, s.span),
        "selectionRange": range(text, s.selection),
        "children": s.children.iter().map(|c| symbol(text, c)).collect::<Vec<_>>(),
    })
}

fn completion_kind(k: CompletionKind) -> u32 {
    // LSP CompletionItemKind numbers.
    match k {
        CompletionKind::Decl(DeclKind::Class) => 20,   // enum member
        CompletionKind::Decl(DeclKind::Reason) => 21,  // constant
        CompletionKind::Decl(DeclKind::Model) => 7,    // class
        CompletionKind::Decl(DeclKind::Strategy) => 3, // function
        CompletionKind::Decl(DeclKind::Prompt) => 1,   // text
        CompletionKind::Decl(DeclKind::Const) => 21,   // constant
        CompletionKind::Field => 5,                    // field
        CompletionKind::Keyword => 14,                 // keyword
        CompletionKind::Value => 12,                   // value
    }
}
