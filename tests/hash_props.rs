//! The policy hash is a hash of meaning: layout and comments never change
//! it, formatting never changes it, and a semantic edit always does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rcv::compile;
use rcv::diag::Source;

const POLICIES: [&str; 2] = ["policies/tool_chain.rcv", "policies/default.rcv"];

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn hash(text: &str) -> String {
    let build = compile::build(&Source::new("p.rcv", text));
    match build.policy {
        Some(p) => p.hash,
        None => panic!("does not compile: {:#?}\n{text}", build.diagnostics),
    }
}

/// One layout change per line: indentation, a trailing comment, a comment
/// line or a blank line before it.
#[derive(Debug, Clone)]
enum Noise {
    None,
    Indent(usize),
    Trailing(String),
    CommentBefore(String),
    BlankBefore,
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        4 => Just(Noise::None),
        1 => (0usize..6).prop_map(Noise::Indent),
        1 => "[a-z ]{0,12}".prop_map(Noise::Trailing),
        1 => "[a-z ]{0,12}".prop_map(Noise::CommentBefore),
        1 => Just(Noise::BlankBefore),
    ]
}

fn perturb(text: &str, noise: &[Noise]) -> String {
    let mut out = String::new();
    for (line, n) in text.lines().zip(noise.iter().cycle()) {
        match n {
            Noise::None => out.push_str(line),
            Noise::Indent(k) => {
                out.push_str(&" ".repeat(*k));
                out.push_str(line.trim_start());
            }
            Noise::Trailing(c) => {
                out.push_str(line);
                out.push_str("   # ");
                out.push_str(c);
            }
            Noise::CommentBefore(c) => {
                out.push_str("# ");
                out.push_str(c);
                out.push('\n');
                out.push_str(line);
            }
            Noise::BlankBefore => {
                out.push('\n');
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn layout_and_formatting_keep_the_hash(which in 0usize..2, noise in proptest::collection::vec(noise(), 1..64)) {
        let original = read(POLICIES[which]);
        let expected = hash(&original);
        let noisy = perturb(&original, &noise);
        prop_assert_eq!(hash(&noisy), expected.clone());
        let formatted = rcv::syntax::fmt::format_source(&noisy).unwrap();
        prop_assert_eq!(hash(&formatted), expected);
    }
}

#[test]
fn semantic_edits_change_the_hash() {
    let original = read("policies/tool_chain.rcv");
    let base = hash(&original);
    let edits = [
        ("attempt < 2", "attempt < 3"),
        ("exponential(250ms, 2.0, 8s)", "exponential(300ms, 2.0, 8s)"),
        ("jitter full", "jitter equal"),
        ("reason REPAIR_ARGS", "reason RETRY_TRANSIENT"),
        ("\"transient provider or tool error\"", "\"a transient provider or tool error\""),
        ("version \"2.3.0\"", "version \"2.3.1\""),
        ("cost $0.50", "cost $0.40"),
        ("Summarize the progress", "Summarise the progress"),
    ];
    for (from, to) in edits {
        assert!(original.contains(from), "{from} not in the policy");
        let edited = original.replacen(from, to, 1);
        assert_ne!(hash(&edited), base, "`{from}` -> `{to}` kept the hash");
    }
}
