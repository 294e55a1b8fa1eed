#!/usr/bin/env python3
"""A Hugging Face Trainer run that starts with a learning rate far too high, tuned by
retune.

A small torch MLP (any nn.Module whose forward returns a dict with `loss` works with the
Trainer) learns a 10-class task from data this script generates. The config asks for
AdamW at learning rate 1.0 with the Trainer's default linear decay: the first epoch
blows up. `RetuneTrainerCallback` reads the Trainer's `log_history` after each
evaluation, and retune cuts the rate (the schedule's `base_lrs` follow) and restarts the
weights.

CI does not run this script (torch from PyPI pulls gigabytes of CUDA wheels); with torch
and transformers installed it runs on a CPU in under a minute:

    pip install retune torch transformers accelerate
    python examples/hf_example.py
    python examples/hf_example.py --no-retune
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from retune.hf import RetuneTrainerCallback  # retune: 1 of 3

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_labels": 10,
    "num_features": 10,
    "learning_rate": 1.0,
    "weight_decay": 0.0,
    "lr_scheduler_type": "linear",
    "per_device_train_batch_size": 32,
    "num_train_epochs": 10,
    "num_train_samples": 2000,
    "num_val_samples": 500,
    "seed": 0,
}


class Teacher(torch.utils.data.Dataset):
    """Rows {"x", "labels"}; labels from a fixed random "teacher" network."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def make_data(cfg: dict):
    gen = torch.Generator().manual_seed(cfg["seed"])
    teacher = torch.Generator().manual_seed(1234)
    d, c = cfg["num_features"], cfg["num_labels"]
    w_lin = torch.randn(d, c, generator=teacher)
    w1, w2 = torch.randn(d, 16, generator=teacher), torch.randn(16, c, generator=teacher)
    n = cfg["num_train_samples"] + cfg["num_val_samples"]
    x = torch.randn(n, d, generator=gen)
    y = (2.0 * (x @ w_lin) + torch.tanh(x @ w1) @ w2).argmax(dim=1)
    split = cfg["num_train_samples"]
    return Teacher(x[:split], y[:split]), Teacher(x[split:], y[split:])


class MLP(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg["num_features"], cfg["hidden_units"]),
            nn.ReLU(),
            nn.Linear(cfg["hidden_units"], cfg["num_labels"]),
        )

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def accuracy(prediction) -> dict:
    return {
        "accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--no-retune", action="store_true", help="train without retune")
    args = parser.parse_args()
    run = args.dir or Path(tempfile.mkdtemp(prefix="retune-hf-"))
    run.mkdir(parents=True, exist_ok=True)
    config_path = run / "config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    cfg = json.loads(config_path.read_text())

    torch.manual_seed(cfg["seed"])
    train, val = make_data(cfg)
    training_args = TrainingArguments(
        output_dir=str(run / "trainer"),
        learning_rate=cfg["learning_rate"],
        weight_decay=cfg["weight_decay"],
        lr_scheduler_type=cfg["lr_scheduler_type"],
        per_device_train_batch_size=cfg["per_device_train_batch_size"],
        num_train_epochs=cfg["num_train_epochs"],
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=cfg["seed"],
        disable_tqdm=True,
    )
    # retune: 2 of 3
    callbacks = (
        []
        if args.no_retune
        else [
            RetuneTrainerCallback(
                config_path, run_dir=run / "retune", extra_args=["--provider", "rules"]
            )
        ]
    )
    trainer = Trainer(
        model=MLP(cfg),
        args=training_args,
        train_dataset=train,
        eval_dataset=val,
        compute_metrics=accuracy,
        callbacks=callbacks,  # retune: 3 of 3
    )
    trainer.train()
    final = trainer.evaluate()
    lr = trainer.optimizer.param_groups[0]["lr"]
    print(f"learning rate now {lr:.6g} (config started at {CONFIG['learning_rate']})")
    print(
        json.dumps(
            {
                "final_val_loss": final["eval_loss"],
                "final_val_accuracy": final["eval_accuracy"],
                "learning_rate": lr,
                "dir": str(run),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
