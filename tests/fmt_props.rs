//! Property tests of the formatter over random policies, written with
//! random layout (spaces, line breaks, commas) and comments sprinkled at
//! line starts and line ends; and `rcv fmt` on hostile inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "fmt/support.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::Config;

// ---------- generation: a policy as a token stream ----------

/// Words of the grammar that a generated name must not be, so that the
/// generated text means what the generator intended.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "has",
    "when",
    "otherwise",
    "then",
    "else",
    "true",
    "false",
    "policy",
    "version",
    "const",
    "classes",
    "transient",
    "permanent",
    "reasons",
    "severity",
    "info",
    "low",
    "medium",
    "high",
    "critical",
    "models",
    "tier",
    "cost_per_1k",
    "context",
    "strategies",
    "prompts",
    "budget",
    "attempts",
    "class_attempts",
    "cost",
    "latency",
    "resets",
    "fallbacks",
    "fleet",
    "retry_budget",
    "breaker",
    "ratio",
    "min",
    "max",
    "window",
    "failures",
    "cooldown",
    "classify",
    "recover",
    "reason",
    "retry",
    "strategy",
    "backoff",
    "fixed",
    "linear",
    "exponential",
    "jitter",
    "none",
    "full",
    "equal",
    "fallback",
    "reset",
    "scratchpad",
    "checkpoint",
    "prompt",
    "escalate",
    "queue",
    "abort",
    "accept",
    "require",
    "invariant",
    "never",
    "always",
    "gate",
];

const FIELDS: &[&str] =
    &["error.http_status", "error.message", "class", "attempt", "risk", "tool.side_effects", "cost", "latency"];

type Toks = Vec<String>;

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("reserved word", |s| !RESERVED.contains(&s.as_str()))
}

fn code() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,6}"
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(FIELDS).prop_map(str::to_string),
        prop::collection::vec(name(), 1..4).prop_map(|v| v.join(".")),
    ]
}

/// A string literal with random escapes; tabs written raw or escaped.
fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z0-9 #{}/~é]".prop_map(|s| s),
            1 => Just("\\\"".to_string()),
            1 => Just("\\\\".to_string()),
            1 => Just("\\n".to_string()),
            1 => Just("\\t".to_string()),
            1 => Just("\t".to_string()),
        ],
        0..8,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|n| n.to_string()),
        "-?[0-9]{1,3}\\.[0-9]{1,4}",
        "[0-9]{1,4}(\\.[0-9]{1,2})?(ms|s|m|h)",
        "\\$[0-9]{1,3}(\\.[0-9]{1,2})?",
        string(),
        prop::bool::ANY.prop_map(|b| b.to_string()),
    ]
}

fn operand() -> impl Strategy<Value = String> {
    prop_oneof![literal(), name()]
}

fn regex() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![3 => "[a-z0-9 .*+?()#^$]", 1 => Just("\\/".to_string()), 1 => Just("\\s".to_string())],
            1..6,
        ),
        "[imsx]{0,3}",
    )
        .prop_map(|(body, flags)| format!("/{}/{flags}", body.concat()))
}

fn atom() -> impl Strategy<Value = Toks> {
    prop_oneof![
        path().prop_map(|p| vec![p]),
        path().prop_map(|p| vec!["has".into(), p]),
        (path(), prop::sample::select(&["==", "!=", "<", "<=", ">", ">="][..]), operand()).prop_map(|(p, op, v)| vec![
            p,
            op.into(),
            v
        ]),
        (path(), prop::bool::ANY, prop::bool::ANY, prop::collection::vec(operand(), 0..4), prop::bool::ANY).prop_map(
            |(p, negated, braces, items, trailing_comma)| {
                let mut t = vec![p, if negated { "not in" } else { "in" }.into()];
                t.push(if braces { "{" } else { "[" }.into());
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        t.push(",".into());
                    }
                    t.push(it.clone());
                }
                if trailing_comma && !items.is_empty() {
                    t.push(",".into());
                }
                t.push(if braces { "}" } else { "]" }.into());
                t
            }
        ),
        (path(), regex()).prop_map(|(p, r)| vec![p, "~".into(), r]),
    ]
}

/// `unary := not unary | ( expr ) | atom`, `expr := and-chains joined by or`.
fn unary() -> BoxedStrategy<Toks> {
    atom()
        .boxed()
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|u| {
                    let mut t = vec!["not".to_string()];
                    t.extend(u);
                    t
                }),
                chains(inner).prop_map(|e| {
                    let mut t = vec!["(".to_string()];
                    t.extend(e);
                    t.push(")".into());
                    t
                }),
            ]
        })
        .boxed()
}

