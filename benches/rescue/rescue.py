#!/usr/bin/env python3
"""Rescue benchmark: does retune rescue broken training runs, next to what users pick today?

Real training (numpy, CPU, a fraction of a second to a few seconds a run) of small networks
on generated data, in a trainer loop that asks a policy what to do after every epoch and
applies the answer: new hyperparameters to the live optimizer, `restore_checkpoint`,
`restart`, `stop_early`. The `retune` policy is `retune suggest --format json --in-place`
called on the run's config and its Keras CSVLogger file, as a user's trainer would.

Scenarios: learning rate far too high (Adam; SGD with momentum), far too low, a plateau,
overfitting on a small noisy training set, an effective batch too large, and a healthy run.
Policies, same epoch budget: none, Keras ReduceLROnPlateau (defaults; and patience 2),
a PBT-style perturbation, retune with its rules advisor, and retune with an LLM when
--base-url is given.

Score: final validation accuracy over the best final validation accuracy of a grid over
the learning rate and the scenario's broken knob (same seed, same budget, no intervention).
A run is rescued at a score of 0.9 or more. A policy harms the healthy run when its mean
score there is more than 0.02 below no intervention's.

Usage:
  cargo build --release
  python3 benches/rescue/rescue.py                   # 3 seeds, 30 epochs: a few minutes on 2 cores
  python3 benches/rescue/rescue.py --quick           # 1 seed, 20 epochs: what CI runs
  python3 benches/rescue/rescue.py --base-url http://127.0.0.1:8080   # adds retune with an LLM

Writes benches/results/rescue.md (the table; the directory is git-ignored), the runs'
configs, CSV logs and retune reports under benches/results/rescue-runs/, every run's trace
in benches/results/rescue.json, and the chart to benches/rescue/rescue.svg. Exits 1 when a
retune call fails or prints something that is not a decision.
"""

import os

# One BLAS thread per process: the benchmark parallelises over runs, and these matrices
# are far too small to gain from threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import chart  # noqa: E402
import policies  # noqa: E402
import scenarios  # noqa: E402
from trainer import Trainer  # noqa: E402

RESCUED = 0.9
HARM = 0.02
SEEDS_FULL = 3
EPOCHS_FULL = 30
EPOCHS_QUICK = 20
BASELINES = ("none", "rop10", "rop2", "pbt")
POLICY_TITLES = {
    "none": "no intervention",
    "rop10": "ReduceLROnPlateau (Keras defaults, patience 10)",
    "rop2": "ReduceLROnPlateau, patience 2",
    "pbt": "PBT-style ×0.8/×1.2",
    "retune": "retune (rules)",
    "retune-llm": "retune (LLM)",
}


def grid_points(scenario):
    keys = sorted(scenario.grid)
    for values in itertools.product(*(scenario.grid[k] for k in keys)):
        yield dict(zip(keys, values))


def grid_key(scenario, overrides):
    """Runs that train the same thing (same data, net and effective config) are one run:
    the Adam grid is shared by the scenarios that differ only in the learning rate."""
    config = dict(scenario.config)
    config.update(overrides)
    for k in ("label_noise", "seed", "epochs"):
        config.pop(k, None)
    return json.dumps([scenario.data, scenario.hidden, config], sort_keys=True)


def run_task(task):
    """One training run in a worker process. Exceptions come back as data so the parent
    can report them and exit 1 after the pool has shut down."""
    kind, scenario_name, seed, epochs, name, overrides, workdir, args = task
    scenario = next(s for s in scenarios.all_scenarios() if s.name == scenario_name)
    try:
        if kind == "grid":
            policy = policies.NoIntervention()
        else:
            policy = policies.make(name, args["binary"], args.get("base_url"), args.get("model"))
        result = Trainer(scenario, seed, epochs, policy, workdir, overrides).run()
    except policies.RetuneFailed as e:
        return {"error": str(e), "scenario": scenario_name, "policy": name, "seed": seed}
    result["kind"] = kind
    result["overrides"] = overrides
    if kind == "grid":
        result.pop("trace")
    return result


def build_tasks(args, chosen, policy_names, epochs, seeds, runs_dir):
    tasks, seen = [], set()
    common = {"binary": args.binary, "base_url": args.base_url, "model": args.model}
    for s in chosen:
        for seed in seeds:
            for point in grid_points(s):
                key = (grid_key(s, point), seed)
                if key in seen:
                    continue
                seen.add(key)
                tasks.append(("grid", s.name, seed, epochs, "grid", point, None, common))
            for p in policy_names:
                workdir = os.path.join(runs_dir, s.name, p, f"seed{seed}")
                tasks.append(("policy", s.name, seed, epochs, p, {}, workdir, common))
    # Longest first keeps both workers busy to the end.
    tasks.sort(key=lambda t: (t[0] != "policy", t[1] != "overfitting"))
    return tasks


