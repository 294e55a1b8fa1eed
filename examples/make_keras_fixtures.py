#!/usr/bin/env python3
"""Produce real Keras training logs for retune's tests.

Each scenario below is a training config. For every scenario this script trains a
small Keras 3 model (JAX backend, CPU) on data it generates itself with numpy, and
writes what a real trainer leaves behind under configs/examples/keras/<scenario>/:

  config.json       the config the run was built from (every key is read below)
  history.csv       keras.callbacks.CSVLogger, untouched
  history.json      json.dumps(model.fit(...).history), NaN written bare as Python does
  training.log      raw bytes of the console during model.fit(verbose=1), captured
                    through a pseudo-terminal (ANSI colours, \\r and \\b redraws, the
                    terminal's \\r\\n line ends)
  training_v2.log   the same run with verbose=2 (some scenarios)
  training_redirected.log
                    the same run as `python train.py > log 2>&1`, no terminal (some)
  training_partial.log
                    the console of a run still in progress, cut half way through an
                    epoch (one scenario)

The training itself runs in a child process attached to a pseudo-terminal, so Keras
behaves as it does on a user's console. Every scenario is checked after its run: if
the numbers no longer show the pathology it was made for (say a new Keras version
changes initialisation), the script fails instead of writing a misleading fixture.
Finally configs/examples/keras/README.md is written with the key numbers the detector
tests assert.

Usage (from the repository root):

    pip install keras jax
    KERAS_BACKEND=jax python examples/make_keras_fixtures.py            # all scenarios
    KERAS_BACKEND=jax python examples/make_keras_fixtures.py healthy    # some of them
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = Path("configs/examples/keras")  # relative to the repository root
# Width of the random network that labels the "teacher" data set.
TEACHER_HIDDEN = 16
# Weight of the teacher's linear part: 2.0 lets the healthy run reach ~0.8 accuracy.
TEACHER_LINEAR_WEIGHT = 2.0
# A fixed terminal size so the console capture does not depend on the caller's window.
TERMINAL_ROWS, TERMINAL_COLUMNS = 24, 120

# ---------------------------------------------------------------------------
# Scenarios: the configs, written as a user would. Keys differ on purpose
# (learning_rate / lr, flat / nested optimizer) because real configs differ.
# ---------------------------------------------------------------------------

SCENARIOS: dict[str, dict] = {
    "healthy": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "epochs": 15,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "reduce_lr_on_plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 3},
        "seed": 0,
        "output_dir": "configs/examples/keras/healthy",
    },
    "diverging": {
        "model": "mlp",
        "hidden_layers": [128, 128],
        "activation": "leaky_relu",
        "num_classes": 10,
        "from_logits": True,
        "optimizer": {"name": "sgd", "lr": 0.42, "momentum": 0.9},
        "batch_size": 64,
        "epochs": 12,
        "dropout": 0.0,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 1,
        "output_dir": "configs/examples/keras/diverging",
    },
    "diverging_from_start": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "from_logits": True,
        "optimizer": "sgd",
        "lr": 5.0,
        "momentum": 0.9,
        "batch_size": 32,
        "epochs": 6,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 2,
        "log_dir": "configs/examples/keras/diverging_from_start",
    },
    "saturated_softmax": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "optimizer": "sgd",
        "lr": 50.0,
        "momentum": 0.9,
        "batch_size": 32,
        "epochs": 6,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 2,
        "log_dir": "configs/examples/keras/saturated_softmax",
    },
    "lr_too_low": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "optimizer": "sgd",
        "learning_rate": 1e-06,
        "momentum": 0.0,
        "batch_size": 32,
        "epochs": 12,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 3,
        "output_dir": "configs/examples/keras/lr_too_low",
    },
    "overfitting": {
        "model": "mlp",
        "hidden_layers": [512, 512],
        "num_classes": 10,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "epochs": 40,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "dataset": "teacher",
        "num_features": 10,
        "label_noise": 0.2,
        "num_train_samples": 200,
        "num_val_samples": 1000,
        "seed": 4,
        "output_dir": "configs/examples/keras/overfitting",
    },
    "chance_level": {
        "model": "lstm",
        "lstm_units": 32,
        "num_classes": 2,
        "sequence_length": 20,
        "num_features": 8,
        "optimizer": "adam",
        "learning_rate": 0.0005,
        "batch_size": 128,
        "epochs": 5,
        "dropout": 0.2,
        "dataset": "random_labels",
        "num_train_samples": 8000,
        "num_val_samples": 1000,
        "seed": 5,
        "output_dir": "configs/examples/keras/chance_level",
    },
    "plateau": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "optimizer": "sgd",
        "learning_rate": 0.05,
        "momentum": 0.9,
        "lr_schedule": {"type": "step", "drop_every_epochs": 3, "factor": 0.1},
        "batch_size": 32,
        "epochs": 18,
        "label_smoothing": 0.1,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 6,
        "output_dir": "configs/examples/keras/plateau",
    },
    "oscillating": {
        "model": "mlp",
        "hidden_units": 64,
        "num_classes": 10,
        "from_logits": True,
        "optimizer": "sgd",
        "learning_rate": 3.0,
        "momentum": 0.0,
        "batch_size": 32,
        "epochs": 15,
        "dropout": 0.0,
        "weight_decay": 0.0,
        "dataset": "teacher",
        "num_features": 10,
        "num_train_samples": 2000,
        "num_val_samples": 500,
        "seed": 7,
        "output_dir": "configs/examples/keras/oscillating",
    },
}

# Scenarios whose training script also prints model.summary(), as many users do.
SUMMARY_SCENARIOS = ("healthy", "chance_level")


# ---------------------------------------------------------------------------
# Child side: the "user's training script". Runs inside the pseudo-terminal.
# ---------------------------------------------------------------------------


def make_data(cfg: dict):
    """Synthetic data from the config's seed; nothing is read from disk."""
    import numpy as np

    rng = np.random.default_rng(cfg["seed"])
    n_train, n_val = cfg["num_train_samples"], cfg["num_val_samples"]
    classes = cfg["num_classes"]
    n = n_train + n_val
    if cfg["dataset"] == "teacher":
        # Labels from a fixed random "teacher": a linear map plus a small tanh
        # network. Learnable to ~85% by a small MLP, not linearly separable, so a
        # student needs several epochs.
        d = cfg["num_features"]
        teacher = np.random.default_rng(1234)  # same task for every scenario
        w_lin = teacher.normal(size=(d, classes))
        w1 = teacher.normal(size=(d, TEACHER_HIDDEN))
        w2 = teacher.normal(size=(TEACHER_HIDDEN, classes))
        x = rng.normal(size=(n, d)).astype("float32")
        logits = TEACHER_LINEAR_WEIGHT * (x @ w_lin) + np.tanh(x @ w1) @ w2
        y = logits.argmax(axis=1)
    elif cfg["dataset"] == "random_labels":
        # Labels drawn independently of the inputs: nothing to learn.
        x = rng.normal(size=(n, cfg["sequence_length"], cfg["num_features"]))
        x = x.astype("float32")
        y = rng.integers(0, classes, size=n)
    else:
        raise SystemExit(f"unknown dataset {cfg['dataset']!r}")
    x_train, y_train = x[:n_train], y[:n_train].copy()
    x_val, y_val = x[n_train:], y[n_train:]
    noise = cfg.get("label_noise", 0.0)
    if noise:
        # Flip a fraction of the training labels to a different class.
        flip = rng.random(n_train) < noise
        shift = rng.integers(1, classes, size=n_train)
        y_train[flip] = (y_train[flip] + shift[flip]) % classes
    return (x_train, y_train), (x_val, y_val)