fn chains(unary: impl Strategy<Value = Toks> + Clone) -> impl Strategy<Value = Toks> {
    prop::collection::vec(prop::collection::vec(unary, 1..3), 1..3).prop_map(|ors| {
        let mut t = Vec::new();
        for (i, ands) in ors.into_iter().enumerate() {
            if i > 0 {
                t.push("or".to_string());
            }
            for (j, u) in ands.into_iter().enumerate() {
                if j > 0 {
                    t.push("and".to_string());
                }
                t.extend(u);
            }
        }
        t
    })
}

fn expr() -> impl Strategy<Value = Toks> {
    chains(unary())
}

fn retry() -> impl Strategy<Value = Toks> {
    let strategy = name().prop_map(|n| vec!["strategy".to_string(), n]);
    let backoff = prop_oneof![
        literal().prop_map(|d| vec!["backoff".into(), "fixed".into(), "(".into(), d, ")".into()]),
        (prop::sample::select(&["linear", "exponential"][..]), literal(), literal(), literal()).prop_map(
            |(k, a, b, c)| {
                ["backoff", k, "(", &a, ",", &b, ",", &c, ")"].iter().map(|s| s.to_string()).collect::<Vec<_>>()
            }
        ),
    ];
    let jitter = prop::sample::select(&["none", "full", "equal"][..]).prop_map(|j| vec!["jitter".into(), j.into()]);
    // Options are written in canonical order or reversed.
    (prop::option::of(strategy), prop::option::of(backoff), prop::option::of(jitter), prop::bool::ANY).prop_map(
        |(s, b, j, order)| {
            let mut opts: Vec<Toks> = [s, b, j].into_iter().flatten().collect();
            if order {
                opts.reverse();
            }
            let mut t = vec!["retry".to_string()];
            for o in opts {
                t.extend(o);
            }
            t
        },
    )
}

fn fallback() -> impl Strategy<Value = Toks> {
    (name(), prop::option::of(name())).prop_map(|(m, s)| {
        let mut t = vec!["fallback".to_string(), m];
        if let Some(s) = s {
            t.extend(["strategy".to_string(), s]);
        }
        t
    })
}

fn action() -> impl Strategy<Value = Toks> {
    prop_oneof![
        retry(),
        fallback(),
        (
            prop::sample::select(&["context", "scratchpad", "checkpoint"][..]),
            prop::option::of(name()),
            prop_oneof![retry(), fallback()]
        )
            .prop_map(|(scope, prompt, then)| {
                let mut t = vec!["reset".to_string(), scope.to_string()];
                if let Some(p) = prompt {
                    t.extend(["prompt".to_string(), p]);
                }
                t.push("then".into());
                t.extend(then);
                t
            }),
        prop::option::of(string()).prop_map(|q| {
            let mut t = vec!["escalate".to_string()];
            if let Some(q) = q {
                t.extend(["queue".to_string(), q]);
            }
            t
        }),
        Just(vec!["abort".to_string()]),
    ]
}

fn decision() -> impl Strategy<Value = Toks> {
    (action(), code()).prop_map(|(mut a, r)| {
        a.extend([",".to_string(), "reason".to_string(), r]);
        a
    })
}

/// A block of entries, each entry optionally followed by a comma.
fn block(keyword: &'static str, entry: impl Strategy<Value = Toks>) -> impl Strategy<Value = Toks> {
    prop::collection::vec((entry, prop::bool::weighted(0.3)), 0..4).prop_map(move |entries| {
        let mut t = vec![keyword.to_string(), "{".to_string()];
        for (e, comma) in entries {
            t.extend(e);
            if comma {
                t.push(",".into());
            }
        }
        t.push("}".into());
        t
    })
}

/// Blocks whose entries take no commas.
fn plain_block(keyword: &'static str, entry: impl Strategy<Value = Toks>) -> impl Strategy<Value = Toks> {
    prop::collection::vec(entry, 0..4).prop_map(move |entries| {
        let mut t = vec![keyword.to_string(), "{".to_string()];
        t.extend(entries.into_iter().flatten());
        t.push("}".into());
        t
    })
}

fn props(keys: &'static [&'static str]) -> impl Strategy<Value = Toks> {
    prop::collection::vec((prop::sample::select(keys), literal()), 0..4)
        .prop_map(|ps| ps.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect())
}