def reference(chosen, grid_results, seeds):
    """Per scenario and seed: the best final validation accuracy over the grid, and the
    point that reached it."""
    ref = {}
    for s in chosen:
        for seed in seeds:
            best = None
            for point in grid_points(s):
                r = grid_results[(grid_key(s, point), seed)]
                if best is None or r["final_val_accuracy"] > best[0]:
                    best = (r["final_val_accuracy"], point)
            ref[(s.name, seed)] = best
    return ref


def fmt(x, digits=2):
    return f"{x:.{digits}f}"


def point_text(point):
    return ", ".join(f"{k} {v:g}" for k, v in point.items())


def summarise(chosen, policy_names, results, ref, seeds):
    """{(scenario, policy): stats} with scores per seed."""
    table = {}
    for s in chosen:
        for p in policy_names:
            runs = [results[(s.name, p, seed)] for seed in seeds]
            scores = [r["final_val_accuracy"] / ref[(s.name, r["seed"])][0] for r in runs]
            table[(s.name, p)] = {
                "scores": scores,
                "mean": statistics.fmean(scores),
                "rescued": sum(sc >= RESCUED for sc in scores),
                "changes": sum(r["changes"] for r in runs),
                "actions": sum(len(r["actions"]) for r in runs),
                "acc": statistics.fmean(r["final_val_accuracy"] for r in runs),
                "epochs": statistics.fmean(r["epochs_run"] for r in runs),
                # retune's calls, and those where the LLM's answer was not used and the
                # rules advisor decided instead (provider "openai→rules").
                "calls": sum(1 for r in runs for st in r["trace"] if "retune" in st),
                # Those that reached a model (a healthy epoch gets no model call).
                "asked": sum(1 for r in runs for st in r["trace"] if st.get("retune", {}).get("asked")),
                "llm_s": sum((st.get("retune", {}).get("llm_ms") or 0) for r in runs for st in r["trace"]) / 1000,
                "fallbacks": sum(
                    1 for r in runs for st in r["trace"] if "→" in (st.get("retune", {}).get("provider") or "")
                ),
                # The LLM's verdicts on the rules' proposal, over the calls where its answer
                # was used.
                "verdicts": {
                    v: sum(1 for r in runs for st in r["trace"] if st.get("retune", {}).get("verdict") == v)
                    for v in ("agree", "amend", "replace")
                },
            }
    return table


def verdict(chosen, policy_names, table, n):
    """The issue's target, checked: retune (rules) rescues every pathological scenario,
    never harms the healthy run, and is ahead of every baseline."""
    lines = []
    if "retune" not in policy_names:
        return lines
    baselines = [p for p in policy_names if p in BASELINES]
    for s in chosen:
        r = table[(s.name, "retune")]
        best_base = max(baselines, key=lambda p: table[(s.name, p)]["mean"])
        b = table[(s.name, best_base)]
        if s.broken is None:
            harmed = table[(s.name, "none")]["mean"] - r["mean"] > HARM
            lines.append(
                f"- {s.name}: {'HARMED' if harmed else 'not harmed'} "
                f"(score {fmt(r['mean'], 3)} vs {fmt(table[(s.name, 'none')]['mean'], 3)} with no intervention)"
            )
            continue
        ok = r["rescued"] == n
        ahead = r["mean"] >= b["mean"]
        lines.append(
            f"- {s.name}: {'rescued' if ok else 'NOT rescued'} ({r['rescued']}/{n}, mean score {fmt(r['mean'])}); "
            f"{'ahead of or level with' if ahead else 'BEHIND'} the best baseline, {best_base} ({fmt(b['mean'])})"
        )
    return lines


def retune_story(result):
    """What retune decided in one run, epoch by epoch (the epochs where it did something)."""
    out = []
    for step in result["trace"]:
        rec = step.get("retune")
        if not rec or not (rec["changes"] or rec["actions"]):
            continue
        parts = [f"{p} {_num(o)} → {_num(n)}" for p, o, n in rec["changes"]]
        parts += rec["actions"]
        if rec.get("review"):
            parts.append(rec["review"])
        findings = ", ".join(rec["findings"]) or "no finding"
        out.append(f"epoch {step['epoch']} ({findings}): {'; '.join(parts)}")
    return out


