"""What decides between epochs: the policies the rescue benchmark compares.

Each policy sees the trainer's state after an epoch (its metrics so far, the live
hyperparameters) and returns a `Decision`: hyperparameter changes and actions
(`restore_checkpoint`, `restart`, `stop_early`), the vocabulary of `retune suggest`. The
trainer applies a decision the same way whoever made it, so the policies differ only in
what they decide.

- `none`: no intervention.
- `rop10`, `rop2`: Keras `ReduceLROnPlateau` (keras/src/callbacks/reduce_lr_on_plateau.py),
  line for line: monitor val_loss, factor 0.1, min_delta 1e-4, cooldown 0, min_lr 0,
  patience 10 (its default) or 2.
- `pbt`: population-based training's explore step on a population of one: when an epoch
  does not improve the best val_loss, go back to the best checkpoint (exploit, against the
  run's own past instead of a better member) and multiply each continuous hyperparameter
  in play by 0.8 or 1.2 at random (explore; Jaderberg et al. 2017).
- `retune`, `retune-llm`: `retune suggest --format json --in-place` on the config and the
  CSVLogger file, exactly as a user's trainer would call it.
"""

import json
import math
import os
import subprocess

import numpy as np

# Keras ReduceLROnPlateau's defaults (keras/src/callbacks/reduce_lr_on_plateau.py).
ROP_FACTOR = 0.1
ROP_MIN_DELTA = 1e-4
ROP_COOLDOWN = 0
ROP_MIN_LR = 0.0
# PBT's explore step: perturb by one of these factors (Jaderberg et al. 2017, §4).
PBT_FACTORS = (0.8, 1.2)
# Hyperparameters PBT perturbs when the run uses them (a zero stays zero under a factor,
# and so does a knob the scenario does not read).
PBT_KNOBS = ("learning_rate", "weight_decay", "dropout")
PBT_DROPOUT_MAX = 0.9
# A `retune suggest` call that takes longer than this is broken, not slow (it takes
# about 10 ms with the rules advisor; an LLM call can take a minute on a CPU).
RETUNE_TIMEOUT_RULES_S = 60
RETUNE_TIMEOUT_LLM_S = 900


class RetuneFailed(RuntimeError):
    """retune exited non-zero, printed something that is not a decision, or the config it
    wrote disagrees with the changes it reported. The benchmark stops on it: a silently
    broken call would otherwise look like a policy that never intervenes."""


class Decision:
    def __init__(self, changes=None, actions=(), record=None):
        self.changes = dict(changes or {})
        self.actions = list(actions)
        # What retune said (findings, changes, rejected, actions), for the analysis.
        self.record = record


class NoIntervention:
    name = "none"

    def start(self, trainer):
        pass

    def after_epoch(self, trainer):
        return Decision()


class ReduceLROnPlateau:
    """keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min"), on_epoch_end."""

    def __init__(self, patience, name):
        self.patience = patience
        self.name = name

    def start(self, trainer):
        # _reset(), called from on_train_begin.
        self.best = math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def after_epoch(self, trainer):
        current = trainer.last["val_loss"]
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        # np.less(a, b - min_delta): a NaN never counts as an improvement.
        if np.less(current, self.best - ROP_MIN_DELTA):
            self.best = current
            self.wait = 0
            return Decision()
        if self.cooldown_counter > 0:
            return Decision()
        self.wait += 1
        if self.wait < self.patience:
            return Decision()
        old_lr = float(np.float32(trainer.hp["learning_rate"]))
        if old_lr > np.float32(ROP_MIN_LR):
            new_lr = max(old_lr * ROP_FACTOR, ROP_MIN_LR)
            self.cooldown_counter = ROP_COOLDOWN
            self.wait = 0
            return Decision({"learning_rate": new_lr})
        return Decision()


class PopulationBasedTraining:
    name = "pbt"

    def start(self, trainer):
        self.rng = np.random.default_rng(trainer.seed + 7919)
        self.best = math.inf

    def after_epoch(self, trainer):
        current = trainer.last["val_loss"]
        if np.less(current, self.best):
            self.best = current
            return Decision()
        changes = {}
        for knob in PBT_KNOBS:
            value = trainer.hp.get(knob, 0.0)
            if value:
                new = value * float(self.rng.choice(PBT_FACTORS))
                if knob == "dropout":
                    new = min(new, PBT_DROPOUT_MAX)
                changes[knob] = new
        actions = ["restore_checkpoint"] if trainer.best is not None else []
        return Decision(changes, actions)


