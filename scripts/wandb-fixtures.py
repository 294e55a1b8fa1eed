#!/usr/bin/env python3
"""Writes the W&B run folders retune's tests read, with the real `wandb` client.

    WANDB_MODE=offline python scripts/wandb-fixtures.py OUT_DIR

OUT_DIR/wandb/ then holds a sweep of four offline runs (`offline-run-<time>-<id>/` with
`run-<id>.wandb`, as `wandb.init` writes them) and the `latest-run` symlink to the last.
No account and no network: the runs stay offline. The client is pinned in .ci/run
(wandb==0.31.0); tests/fixtures/wandb/ holds a copy made by this script (see its README).

The runs share one config shape and differ in the learning rate. The one at 0.5 diverges
(its loss grows and turns NaN at epoch 7); the three at 0.01, 0.003 and 0.001 converge.
Three of them log `epoch` (from 0, as Keras and Lightning count); the run at 0.001 logs
its metrics without it, so its epochs are W&B's `_step`. The metrics are computed, not
trained, so every run writes the same values each time.

This file must not be named wandb.py: it would shadow the client's module.
"""

from __future__ import annotations

import math
import os
import sys
import time

EPOCHS = 12
SWEEP = [
    # (run id, learning rate, logs `epoch`)
    ("lr0p5", 0.5, True),
    ("lr0p01", 0.01, True),
    ("lr0p003", 0.003, True),
    ("lr0p001", 0.001, False),
]
# Seconds between system-metric samples (the client's minimum), and the pause after each
# epoch's log. The diverging run pauses longer, so that its file grows past one 32 KiB
# block and holds records split across blocks, as a real run's file does.
STATS_INTERVAL = 0.1
PAUSE = 0.1
SICK_PAUSE = 0.6
# The epoch (1-based) at which the diverging run's loss becomes NaN.
NAN_EPOCH = 7


def curve(lr: float, epoch: int) -> dict[str, float]:
    """Loss and accuracy after `epoch` (1-based) of a run at learning rate `lr`."""
    if lr >= 0.1:
        loss = 2.3 * math.exp(0.45 * (epoch - 1))
        if epoch >= NAN_EPOCH:
            loss = float("nan")
        acc = max(0.1, 0.3 - 0.03 * epoch)
        return {
            "loss": loss,
            "val_loss": loss * 1.1 if not math.isnan(loss) else loss,
            "accuracy": acc,
            "val_accuracy": acc - 0.01,
        }
    rate = min(0.35, 40 * lr)
    loss = 0.25 + 2.05 * math.exp(-rate * epoch)
    val = loss + 0.05 + 0.002 * epoch
    acc = 1 - loss / 2.6
    return {
        "loss": round(loss, 6),
        "val_loss": round(val, 6),
        "accuracy": round(acc, 6),
        "val_accuracy": round(acc - 0.02, 6),
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: wandb-fixtures.py OUT_DIR")
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = out
    os.environ.setdefault("WANDB_SILENT", "true")
    # No git metadata or code saving from the repository the script runs in.
    os.environ["WANDB_DISABLE_GIT"] = "true"
    os.environ["WANDB_DISABLE_CODE"] = "true"
    import wandb

    for run_id, lr, logs_epoch in SWEEP:
        run = wandb.init(
            project="retune-fixtures",
            group="lr-sweep",
            id=run_id,
            config={
                "optimizer": "adam",
                "learning_rate": lr,
                "batch_size": 32,
                "epochs": EPOCHS,
                "num_classes": 10,
            },
            # System metrics sampled often, so that the files hold the stats records a
            # real run interleaves with its history (and grow past one 32 KiB block).
            settings=wandb.Settings(x_stats_sampling_interval=STATS_INTERVAL, console="off"),
        )
        for epoch in range(1, EPOCHS + 1):
            row: dict[str, float] = dict(curve(lr, epoch))
            if logs_epoch:
                row["epoch"] = epoch - 1
            run.log(row)
            time.sleep(SICK_PAUSE if lr >= 0.1 else PAUSE)
        run.finish()
    print(out)


if __name__ == "__main__":
    main()
