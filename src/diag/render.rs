//! Rendering of diagnostics: human (ariadne, colour only on request), json
//! and SARIF 2.1.0.

use ariadne::{CharSet, Color, Config, IndexType, Label as ALabel, Report, ReportKind};
use serde_json::{Value, json};

use super::{Code, Diagnostic, Level, Source};
use crate::span::{LineIndex, Span};

/// The version of the `--format json` document.
pub const JSON_VERSION: u32 = 1;

/// Where the SARIF rules link to: `docs/diagnostics.md`, one section a code.
pub const DIAGNOSTICS_DOC: &str = "docs/diagnostics.md";

/// Clamps a span into `text` on character boundaries.
fn fit(span: Span, text: &str) -> Span {
    let mut start = span.start.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.min(text.len()).max(start);
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    Span::new(start, end)
}

/// Renders diagnostics of one source for a terminal. Without colour the
/// output is plain ASCII art (stable for snapshots and logs).
pub fn human(diags: &[Diagnostic], src: &Source, color: bool) -> String {
    let cache = ariadne::Source::from(src.text.as_str());
    let name = src.name.as_str();
    let config = Config::default().with_color(color).with_index_type(IndexType::Byte).with_char_set(if color {
        CharSet::Unicode
    } else {
        CharSet::Ascii
    });
    let mut out: Vec<u8> = Vec::new();
    for d in diags {
        let (kind, main_color) = match d.level {
            Level::Error => (ReportKind::Error, Color::Red),
            Level::Warning => (ReportKind::Warning, Color::Yellow),
        };
        let primary = fit(d.span(), &src.text);
        let mut report =
            Report::build(kind, (name, primary.range())).with_config(config).with_code(d.code).with_message(&d.message);
        // Labels in source order: ariadne starts a new snippet whenever a
        // label lies above the previous one.
        let mut labels: Vec<(usize, &super::Label)> = d.labels.iter().enumerate().collect();
        labels.sort_by_key(|(i, l)| (fit(l.span, &src.text).start, *i));
        for (i, l) in labels {
            let mut label = ALabel::new((name, fit(l.span, &src.text).range())).with_message(&l.message);
            if color {
                label = label.with_color(if i == 0 { main_color } else { Color::Blue });
            }
            report = report.with_label(label);
        }
        if let Some(help) = &d.help {
            report = report.with_help(help);
        }
        for note in &d.notes {
            report = report.with_note(note);
        }
        if report.finish().write((name, &cache), &mut out).is_err() {
            // Writing into memory does not fail; keep the message at least.
            out.extend_from_slice(format!("[{}] {}: {}\n", d.code, d.level.as_str(), d.message).as_bytes());
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Line and column (1-based, in characters) of the start and end of a span.
struct Pos {
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

fn pos(index: &LineIndex, text: &str, span: Span) -> Pos {
    let span = fit(span, text);
    let (line, column) = index.line_col(text, span.start);
    let (end_line, end_column) = index.line_col(text, span.end);
    Pos { line, column, end_line, end_column }
}

/// The `--format json` document: `{"version": 1, "diagnostics": [...]}`,
/// diagnostics in file order, each with its file and positions.
pub fn json(files: &[(Source, Vec<Diagnostic>)]) -> Value {
    let mut out = Vec::new();
    for (src, diags) in files {
        let index = LineIndex::new(&src.text);
        for d in diags {
            let p = pos(&index, &src.text, d.span());
            let labels: Vec<Value> = d
                .labels
                .iter()
                .map(|l| {
                    let lp = pos(&index, &src.text, l.span);
                    json!({
                        "message": l.message,
                        "line": lp.line,
                        "column": lp.column,
                        "end_line": lp.end_line,
                        "end_column": lp.end_column,
                    })
                })
                .collect();
            out.push(json!({
                "code": d.code.as_str(),
                "level": d.level.as_str(),
                "message": d.message,
                "file": src.name,
                "line": p.line,
                "column": p.column,
                "end_line": p.end_line,
                "end_column": p.end_column,
                "labels": labels,
                "help": d.help,
                "notes": d.notes,
            }));
        }
    }
    json!({ "version": JSON_VERSION, "diagnostics": out })
}

/// A file path as a relative URI reference: `/` separators, other bytes
/// outside the unreserved set percent-encoded.
fn path_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn help_uri(code: Code) -> String {
    format!("{DIAGNOSTICS_DOC}#{}", code.anchor())
}

fn sarif_level(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn region(p: &Pos) -> Value {
    json!({
        "startLine": p.line,
        "startColumn": p.column,
        "endLine": p.end_line,
        "endColumn": p.end_column,
    })
}

/// A SARIF 2.1.0 log with one run: every code as a rule, every diagnostic
/// as a result (secondary labels as related locations).
pub fn sarif(files: &[(Source, Vec<Diagnostic>)]) -> Value {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.name(),
                "shortDescription": { "text": c.title() },
                "fullDescription": { "text": c.doc_text() },
                "helpUri": help_uri(*c),
                "defaultConfiguration": { "level": sarif_level(c.default_level()) },
            })
        })
        .collect();
    let mut results = Vec::new();
    for (src, diags) in files {
        let index = LineIndex::new(&src.text);
        let uri = path_uri(&src.name);
        for d in diags {
            let p = pos(&index, &src.text, d.span());
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                text.push_str(&format!("\nhelp: {help}"));
            }
            for note in &d.notes {
                text.push_str(&format!("\nnote: {note}"));
            }
            let related: Vec<Value> = d
                .labels
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, l)| {
                    json!({
                        "id": i,
                        "message": { "text": l.message },
                        "physicalLocation": {
                            "artifactLocation": { "uri": uri },
                            "region": region(&pos(&index, &src.text, l.span)),
                        },
                    })
                })
                .collect();
            let mut primary_region = region(&p);
            if let (Some(obj), Some(label)) = (primary_region.as_object_mut(), d.labels.first()) {
                obj.insert("message".into(), json!({ "text": label.message }));
            }
            let mut result = json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == d.code),
                "level": sarif_level(d.level),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri },
                        "region": primary_region,
                    },
                }],
            });
            if !related.is_empty()
                && let Some(obj) = result.as_object_mut()
            {
                obj.insert("relatedLocations".into(), Value::Array(related));
            }
            results.push(result);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "rcv",
                    "version": crate::VERSION,
                    "informationUri": DIAGNOSTICS_DOC,
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag() -> Diagnostic {
        Diagnostic::new(Code::UnknownName, "unknown class `timout`", Span::new(9, 15), "no class has this name")
            .with_label(Span::new(0, 4), "declared here")
            .with_help("did you mean `timeout`?")
    }

    #[test]
    fn human_without_color_is_plain() {
        let src = Source::new("p.rcv", "abcd\nx => timout\n");
        let out = human(&[diag()], &src, false);
        assert!(out.contains("[RCV101] Error: unknown class `timout`"), "{out}");
        assert!(out.contains("p.rcv:2:5"), "{out}");
        assert!(out.contains("did you mean `timeout`?"), "{out}");
        assert!(!out.contains('\u{1b}'), "escape codes without color: {out}");
        assert!(out.is_ascii(), "{out}");
        let colored = human(&[diag()], &src, true);
        assert!(colored.contains('\u{1b}'));
    }

    #[test]
    fn human_survives_odd_spans() {
        let src = Source::new("p.rcv", "é\n");
        let weird = [
            Diagnostic::new(Code::Syntax, "m", Span::new(1, 1), "inside a char"),
            Diagnostic::new(Code::Syntax, "m", Span::new(50, 40), "past the end, backwards"),
            Diagnostic::new(Code::Syntax, "m", Span::new(0, 0), "empty"),
        ];
        let out = human(&weird, &src, false);
        assert_eq!(out.matches("[RCV001]").count(), 3, "{out}");
        let empty = Source::new("e.rcv", "");
        let out = human(&weird, &empty, false);
        assert_eq!(out.matches("[RCV001]").count(), 3, "{out}");
    }

    #[test]
    fn json_has_positions() {
        let src = Source::new("p.rcv", "abcd\nx => timout\n");
        let v = json(&[(src, vec![diag()])]);
        assert_eq!(v["version"], 1);
        let d = &v["diagnostics"][0];
        assert_eq!(d["code"], "RCV101");
        assert_eq!(d["level"], "error");
        assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(2), Some(5)));
        assert_eq!((d["end_line"].as_u64(), d["end_column"].as_u64()), (Some(2), Some(11)));
        assert_eq!(d["labels"][1]["message"], "declared here");
        assert_eq!(d["help"], "did you mean `timeout`?");
    }

    #[test]
    fn sarif_lists_every_rule() {
        let src = Source::new("dir with space/p.rcv", "abcd\nx => timout\n");
        let v = sarif(&[(src, vec![diag()])]);
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"].as_array().map(Vec::len), Some(Code::ALL.len()));
        assert_eq!(run["tool"]["driver"]["rules"][0]["helpUri"], "docs/diagnostics.md#rcv001");
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "RCV101");
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "dir%20with%20space/p.rcv");
        assert_eq!(loc["region"]["startLine"], 2);
        assert_eq!(r["relatedLocations"][0]["physicalLocation"]["region"]["startLine"], 1);
        assert_eq!(r["relatedLocations"][0]["message"]["text"], "declared here");
    }
}
