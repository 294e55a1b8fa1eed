#!/usr/bin/env python3
"""Throughput of `retune review`, as a scheduled job runs it.

Measures, in one run on this machine:
  * the rules advisor over --runs generated runs (default 1,000): wall time (median of
    --repeat), runs per second, and peak RSS, at --concurrency 1 and at the default (the
    cores), so the ratio shows what the pool buys on CPU-bound work;
  * a stand-in LLM server (benches/standin.py) that answers after a fixed latency
    (--latency, default 200 ms), over --llm-runs sick runs at --concurrency 1, 4 and 16
    (--levels): wall time, runs per second, and the overlap, i.e. (calls x latency) / wall
    time — about 1 when calls wait one after the other, about N when N waits overlap;
    beside it, from the server's side, the most calls in flight at once and the overlap
    over the span from the first call to the last answer (without retune's start-up,
    reading and summary).

The runs are copies of the real Keras runs in configs/examples/keras (config.json and the
CSVLogger history.csv, byte for byte), each with its own seed in the config, laid out as a
team's experiments folder: <tmp>/exp/<scenario>-<k>/.

With --baseline OLD, every measurement is also taken with OLD (a build of main), the two
binaries alternating, so both see the same machine; the load average is quoted.

Usage: python3 benches/review.py [--binary target/release/retune] [--baseline OLD]
       [--runs 1000] [--llm-runs 64] [--latency 0.2] [--repeat 3] [--only rules,llm]
       [--levels 1,4,16]
A reduced run of the target (16 at once): --only llm --levels 16 --repeat 3.
Prints Markdown tables (benches/README.md and the README quote them) and writes them to
--out (default benches/results/review.md).
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
KERAS = os.path.join(ROOT, "configs", "examples", "keras")
# Scenarios whose runs have a warning or critical finding: the ones a review asks the LLM about.
SICK = ["diverging", "diverging_from_start", "overfitting", "plateau", "oscillating", "lr_too_low"]


def make_runs(root, count, scenarios):
    """count runs cycling through the scenarios, each config with its own seed."""
    for k in range(count):
        scenario = scenarios[k % len(scenarios)]
        run = os.path.join(root, f"{scenario}-{k:04d}")
        os.makedirs(run)
        with open(os.path.join(KERAS, scenario, "config.json")) as f:
            config = json.load(f)
        config["seed"] = k
        with open(os.path.join(run, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        shutil.copyfile(os.path.join(KERAS, scenario, "history.csv"), os.path.join(run, "history.csv"))


def review(binary, folder, extra, env=None):
    """Wall seconds, peak RSS (KiB) and the parsed review of one `retune review`."""
    reports = tempfile.mkdtemp(prefix="retune-review-reports-")
    cmd = ["/usr/bin/time", "-f", "%M", binary, "review", folder, "--format", "json",
           "--report-dir", reports, *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    shutil.rmtree(reports, ignore_errors=True)
    if out.returncode not in (0, 1):
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    rss = int(out.stderr.strip().splitlines()[-1])
    return wall, rss, json.loads(out.stdout)


def in_flight(arrivals, latency):
    """From the server's side: the most calls waiting at once, and the span from the first
    call's arrival to the last one's answer (the overlap over it leaves out retune's
    start-up, reading and summary, and shows how the calls themselves were scheduled)."""
    events = sorted([(t, 1) for t in arrivals] + [(t + latency, -1) for t in arrivals])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    span = max(arrivals) + latency - min(arrivals) if arrivals else float("nan")
    return most, span


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    p.add_argument("--baseline", help="a binary built from main, measured in the same run")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--llm-runs", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", default="rules,llm", help="sections: rules, llm")
    p.add_argument("--levels", default="1,4,16", help="--concurrency values of the llm section")
    p.add_argument("--out", default=os.path.join(ROOT, "benches", "results", "review.md"),
                   help="where the tables go (benches/results/ is git-ignored)")
    args = p.parse_args()
    sections = set(args.only.split(","))
    levels = [int(n) for n in args.levels.split(",") if n]
    binaries = {"": args.binary}
    if args.baseline:
        binaries = {"baseline": args.baseline, "new": args.binary}
    for binary in binaries.values():
        if not os.path.exists(binary):
            sys.exit(f"{binary} not found: run `cargo build --release` first")
    cores = os.cpu_count() or 1
    tmp = tempfile.mkdtemp(prefix="retune-review-bench-")
    # Private copies: a build in the target dir must not swap a binary mid-run.
    binaries = {label: shutil.copy2(path, os.path.join(tmp, f"retune-{label or 'new'}"))
                for label, path in binaries.items()}
    env = dict(os.environ, RETUNE_CACHE_DIR=os.path.join(tmp, "cache"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RETUNE_MODEL"):
        env.pop(var, None)
    who = lambda label: f"{label} " if label else ""  # noqa: E731
    load = os.getloadavg()
    lines = [f"Load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start.", ""]
    try:
        if "rules" in sections:
            every = sorted(os.listdir(KERAS))
            every = [s for s in every if os.path.isdir(os.path.join(KERAS, s))]
            rules_dir = os.path.join(tmp, "exp")
            make_runs(rules_dir, args.runs, every)
            lines += [f"### Rules advisor, {args.runs} runs ({len(every)} real Keras scenarios, cycled)", "",
                      "| binary | concurrency | median wall | runs/s | peak RSS | vs concurrency 1 |",
                      "|---|---|---|---|---|---|"]
            for label, binary in binaries.items():
                base = None
                for conc in sorted({1, cores}):
                    walls, rss = [], 0
                    for _ in range(args.repeat):
                        wall, peak, result = review(binary, rules_dir,
                                                    ["--provider", "rules", "--concurrency", str(conc)], env)
                        assert result["totals"]["runs"] == args.runs, result["totals"]
                        walls.append(wall)
                        rss = max(rss, peak)
                    median = statistics.median(walls)
                    base = base or median
                    lines.append(f"| {label or 'retune'} | {conc} | {median * 1000:.0f} ms | {args.runs / median:.0f} | "
                                 f"{rss / 1024:.1f} MiB | {base / median:.2f}× |")
            lines.append("")

        if "llm" in sections:
            llm_dir = os.path.join(tmp, "sick")
            make_runs(llm_dir, args.llm_runs, SICK)
            # Answers every chat completion after --latency with a valid answer proposing no
            # change, so each run costs exactly one call.
            server = StandIn(latency=args.latency)
            url = server.url()
            lines += [f"### Stand-in LLM answering after {args.latency * 1000:.0f} ms, {args.llm_runs} sick runs", "",
                      "| binary | concurrency | wall (median of --repeat) | runs/s | LLM calls | overlap (calls × latency / wall) "
                      "| most in flight | overlap within the calls' span |",
                      "|---|---|---|---|---|---|---|---|"]
            rows = {}
            for conc in levels:
                for _ in range(args.repeat if conc > 1 else 1):
                    # The binaries alternate, so both see the same machine.
                    for label, binary in binaries.items():
                        server.reset()
                        wall, _, result = review(binary, llm_dir,
                                                 ["--provider", "openai", "--base-url", url, "--no-cache",
                                                  "--concurrency", str(conc)], env)
                        providers = {r["provider"] for r in result["runs"]}
                        assert providers == {"openai"}, providers
                        rows.setdefault((label, conc), []).append(
                            (wall, server.calls[""], *in_flight(server.arrivals, args.latency)))
                        print(f"  {who(label)}concurrency {conc}: {wall:.2f} s", file=sys.stderr)
            for label in binaries:
                for conc in levels:
                    measured = rows[(label, conc)]
                    walls = [m[0] for m in measured]
                    n = measured[0][1]
                    wall = statistics.median(walls)
                    most = max(m[2] for m in measured)
                    span = statistics.median(m[3] for m in measured)
                    lines.append(f"| {label or 'retune'} | {conc} | {wall:.2f} s ({min(walls):.2f}–{max(walls):.2f}) | "
                                 f"{args.llm_runs / wall:.1f} | {n} | {n * args.latency / wall:.1f} | {most} | "
                                 f"{n * args.latency / span:.1f} |")
            server.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    lines += ["", f"{cores} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; "
              f"`python3 benches/review.py {' '.join(sys.argv[1:])}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