fn item() -> impl Strategy<Value = Toks> {
    prop_oneof![
        (name(), literal()).prop_map(|(n, v)| vec!["const".into(), n, "=".into(), v]),
        block(
            "classes",
            (name(), prop::option::of(prop::sample::select(&["transient", "permanent"][..]))).prop_map(|(n, p)| {
                let mut t = vec![n];
                t.extend(p.map(str::to_string));
                t
            })
        ),
        block(
            "reasons",
            (
                code(),
                string(),
                prop::option::of(prop::sample::select(&["info", "low", "medium", "high", "critical"][..]))
            )
                .prop_map(|(c, s, sev)| {
                    let mut t = vec![c, s];
                    if let Some(sev) = sev {
                        t.extend(["severity".to_string(), sev.to_string()]);
                    }
                    t
                })
        ),
        block(
            "models",
            (
                name(),
                string(),
                prop::collection::vec(
                    (prop::sample::select(&["tier", "cost_per_1k", "context"][..]), "[0-9]{1,6}(\\.[0-9]{1,4})?"),
                    0..3
                )
            )
                .prop_map(|(n, id, ps)| {
                    let mut t = vec![n, id];
                    t.extend(ps.into_iter().flat_map(|(k, v)| [k.to_string(), v]));
                    t
                })
        ),
        block(
            "strategies",
            (name(), prop::option::of(string())).prop_map(|(n, s)| {
                let mut t = vec![n];
                t.extend(s);
                t
            })
        ),
        block("prompts", (name(), string()).prop_map(|(n, s)| vec![n, s])),
        (
            props(&["attempts", "class_attempts", "cost", "latency", "resets", "fallbacks"]),
            prop::option::of(decision())
        )
            .prop_map(|(ps, d)| {
                let mut t = vec!["budget".to_string(), "{".to_string()];
                t.extend(ps);
                if let Some(d) = d {
                    t.push("=>".into());
                    t.extend(d);
                }
                t.push("}".into());
                t
            }),
        plain_block(
            "fleet",
            (
                prop::sample::select(&["retry_budget", "breaker"][..]),
                props(&["ratio", "min", "window", "failures", "cooldown"]),
                decision()
            )
                .prop_map(|(k, ps, d)| {
                    let mut t = vec![k.to_string()];
                    t.extend(ps);
                    t.push("=>".into());
                    t.extend(d);
                    t
                })
        ),
        plain_block(
            "classify",
            (prop::option::of(expr()), name()).prop_map(|(g, c)| {
                let mut t = g.unwrap_or_else(|| vec!["otherwise".to_string()]);
                t.extend(["=>".to_string(), c]);
                t
            })
        ),
        plain_block(
            "recover",
            (prop::option::of(expr()), decision()).prop_map(|(g, d)| {
                let mut t = match g {
                    Some(g) => std::iter::once("when".to_string()).chain(g).collect(),
                    None => vec!["otherwise".to_string()],
                };
                t.push("=>".into());
                t.extend(d);
                t
            })
        ),
        plain_block(
            "accept",
            (expr(), decision()).prop_map(|(e, d)| {
                let mut t = vec!["require".to_string()];
                t.extend(e);
                t.push("else".into());
                t.extend(d);
                t
            })
        ),
        (
            string(),
            prop::sample::select(&["never", "always"][..]),
            prop::collection::vec(prop::sample::select(&["retry", "fallback", "reset", "escalate", "abort"][..]), 1..4),
            prop::bool::ANY,
            expr()
        )
            .prop_map(|(text, q, kinds, parens, guard)| {
                let mut t = vec!["invariant".to_string(), text, ":".into(), q.to_string()];
                if kinds.len() == 1 && !parens {
                    t.push(kinds[0].to_string());
                } else {
                    t.push("(".into());
                    for (i, k) in kinds.iter().enumerate() {
                        if i > 0 {
                            t.push("or".into());
                        }
                        t.push(k.to_string());
                    }
                    t.push(")".into());
                }
                t.push("when".into());
                t.extend(guard);
                t
            }),
        plain_block(
            "gate",
            (prop::sample::select(&["min", "max"][..]), name(), literal()).prop_map(|(b, m, v)| vec![
                b.to_string(),
                m,
                v
            ])
        ),
    ]
}

fn policy_tokens() -> impl Strategy<Value = Toks> {
    (name(), string(), prop::collection::vec(item(), 0..7)).prop_map(|(n, v, items)| {
        let mut t = vec!["policy".to_string(), n, "version".into(), v];
        t.extend(items.into_iter().flatten());
        t
    })
}

/// What goes between two tokens: whitespace, a line break, a blank line, a
/// comment at the end of a line, or a comment on a line of its own.
#[derive(Debug, Clone)]
enum Gap {
    Space,
    Tab,
    Newline,
    Blank,
    Trailing(String),
    OwnLine(String),
}

fn gap() -> impl Strategy<Value = Gap> {
    let text = "[ -~é]{0,16}";
    prop_oneof![
        8 => Just(Gap::Space),
        1 => Just(Gap::Tab),
        4 => Just(Gap::Newline),
        1 => Just(Gap::Blank),
        1 => text.prop_map(Gap::Trailing),
        1 => text.prop_map(Gap::OwnLine),
    ]
}