def make_optimizer(cfg: dict):
    import keras

    opt = cfg["optimizer"]
    lr = base_learning_rate(cfg)
    if isinstance(opt, dict):
        name = opt["name"]
        momentum = opt.get("momentum", 0.0)
    else:
        name = opt
        momentum = cfg.get("momentum", 0.0)
    weight_decay = cfg.get("weight_decay") or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=momentum, weight_decay=weight_decay
        )
    raise SystemExit(f"unknown optimizer {name!r}")


def make_model(cfg: dict):
    import keras

    classes = cfg["num_classes"]
    binary = classes == 2
    dropout = cfg.get("dropout", 0.0)
    if cfg["model"] == "mlp":
        inputs = keras.Input(shape=(cfg["num_features"],))
        h = inputs
        for units in cfg.get("hidden_layers", [cfg.get("hidden_units")]):
            h = keras.layers.Dense(units, activation=cfg.get("activation", "relu"))(h)
            if dropout:
                h = keras.layers.Dropout(dropout)(h)
    elif cfg["model"] == "lstm":
        inputs = keras.Input(shape=(cfg["sequence_length"], cfg["num_features"]))
        h = keras.layers.LSTM(cfg["lstm_units"])(inputs)
        if dropout:
            h = keras.layers.Dropout(dropout)(h)
    else:
        raise SystemExit(f"unknown model {cfg['model']!r}")
    # With from_logits the loss is computed from raw scores and is unbounded; with a
    # softmax layer Keras clips probabilities at 1e-7, capping the loss near 16.
    if cfg.get("from_logits"):
        activation = None
    else:
        activation = "sigmoid" if binary else "softmax"
    outputs = keras.layers.Dense(1 if binary else classes, activation=activation)(h)
    return keras.Model(inputs, outputs, name=cfg["model"])


