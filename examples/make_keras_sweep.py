#!/usr/bin/env python3
"""Produce a real Keras learning-rate sweep for `retune review`'s tests.

A sweep is what a user leaves after trying one config at several learning rates: a
folder of runs whose configs have the same keys and differ in the learning rate (and
the output folder). This script trains the `healthy` scenario of
make_keras_fixtures.py (10-class MLP on the teacher data, Adam, 15 epochs) once per
learning rate in LEARNING_RATES, with that script's data, model, optimizer, loss and
callbacks, and writes under configs/examples/sweep/lr_<value>/:

  config.json   the config the run was built from
  history.csv   keras.callbacks.CSVLogger, untouched

Nothing else: the console and history.json are left out to keep the fixture small
(configs/examples/keras has them for the healthy run, which is the lr 0.001 run here).

Each run is then checked twice, and the script fails if either check does not hold:
its numbers must show what the run is meant to show (the converging runs learn, the
high-lr run blows up), and `retune diagnose` must report `divergence` on the diverging
run and on no other. Finally configs/examples/sweep/README.md is written with a table of
the runs and what retune diagnoses on each.

Usage (from the repository root; keras and jax installed, retune buildable):

    pip install keras jax
    KERAS_BACKEND=jax python examples/make_keras_sweep.py
    KERAS_BACKEND=jax python examples/make_keras_sweep.py --retune target/debug/retune
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# The training machinery (data, model, optimizer, loss, callbacks) is the fixture
# script's, so the sweep's lr 0.001 run is the `healthy` scenario itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_keras_fixtures as fixtures  # noqa: E402

REPO = fixtures.REPO
OUT_ROOT = Path("configs/examples/sweep")  # relative to the repository root
BASE_SCENARIO = "healthy"

# Learning rate -> whether the run must diverge. 0.0001 to 0.01 converge: 0.0001 is
# slow (still falling ~2.4% an epoch at the end) but learning. 0.003 and 0.005 are left
# out on purpose: their validation loss levels off in the last epochs and retune reports
# a plateau there, a second finding this fixture is not about. At 0.5 the softmax is
# saturated within the first epoch (loss 10.5 = 4.5 × ln 10 from epoch 0) and stays.
LEARNING_RATES: dict[float, bool] = {
    0.0001: False,
    0.0003: False,
    0.001: False,
    0.01: False,
    0.5: True,
}

# A converging run's last training loss must be at most this fraction of its first:
# the slowest run here (0.0001) ends at 0.68.
CONVERGED_MAX_LOSS_RATIO = 0.8
# A loss above this many times ln C is confidently wrong, not untrained (a fresh net
# starts within ~20% of ln C); retune's divergence detector uses the same factor.
SANE_CHANCE_FACTOR = 2.0
# Epochs at the end the diverging run must spend above that bound (or non-finite).
DIVERGED_TAIL_EPOCHS = 3


def run_name(lr: float) -> str:
    # `g` keeps 0.0001 as written (repr would too) and never pads 0.5 to 0.50000.
    return f"lr_{lr:g}"


def sweep_config(lr: float) -> dict:
    """The base scenario's config at this learning rate, keys in the same order."""
    cfg = dict(fixtures.SCENARIOS[BASE_SCENARIO])
    cfg["learning_rate"] = lr
    cfg["output_dir"] = str(OUT_ROOT / run_name(lr))
    return cfg


def train(cfg: dict, out: Path) -> None:
    """Train one run in this process, as a user's script would, leaving history.csv."""
    import keras

    keras.utils.set_random_seed(cfg["seed"])
    (x_train, y_train), (x_val, y_val) = fixtures.make_data(cfg)
    model = fixtures.make_model(cfg)
    model.compile(
        optimizer=fixtures.make_optimizer(cfg),
        loss=fixtures.make_loss(cfg),
        metrics=["accuracy"],
    )
    model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        verbose=0,
        callbacks=fixtures.make_callbacks(cfg, out),
    )


