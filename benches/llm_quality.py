#!/usr/bin/env python3
"""What a model does with retune's prompts: every example under configs/examples that has
a config.json beside a metrics file, through `retune suggest` against an
OpenAI-compatible endpoint, `--repeat` times each, one row per example.

The model reviews the rules advisor's proposal (agree, amend or replace). Columns: the
first answer's parse and valid rates (valid: parsed, and validation rejected none of the
model's own values), its verdicts (agree / amend / replace), repairs used, who decided,
changes accepted / clamped / rejected (after a fallback, the rules advisor's changes and
the LLM's rejected suggestions), and mean tokens and latency per call. A last row sums
every example.

Usage:
  scripts/local-llm.sh build && export "$(scripts/local-llm.sh start)"
  python3 benches/llm_quality.py --base-url "$OPENAI_BASE_URL" [--model NAME] [--binary PATH]
      [--repeat N] [--max-repairs N]

The answer cache is off (--no-cache), so every number is a real request. The server
answers at temperature 0, so a repeat mostly measures latency; the rates are per example
over its repeats.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ["history.csv", "metrics.json", "training.log", "history.json", "metrics.jsonl", "trainer_state.json"]


def examples():
    base = os.path.join(ROOT, "configs", "examples")
    for dirpath, _, files in sorted(os.walk(base)):
        if "config.json" not in files:
            continue
        metrics = next((m for m in METRICS if m in files), None)
        if metrics:
            yield os.path.relpath(dirpath, base), dirpath, metrics


def run_one(args, src, metrics):
    """One `retune suggest` on a scratch copy of the example: the decision, or an error."""
    work = tempfile.mkdtemp(prefix="retune-llm-")
    try:
        shutil.copy(os.path.join(src, "config.json"), work)
        shutil.copy(os.path.join(src, metrics), work)
        out = subprocess.run(
            [args.binary, "suggest", "-c", "config.json", "-m", metrics, "--format", "json",
             "--provider", "openai", "--base-url", args.base_url, "--model", args.model,
             "--max-repairs", str(args.max_repairs),
             "--no-cache", "--timeout", str(args.timeout), "--deadline", str(3 * args.timeout)],
            cwd=work, capture_output=True, text=True,
            env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"})  # fmt: skip
        if out.returncode != 0:
            return None, out.stderr.strip()[:80]
        return json.loads(out.stdout), None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rate(n, of):
    return f"{n}/{of}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--repeat", type=int, default=1, help="runs per example (default 1)")
    ap.add_argument("--max-repairs", type=int, default=1, help="repair rounds per call (default 1)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per request (default 120; the deadline is 3x)")
    args = ap.parse_args()
    if not args.base_url:
        sys.exit("give --base-url or set OPENAI_BASE_URL (scripts/local-llm.sh start prints it)")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

    header = ("| example | runs | 1st parsed | 1st valid | agree / amend / replace | repairs | decided by "
              "| accepted | clamped | rejected | prompt tokens | completion tokens | latency |")
    total = {"runs": 0, "parsed": 0, "valid": 0, "agree": 0, "amend": 0, "replace": 0, "repairs": 0,
             "accepted": 0, "clamped": 0, "rejected": 0, "prompt": 0, "completion": 0, "ms": 0, "llm": 0}
    lines = []
    for name, src, metrics in examples():
        row = dict.fromkeys(total, 0)
        deciders, error = set(), None
        for _ in range(args.repeat):
            d, error = run_one(args, src, metrics)
            if d is None:
                break
            llm = d.get("llm") or {}
            clamped = sum(1 for c in d["changes"] if c.get("clamped"))
            row["runs"] += 1
            row["parsed"] += bool(llm.get("first_answer_parsed"))
            row["valid"] += bool(llm.get("first_answer_valid"))
            verdict = llm.get("first_verdict")
            if verdict in ("agree", "amend", "replace"):
                row[verdict] += 1
            row["repairs"] += llm.get("repairs") or 0
            row["accepted"] += len(d["changes"]) - clamped
            row["clamped"] += clamped
            row["rejected"] += len(d["rejected"])
            row["prompt"] += llm.get("prompt_tokens") or 0
            row["completion"] += llm.get("completion_tokens") or 0
            row["ms"] += llm.get("latency_ms") or 0
            row["llm"] += d["provider"] == "openai"
            deciders.add(d["provider"])
        if error is not None:
            lines.append(f"| {name} | error: {error} |" + " |" * 11)
            continue
        for k in total:
            total[k] += row[k]
        lines.append(line(name, row, ", ".join(sorted(deciders))))
    lines.append(line("**all**", total, f"openai {total['llm']}/{total['runs']}"))

    print(f"model `{args.model}` at {args.base_url}; `retune suggest --provider openai --no-cache "
          f"--max-repairs {args.max_repairs}`, {args.repeat} run(s) each\n")
    print(header)
    print("|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))


def line(name, r, decided):
    n = max(r["runs"], 1)
    return (f"| {name} | {r['runs']} | {rate(r['parsed'], r['runs'])} | {rate(r['valid'], r['runs'])} "
            f"| {r['agree']} / {r['amend']} / {r['replace']} | {r['repairs']} | {decided} "
            f"| {r['accepted']} | {r['clamped']} | {r['rejected']} | {r['prompt'] / n:.0f} | {r['completion'] / n:.0f} "
            f"| {r['ms'] / n / 1000:.1f} s |")


if __name__ == "__main__":
    main()
