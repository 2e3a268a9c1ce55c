#!/usr/bin/env bash
# Paired A/B timing of two commands: runs A B A B ... N times each and
# prints, for each, the median and min..max of wall, user+sys CPU time and
# peak RSS (from /usr/bin/time). Usage: benches/ab.sh N 'command A' 'command B'
# `{out}` in a command becomes a fresh empty directory for that run, removed
# after it; dirty pages are written back (`sync`) before every run. Both
# happen outside the timing: a run that replaces the previous run's trace
# pays the kernel's cost of freeing it, and one that starts while the last
# run's trace is still being written back competes with it.
set -euo pipefail
n=$1; a=$2; b=$3
tmp=$(mktemp -d)
for i in $(seq 1 "$n"); do
  for k in a b; do
    out=$(mktemp -d)
    cmd=${!k}
    cmd=${cmd//\{out\}/$out}
    sync
    # A non-zero exit (findings) still counts as a run.
    /usr/bin/time -q -f "%e %U %S %M" -o "$tmp/$k.$i" bash -c "$cmd" >/dev/null 2>&1 || true
    rm -rf "$out"
  done
done
stats() { sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f (%.3f..%.3f)", m, v[1], v[NR]}'; }
for k in a b; do
  wall=$(cat "$tmp"/$k.* | awk '{print $1}' | stats)
  cpu=$(cat "$tmp"/$k.* | awk '{print $2+$3}' | stats)
  rss=$(cat "$tmp"/$k.* | awk '{print $4/1024}' | stats)
  echo "$k: wall s $wall | cpu s $cpu | peak RSS MB $rss | ${!k}"
done
# Paired ratios B/A per repetition.
for i in $(seq 1 "$n"); do
  read -r wa ua sa _ < "$tmp/a.$i"; read -r wb ub sb _ < "$tmp/b.$i"
  echo "$wa $wb $(echo "$ua + $sa" | bc) $(echo "$ub + $sb" | bc)"
done | awk '{printf "%s %s\n", ($1>0?$2/$1:0), (($3>0)?$4/$3:0)}' > "$tmp/ratios"
echo "ratio B/A wall: $(awk '{print $1}' "$tmp/ratios" | stats)  cpu: $(awk '{print $2}' "$tmp/ratios" | stats)"
rm -rf "$tmp"