def read_csv(path: Path) -> dict[str, list[float]]:
    """CSVLogger's columns as floats (Python's float() reads its `nan`/`inf`)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no epoch written")
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def check(cfg: dict, diverges: bool, h: dict[str, list[float]]) -> list[str]:
    """Return the ways the run fails to show what it should (empty when it does)."""
    loss, val = h["loss"], h["val_loss"]
    bound = SANE_CHANCE_FACTOR * math.log(cfg["num_classes"])
    bad = []

    def need(cond: bool, why: str) -> None:
        if not cond:
            bad.append(why)

    need(len(loss) == cfg["epochs"], f"{len(loss)} epochs written, not {cfg['epochs']}")
    if diverges:
        tail = loss[-DIVERGED_TAIL_EPOCHS:] + val[-DIVERGED_TAIL_EPOCHS:]
        need(
            all(not math.isfinite(v) or v > bound for v in tail),
            f"loss not above {SANE_CHANCE_FACTOR} × ln C (or non-finite) at the end",
        )
    else:
        need(all(map(math.isfinite, loss + val)), "non-finite value")
        need(max(loss + val) <= bound, f"a loss above {SANE_CHANCE_FACTOR} × ln C")
        need(
            loss[-1] <= CONVERGED_MAX_LOSS_RATIO * loss[0],
            f"loss fell less than {1 - CONVERGED_MAX_LOSS_RATIO:.0%}",
        )
        need(val[-1] < val[0], "val_loss did not fall")
    return bad


def diagnose(retune: list[str], out: Path) -> list[dict]:
    """retune's findings on the run, from `diagnose --format json`."""
    argv = retune + [
        "diagnose",
        "--metrics",
        str(out / "history.csv"),
        "--config",
        str(out / "config.json"),
        "--format",
        "json",
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}")
    return json.loads(done.stdout)["findings"]


# Keras clips softmax probabilities at this, so a wrong one-hot guess costs -ln(it).
KERAS_PROB_CLIP = 1e-7
# Relative agreement with -ln(clip) × (1 − accuracy) that shows one-hot predictions.
SATURATED_REL_TOL = 1e-5


def saturation(lr: float, h: dict[str, list[float]]) -> str:
    """How the diverging run blew up, measured rather than assumed."""
    loss, acc = h["loss"], h["accuracy"]
    if any(not math.isfinite(v) for v in loss):
        first = next(i for i, v in enumerate(loss) if not math.isfinite(v))
        return f"At {lr:g} the loss turns non-finite at CSV epoch {first}."
    cost = -math.log(KERAS_PROB_CLIP)
    clip, tol = (f"{x:.0e}".replace("e-0", "e-") for x in (KERAS_PROB_CLIP, SATURATED_REL_TOL))
    saturated = [abs(v - cost * (1 - a)) <= SATURATED_REL_TOL * v for v, a in zip(loss, acc)]
    if not saturated[-1]:
        return f"At {lr:g} the loss ends at {fmt(loss[-1])}, finite but not saturated."
    # The first epoch of the saturated stretch that lasts to the end.
    since = len(saturated) - saturated[::-1].index(False) if False in saturated else 0
    return (
        f"At {lr:g} Adam's first steps push the logits so far that the softmax output "
        f"saturates (Keras clips probabilities at {clip}): from CSV epoch "
        f"{since} on, the loss equals -ln({clip}) × (1 − accuracy) = "
        f"{cost:.2f} × {1 - acc[-1]:.3f} = {fmt(loss[-1])} to within "
        f"{tol} relative, the mark of one-hot predictions; nothing turns NaN."
    )


