#!/usr/bin/env python3
"""A Keras 3 run that starts with a learning rate far too high, tuned by retune.

A small MLP learns a 10-class task from data this script generates (no download). Its
config asks for Adam at learning rate 1.0, a hundred times too high: the first epoch
blows the weights up and the softmax saturates (loss ~12, accuracy near chance), and
without help the run never recovers. With `RetuneCallback` retune sees that after the
first epoch, cuts the learning rate, reinitialises the weights, and the run learns.

    pip install retune keras jax          # or: pip install . keras jax  (in this repository)
    KERAS_BACKEND=jax python examples/keras_example.py
    KERAS_BACKEND=jax python examples/keras_example.py --no-retune   # the same run, untouched

The three lines that matter are marked "retune:". Everything the run leaves is in
--dir (a new temporary directory by default): config.json (adjusted in place by
retune), retune/metrics.csv, retune/history.jsonl (a line per epoch) and, under
retune/reports/, a report for each epoch whose decision changed something. Takes a few
seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from retune.keras import RetuneCallback  # noqa: E402  retune: 1 of 3

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_classes": 10,
    "num_features": 10,
    "optimizer": "adam",
    "learning_rate": 1.0,
    "batch_size": 32,
    "epochs": 12,
    "num_train_samples": 2000,
    "num_val_samples": 500,
    "seed": 0,
}


def make_data(cfg: dict):
    """Labels from a fixed random "teacher" network: learnable to ~80% by a small MLP."""
    rng = np.random.default_rng(cfg["seed"])
    teacher = np.random.default_rng(1234)
    d, c = cfg["num_features"], cfg["num_classes"]
    w_lin = teacher.normal(size=(d, c))
    w1, w2 = teacher.normal(size=(d, 16)), teacher.normal(size=(16, c))
    n = cfg["num_train_samples"] + cfg["num_val_samples"]
    x = rng.normal(size=(n, d)).astype("float32")
    y = (2.0 * (x @ w_lin) + np.tanh(x @ w1) @ w2).argmax(axis=1)
    split = cfg["num_train_samples"]
    return (x[:split], y[:split]), (x[split:], y[split:])


def build(cfg: dict) -> keras.Model:
    keras.utils.set_random_seed(cfg["seed"])
    inputs = keras.Input(shape=(cfg["num_features"],))
    hidden = keras.layers.Dense(cfg["hidden_units"], activation="relu")(inputs)
    outputs = keras.layers.Dense(cfg["num_classes"], activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--no-retune", action="store_true", help="train without the callback")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    args = parser.parse_args()

    run = args.dir or Path(tempfile.mkdtemp(prefix="retune-keras-"))
    run.mkdir(parents=True, exist_ok=True)
    config_path = run / "config.json"
    config_path.write_text(json.dumps({**CONFIG, "epochs": args.epochs}, indent=2) + "\n")
    cfg = json.loads(config_path.read_text())

    (x, y), (x_val, y_val) = make_data(cfg)
    model = build(cfg)
    callbacks = []
    if not args.no_retune:
        # retune: 2 of 3. It writes retune/ beside the config; --provider rules keeps
        # this example offline even where an LLM endpoint is configured.
        callbacks.append(
            RetuneCallback(config_path, run_dir=run / "retune", extra_args=["--provider", "rules"])
        )
    started = time.monotonic()
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        callbacks=callbacks,  # retune: 3 of 3
        verbose=0,
    )
    seconds = time.monotonic() - started

    h = history.history
    live_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    how = "without" if args.no_retune else "with"
    print(f"\n{len(h['loss'])} epochs in {seconds:.1f} s ({how} retune)")
    print("val_loss:    ", " ".join(f"{v:.3g}" for v in h["val_loss"]))
    print("val_accuracy:", " ".join(f"{v:.3f}" for v in h["val_accuracy"]))
    start = CONFIG["learning_rate"]
    print(f"learning rate: {start!r} at the start, {live_lr:.6g} in the optimizer now")
    if callbacks:
        adjusted = json.loads(config_path.read_text())
        print(f"config.json now has learning_rate {adjusted['learning_rate']!r}")
        report_dir = run / "retune" / "reports"
        reports = sorted(report_dir.glob("*.md"))
        changed = [o for o in callbacks[0].outcomes if o.decision and o.decision.changes]
        print(f"{len(changed)} adjustments; {len(reports)} reports in {report_dir}")
    summary = {
        "final_val_loss": h["val_loss"][-1],
        "final_val_accuracy": h["val_accuracy"][-1],
        "learning_rate": live_lr,
        "dir": str(run),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