def make_loss(cfg: dict):
    import keras

    logits = bool(cfg.get("from_logits"))
    if cfg["num_classes"] == 2:
        return keras.losses.BinaryCrossentropy(from_logits=logits)
    if cfg.get("label_smoothing"):
        # Sparse cross-entropy has no label smoothing: one-hot targets instead.
        return keras.losses.CategoricalCrossentropy(
            from_logits=logits, label_smoothing=cfg["label_smoothing"]
        )
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)


def base_learning_rate(cfg: dict) -> float:
    opt = cfg["optimizer"]
    if isinstance(opt, dict):
        return float(opt.get("lr", opt.get("learning_rate")))
    return float(cfg.get("learning_rate", cfg.get("lr")))


def epoch_schedule(cfg: dict, schedule: dict):
    """The per-epoch learning rate the config asks for (the configured lr is the peak)."""
    base = base_learning_rate(cfg)
    if schedule["type"] == "step":
        every, factor = schedule["drop_every_epochs"], schedule["factor"]
        return lambda epoch: base * factor ** (epoch // every)
    raise SystemExit(f"unknown lr_schedule type {schedule['type']!r}")


def make_callbacks(cfg: dict, out: Path) -> list:
    import keras

    callbacks = []
    schedule = cfg.get("lr_schedule")
    if schedule:
        callbacks.append(
            keras.callbacks.LearningRateScheduler(epoch_schedule(cfg, schedule))
        )
    # The scheduler above runs before CSVLogger, so learning_rate reaches the CSV.
    callbacks.append(keras.callbacks.CSVLogger(str(out / "history.csv")))
    plateau = cfg.get("reduce_lr_on_plateau")
    if plateau:
        # Deliberately after CSVLogger, as in many user scripts: learning_rate is
        # then in history.json and on the console but not in history.csv.
        callbacks.append(keras.callbacks.ReduceLROnPlateau(**plateau))
    return callbacks


def train(cfg: dict, out: Path, verbose: int, summary: bool) -> None:
    import keras
    import numpy as np

    keras.utils.set_random_seed(cfg["seed"])
    (x_train, y_train), (x_val, y_val) = make_data(cfg)
    if cfg.get("label_smoothing") and cfg["num_classes"] > 2:
        y_train = np.eye(cfg["num_classes"], dtype="float32")[y_train]
        y_val = np.eye(cfg["num_classes"], dtype="float32")[y_val]
    model = make_model(cfg)
    model.compile(
        optimizer=make_optimizer(cfg), loss=make_loss(cfg), metrics=["accuracy"]
    )
    if summary:
        model.summary()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        verbose=verbose,
        callbacks=make_callbacks(cfg, out),
    )
    # What a user does to keep the history: floats, NaN written bare.
    (out / "history.json").write_text(json.dumps(history.history))


