#!/usr/bin/env python3
"""Runs `retune diagnose` on every run of tests/real and scores it against labels.toml.

    python3 scripts/corpus.py [--binary PATH] [--corpus DIR] [--table] [--only SLUG...]

A verdict is right when every `must` id is found, one of `any_of` when given, no
`must_not` id, and, for a healthy run, no warning or critical finding. Prints one line per
run (or, with --table, the confusion table: condition × what retune said) and the score.
Exit 1 when a run is wrong."""

import argparse
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def metrics_path(run_dir: Path) -> Path:
    """The file SOURCE.txt names (its `path:` line's base name), else the folder itself."""
    source = (run_dir / "SOURCE.txt").read_text(errors="replace")
    paths = [
        line.split(":", 1)[1].strip()
        for line in source.splitlines()
        if line.lower().startswith("path:")
    ]
    for p in paths:
        for candidate in sorted(run_dir.rglob(Path(p.split(",")[0].strip()).name)):
            if candidate.is_file():
                fmt = next(
                    (
                        ln.split(":", 1)[1].strip()
                        for ln in source.splitlines()
                        if ln.lower().startswith("format:")
                    ),
                    "",
                )
                if fmt == "tensorboard" and len(list(run_dir.rglob("events.out.tfevents*"))) > 1:
                    return run_dir
                return candidate
    files = [
        f
        for f in run_dir.rglob("*")
        if f.is_file()
        and f.name != "SOURCE.txt"
        and not f.name.endswith(".json")
        or f.name in ("trainer_state.json",)
    ]
    return files[0] if len(files) == 1 else run_dir


def judge(label: dict, findings: list[dict]) -> tuple[bool, list[str]]:
    ids = {f["id"] for f in findings}
    loud = {f["id"] for f in findings if f["severity"] in ("warning", "critical")}
    why = []
    for m in label.get("must", []):
        if m not in ids:
            why.append(f"missed {m}")
    any_of = label.get("any_of", [])
    if any_of and not ids.intersection(any_of):
        why.append(f"none of {any_of}")
    for m in label.get("must_not", []):
        if m in loud or (m in ids and label.get("healthy")):
            why.append(f"false {m}")
    if label.get("healthy") and loud:
        why.extend(f"alarm {i}" for i in sorted(loud) if f"false {i}" not in why)
    return not why, why


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=str(ROOT / "target/release/retune"))
    ap.add_argument("--corpus", default=str(ROOT / "tests/real"))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    labels = tomllib.loads((corpus / "labels.toml").read_text())["runs"]
    right = 0
    confusion: dict[str, Counter] = defaultdict(Counter)
    for slug, label in sorted(labels.items()):
        if args.only and slug not in args.only:
            continue
        path = metrics_path(corpus / slug)
        out = subprocess.run(
            [args.binary, "diagnose", "--metrics", str(path), "--format", "json"],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            findings, ok, why = (
                [],
                False,
                ["not read: " + out.stderr.strip().splitlines()[-1][:120]],
            )
        else:
            findings = json.loads(out.stdout)["findings"]
            ok, why = judge(label, findings)
        right += ok
        # must ids joined by "+", any_of ids (one of them is enough) by " or ".
        condition = (
            "healthy"
            if label.get("healthy")
            else (
                "+".join(label["must"])
                if label.get("must")
                else " or ".join(label.get("any_of") or ["?"])
            )
        )
        said = sorted({f["id"] for f in findings if f["severity"] != "info"}) or ["healthy"]
        confusion[condition]["+".join(said)] += 1
        if not args.table:
            mark = "ok  " if ok else "MISS"
            amb = " (ambiguous)" if label.get("ambiguous") else ""
            said = ", ".join(f["id"] + "/" + f["severity"][0] for f in findings) or "nothing"
            print(f"{mark} {slug}{amb}: said {said}" + ("" if ok else f"  <- {'; '.join(why)}"))
    total = len([s for s in labels if not args.only or s in args.only])
    if args.table:
        print("| labelled condition | what retune said (warning or critical) | runs |")
        print("|---|---|---:|")
        for cond in sorted(confusion):
            for said, n in confusion[cond].most_common():
                print(f"| {cond} | {said} | {n} |")
    print(f"\n{right}/{total} runs diagnosed right ({100 * right / max(total, 1):.0f}%)")
    return 0 if right == total else 1


if __name__ == "__main__":
    sys.exit(main())
