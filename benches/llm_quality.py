#!/usr/bin/env python3
"""What a model does with retune's prompts: every example under configs/examples that has
a config.json beside a metrics file, through `retune suggest` against an
OpenAI-compatible endpoint, one row per example.

Columns: whether the first answer parsed, whether it passed validation, repairs used,
changes accepted / clamped / rejected (after the fallback, the rules advisor's changes and
the LLM's rejected suggestions), who decided, tokens and latency.

Usage:
  scripts/local-llm.sh build && export "$(scripts/local-llm.sh start)"
  python3 benches/llm_quality.py --base-url "$OPENAI_BASE_URL" [--model NAME] [--binary PATH]

The answer cache is off (--no-cache), so every number is a real request.
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    args = ap.parse_args()
    if not args.base_url:
        sys.exit("give --base-url or set OPENAI_BASE_URL (scripts/local-llm.sh start prints it)")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

    rows = []
    for name, src, metrics in examples():
        work = tempfile.mkdtemp(prefix="retune-llm-")
        try:
            shutil.copy(os.path.join(src, "config.json"), work)
            shutil.copy(os.path.join(src, metrics), work)
            out = subprocess.run(
                [args.binary, "suggest", "-c", "config.json", "-m", metrics, "--format", "json",
                 "--provider", "openai", "--base-url", args.base_url, "--model", args.model,
                 "--no-cache", "--timeout", "120", "--deadline", "600"],
                cwd=work, capture_output=True, text=True,
                env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"})
            if out.returncode != 0:
                rows.append((name, "error", out.stderr.strip()[:80]))
                continue
            d = json.loads(out.stdout)
            llm = d.get("llm") or {}
            clamped = sum(1 for c in d["changes"] if c.get("clamped"))
            rows.append((name, d["provider"], llm.get("first_answer_parsed"), llm.get("first_answer_valid"),
                         llm.get("repairs"), len(d["changes"]) - clamped, clamped, len(d["rejected"]),
                         llm.get("prompt_tokens"), llm.get("completion_tokens"), llm.get("latency_ms")))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    yes = lambda b: "yes" if b else "no"
    print(f"model `{args.model}` at {args.base_url}; `retune suggest --provider openai --no-cache`, one run each\n")
    print("| example | decided by | 1st answer parsed | 1st answer valid | repairs | accepted | clamped | rejected | prompt tokens | completion tokens | latency |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r[1] == "error":
            print(f"| {r[0]} | error: {r[2]} |" + " |" * 9)
            continue
        print(f"| {r[0]} | {r[1]} | {yes(r[2])} | {yes(r[3])} | {r[4]} | {r[5]} | {r[6]} | {r[7]} | {r[8]} | {r[9]} | {r[10] / 1000:.1f} s |")


if __name__ == "__main__":
    main()