def output_dir_key(cfg: dict) -> str:
    return "output_dir" if "output_dir" in cfg else "log_dir"


def child_main(args) -> None:
    cfg = json.loads(Path(args.config).read_text())
    out = REPO / cfg[output_dir_key(cfg)]
    out.mkdir(parents=True, exist_ok=True)
    train(cfg, out, args.verbose, args.summary)


# ---------------------------------------------------------------------------
# Parent side: run each scenario under a pseudo-terminal, check, document.
# ---------------------------------------------------------------------------


def run_child(
    name: str, config: Path, verbose: int, sink: str = "pty", stop_after_epoch: int = 0
) -> bytes:
    """Train the config in a child process; return the raw bytes of its console.

    sink "pty": stdin/stdout/stderr on a fresh pseudo-terminal, as on a user's console.
    sink "file": stdout and stderr redirected to one file (`python train.py > log 2>&1`).
    With stop_after_epoch N (pty only), capture ends, and the child is killed, once the
    progress bar of epoch N is past half way: the log as it stands in a running job.
    """
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--config",
        str(config),
        "--verbose",
        str(verbose),
    ]
    if name in SUMMARY_SCENARIOS:
        argv.append("--summary")
    env = dict(os.environ, KERAS_BACKEND="jax", TERM=os.environ.get("TERM", "xterm"))
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    if sink == "file":
        with tempfile.TemporaryFile() as log:
            code = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=REPO,
            ).returncode
            log.seek(0)
            console = log.read()
    else:
        code, console = run_in_pty(argv, env, stop_after_epoch)
    if code != 0:
        sys.stderr.write(console.decode("utf-8", "replace"))
        raise SystemExit(f"{name}: training exited with {code}")
    return console


def run_in_pty(argv: list[str], env: dict, stop_after_epoch: int) -> tuple[int, bytes]:
    """Run argv on a fresh pseudo-terminal; return its exit code (0 when we stopped
    it on purpose) and every byte the terminal received."""
    master, slave = os.openpty()
    fcntl.ioctl(
        slave,
        termios.TIOCSWINSZ,
        struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0),
    )
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    os.close(slave)
    console = b""
    marker = f"Epoch {stop_after_epoch}/".encode()
    stopped = False
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side of the terminal
            break
        if not data:
            break
        console += data
        if stop_after_epoch and marker in console:
            steps = PROGRESS.findall(console[console.index(marker) :])
            if steps and 2 * int(steps[-1][0]) >= int(steps[-1][1]):
                proc.kill()
                stopped = True
                break
    os.close(master)
    code = proc.wait()
    return (0 if stopped else code), console


# The step counter at the start of a verbose=1 progress line: "\x1b[1m 31/63\x1b[0m".
PROGRESS = re.compile(rb"\x1b\[1m *(\d+)/(\d+)\x1b\[0m")


def load_history(path: Path) -> dict:
    # json.loads accepts Python's bare NaN/Infinity.
    return json.loads(path.read_text())


def finite(v: float) -> bool:
    return math.isfinite(v)


