//! `rcv lsp` through the real binary: JSON-RPC with Content-Length framing
//! over stdio, one session covering every request the server answers;
//! answers are snapshotted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

const URI: &str = "file:///work/policy.rcv";

const POLICY: &str = r#"policy demo version "1.0.0"

classes { rate_limited transient, unknown }
reasons {
  RETRY "transient error"
  GIVE_UP "no recovery path" severity high
}
models { primary "gpt-4o" tier 1 cost_per_1k 0.005 context 128000, backup "claude-3-5-haiku" tier 2 }
strategies { direct, careful "think step by step" }

classify {
  error.http_status == 429 => rate_limited
  otherwise => unknown
}

recover {
  when class == rate_limited and attempt < 3 => retry backoff exponential(250ms, 2.0, 8s), reason RETRY
  when model == primary => fallback backup strategy careful, reason RETRY
  otherwise => escalate, reason GIVE_UP
}
"#;

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rcv"))
            .arg("lsp")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Server { child, stdin, stdout }
    }

    fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "server closed its output");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                len = n.parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let resp = self.recv();
        assert_eq!(resp["id"], id, "{resp}");
        resp
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn change(&mut self, version: u64, text: &str) -> Value {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [{"text": text}]}),
        );
        let d = self.recv();
        assert_eq!(d["method"], "textDocument/publishDiagnostics");
        d
    }
}

/// The zero-based line and UTF-16 column of the `nth` occurrence of `needle`, plus `delta` characters.
fn pos(text: &str, needle: &str, nth: usize, delta: usize) -> Value {
    let at = text.match_indices(needle).nth(nth).unwrap().0 + delta;
    let line = text[..at].matches('\n').count();
    let col = text[..at].rsplit('\n').next().unwrap().encode_utf16().count();
    json!({"line": line, "character": col})
}

fn at(text: &str, needle: &str, nth: usize, delta: usize) -> Value {
    json!({"textDocument": {"uri": URI}, "position": pos(text, needle, nth, delta)})
}

