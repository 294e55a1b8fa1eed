#!/usr/bin/env python3
"""retune in a training loop with no framework: a numpy MLP trained by SGD with momentum.

This is what the Keras, PyTorch, Hugging Face and Lightning callbacks do, written out
with `retune`'s building blocks (`BestTracker`, `MetricsLog`, `Retune`) for a trainer of
your own: append the epoch's metrics to a CSVLogger-format file, run
`retune suggest --format json --in-place`, then act on the decision (restore the best
weights, or start again from fresh ones; use the new learning rate; stop).

The config asks for a learning rate of 10 with momentum 0.9 on a 10-class task generated
here: the first epoch blows up (the loss reaches 1e26) and the run never recovers (NaN,
accuracy at chance). With retune, the learning rate is cut tenfold and the weights start
afresh after the first epoch, and again after the second (still far above ln 10), and
the run learns (about 0.8 validation accuracy in 15 epochs, a second on a CPU).

    pip install retune numpy            # or: pip install . numpy  (in this repository)
    python examples/numpy_trainer.py
    python examples/numpy_trainer.py --no-retune
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from retune import BestTracker, MetricsLog, Retune
from retune._param_groups import scale_live

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_classes": 10,
    "num_features": 10,
    "optimizer": "sgd",
    "lr": 10.0,
    "momentum": 0.9,
    "batch_size": 32,
    "epochs": 15,
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
    x = rng.normal(size=(n, d))
    y = (2.0 * (x @ w_lin) + np.tanh(x @ w1) @ w2).argmax(axis=1)
    split = cfg["num_train_samples"]
    return (x[:split], y[:split]), (x[split:], y[split:])


class MLP:
    """One ReLU hidden layer, softmax cross-entropy, SGD with momentum."""

    def __init__(self, cfg: dict, rng: np.random.Generator):
        d, h, c = cfg["num_features"], cfg["hidden_units"], cfg["num_classes"]

        # Glorot-uniform, as Keras' Dense does.
        def glorot(fan_in, fan_out):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, size=(fan_in, fan_out))

        self.params = {"w1": glorot(d, h), "b1": np.zeros(h), "w2": glorot(h, c), "b2": np.zeros(c)}
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    def logits(self, x):
        hidden = np.maximum(0.0, x @ self.params["w1"] + self.params["b1"])
        return hidden, hidden @ self.params["w2"] + self.params["b2"]

    def loss_and_accuracy(self, x, y):
        with np.errstate(all="ignore"):  # a blown-up run overflows: that is the data
            _, z = self.logits(x)
            z = z - z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = float(-log_p[np.arange(len(y)), y].mean())
        return loss, float((z.argmax(axis=1) == y).mean())

    def sgd_step(self, x, y, lr: float, momentum: float):
        with np.errstate(all="ignore"):
            hidden, z = self.logits(x)
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(y)), y] -= 1.0
            dz = p / len(y)
            dh = (dz @ self.params["w2"].T) * (hidden > 0)
            grads = {"w2": hidden.T @ dz, "b2": dz.sum(0), "w1": x.T @ dh, "b1": dh.sum(0)}
            for k, g in grads.items():  # Keras' SGD: v = m*v - lr*g; w += v
                self.velocity[k] = momentum * self.velocity[k] - lr * g
                self.params[k] = self.params[k] + self.velocity[k]

    def copy_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def load(self, params):
        self.params = {k: v.copy() for k, v in params.items()}
        # The momentum of the abandoned weights would push the loaded ones the same way.
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}


def train(config_path: Path, run_dir: Path, use_retune: bool) -> dict:
    cfg = json.loads(config_path.read_text())
    (x, y), (x_val, y_val) = make_data(cfg)
    rng = np.random.default_rng(cfg["seed"])
    model = MLP(cfg, rng)
    lr, momentum = float(cfg["lr"]), float(cfg["momentum"])

    retune = (
        Retune(config_path, run_dir=run_dir, extra_args=["--provider", "rules"])
        if use_retune
        else None
    )
    metrics = MetricsLog(run_dir / "metrics.csv")
    best = BestTracker()  # val_loss, else loss
    best_params = None
    history = []
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(x))
        for start in range(0, len(x), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            model.sgd_step(x[batch], y[batch], lr, momentum)
        loss, acc = model.loss_and_accuracy(x, y)
        val_loss, val_acc = model.loss_and_accuracy(x_val, y_val)
        row = {
            "loss": loss,
            "accuracy": acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
        }
        history.append(row)
        metrics.append(epoch, row)
        if best.improved(epoch, row):
            best_params = model.copy_params()
        if retune is None:
            continue
        decision = retune.suggest(metrics.path, "keras-csv")
        if decision is None:  # retune failed: it logged why; train on unchanged
            continue
        said = []
        if decision.restart or (decision.restore_checkpoint and best_params is None):
            model = MLP(cfg, rng)  # fresh weights
            best.reset()
            best_params = None
            said.append("restart: fresh weights")
        elif decision.restore_checkpoint:
            model.load(best_params)
            said.append(f"restore_checkpoint: weights of epoch {best.best_epoch + 1}")
        for change in decision.changes:
            if change.canonical == "learning_rate":
                lr = scale_live(lr, change)
            elif change.canonical == "momentum":
                momentum = scale_live(momentum, change)
            else:
                said.append(f"{change.parameter} → {change.new} only in the config")
                continue
            said.append(f"{change.parameter} {change.old!r} → {change.new!r}")
        if said:
            print(
                f"after epoch {epoch + 1}: loss {loss:.4g}, val_loss {val_loss:.4g}: "
                + "; ".join(said)
                + f" (report {decision.report})"
            )
        if decision.stop_early:
            print(f"after epoch {epoch + 1}: stop_early")
            break
    return {"history": history, "lr": lr, "momentum": momentum}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--no-retune", action="store_true", help="train without retune")
    args = parser.parse_args()
    run = args.dir or Path(tempfile.mkdtemp(prefix="retune-numpy-"))
    run.mkdir(parents=True, exist_ok=True)
    config_path = run / "config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")

    started = time.monotonic()
    result = train(config_path, run / "retune", use_retune=not args.no_retune)
    h = result["history"]
    print(
        f"\n{len(h)} epochs in {time.monotonic() - started:.1f} s "
        f"({'without' if args.no_retune else 'with'} retune)"
    )
    print("val_loss:    ", " ".join(f"{r['val_loss']:.3g}" for r in h))
    print("val_accuracy:", " ".join(f"{r['val_accuracy']:.3f}" for r in h))
    print(f"learning rate: {CONFIG['lr']!r} at the start, {result['lr']!r} at the end")
    print(
        json.dumps(
            {
                "final_val_loss": h[-1]["val_loss"],
                "final_val_accuracy": h[-1]["val_accuracy"],
                "learning_rate": result["lr"],
                "epochs": len(h),
                "dir": str(run),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
