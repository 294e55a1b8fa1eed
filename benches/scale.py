#!/usr/bin/env python3
"""Overhead benchmark of the retune binary, as a process, the way users call it.

Measures, in one run on this machine:
  * `retune diagnose` on a generated 1,000,000-row Keras CSVLogger file: wall time
    (median of --repeat runs) and peak RSS, beside Python's csv.reader merely reading the
    same file (median of --repeat), and the ratio;
  * `retune diagnose` on 1,000 and 100,000 rows, to show that time grows with rows and
    memory does not;
  * `retune suggest` (rules advisor) end to end on the seed examples, median of 20 runs.

Usage: python3 benches/scale.py [--binary target/release/retune] [--repeat 5]
Prints a Markdown table (the README quotes it).
"""

import argparse
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_keras_csv(path, rows, seed=0):
    """A CSVLogger file as Keras writes it: sorted columns, CRLF, 0-based epochs."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)  # Python's csv module ends rows with \r\n, like CSVLogger
        w.writerow(["epoch", "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"])
        loss = 2.3
        for epoch in range(rows):
            loss = max(0.05, loss * 0.99995 + rng.gauss(0, 0.002))
            w.writerow([epoch, min(0.99, 1 - loss / 2.5), 0.001, loss,
                        min(0.99, 1 - loss / 2.4), loss * 1.05 + rng.gauss(0, 0.003)])


def timed(cmd):
    """Wall seconds and peak RSS (KiB) of one process, via GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    wall, rss = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def timed_precise(cmd, cwd=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, cwd=cwd)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr.decode()}")
    return elapsed


def python_csv_read(path):
    start = time.perf_counter()
    with open(path, newline="") as f:
        for _ in csv.reader(f):
            pass
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

    tmp = tempfile.mkdtemp(prefix="retune-bench-")
    try:
        rows_table = []
        for rows in (1_000, 100_000, 1_000_000):
            path = os.path.join(tmp, f"history_{rows}.csv")
            write_keras_csv(path, rows)
            runs = [timed_precise([args.binary, "diagnose", "--metrics", path, "--format", "json"])
                    for _ in range(args.repeat)]
            rss = max(timed([args.binary, "diagnose", "--metrics", path, "--format", "json"])[1]
                      for _ in range(2))
            py = [python_csv_read(path) for _ in range(args.repeat)] if rows == 1_000_000 else None
            rows_table.append((rows, os.path.getsize(path), statistics.median(runs), rss,
                               statistics.median(py) if py else None))

        suggest = []
        for name, metrics in (("seed003", "metrics.json"), ("seed000", "training.log")):
            src = os.path.join(ROOT, "configs", "examples", name)
            work = os.path.join(tmp, name)
            shutil.copytree(src, work)
            cmd = [args.binary, "suggest", "--config", os.path.join(work, "config.json"),
                   "--metrics", os.path.join(work, metrics), "--report-dir", os.path.join(work, "reports"),
                   "--history", os.path.join(work, "history.jsonl"), "--format", "json"]
            times = []
            for _ in range(20):
                # A fresh history each time, so every run does the same work.
                hist = os.path.join(work, "history.jsonl")
                if os.path.exists(hist):
                    os.remove(hist)
                times.append(timed_precise(cmd))
            suggest.append((name, statistics.median(times), min(times), max(times)))

        print(f"machine: {os.cpu_count()} cores; binary: {os.path.relpath(args.binary, ROOT)}; "
              f"median of {args.repeat} runs (suggest: of 20)\n")
        print("| rows | file | `retune diagnose` | peak RSS | Python `csv.reader` only | ratio |")
        print("|---:|---:|---:|---:|---:|---:|")
        for rows, size, med, rss, py in rows_table:
            ratio = f"{py / med:.1f}× faster" if py else ""
            pycol = f"{py * 1000:.0f} ms" if py else ""
            print(f"| {rows:,} | {size / 1e6:.1f} MB | {med * 1000:.0f} ms | {rss / 1024:.1f} MiB | {pycol} | {ratio} |")
        print()
        print("| `retune suggest` (rules), end to end as a process | median | min | max |")
        print("|---|---:|---:|---:|")
        for name, med, lo, hi in suggest:
            print(f"| {name} | {med * 1000:.1f} ms | {lo * 1000:.1f} ms | {hi * 1000:.1f} ms |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