def check(name: str, cfg: dict, h: dict) -> list[str]:
    """Return the ways the run fails to show its pathology (empty when it does)."""
    loss, val = h["loss"], h["val_loss"]
    acc, val_acc = h["accuracy"], h["val_accuracy"]
    chance = math.log(cfg["num_classes"])
    bad = []

    def need(cond: bool, why: str) -> None:
        if not cond:
            bad.append(why)

    if name == "healthy":
        need(all(map(finite, loss + val)), "non-finite value")
        need(all(b < a for a, b in zip(loss, loss[1:])), "loss not falling every epoch")
        need(val[-1] < 0.6 * val[0], "val_loss did not fall by 40%")
        need(val.index(min(val)) >= len(val) - 3, "best val_loss not near the end")
        need(longest_rise(val)[0] < 2, "val_loss rose two epochs in a row")
    elif name == "diverging":
        need(finite(loss[0]) and loss[0] < chance, "first epoch not below ln C")
        need(finite(loss[1]) and loss[1] < loss[0], "second epoch not improving")
        need(any(not finite(v) for v in loss), "loss never became non-finite")
    elif name == "diverging_from_start":
        need(not finite(loss[0]) or loss[0] >= 1e3, "first epoch not exploded")
        need(any(not finite(v) for v in loss), "loss never became non-finite")
    elif name == "saturated_softmax":
        need(all(map(finite, loss + val)), "non-finite value")
        need(loss[0] > 4 * chance, "first epoch not far above ln C")
        need(spread(loss[1:]) < 0.05, "loss not flat after the first epoch")
        need(max(acc + val_acc) < 0.2, "accuracy not near chance")
    elif name == "lr_too_low":
        need(all(map(finite, loss)), "non-finite value")
        need(abs(loss[-1] - loss[0]) / loss[0] < 0.01, "loss moved more than 1%")
        need(abs(loss[0] - chance) / chance < 0.25, "loss not near ln C")
    elif name == "overfitting":
        need(all(map(finite, loss + val)), "non-finite value")
        need(all(b < a for a, b in zip(loss, loss[1:])), "train loss not always falling")
        best = val.index(min(val))
        need(best < len(val) - 10, "val_loss still at its best near the end")
        need(val[-1] > 1.5 * min(val), "val_loss not well above its best")
        need(longest_rise(val[best:])[0] >= 3, "no 3 consecutive val_loss rises")
    elif name == "chance_level":
        need(all(abs(v - chance) / chance < 0.02 for v in loss + val), "loss off ln C")
        need(all(abs(a - 0.5) < 0.03 for a in acc + val_acc), "accuracy off 1/C")
    elif name == "plateau":
        need(all(map(finite, loss + val)), "non-finite value")
        need(loss[2] < 0.8 * loss[0], "no early progress")
        need(spread(val[-10:]) < 0.005, "val_loss tail not flat")
        need(spread(loss[-10:]) < 0.005, "loss tail not flat")
    elif name == "oscillating":
        # Judge after the first rapid epochs, as the published detectors do.
        need(all(map(finite, loss + val)), "non-finite value")
        need(max(loss + val) < 2 * chance, "loss left the sane range")
        for key, amplitude in (("accuracy", 0.03), ("val_accuracy", 0.05)):
            window = h[key][OSCILLATION_SKIP:]
            need(
                direction_changes(window) >= 0.6 * (len(window) - 2),
                f"{key} not zig-zagging",
            )
            need(max(window) - min(window) >= amplitude, f"{key} swings too small")
        window = val[OSCILLATION_SKIP:]
        need(window[-1] >= window[0], "val_loss made net progress")
    return bad


# Epochs left out before judging the oscillating run (its first epochs still descend).
OSCILLATION_SKIP = 3


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / min(values)


def longest_rise(values: list[float]) -> tuple[int, int]:
    """Longest run of consecutive increases, and the index where it starts."""
    best = (0, 0)
    run, start = 0, 0
    for i, (a, b) in enumerate(zip(values, values[1:])):
        if b > a:
            if run == 0:
                start = i
            run += 1
            best = max(best, (run, start), key=lambda r: r[0])
        else:
            run = 0
    return best


