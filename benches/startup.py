#!/usr/bin/env python3
"""Start-up and history cost of `retune suggest`, as a trainer calling it every epoch pays,
beside a baseline binary measured in the same run (calls interleaved, so both see the same
machine).

Two sections:

  suggest  `retune suggest` on the seed examples (configs/examples/seed000, seed003), four
           ways: the process floor (`retune --version`), the rules advisor with `--dry-run`
           (start-up, load, diagnose, decide: no file written), the rules advisor writing
           its report, chart, config and history line, and an instant stand-in
           OpenAI-compatible server on loopback (`--provider openai --no-cache`;
           benches/standin.py, shared with scale.py and review.py).
  history  `retune suggest --dry-run --provider rules` with a history of 0, 100, 1,000 and
           10,000 adjustments (grown from the two lines one real `suggest --in-place`
           writes), and `retune history` listing the same file whole.

Every number is a median (with min–max) of --repeat calls of a whole process.

Usage: python3 benches/startup.py --binary NEW [--baseline OLD] [--repeat 30]
Prints Markdown and writes it to --out (default benches/results/startup.md).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from standin import StandIn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HISTORY_LENGTHS = (0, 100, 1000, 10000)

def clean_env(tmp):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("OPENAI_", "RETUNE_", "AZURE_OPENAI_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        RETUNE_CACHE_DIR=os.path.join(tmp, "cache"),
        XDG_CONFIG_HOME=os.path.join(tmp, "xdg"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def wall(cmd, env, cwd=None, ok=(0,)):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    if out.returncode not in ok:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr.decode(errors='replace')}")
    return seconds, out.stdout


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def cell(times):
    return f"{ms(statistics.median(times))} ({ms(min(times))}–{ms(max(times))})"


def interleaved(binaries, make_cmd, repeat, env, cwd=None, before=None):
    """{label: [seconds]} for each binary, the calls alternating."""
    times = {label: [] for label in binaries}
    for _ in range(repeat):
        for label, binary in binaries.items():
            if before:
                before()
            seconds, _ = wall(make_cmd(binary), env, cwd)
            times[label].append(seconds)
    return times


def table(out, title, rows, labels):
    out.append(title)
    head = "| what | " + " | ".join(labels) + (" | new ÷ baseline |" if len(labels) == 2 else " |")
    out.append(head)
    out.append("|---" * (len(labels) + 1 + (len(labels) == 2)) + "|")
    for name, times in rows:
        cells = [cell(times[label]) for label in labels]
        line = f"| {name} | " + " | ".join(cells)
        if len(labels) == 2:
            a, b = (statistics.median(times[label]) for label in labels)
            line += f" | {b / a:.2f}×"
        out.append(line + " |")
    out.append("")


def bench_suggest(args, binaries, tmp, out):
    server = StandIn()
    env = clean_env(tmp)
    rows = []
    try:
        for name, metrics in (("seed000", "training.log"), ("seed003", "metrics.json")):
            work = os.path.join(tmp, name)
            shutil.copytree(os.path.join(ROOT, "configs", "examples", name), work)
            history = os.path.join(work, "history.jsonl")

            def fresh(history=history):
                # Every call does the same work: no cooldown from the call before.
                if os.path.exists(history):
                    os.remove(history)

            def base(binary, *extra, work=work, metrics=metrics, history=history):
                return [
                    binary, "suggest", "--config", os.path.join(work, "config.json"),
                    "--metrics", os.path.join(work, metrics), "--report-dir",
                    os.path.join(work, "reports"), "--history", history, "--format", "json",
                    *extra,
                ]

            variants = [
                ("`retune --version` (process floor)", lambda b: [b, "--version"]),
                ("rules, `--dry-run`", lambda b: base(b, "--provider", "rules", "--dry-run")),
                ("rules, writing report, chart, config, history", lambda b: base(b, "--provider", "rules")),
                (
                    "stand-in LLM, writing",
                    lambda b, name=name: base(
                        b, "--provider", "openai", "--base-url",
                        server.url(name), "--no-cache",
                    ),
                ),
            ]
            for label, make in variants:
                times = interleaved(binaries, make, args.repeat, env, cwd=work, before=fresh)
                rows.append((f"{name} (`{metrics}`): {label}", times))
                print(f"  {name} {label}: " + ", ".join(
                    f"{k} {ms(statistics.median(v))}" for k, v in times.items()), file=sys.stderr)
    finally:
        server.shutdown()
    table(
        out,
        f"### `retune suggest` start-up, median (min–max) of {args.repeat} processes\n",
        rows,
        list(binaries),
    )


def grow_history(binary, work, env, n):
    """`n` adjustments grown from the two lines one real `suggest --in-place` writes."""
    shutil.copy(os.path.join(ROOT, "configs", "examples", "keras", "diverging", "config.json"),
                os.path.join(work, "config.json"))
    seed = os.path.join(work, "seed.jsonl")
    if os.path.exists(seed):
        os.remove(seed)
    wall([binary, "suggest", "-c", "config.json", "-m", "history.csv", "--history", seed,
          "--in-place", "--provider", "rules", "--format", "json"], env, cwd=work)
    with open(seed) as f:
        adjustment, applied = (json.loads(line) for line in f)
    # The config as the first call left it; every copy says it was applied.
    path = os.path.join(work, f"history_{n}.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            a = dict(adjustment, adjustment_id=f"adj-{i:06d}",
                     time=f"2026-01-01T00:00:00.{i:06d}Z", epoch=i % 12)
            f.write(json.dumps(a) + "\n")
            f.write(json.dumps(dict(applied, adjustment_id=a["adjustment_id"])) + "\n")
    return path


def bench_history(args, binaries, tmp, out):
    env = clean_env(tmp)
    work = os.path.join(tmp, "history-run")
    os.makedirs(work)
    shutil.copy(os.path.join(ROOT, "configs", "examples", "keras", "diverging", "history.csv"),
                os.path.join(work, "history.csv"))
    first = next(iter(binaries.values()))
    rows = []
    sizes = {}
    for n in HISTORY_LENGTHS:
        path = grow_history(first, work, env, n)
        sizes[n] = os.path.getsize(path)
        suggest = interleaved(
            binaries,
            lambda b, path=path: [b, "suggest", "-c", "config.json", "-m", "history.csv",
                                  "--history", path, "--dry-run", "--provider", "rules", "--format", "json"],
            args.repeat, env, cwd=work,
        )
        rows.append((f"{n:,} adjustments ({sizes[n] / 1e6:.2f} MB): `suggest --dry-run`", suggest))
        listing = interleaved(
            binaries,
            lambda b, path=path: [b, "history", path, "--format", "json"],
            args.repeat, env, cwd=work,
        )
        rows.append((f"{n:,} adjustments: `retune history` (every line)", listing))
        print(f"  history {n}: " + ", ".join(
            f"{k} {ms(statistics.median(v))}" for k, v in suggest.items()), file=sys.stderr)
    table(
        out,
        "### A long history: `suggest --dry-run --provider rules` on the diverging Keras run, "
        f"median (min–max) of {args.repeat} processes\n",
        rows,
        list(binaries),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--baseline", help="a binary built from main, measured in the same run")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--only", default="suggest,history")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results", "startup.md"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="retune-startup-")
    binaries = {}
    # Private copies: a build in the target dir must not swap a binary mid-run.
    for label, path in (("baseline", args.baseline), ("new", args.binary)):
        if path:
            if not os.path.exists(path):
                sys.exit(f"{path} not found")
            binaries[label] = shutil.copy2(path, os.path.join(tmp, f"retune-{label}"))
    started = time.perf_counter()
    load = os.getloadavg()
    out = [
        f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start.\n"
    ]
    try:
        sections = {"suggest": bench_suggest, "history": bench_history}
        for name in args.only.split(","):
            print(f"{name} …", file=sys.stderr)
            sections[name](args, binaries, tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    out.append(
        f"`python3 benches/startup.py {' '.join(sys.argv[1:])}` took "
        f"{time.perf_counter() - started:.0f} s; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the end."
    )
    text = "\n".join(out) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
