#!/usr/bin/env python3
"""Rounds of whole commands, timed finer than /usr/bin/time.

Each round runs every command once, in an order that rotates from round
to round. `{out}` in a command becomes a fresh directory, removed after
the run; dirty pages are written back (`sync`) before each run. Neither
is timed. Wall time is a monotonic clock around the process, CPU time
(user + system) comes from wait4. Prints each command's median
(min..max) and, per round, each command's ratio to the first command.

Usage: benches/series.py N 'command A' 'command B' ...
"""
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    cmds = sys.argv[2:]
    runs = [[] for _ in cmds]  # per command: (wall, cpu) per round
    for r in range(rounds):
        order = list(range(len(cmds)))
        order = order[r % len(order):] + order[:r % len(order)]
        for k in order:
            out = tempfile.mkdtemp(prefix="rcv-series-")
            argv = [a.replace("{out}", out) for a in shlex.split(cmds[k])]
            subprocess.run(["sync"], check=False)
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, _, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - start
            runs[k].append((wall, usage.ru_utime + usage.ru_stime))
            shutil.rmtree(out, ignore_errors=True)

    def spread(xs, unit=""):
        return f"{statistics.median(xs):.3f}{unit} ({min(xs):.3f}..{max(xs):.3f})"

    for k, cmd in enumerate(cmds):
        walls = [w for w, _ in runs[k]]
        cpus = [c for _, c in runs[k]]
        print(f"wall s {spread(walls)} | cpu s {spread(cpus)} | {cmd}")
    for k, cmd in enumerate(cmds[1:], start=1):
        wall = [a[0] / b[0] for a, b in zip(runs[k], runs[0])]
        cpu = [a[1] / b[1] for a, b in zip(runs[k], runs[0]) if b[1] > 0]
        print(f"ratio to the first: wall {spread(wall, 'x')} cpu {spread(cpu, 'x') if cpu else '-'} | {cmd}")


if __name__ == "__main__":
    main()