def direction_changes(values: list[float]) -> int:
    steps = [b - a for a, b in zip(values, values[1:]) if b != a]
    return sum(1 for s, t in zip(steps, steps[1:]) if (s > 0) != (t > 0))


def fmt(v: float) -> str:
    if not finite(v):
        return repr(v)
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"


def describe(h: dict) -> list[str]:
    """The key numbers of a run, as Markdown lines."""
    out = ["| series | first | last | best (epoch) |", "|---|---|---|---|"]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        values = h[key]
        finite_values = [v for v in values if finite(v)]
        if finite_values:
            best = (min if "loss" in key else max)(finite_values)
            best_text = f"{fmt(best)} ({values.index(best)})"
        else:
            best_text = "none finite"
        out.append(f"| {key} | {fmt(values[0])} | {fmt(values[-1])} | {best_text} |")
    notes = []
    loss = h["loss"]
    huge = [i for i, v in enumerate(loss) if finite(v) and v >= 1e3]
    if huge:
        notes.append(f"loss first ≥ 1e3 at epoch {huge[0]} ({loss[huge[0]]!r})")
    non_finite = [i for i, v in enumerate(loss) if not finite(v)]
    if non_finite:
        i = non_finite[0]
        notes.append(
            f"loss first non-finite at epoch {i} ({loss[i]!r}); "
            f"{len(non_finite)} non-finite epochs"
        )
    run, start = longest_rise(h["val_loss"])
    if run:
        notes.append(
            f"longest run of val_loss rises: {run} (epochs {start} to {start + run})"
        )
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        notes.append(f"{key}: " + ", ".join(fmt(v) for v in h[key]))
    if "learning_rate" in h:
        notes.append("learning_rate: " + ", ".join(repr(v) for v in h["learning_rate"]))
    return out + [""] + [f"- {n}" for n in notes]


README_INTRO = """# Keras fixtures

Real output of Keras {keras} (JAX {jax} backend, CPU, Python {python}), produced by
`examples/make_keras_fixtures.py`. Every file here was written by Keras, by the
one `json.dumps(history.history)` a user would write, or is the raw console; nothing is
post-processed. Regenerate (80-90 s on 2 cores) with

    pip install keras jax
    KERAS_BACKEND=jax python examples/make_keras_fixtures.py [SCENARIO...]

Per scenario:

- `config.json`: the config the run was built from (every key is read by the script).
- `history.csv`: `keras.callbacks.CSVLogger`.
- `history.json`: `json.dumps(model.fit(...).history)`; non-finite values bare (`NaN`,
  `Infinity`), as Python writes them.
- `training.log`: raw console bytes of `fit(verbose=1)` through a {cols}x{rows}
  pseudo-terminal.
- `training_v2.log` (in {v2}): the same run with `verbose=2`, through the
  pseudo-terminal.
- `training_redirected.log` (in {redirected}): the same run as
  `python train.py > training.log 2>&1`, no terminal.
- `training_partial.log` (in {partial}): the console of the same run still in
  progress, captured half way through epoch {partial_epoch} (the process was then
  killed): it ends in a partial progress line, as seed 000 does.

What Keras writes (observed with these versions):

- Progress redraws are `\\b` × the previous line's width, then `\\r`, then the new line
  (the first redraw of an epoch has no `\\b`). Keras does this into a pipe or a file too:
  its dynamic-display test is true whenever the `posix` module is loaded, which is every
  Linux/macOS Python. So `training.log` and `training_redirected.log` differ only in line
  ends (`\\r\\n` from the terminal's ONLCR versus `\\n`), stderr interleaving and timing.
  Redraws come at most every 50 ms, so their number varies from run to run.
- ANSI codes on every progress line, terminal or not: `\\x1b[1m` bold step counter and
  elapsed time, `\\x1b[32m` green done part and `\\x1b[37m` grey rest of the `━` bar,
  `\\x1b[0m` reset. verbose=2 lines carry neither ANSI codes nor redraws.
  `model.summary()` (printed in {summary}) is drawn by rich with box characters, and
  with colours only on a terminal.
- Console values: 4 decimals, or `%.4e` when |v| ≤ 1e-3 (`1.0000e-06`); large values
  in full, never in `e` notation (`loss: 392897202025939739869184000.0000` in
  `diverging_from_start`); non-finite as `nan` / `inf`. verbose=2 tests `v > 1e-3`
  without the absolute value, so it prints a negative value in `e` notation.
- `history.csv`: CRLF line ends, header `epoch` then the metric names sorted as in the
  first epoch's logs, epochs from 0, non-finite values as `nan` / `inf`, floats in
  Python's shortest repr of the float32 value widened to double (`2.121727705001831`).
- The learning rate is in the logs only when a callback puts it there
  (ReduceLROnPlateau, LearningRateScheduler), as `learning_rate`, a float32 widened to
  double (`0.0010000000474974513`; `5e-05` is `4.999999873689376e-05`). A callback
  listed after CSVLogger adds it to `history.json` and the console but not to the CSV,
  whose columns are fixed at the first epoch (see `healthy`).
- With a softmax output layer Keras clips probabilities at 1e-7, so the cross-entropy of
  a blown-up run saturates near -ln(1e-7) ≈ 16.1 instead of going to inf
  (`saturated_softmax`); with `from_logits` it is unbounded and reaches inf/NaN.

The numbers below come from `history.json`; epochs are 0-based, as in the CSV. They were
produced on this machine; XLA's CPU kernels may round differently elsewhere, and the
diverging and oscillating runs are chaotic, so their exact numbers are not portable
(a rerun here reproduces them exactly).
"""


