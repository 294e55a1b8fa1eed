"""The trainer loop of the rescue benchmark: what a user's training script does between
epochs when something (retune, a Keras callback, PBT) may change its settings.

After every epoch it appends a row to a Keras CSVLogger-style file (`epoch` from 0, then
the metric names sorted, CRLF line ends via Python's csv module, `nan`/`inf` as Keras
writes them), keeps its best checkpoint by val_loss (weights and optimizer state), asks
the policy, and applies the answer: new hyperparameters reach the live optimizer at the
next step; `restore_checkpoint` loads the best checkpoint (then the new settings apply);
`restart` reinitialises the weights and optimizer and forgets the checkpoint (it holds
weights from the broken start); `stop_early` ends the run. The CSV keeps growing across a
restore or restart, as CSVLogger(append=True) does: the epoch counter of a training loop
does not go back.
"""

import copy
import csv
import json
import math
import os

import numpy as np

import nets

# The config keys the trainer reads (the rest are carried, never read between epochs).
HP_DEFAULTS = {
    "learning_rate": None,
    "batch_size": None,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "gradient_accumulation_steps": 1,
}
CSV_HEADER = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]


class Trainer:
    def __init__(self, scenario, seed, epochs, policy, workdir=None, overrides=None):
        self.scenario = scenario
        self.seed = seed
        self.epochs = epochs
        self.policy = policy
        self.workdir = workdir
        config = copy.deepcopy(scenario.config)
        config.update(overrides or {})
        config["epochs"] = epochs
        config["seed"] = seed
        self.config = config
        self.hp = {k: config.get(k, d) for k, d in HP_DEFAULTS.items()}
        self.optimizer_kind = config["optimizer"]
        # Data depend on the seed, so seeds are different problems, not only different
        # initialisations; the policies and the grid of one seed share them exactly.
        self.data = nets.make_data(10_000 + seed, **scenario.data)
        self.rng = np.random.default_rng(seed)
        self.best = None
        self.epoch = -1
        self.last = None
        self.rows = []
        self.trace = []
        self.changes = 0
        self.actions = []

    def _fresh(self):
        self.net = nets.Net(self.data.x_train.shape[1], self.scenario.hidden, self.data.classes, self.rng)
        self.opt = nets.Optimizer(self.optimizer_kind, self.net.params)
        self.best = None

    @property
    def config_path(self):
        return os.path.join(self.workdir, "config.json")

    @property
    def metrics_path(self):
        return os.path.join(self.workdir, "history.csv")

    def _write_files(self):
        if not self.workdir:
            return
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.config_path, "w", encoding="utf-8") as f:
            json.dump(self.config, f, indent=2)
            f.write("\n")
        with open(self.metrics_path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(CSV_HEADER)

    def _log(self, row):
        self.rows.append(row)
        if not self.workdir:
            return
        # One row per epoch, appended and closed, as CSVLogger flushes after each epoch.
        with open(self.metrics_path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([row[k] for k in CSV_HEADER])

    def run(self):
        self._fresh()
        self._write_files()
        self.policy.start(self)
        stopped = None
        for epoch in range(self.epochs):
            self.epoch = epoch
            lr_used = self.hp["learning_rate"]
            loss, acc = nets.train_epoch(self.net, self.opt, self.data, self.hp, self.rng)
            val_loss, val_acc = self.net.evaluate(self.data.x_val, self.data.y_val)
            self.last = {"epoch": epoch, "accuracy": acc, "loss": loss, "val_accuracy": val_acc, "val_loss": val_loss}
            self._log(self.last)
            if math.isfinite(val_loss) and (self.best is None or val_loss < self.best.val_loss):
                self.best = nets.Checkpoint(self.net, self.opt, epoch, val_loss)
            decision = self.policy.after_epoch(self)
            step = {"epoch": epoch, "lr": lr_used, "loss": loss, "val_loss": val_loss, "val_accuracy": val_acc}
            if decision.changes or decision.actions:
                step["changes"] = {k: (self.hp.get(k), v) for k, v in decision.changes.items()}
                step["actions"] = list(decision.actions)
            if decision.record is not None:
                step["retune"] = decision.record
            self.trace.append(step)
            self.changes += len(decision.changes)
            self.hp.update({k: v for k, v in decision.changes.items() if k in self.hp})
            for action in decision.actions:
                self.actions.append(action)
                if action == "restore_checkpoint":
                    if self.best is not None:
                        self.opt = self.best.restore(self.net)
                    else:
                        step["note"] = "restore_checkpoint with no finite-val_loss checkpoint: weights kept"
                elif action == "restart":
                    self._fresh()
            if "stop_early" in decision.actions:
                stopped = epoch
                break
        final_loss, final_acc = self.net.evaluate(self.data.x_val, self.data.y_val)
        return {
            "scenario": self.scenario.name,
            "policy": self.policy.name,
            "seed": self.seed,
            "final_val_accuracy": final_acc,
            "final_val_loss": final_loss,
            "epochs_run": len(self.rows),
            "stopped_at": stopped,
            "changes": self.changes,
            "actions": self.actions,
            "final_hp": dict(self.hp),
            "trace": self.trace,
        }