def _num(v):
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def markdown(chosen, policy_names, table, ref, results, seeds, epochs, command, runtime):
    n = len(seeds)
    lines = [
        "# Rescue benchmark",
        "",
        f"`{command}` — {n} seed{'s' if n > 1 else ''}, {epochs} epochs a run, {runtime:.0f} s.",
        "",
        "Score: final validation accuracy ÷ the best final validation accuracy of the reference grid "
        f"(same seed, same budget, no intervention). Rescued: score ≥ {RESCUED}. "
        "Changes: hyperparameter changes made over all seeds (actions in parentheses).",
        "",
        "## Mean score",
        "",
        "| scenario | " + " | ".join(policy_names) + " |",
        "|---|" + "---:|" * len(policy_names),
    ]
    for s in chosen:
        cells = []
        best = max(table[(s.name, p)]["mean"] for p in policy_names)
        for p in policy_names:
            m = table[(s.name, p)]["mean"]
            text = fmt(m)
            cells.append(f"**{text}**" if m == best else text)
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Per scenario and policy",
        "",
        "| scenario | policy | mean score | rescued | changes (actions) | final val acc | epochs run |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in chosen:
        for p in policy_names:
            t = table[(s.name, p)]
            lines.append(
                f"| {s.name} | {p} | {fmt(t['mean'])} | {t['rescued']}/{n} | {t['changes']} ({t['actions']}) "
                f"| {fmt(t['acc'], 3)} | {t['epochs']:.1f} |"
            )
    lines += ["", "## Healthy run: harmed?", ""]
    healthy = [s for s in chosen if s.broken is None]
    for s in healthy:
        base = table[(s.name, "none")]["mean"]
        for p in policy_names:
            if p == "none":
                continue
            drop = base - table[(s.name, p)]["mean"]
            lines.append(f"- {p}: {'**harmed**' if drop > HARM else 'not harmed'} (score change {-drop:+.3f})")
    lines += [
        "",
        "## Scenarios and reference grid",
        "",
        "| scenario | what is broken | grid | best grid point (seed " + str(seeds[0]) + ") | its val acc |",
        "|---|---|---|---|---:|",
    ]
    for s in chosen:
        grid = "; ".join(f"{k} ∈ {{{', '.join(f'{v:g}' for v in vals)}}}" for k, vals in sorted(s.grid.items()))
        acc, point = ref[(s.name, seeds[0])]
        lines.append(f"| {s.name} | {s.broken or 'nothing'} | {grid} | {point_text(point)} | {fmt(acc, 3)} |")
    v = verdict(chosen, policy_names, table, n)
    if v:
        lines += [
            "",
            "## Target: retune (rules) rescues every broken run, never harms the healthy one, ahead of every baseline",
            "",
            *v,
        ]
    if "retune-llm" in policy_names:
        lines += ["", "## retune with an LLM: whose decisions", ""]
        for s in chosen:
            t = table[(s.name, "retune-llm")]
            v = t["verdicts"]
            lines.append(
                f"- {s.name}: {t['calls']} calls, {t['asked']} of them sent to the model "
                f"({t['llm_s']:.0f} s waiting for it); the model agreed {v['agree']}, amended {v['amend']}, "
                f"replaced {v['replace']}; the rules advisor decided {t['fallbacks']} "
                "(the LLM's answers failed validation or the endpoint failed)"
            )
        if "retune" in policy_names:
            lines += ["", "## retune with an LLM against the rules alone (never worse?)", ""]
            for s in chosen:
                llm, rules = table[(s.name, "retune-llm")]["mean"], table[(s.name, "retune")]["mean"]
                worse = rules - llm > HARM
                lines.append(
                    f"- {s.name}: {fmt(llm)} with the LLM, {fmt(rules)} with the rules alone: "
                    f"{'**WORSE**' if worse else 'not worse'}"
                )
    for p in ("retune", "retune-llm"):
        if p not in policy_names:
            continue
        lines += [
            "",
            f"## What {p} did (seed {seeds[0]})",
            "",
            "Epochs counted from 0, as in the CSV; the findings are those of the call after that epoch.",
            "",
        ]
        for s in chosen:
            r = results[(s.name, p, seeds[0])]
            story = retune_story(r)
            end = f"final val acc {fmt(r['final_val_accuracy'], 3)}, score {fmt(table[(s.name, p)]['scores'][0])}"
            if r["stopped_at"] is not None:
                end += f", stopped after epoch {r['stopped_at']}"
            lines.append(f"- **{s.name}** ({end}):")
            lines += [f"  - {x}" for x in story] or ["  - nothing changed"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, help=f"seeds per scenario (default {SEEDS_FULL}; --quick: 1)")
    ap.add_argument("--epochs", type=int, help=f"epoch budget (default {EPOCHS_FULL}; --quick: {EPOCHS_QUICK})")
    ap.add_argument("--quick", action="store_true", help="one seed and fewer epochs: the CI run")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint: adds the retune-llm policy")
    ap.add_argument("--model", help="model name for --base-url")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scenarios", help="comma-separated subset of scenarios")
    ap.add_argument("--policies", help="comma-separated subset of policies")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    ap.add_argument("--svg", default=os.path.join(HERE, "rescue.svg"))
    args = ap.parse_args()

    seeds = list(range(args.seeds or (1 if args.quick else SEEDS_FULL)))
    epochs = args.epochs or (EPOCHS_QUICK if args.quick else EPOCHS_FULL)
    chosen = scenarios.all_scenarios()
    if args.scenarios:
        wanted = args.scenarios.split(",")
        chosen = [s for s in chosen if s.name in wanted]
    policy_names = ["none", "rop10", "rop2", "pbt", "retune"] + (["retune-llm"] if args.base_url else [])
    if args.policies:
        policy_names = [p for p in policy_names if p in args.policies.split(",")]
    if "none" not in policy_names:
        policy_names.insert(0, "none")
    if any(p.startswith("retune") for p in policy_names) and not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first (or give --binary)")

    runs_dir = os.path.join(args.out, "rescue-runs")
    shutil.rmtree(runs_dir, ignore_errors=True)
    os.makedirs(runs_dir, exist_ok=True)
    tasks = build_tasks(args, chosen, policy_names, epochs, seeds, runs_dir)

    progress = sys.stderr.isatty()
    start = time.monotonic()
    results, grid_results, errors = {}, {}, []
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        for done, r in enumerate(pool.imap_unordered(run_task, tasks), 1):
            if "error" in r:
                errors.append(r)
                pool.terminate()
                break
            if r["kind"] == "grid":
                grid_results[
                    (grid_key(next(s for s in chosen if s.name == r["scenario"]), r["overrides"]), r["seed"])
                ] = r
            else:
                results[(r["scenario"], r["policy"], r["seed"])] = r
            if progress:
                print(f"\r{done}/{len(tasks)} runs", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    runtime = time.monotonic() - start
    if errors:
        e = errors[0]
        print(f"error: {e['policy']} on {e['scenario']} (seed {e['seed']}): {e['error']}", file=sys.stderr)
        sys.exit(1)

    ref = reference(chosen, grid_results, seeds)
    table = summarise(chosen, policy_names, results, ref, seeds)
    command = "python3 benches/rescue/rescue.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    md = markdown(chosen, policy_names, table, ref, results, seeds, epochs, command, runtime)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rescue.md"), "w", encoding="utf-8") as f:
        f.write(md)
    with open(os.path.join(args.out, "rescue.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "epochs": epochs,
                "seeds": seeds,
                "reference": {f"{k[0]}/seed{k[1]}": {"val_accuracy": v[0], "point": v[1]} for k, v in ref.items()},
                "runs": [results[k] for k in sorted(results)],
                "grid": [grid_results[k] for k in sorted(grid_results)],
            },
            f,
            indent=1,
            default=float,
        )
    plural = "s" if len(seeds) > 1 else ""
    svg = chart.grouped_bars(
        [s.name for s in chosen],
        policy_names,
        {(s.name, p): table[(s.name, p)]["mean"] for s in chosen for p in policy_names},
        title=f"Rescue benchmark: mean score per scenario ({len(seeds)} seed{plural}, {epochs} epochs)",
        threshold=RESCUED,
        legend={p: POLICY_TITLES[p] for p in policy_names},
    )
    with open(args.svg, "w", encoding="utf-8") as f:
        f.write(svg)
    print(
        f"wrote {os.path.relpath(os.path.join(args.out, 'rescue.md'), ROOT)}, {os.path.relpath(args.svg, ROOT)}; "
        f"runs in {os.path.relpath(runs_dir, ROOT)}; {runtime:.0f} s",
        file=sys.stderr,
    )
    print(f"command: {command}", file=sys.stderr)


if __name__ == "__main__":
    main()