#[test]
fn a_whole_session() {
    let mut s = Server::start();
    let init = s.request(1, "initialize", json!({"capabilities": {}, "processId": null, "rootUri": null}));
    insta::assert_json_snapshot!("initialize", init);
    s.notify("initialized", json!({}));

    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "rcv", "version": 1, "text": POLICY}}),
    );
    let diags = s.recv();
    assert_eq!(diags["method"], "textDocument/publishDiagnostics");
    insta::assert_json_snapshot!("open_diagnostics", diags);

    let hover_reason = s.request(2, "textDocument/hover", at(POLICY, "reason GIVE_UP", 0, 8));
    insta::assert_json_snapshot!("hover_reason", hover_reason);
    let hover_model = s.request(3, "textDocument/hover", at(POLICY, "model == primary", 0, 10));
    insta::assert_json_snapshot!("hover_model", hover_model);
    let hover_field = s.request(4, "textDocument/hover", at(POLICY, "error.http_status", 0, 8));
    insta::assert_json_snapshot!("hover_field", hover_field);

    let def = s.request(5, "textDocument/definition", at(POLICY, "fallback backup", 0, 10));
    insta::assert_json_snapshot!("definition", def);
    let mut refs_params = at(POLICY, "reason RETRY", 0, 8);
    refs_params["context"] = json!({"includeDeclaration": true});
    let refs = s.request(6, "textDocument/references", refs_params);
    assert_eq!(refs["result"].as_array().unwrap().len(), 3);
    insta::assert_json_snapshot!("references", refs);

    let completion = s.request(7, "textDocument/completion", at(POLICY, "fallback ", 0, 9));
    insta::assert_json_snapshot!("completion_fallback", completion);
    let completion = s.request(8, "textDocument/completion", at(POLICY, "class == ", 0, 9));
    let labels: Vec<&str> =
        completion["result"]["items"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["rate_limited", "unknown"]);

    let symbols = s.request(9, "textDocument/documentSymbol", json!({"textDocument": {"uri": URI}}));
    insta::assert_json_snapshot!("document_symbols", symbols);

    // Formatting: an untidy but valid version comes back canonical.
    let untidy = POLICY.replace("classify {\n  error", "classify {\n      error");
    s.change(2, &untidy);
    let fmt = s.request(
        10,
        "textDocument/formatting",
        json!({"textDocument": {"uri": URI}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    let edits = fmt["result"].as_array().unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0]["newText"].as_str().unwrap(), rcv::syntax::fmt::format_source(&untidy).unwrap());

    // A half-typed, unknown name: a diagnostic with its code; the rest still answers.
    let typo = POLICY.replace("reason GIVE_UP", "reason GIVE_U");
    let d = s.change(3, &typo);
    insta::assert_json_snapshot!("typo_diagnostics", d);
    // A syntax error: no parse, queries fall back to the last good declarations.
    let broken = format!("{POLICY}\nrecover {{\n  when class == \n");
    let d = s.change(4, &broken);
    assert_eq!(d["params"]["diagnostics"][0]["code"], "RCV001");
    let h = s.request(11, "textDocument/hover", at(&broken, "fallback backup", 0, 10));
    assert!(h["result"]["contents"]["value"].as_str().unwrap().contains("**model** `backup`"), "{h}");
    let c = s.request(12, "textDocument/completion", at(&broken, "when class == \n", 0, 14));
    let labels: Vec<&str> =
        c["result"]["items"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["rate_limited", "unknown"]);
    // Garbage, an empty file, and positions past the end never crash it.
    s.change(5, "\u{0}{{{{ }} \"unterminated");
    s.change(6, "");
    let h = s.request(
        13,
        "textDocument/hover",
        json!({"textDocument": {"uri": URI}, "position": {"line": 99, "character": 99}}),
    );
    assert_eq!(h["result"], Value::Null);
    let unknown = s.request(
        14,
        "textDocument/hover",
        json!({"textDocument": {"uri": "file:///nope.rcv"}, "position": {"line": 0, "character": 0}}),
    );
    assert_eq!(unknown["result"], Value::Null);

    let shutdown = s.request(15, "shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    s.notify("exit", Value::Null);
    let status = s.child.wait().unwrap();
    assert!(status.success());
}

/// A generated policy of about 5,000 lines: re-check latency through the
/// server (printed, not asserted: it depends on the machine).
#[test]
fn recheck_latency_on_a_large_policy() {
    let mut text = String::from("policy big version \"1.0.0\"\n\nclasses {\n");
    let classes = 400;
    for i in 0..classes {
        text.push_str(&format!("  c{i} transient\n"));
    }
    text.push_str("  other\n}\n\nreasons {\n  R \"retry\"\n  E \"give up\" severity high\n}\n\nclassify {\n");
    for i in 0..2000 {
        text.push_str(&format!("  error.code == \"code_{i}\" => c{}\n", i % classes));
    }
    text.push_str("  otherwise => other\n}\n\nrecover {\n");
    for i in 0..2600 {
        text.push_str(&format!(
            "  when class == c{} and attempt < {} => retry, reason R\n",
            i % classes,
            2 + i / classes
        ));
    }
    text.push_str("  otherwise => escalate, reason E\n}\n");
    let lines = text.lines().count();
    assert!(lines >= 5000, "{lines} lines");

    let mut s = Server::start();
    s.request(1, "initialize", json!({"capabilities": {}}));
    s.notify("initialized", json!({}));
    let t = Instant::now();
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "rcv", "version": 1, "text": text}}),
    );
    let d = s.recv();
    let open = t.elapsed();
    assert_eq!(d["method"], "textDocument/publishDiagnostics");
    let edited = text.replacen("code_7\"", "code_7x\"", 1);
    let t = Instant::now();
    s.change(2, &edited);
    let change = t.elapsed();
    eprintln!("lsp re-check of a {lines}-line policy: open {open:?}, change {change:?}");
    s.request(2, "shutdown", Value::Null);
    s.notify("exit", Value::Null);
    assert!(s.child.wait().unwrap().success());
}