class Retune:
    """Calls the retune binary between epochs. The trainer has already written the config
    (once, at the start) and appended the epoch to the CSVLogger file; retune rewrites the
    config in place and the trainer reads it back."""

    def __init__(self, binary, name="retune", provider_args=("--provider", "rules"), timeout=RETUNE_TIMEOUT_RULES_S):
        self.binary = binary
        self.name = name
        self.provider_args = list(provider_args)
        self.timeout = timeout

    def start(self, trainer):
        self.reports = os.path.join(trainer.workdir, "reports")
        self.history = os.path.join(trainer.workdir, "retune-history.jsonl")

    def after_epoch(self, trainer):
        cmd = [
            self.binary, "suggest",
            "--config", trainer.config_path,
            "--metrics", trainer.metrics_path,
            "--in-place",
            "--history", self.history,
            "--report-dir", self.reports,
            "--format", "json",
            *self.provider_args,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RetuneFailed(f"{' '.join(cmd)}: {e}") from e
        if proc.returncode != 0:
            raise RetuneFailed(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()}\n{proc.stdout.strip()}"
            )
        try:
            decision = json.loads(proc.stdout)
            changes_out = decision["changes"]
            actions = decision["actions"]
            findings = [f["id"] for f in decision["findings"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RetuneFailed(f"{' '.join(cmd)}: the output is not a decision ({e}):\n{proc.stdout[:2000]}") from e
        llm = decision.get("llm") or {}
        # A healthy epoch is decided by the rules without a model call (provider "rules",
        # no `llm`): that is retune's own choice, not an endpoint failure.
        healthy = decision.get("provider") == "rules"
        if self.name != "retune" and not healthy and not llm.get("answers"):
            # The rules advisor decided because the endpoint never answered: the LLM column
            # would silently become a copy of the rules column. Answers that fail validation
            # are the LLM's own result and are counted, not fatal.
            raise RetuneFailed(f"{' '.join(cmd)}: the LLM endpoint gave no answer: {llm.get('fallback')}")

        # The trainer's side: read the config back, as it would at the next epoch, and
        # take the values the run uses from it. Cross-check that the file holds what the
        # decision says it changed.
        with open(trainer.config_path, encoding="utf-8") as f:
            config = json.load(f)
        changes = {}
        for c in changes_out:
            key = c["parameter"]
            if key not in config:
                raise RetuneFailed(f"retune changed {key!r}, which is not a key of {trainer.config_path}")
            if config[key] != c["new"]:
                raise RetuneFailed(f"the decision says {key} = {c['new']!r} but the config holds {config[key]!r}")
            changes[key] = config[key]
        for key in trainer.hp:
            if key in config and config[key] != trainer.hp[key] and key not in changes:
                raise RetuneFailed(
                    f"{key} changed in the config ({trainer.hp[key]!r} → {config[key]!r}) "
                    "without a change in the decision"
                )
        record = {
            "epoch": trainer.epoch,
            "provider": decision.get("provider"),
            "findings": findings,
            "changes": [(c["parameter"], c["old"], c["new"]) for c in changes_out],
            "rejected": [(r["parameter"], r["proposed"], r["reason"]) for r in decision.get("rejected", [])],
            "actions": actions,
            "report": decision.get("report"),
            # The LLM's review of the rules' proposal when its answer was used (agree,
            # amend, replace), else None.
            "verdict": ((llm.get("review") or {}).get("verdict")),
            "asked": bool(llm.get("answers")),
            "llm_ms": llm.get("latency_ms"),
            "review": decision.get("review_summary"),
        }
        return Decision(changes, actions, record)


def make(name, binary, base_url=None, model=None):
    if name == "none":
        return NoIntervention()
    if name == "rop10":
        return ReduceLROnPlateau(10, name)
    if name == "rop2":
        return ReduceLROnPlateau(2, name)
    if name == "pbt":
        return PopulationBasedTraining()
    if name == "retune":
        return Retune(binary)
    if name == "retune-llm":
        # A call on a CPU shared with other work can take minutes (Gemma 3 270M answered
        # in 80-530 s while 2 cores ran builds); the default 60 s request timeout would make
        # every call a fallback.
        args = ["--provider", "openai", "--base-url", base_url, "--timeout", "600", "--deadline", "850"]
        if model:
            args += ["--model", model]
        return Retune(binary, name, args, RETUNE_TIMEOUT_LLM_S)
    raise ValueError(f"unknown policy {name!r}")
