#!/usr/bin/env python3
"""How much the rules advisor's proposal adds to the prompt: `retune prompt` on every
example under configs/examples with a config beside a metrics file, once with the built-in
templates and once with the templates of an earlier commit (default 03d2acc, the commit
before the LLM review landed, whose templates do not show the proposal), both rendered by
the same binary. Only the templates differ, so the difference is the proposal and the
review instructions, not any change of the diagnosis in between.

    python3 benches/prompt_size.py [--binary PATH] [--before REV]

Prints a Markdown table: characters and estimated tokens (retune's own estimate, 4
characters a token) before and after.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

from llm_quality import ROOT, examples

TEMPLATES = ["system.j2", "user.j2", "repair.j2"]
SIZE_LINE = re.compile(r"(\d+) messages, (\d+) characters, about (\d+) tokens")


def size(binary, src, metrics, prompts=None):
    cmd = [binary, "prompt", "-c", os.path.join(src, "config.json"), "-m", os.path.join(src, metrics)]
    if prompts:
        cmd += ["--prompts", prompts]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = SIZE_LINE.search(out.strip().splitlines()[-1])
    if not m:
        sys.exit(f"{' '.join(cmd)}: no size line at the end of the output")
    return int(m.group(2)), int(m.group(3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--before", default="03d2acc", help="git revision whose prompts/ are the 'before'")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as old:
        for t in TEMPLATES:
            text = subprocess.run(
                ["git", "-C", ROOT, "show", f"{args.before}:prompts/{t}"], capture_output=True, text=True, check=True
            ).stdout
            with open(os.path.join(old, t), "w", encoding="utf-8") as f:
                f.write(text)
        rows = []
        for name, src, metrics in sorted(examples()):
            before = size(args.binary, src, metrics, old)
            after = size(args.binary, src, metrics)
            rows.append((name, before, after))
    print(f"| example | characters before ({args.before}) | after | added | tokens before | after |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (bc, bt), (ac, at) in rows:
        print(f"| {name} | {bc:,} | {ac:,} | +{ac - bc:,} ({(ac - bc) / bc:.0%}) | {bt:,} | {at:,} |")
    added = [ac - bc for _, (bc, _), (ac, _) in rows]
    print(
        f"\n{len(rows)} examples; the proposal and the review instructions add "
        f"{min(added):,}–{max(added):,} characters; the largest prompt after is "
        f"{max(ac for _, _, (ac, _) in rows):,} characters."
    )


if __name__ == "__main__":
    main()