SCENARIO_NOTES = {
    "healthy": "10-class MLP, Adam 1e-3: the loss falls every epoch and val_loss "
    "follows. ReduceLROnPlateau (never fires) is listed after CSVLogger, so "
    "`learning_rate` is in history.json and on the console but not in history.csv.",
    "diverging": "Two-layer leaky-ReLU MLP, from_logits, SGD lr 0.42 with momentum 0.9 "
    "(nested optimizer object): two sane epochs below ln 10, then the loss climbs and "
    "turns NaN. The accuracy of the NaN epochs is that of a constant prediction.",
    "diverging_from_start": "MLP, from_logits, SGD lr 5 with momentum 0.9: the first "
    "epoch's loss is already in the billions; it reaches inf, then NaN.",
    "saturated_softmax": "MLP with a softmax output, SGD lr 50 with momentum 0.9: the "
    "weights blow up in the first epoch and the clipped cross-entropy saturates (here "
    "near 14, about 6 × ln 10; its bound is -ln(1e-7) ≈ 16.1) and stays there, with "
    "accuracy at chance. Nothing is non-finite: the familiar 'loss stuck at 14.5' of "
    "Keras forums.",
    "lr_too_low": "SGD lr 1e-6: the loss stays at its initial value, a little above "
    "ln 10, for every epoch.",
    "overfitting": "200 training samples with 20% flipped labels, a 512x512 MLP, no "
    "regularisation, 40 epochs: the training loss falls every epoch while val_loss "
    "climbs after its best epoch.",
    "chance_level": "LSTM, binary, labels independent of the inputs (as in seed 000): "
    "loss at ln 2 = 0.6931, accuracy at 0.5, from the first epoch to the last.",
    "plateau": "SGD 0.05 with momentum, a step schedule that divides the learning rate "
    "by 10 every 3 epochs (LearningRateScheduler, listed before CSVLogger, so "
    "`learning_rate` is a CSV column) and label smoothing 0.1: progress for a few "
    "epochs, then flat.",
    "oscillating": "MLP, from_logits, plain SGD at lr 3: after the first epochs the "
    "accuracy and val_loss zig-zag with no net progress on validation, without "
    "diverging.",
}

