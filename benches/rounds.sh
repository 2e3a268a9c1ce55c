#!/usr/bin/env bash
# Rounds by CPU placement. The host places the two vCPUs, and how far apart
# they are changes within minutes; `--jobs 2` depends on it. Each round
# measures a cache line's round trip between the CPUs (the
# `core_round_trip` example), then runs each command once, in an order
# shuffled per round, and records its wall time. Prints the median wall
# time of each command and the median per-round ratio of each command to
# the first, for rounds with the CPUs close (round trip under 150 ns) and
# apart (250 ns or more). `{out}` in a command becomes a fresh directory
# for that run, removed after it; `sync` runs before each command, outside
# the timing (as in benches/ab.sh).
# Usage: benches/rounds.sh N 'command A' 'command B' ['command C' ...]
set -euo pipefail
n=$1; shift
cmds=("$@")
rt_bin=target/release/examples/core_round_trip
[ -x "$rt_bin" ] || cargo build --release --example core_round_trip >/dev/null 2>&1
tmp=$(mktemp -d)
for i in $(seq 1 "$n"); do
  rt=$("$rt_bin" | awk '/round trip/ {print $3}')
  line="$rt"
  declare -A wall=()
  for k in $(seq 0 $((${#cmds[@]} - 1)) | shuf); do
    out=$(mktemp -d)
    cmd=${cmds[$k]}
    cmd=${cmd//\{out\}/$out}
    sync
    start=$(date +%s.%N)
    # A non-zero exit (a rejecting gate) still counts as a run.
    bash -c "$cmd" >/dev/null 2>&1 || true
    wall[$k]=$(echo "$(date +%s.%N) - $start" | bc)
    rm -rf "$out"
  done
  for k in $(seq 0 $((${#cmds[@]} - 1))); do line="$line ${wall[$k]}"; done
  echo "$line" >> "$tmp/rounds"
done
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "-"; exit} m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.4f", m}'; }
for placement in close apart; do
  if [ $placement = close ]; then sel='$1 < 150'; else sel='$1 >= 250'; fi
  rows=$(awk "$sel" "$tmp/rounds" | wc -l)
  echo "$placement ($rows rounds):"
  for k in $(seq 0 $((${#cmds[@]} - 1))); do
    col=$((k + 2))
    med=$(awk "$sel {print \$$col}" "$tmp/rounds" | median)
    ratio=$(awk "$sel {print \$$col / \$2}" "$tmp/rounds" | median)
    echo "  wall s $med | ratio to the first $ratio | ${cmds[$k]}"
  done
done
rm -rf "$tmp"
