#!/usr/bin/env python3
"""A PyTorch Lightning run that starts with a learning rate far too high, tuned by retune.

A small LightningModule learns a 10-class task from data this script generates. The
config asks for Adam at learning rate 1.0: the first epoch blows up. `RetuneCallback`
reads `trainer.callback_metrics` after each training epoch (after its validation), and
retune cuts the rate in `trainer.optimizers[0]` and restarts the weights.

CI does not run this script (torch from PyPI pulls gigabytes of CUDA wheels); with torch
and Lightning installed it runs on a CPU in under a minute:

    pip install retune lightning
    python examples/lightning_example.py
    python examples/lightning_example.py --no-retune
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning as L
except ImportError:  # the standalone package
    import pytorch_lightning as L

from retune.lightning import RetuneCallback  # retune: 1 of 3

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_classes": 10,
    "num_features": 10,
    "optimizer": "adam",
    "learning_rate": 1.0,
    "batch_size": 32,
    "max_epochs": 12,
    "num_train_samples": 2000,
    "num_val_samples": 500,
    "seed": 0,
}


def make_data(cfg: dict):
    """Labels from a fixed random "teacher" network: learnable to ~80% by a small MLP."""
    gen = torch.Generator().manual_seed(cfg["seed"])
    teacher = torch.Generator().manual_seed(1234)
    d, c = cfg["num_features"], cfg["num_classes"]
    w_lin = torch.randn(d, c, generator=teacher)
    w1, w2 = torch.randn(d, 16, generator=teacher), torch.randn(16, c, generator=teacher)
    n = cfg["num_train_samples"] + cfg["num_val_samples"]
    x = torch.randn(n, d, generator=gen)
    y = (2.0 * (x @ w_lin) + torch.tanh(x @ w1) @ w2).argmax(dim=1)
    split = cfg["num_train_samples"]
    train = TensorDataset(x[:split], y[:split])
    val = TensorDataset(x[split:], y[split:])
    return (
        DataLoader(train, batch_size=cfg["batch_size"], shuffle=True),
        DataLoader(val, batch_size=cfg["batch_size"]),
    )


class Classifier(L.LightningModule):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.Linear(cfg["num_features"], cfg["hidden_units"]),
            nn.ReLU(),
            nn.Linear(cfg["hidden_units"], cfg["num_classes"]),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        # on_epoch=True: the epoch's mean reaches trainer.callback_metrics.
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), on_epoch=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.cfg["learning_rate"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--no-retune", action="store_true", help="train without retune")
    args = parser.parse_args()
    run = args.dir or Path(tempfile.mkdtemp(prefix="retune-lightning-"))
    run.mkdir(parents=True, exist_ok=True)
    config_path = run / "config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    cfg = json.loads(config_path.read_text())

    L.seed_everything(cfg["seed"])
    train, val = make_data(cfg)
    # retune: 2 of 3
    callbacks = (
        []
        if args.no_retune
        else [
            RetuneCallback(config_path, run_dir=run / "retune", extra_args=["--provider", "rules"])
        ]
    )
    trainer = L.Trainer(
        max_epochs=cfg["max_epochs"],
        accelerator="cpu",
        callbacks=callbacks,  # retune: 3 of 3
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(run),
    )
    model = Classifier(cfg)
    trainer.fit(model, train, val)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    final = trainer.validate(model, val, verbose=False)[0]
    print(f"learning rate now {lr:.6g} (config started at {CONFIG['learning_rate']})")
    print(
        json.dumps(
            {
                "final_val_loss": final["val_loss"],
                "final_val_accuracy": final["val_acc"],
                "learning_rate": lr,
                "dir": str(run),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