fn render(tokens: &[String], gaps: &[Gap], lead: &Option<String>, tail: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(c) = lead {
        s.push_str(&format!("#{c}\n"));
    }
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            match &gaps[i % gaps.len()] {
                Gap::Space => s.push(' '),
                Gap::Tab => s.push_str("\t "),
                Gap::Newline => s.push_str("\n  "),
                Gap::Blank => s.push_str("\n\n\n    "),
                Gap::Trailing(c) => s.push_str(&format!(" #{c}\n")),
                Gap::OwnLine(c) => s.push_str(&format!("\n   #{c}\n")),
            }
        }
        s.push_str(t);
    }
    if let Some(c) = tail {
        s.push_str(&format!(" #{c}"));
    }
    s
}

fn source() -> impl Strategy<Value = String> {
    (
        policy_tokens(),
        prop::collection::vec(gap(), 1..64),
        prop::option::of("[ -~]{0,10}"),
        prop::option::of("[ -~]{0,10}"),
    )
        .prop_map(|(tokens, gaps, lead, tail)| render(&tokens, &gaps, &lead, &tail))
}

proptest! {
    // PROPTEST_CASES=N runs more cases.
    #![proptest_config(Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn formatting_keeps_meaning_and_comments_and_is_idempotent(src in source()) {
        if std::env::var_os("SHOW_SAMPLES").is_some() { eprintln!("-----\n{src}"); }
        if let Err(e) = support::roundtrip(&src) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ---------- hostile inputs through the binary ----------

mod hostile {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use tempfile::TempDir;

    /// A fresh directory under the target's scratch directory, as before;
    /// removed on drop, so the large inputs go also when a test fails.
    fn scratch() -> TempDir {
        tempfile::Builder::new().prefix("rcv-fmt-hostile-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
    }

    fn file(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `rcv fmt --check` and returns (exit code, stderr).
    fn fmt_check(path: &Path) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_rcv")).args(["fmt", "--check"]).arg(path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code().expect("exited normally, not killed"), stderr)
    }

    fn assert_diagnosed(name: &str, bytes: &[u8], code: &str) {
        let dir = scratch();
        let path = file(&dir, name, bytes);
        let (status, stderr) = fmt_check(&path);
        assert_eq!(status, 1, "{name}: {stderr}");
        assert!(stderr.contains(&format!("error[{code}]")), "{name}: {stderr}");
        assert!(stderr.len() < 2_000, "{name}: the diagnostic should not echo the input ({} bytes)", stderr.len());
        assert_eq!(fs::read(&path).unwrap(), bytes, "{name} was modified");
    }

    #[test]
    fn deep_parentheses() {
        let src =
            format!("policy p version \"1\"\nclassify {{ {}a{} => x }}\n", "(".repeat(100_000), ")".repeat(100_000));
        assert_diagnosed("parens.rcv", src.as_bytes(), "RCV003");
    }

    #[test]
    fn deep_not_chain() {
        let src = format!("policy p version \"1\"\nclassify {{ {}a => x }}\n", "not ".repeat(100_000));
        let dir = scratch();
        let path = file(&dir, "nots.rcv", src.as_bytes());
        let (status, stderr) = fmt_check(&path);
        assert_eq!(status, 1, "{stderr}");
        assert!(stderr.contains("error[RCV"), "{stderr}");
    }

    #[test]
    fn ten_megabyte_line() {
        let garbage = format!("policy p version \"1\"\nclassify {{ {} }}\n", "a ".repeat(5 * 1024 * 1024));
        assert_diagnosed("garbage.rcv", garbage.as_bytes(), "RCV001");
        // A long but valid line formats (and is already canonical).
        let valid = format!("policy p version \"1\"\n\nconst long = \"{}\"\n", "x".repeat(10 * 1024 * 1024));
        let dir = scratch();
        let path = file(&dir, "long.rcv", valid.as_bytes());
        let (status, stderr) = fmt_check(&path);
        assert_eq!(status, 0, "{stderr}");
    }

    #[test]
    fn nul_bytes() {
        assert_diagnosed("nul.rcv", b"policy p version \"1\"\0\nclasses { a }\n", "RCV002");
    }

    #[test]
    fn invalid_utf8() {
        assert_diagnosed("latin1.rcv", b"policy p version \"caf\xe9\"\n", "RCV002");
    }

    #[test]
    fn empty_files() {
        assert_diagnosed("empty.rcv", b"", "RCV002");
        assert_diagnosed("blank.rcv", b"  \n\n\t\n", "RCV002");
    }
}
