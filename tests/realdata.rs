//! Real provider error payloads and agent traces (from `../shared/realdata`
//! when present): extraction, classification by `policies/default.rcv`, and
//! the TRAIL adapter. Skips with a note when the data is absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rcv::runtime::event::ErrorInfo;
use rcv::runtime::ingress::provider;

/// `$RCV_REALDATA`, else `../shared/realdata` from the repository root (or
/// from its parent, for a checkout nested one level deeper).
fn realdata() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("RCV_REALDATA").map(PathBuf::from),
        Some(root.join("../shared/realdata")),
        Some(root.join("../../shared/realdata")),
    ];
    let found = candidates.into_iter().flatten().find(|d| d.join("error_payloads").is_dir());
    if found.is_none() {
        eprintln!("note: ../shared/realdata is absent; skipping real-data tests");
    }
    found
}

struct Payload {
    id: String,
    kind: String,
    raw: serde_json::Value,
}

fn payloads(dir: &std::path::Path) -> Vec<Payload> {
    let text = std::fs::read_to_string(dir.join("error_payloads/provider_and_tool_errors.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Payload {
                id: v["id"].as_str().unwrap().to_string(),
                kind: v["kind"].as_str().unwrap_or("").to_string(),
                raw: v["raw"].clone(),
            }
        })
        .collect()
}

fn normalized(raw: &serde_json::Value) -> (ErrorInfo, Option<rcv::runtime::event::Output>) {
    let mut err = ErrorInfo { raw: Some(raw.clone()), ..ErrorInfo::default() };
    let mut out = None;
    provider::normalize(&mut err, &mut out);
    (err, out)
}

#[test]
fn dump_extraction() {
    let Some(dir) = realdata() else { return };
    if std::env::var_os("RCV_DUMP").is_none() {
        return;
    }
    for p in payloads(&dir) {
        let (e, o) = normalized(&p.raw);
        println!(
            "{} {:32} type={:?} code={:?} http={:?} status={:?} provider={:?} param={:?} finish={:?}\n      msg={:?}",
            p.id,
            p.kind,
            e.kind,
            e.code,
            e.http_status,
            e.status,
            e.provider,
            e.param,
            o.and_then(|o| o.finish_reason),
            e.message.map(|m| m.chars().take(100).collect::<String>())
        );
    }
}