# Extra console captures: which scenarios get them.
VERBOSE2_SCENARIOS = ("healthy", "diverging", "chance_level")
REDIRECTED_SCENARIOS = ("healthy", "diverging")
PARTIAL_SCENARIOS = {"chance_level": 3}  # scenario -> epoch cut half way through


def write_readme(root: Path) -> None:
    import importlib.metadata as md

    def names(items) -> str:
        return ", ".join(f"`{s}`" for s in items)

    intro = README_INTRO.format(
        keras=md.version("keras"),
        jax=md.version("jax"),
        python=".".join(map(str, sys.version_info[:3])),
        cols=TERMINAL_COLUMNS,
        rows=TERMINAL_ROWS,
        v2=names(VERBOSE2_SCENARIOS),
        redirected=names(REDIRECTED_SCENARIOS),
        partial=names(PARTIAL_SCENARIOS),
        partial_epoch=", ".join(str(e) for e in PARTIAL_SCENARIOS.values()),
        summary=names(SUMMARY_SCENARIOS),
    )
    parts = [intro]
    for name in SCENARIOS:
        path = root / name / "history.json"
        if not path.exists():
            continue
        cfg = json.loads((root / name / "config.json").read_text())
        h = load_history(path)
        files = sorted(p.name for p in (root / name).iterdir())
        parts.append(f"## {name}\n")
        parts.append(SCENARIO_NOTES[name] + "\n")
        parts.append(
            f"Command: `KERAS_BACKEND=jax python examples/make_keras_fixtures.py {name}`."
            f" {len(h['loss'])} epochs, C = {cfg['num_classes']},"
            f" ln C = {math.log(cfg['num_classes']):.4f}. Files: {names(files)}.\n"
        )
        parts.append("\n".join(describe(h)) + "\n")
    (root / "README.md").write_text("\n".join(parts))


def produce(name: str, root: Path) -> float:
    """Run one scenario with all its captures; return the seconds it took."""
    start = time.monotonic()
    out = root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = SCENARIOS[name]
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "training.log").write_bytes(run_child(name, out / "config.json", 1))
    reference = (out / "history.json").read_text()
    extra = []
    if name in VERBOSE2_SCENARIOS:
        extra.append(("training_v2.log", 2, "pty", 0))
    if name in REDIRECTED_SCENARIOS:
        extra.append(("training_redirected.log", 1, "file", 0))
    if name in PARTIAL_SCENARIOS:
        extra.append(("training_partial.log", 1, "pty", PARTIAL_SCENARIOS[name]))
    for filename, verbose, sink, stop in extra:
        # The same config and seed again, writing to a scratch directory; its history
        # must match the first run's: a determinism check for free.
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            rerun = dict(cfg, **{output_dir_key(cfg): str(scratch)})
            (scratch / "config.json").write_text(json.dumps(rerun, indent=2) + "\n")
            console = run_child(name, scratch / "config.json", verbose, sink, stop)
            if not stop and (scratch / "history.json").read_text() != reference:
                print(f"{name}: {filename}: the rerun's history differs from the first")
        (out / filename).write_bytes(console)
    return time.monotonic() - start


def parent_main(args) -> None:
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}")
    root = REPO / OUT_ROOT
    failures = 0
    total = 0.0
    for name in names:
        seconds = produce(name, root)
        total += seconds
        bad = check(name, SCENARIOS[name], load_history(root / name / "history.json"))
        status = "ok" if not bad else "DOES NOT SHOW ITS PATHOLOGY: " + "; ".join(bad)
        print(f"{name:22s} {seconds:5.1f}s  {status}", flush=True)
        failures += bool(bad)
    write_readme(root)
    print(f"total {total:.1f}s")
    if failures:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--summary", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
