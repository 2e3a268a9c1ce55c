#!/usr/bin/env python3
"""Shares of a `rcv run` profile by phase.

Reads `perf script -F ip,sym --inline` output of a
`perf record --call-graph dwarf` profile and counts each sample under the
first phase below that any frame of its stack belongs to (the order
settles samples whose stack has frames of several phases: a free inside
the replay counts as replay).

Usage:
  perf record -o perf.data --call-graph dwarf,32768 rcv run POLICY TRACE --out DIR --jobs 1
  perf script -i perf.data -F ip,sym --inline > stacks.txt
  benches/phases.py stacks.txt
"""
import collections
import re
import sys

PHASES = [
    ("digest of the input", r"blake3|sha2::"),
    ("reading the input (kernel copy)", r"ksys_read|vfs_read"),
    ("writing trace.ndjson (the writer thread: direct writes, fsync)",
     r"ksys_write|vfs_write|fadvise|__x64_sys_fsync|AtomicFile|write_behind"),
    ("parse_line: validation and timestamps", r"native::validate"),
    ("parse_line: provider extraction", r"ingress::provider::"),
    ("parse_line: UTF-8 check, serde into the event", r"native::parse_line"),
    ("replay: decide (facts, tables, caps, the decision record)", r"decide::decide_in_place"),
    ("replay: the rest (needs_decision, stand-in calls, state snapshots, their frees)", r"replay::replay_case"),
    ("encoding trace lines", r"trace::Encoder"),
    ("report tally", r"Accumulator"),
    ("case assembly and fleet observation", r"assemble::|FleetClock|fleet::Fleet"),
    ("freeing cases and results", r"drop_in_place"),
    ("policy load and compile", r"load_policy"),
    ("driver: lines, items, batches", r"driver::|stream::|LineReader"),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    samples = [s for s in text.split("\n\n") if s.strip()]
    counts = collections.Counter()
    for sample in samples:
        frames = [parts[1] for parts in (l.strip().split(None, 1) for l in sample.splitlines()) if len(parts) > 1]
        phase = next((name for name, pat in PHASES if any(re.search(pat, f) for f in frames)), "other (start-up, exit)")
        counts[phase] += 1
    total = sum(counts.values())
    print("| phase | share of samples |\n|---|---|")
    for phase, n in counts.most_common():
        print(f"| {phase} | {100 * n / total:.1f}% |")
    print(f"\n{total} samples")


if __name__ == "__main__":
    main()
