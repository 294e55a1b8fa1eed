#!/usr/bin/env python3
"""A plain PyTorch loop that starts with a learning rate far too high, tuned by retune.

A small MLP learns a 10-class task from data this script generates. The config asks for
SGD at learning rate 10 with momentum 0.9 and a LambdaLR decay: the first epoch blows
up. `RetuneTuner.step` after each epoch lets retune cut the rate (the scheduler's
`base_lrs` follow, so the decay goes on from the new rate) and restart the weights.

CI does not run this script (torch from PyPI pulls gigabytes of CUDA wheels); with torch
installed it runs on a CPU in a few seconds:

    pip install retune torch              # or: pip install . torch  (in this repository)
    python examples/torch_example.py
    python examples/torch_example.py --no-retune
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from retune.torch import RetuneTuner  # retune: 1 of 3

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_classes": 10,
    "num_features": 10,
    "optimizer": "sgd",
    "lr": 10.0,
    "momentum": 0.9,
    "lr_decay_per_epoch": 0.95,
    "batch_size": 32,
    "epochs": 15,
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
    return (x[:split], y[:split]), (x[split:], y[split:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--no-retune", action="store_true", help="train without retune")
    args = parser.parse_args()
    run = args.dir or Path(tempfile.mkdtemp(prefix="retune-torch-"))
    run.mkdir(parents=True, exist_ok=True)
    config_path = run / "config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    cfg = json.loads(config_path.read_text())

    torch.manual_seed(cfg["seed"])
    (x, y), (x_val, y_val) = make_data(cfg)
    model = nn.Sequential(
        nn.Linear(cfg["num_features"], cfg["hidden_units"]),
        nn.ReLU(),
        nn.Linear(cfg["hidden_units"], cfg["num_classes"]),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    decay = cfg["lr_decay_per_epoch"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: decay**epoch)
    loss_fn = nn.CrossEntropyLoss()
    tuner = None
    if not args.no_retune:
        # retune: 2 of 3. `model=` keeps the initial weights for a restart; `scheduler=`
        # makes the decay go on from a changed rate.
        tuner = RetuneTuner(
            optimizer,
            config_path,
            model=model,
            scheduler=scheduler,
            run_dir=run / "retune",
            extra_args=["--provider", "rules"],
        )

    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(x))
        total, correct = 0.0, 0
        for start in range(0, len(x), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            optimizer.zero_grad()
            logits = model(x[batch])
            loss = loss_fn(logits, y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            correct += (logits.argmax(1) == y[batch]).sum().item()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            metrics = {
                "loss": total / len(x),
                "accuracy": correct / len(x),
                "val_loss": loss_fn(val_logits, y_val).item(),
                "val_accuracy": (val_logits.argmax(1) == y_val).float().mean().item(),
            }
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        # retune: 3 of 3
        if tuner is not None and tuner.step(epoch, metrics, model).stop:
            break

    lr = optimizer.param_groups[0]["lr"]
    print(f"learning rate now {lr:.6g} (config started at {CONFIG['lr']})")
    print(
        json.dumps(
            {
                "final_val_loss": metrics["val_loss"],
                "final_val_accuracy": metrics["val_accuracy"],
                "learning_rate": optimizer.param_groups[0]["lr"],
                "dir": str(run),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
