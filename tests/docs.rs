//! `docs/language.md` stays in step with the code: its event schema table is
//! generated from `schema::FIELDS` (run with `RCV_UPDATE_DOCS=1` to rewrite
//! it), it names every gate metric, and every `rcv` example in it parses and
//! is in canonical form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use rcv::check::ir::Metric;
use rcv::schema::{FIELDS, Scope};

const BEGIN: &str = "<!-- event-schema:begin (generated from schema::FIELDS by tests/docs.rs) -->\n";
const END: &str = "<!-- event-schema:end -->\n";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/language.md")
}

fn schema_table() -> String {
    let mut t = String::from("| Field | Type | Scope | Meaning |\n| --- | --- | --- | --- |\n");
    for f in FIELDS {
        let scope = match f.scope {
            Scope::Event => "event",
            Scope::State => "state",
        };
        t.push_str(&format!("| `{}` | {} | {scope} | {} |\n", f.path, f.ty.name(), f.doc));
    }
    t.push_str("| `metadata.<key>` | string | event | a key of the request's free-form metadata |\n");
    t
}

#[test]
fn event_schema_table_is_current() {
    let path = doc_path();
    let doc = fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/language.md lacks the event schema markers");
    };
    let current = &doc[b + BEGIN.len()..e];
    let wanted = schema_table();
    if current != wanted {
        if std::env::var_os("RCV_UPDATE_DOCS").is_some() {
            let updated = format!("{}{wanted}{}", &doc[..b + BEGIN.len()], &doc[e..]);
            fs::write(&path, updated).unwrap();
            return;
        } else {
            panic!(
                "the event schema table in docs/language.md is stale: run `RCV_UPDATE_DOCS=1 cargo test --test docs`"
            );
        }
    }
    for f in FIELDS {
        assert!(doc.contains(&format!("`{}`", f.path)), "docs/language.md does not document `{}`", f.path);
    }
}

#[test]
fn every_gate_metric_is_documented() {
    let doc = fs::read_to_string(doc_path()).unwrap();
    for m in Metric::ALL {
        assert!(doc.contains(&format!("`{}`", m.as_str())), "docs/language.md does not document `{}`", m.as_str());
    }
}

/// Every ```rcv block is a policy, or items that parse once a header is put
/// in front, and is already formatted.
#[test]
fn examples_parse_and_are_formatted() {
    let doc = fs::read_to_string(doc_path()).unwrap();
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```rcv\n") {
        let body_start = start + "```rcv\n".len();
        let len = rest[body_start..].find("```\n").expect("unterminated code block");
        let body = &rest[body_start..body_start + len];
        rest = &rest[body_start + len..];
        blocks += 1;
        let src = if body.trim_start().starts_with("policy ") || body.starts_with('#') {
            body.to_string()
        } else {
            format!("policy example version \"1\"\n\n{body}")
        };
        let formatted =
            rcv::syntax::fmt::format_source(&src).unwrap_or_else(|e| panic!("example does not parse: {e:?}\n{body}"));
        assert_eq!(formatted, src, "example is not in canonical form:\n{body}");
    }
    assert!(blocks >= 10, "only {blocks} examples found");
}

/// The README's example policy is canonical and clean under `--deny warnings`.
#[test]
fn readme_example_is_clean_and_formatted() {
    let readme = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```rcv\n").expect("README has an rcv example") + "```rcv\n".len();
    let len = readme[start..].find("```\n").expect("unterminated code block");
    let body = &readme[start..start + len];
    let formatted = rcv::syntax::fmt::format_source(body).unwrap_or_else(|e| panic!("does not parse: {e:?}"));
    assert_eq!(formatted, body, "the README example is not in canonical form");
    let build = rcv::compile::build(&rcv::diag::Source::new("README.md", body));
    assert!(build.policy.is_some() && build.diagnostics.is_empty(), "{:#?}", build.diagnostics);
}