def fmt(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else repr(v)


def describe_findings(findings: list[dict]) -> str:
    if not findings:
        return "no finding"
    parts = []
    for f in findings:
        text = f"{f['severity']} `{f['id']}`"
        if f["id"] == "divergence":
            ev = f["evidence"]
            text += f" ({ev['reason']} from retune's epoch {ev['epoch']}: {ev['value']:g})"
        parts.append(text)
    return "; ".join(parts)


README = """# Keras learning-rate sweep

A real sweep for `retune review`: one config trained at {count} learning rates by
Keras {keras} (JAX {jax} backend, CPU, Python {python}), written by
`examples/make_keras_sweep.py`. Each `lr_<value>/` holds the run's `config.json` and
the `history.csv` of `keras.callbacks.CSVLogger`, untouched. The configs have the same
keys in the same order and differ only in `learning_rate` and `output_dir`.

The base config is the `healthy` scenario of `configs/examples/keras` (10-class MLP,
64 hidden units, Adam, batch 32, {epochs} epochs, 2000 training samples of the teacher
data, seed {seed}, ReduceLROnPlateau on val_loss listed after CSVLogger, so the learning
rate is not a CSV column). `lr_{base_lr:g}` is that run:
{same_as_base}.

Regenerate ({seconds:.0f} s on 2 cores, including `retune diagnose` on each run) with

    pip install keras jax
    KERAS_BACKEND=jax python examples/make_keras_sweep.py

The script fails unless every converging run learns (finite, loss down by at least
{drop:.0%}, never above 2 × ln C) and the diverging run ends above 2 × ln C, and
unless `retune diagnose` reports `divergence` on the diverging run and on no other.
The best val_loss epoch in the table is the CSV's 0-based index; retune numbers epochs
from 1 (its epoch 1 is the CSV's epoch 0). ln C = {chance:.4f}.

{table}

Learning rates 0.003 and 0.005 are left out on purpose: their validation loss levels
off in the last epochs and retune reports a `plateau` warning on them, a second finding
this fixture is not about. At 0.01 the validation loss has made no new best for the last
8 epochs (it hovers around 0.54 in steps of 1–3% while the training loss keeps falling),
and retune reports that plateau too: the sibling test reads it as a warning, not a
divergence. The `learning_rate_extreme` warning on the diverging run is
retune's config check (Adam above 0.01), not a reading of the metrics.

{diverged}
"""


def write_readme(root: Path, results: list[tuple], seconds: float) -> None:
    import importlib.metadata as md

    rows = [
        "| run | learning_rate | final loss | final val_loss | final val_accuracy"
        " | best val_loss (epoch) | `retune diagnose` |",
        "|---|---|---|---|---|---|---|",
    ]
    for lr, h, findings in results:
        val = h["val_loss"]
        finite_val = [v for v in val if math.isfinite(v)]
        best = f"{fmt(min(finite_val))} ({val.index(min(finite_val))})" if finite_val else "-"
        rows.append(
            f"| `{run_name(lr)}` | {lr:g} | {fmt(h['loss'][-1])} | {fmt(val[-1])} "
            f"| {fmt(h['val_accuracy'][-1])} | {best} | {describe_findings(findings)} |"
        )
    base = fixtures.SCENARIOS[BASE_SCENARIO]
    ours = root / run_name(base["learning_rate"]) / "history.csv"
    theirs = REPO / fixtures.OUT_ROOT / BASE_SCENARIO / "history.csv"
    if not ours.exists() or not theirs.exists():
        same_as_base = "one of the two runs is missing, so they were not compared"
    elif ours.read_bytes() == theirs.read_bytes():
        same_as_base = f"its `history.csv` is byte-identical to `{theirs.relative_to(REPO)}`"
    else:
        # Another Keras/JAX version or machine may round differently; say so, not fail.
        same_as_base = (
            f"its `history.csv` differs from `{theirs.relative_to(REPO)}` (made with "
            "other versions or on another machine)"
        )
    text = README.format(
        base_lr=base["learning_rate"],
        same_as_base=same_as_base,
        count=len(results),
        keras=md.version("keras"),
        jax=md.version("jax"),
        python=".".join(map(str, sys.version_info[:3])),
        epochs=base["epochs"],
        seed=base["seed"],
        seconds=seconds,
        drop=1 - CONVERGED_MAX_LOSS_RATIO,
        chance=math.log(base["num_classes"]),
        table="\n".join(rows),
        diverged=textwrap.fill(
            " ".join(saturation(lr, h) for lr, h, _ in results if LEARNING_RATES[lr]),
            width=88,
        ),
    )
    (root / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--retune",
        help="the retune binary to diagnose the runs with (default: `cargo run -q --`)",
    )
    args = parser.parse_args()
    retune = [args.retune] if args.retune else ["cargo", "run", "-q", "--"]
    # The fixture is a JAX run: the machinery imports keras lazily, so this wins.
    os.environ["KERAS_BACKEND"] = "jax"

    start = time.monotonic()
    root = REPO / OUT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    # Runs of an earlier grid would otherwise stay and join the sweep.
    for stale in root.glob("lr_*"):
        shutil.rmtree(stale)
    results = []
    failures = 0
    for lr, diverges in LEARNING_RATES.items():
        run_start = time.monotonic()
        cfg = sweep_config(lr)
        out = REPO / cfg["output_dir"]
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        train(cfg, out)
        h = read_csv(out / "history.csv")
        bad = check(cfg, diverges, h)
        findings = diagnose(retune, out)
        if diverges != any(f["id"] == "divergence" for f in findings):
            bad.append(
                "retune "
                + ("did not report" if diverges else "reported")
                + " divergence: "
                + describe_findings(findings)
            )
        results.append((lr, h, findings))
        status = "ok" if not bad else "DOES NOT SHOW WHAT IT SHOULD: " + "; ".join(bad)
        seconds = time.monotonic() - run_start
        print(f"{run_name(lr):10s} {seconds:5.1f}s  {status}  [{describe_findings(findings)}]")
        failures += bool(bad)
    total = time.monotonic() - start
    write_readme(root, results, total)
    print(f"total {total:.1f}s")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
