"""Hugging Face Trainer callback: asks retune after each evaluation (or each epoch when
the Trainer does not evaluate) and adjusts the optimizer between epochs.

    from retune.hf import RetuneTrainerCallback
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[RetuneTrainerCallback("run/config.json")])

It writes the Trainer's `state.log_history` as a `trainer_state.json` (the file the
Trainer itself saves in its checkpoints) and runs
`retune suggest --metrics-format hf-trainer-state --format json --in-place`. Then: the
best weights (kept in memory, on the CPU, by `eval_loss`) for `restore_checkpoint`, the
initial weights for `restart`, the accepted changes to the optimizer's parameter groups
with the learning-rate scheduler's `base_lrs` scaled alike (the Trainer's schedules
recompute the rate from them every step), and `control.should_training_stop` for
`stop_early`. Changes the Trainer reads only at the start (batch size, warmup, epochs)
are in the rewritten config for the next run; the history is told which changes the
running optimizer took (`retune applied`), so cooldowns, `retune history` and
`retune revert` count those alone.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ._decision import Decision, Outcome
from ._metrics_log import atomic_write, to_float
from ._tuner import EpochTuner
from .torch import TorchState, act_on

# The TrainerState fields retune reads beside log_history (run length, batch size).
STATE_FIELDS = (
    "epoch",
    "global_step",
    "max_steps",
    "num_train_epochs",
    "train_batch_size",
    "logging_steps",
    "eval_steps",
)


class RetuneTrainerCallback(EpochTuner, TrainerCallback):
    """Calls `retune suggest` after every evaluation and applies the decision.

    config: the training config (JSON) retune adjusts in place (e.g. the JSON the
        TrainingArguments were built from).
    run_dir, monitor, extra_args, on_error, verbose, report_on, history, report_dir,
        binary, timeout: as for the Keras callback (a report only for a call whose
        decision changes something, by default; `report_on="always"` for one every
        call); the best weights are judged by `eval_loss`, else the training `loss`.
    """

    def __init__(self, config: str | os.PathLike[str], **options: Any):
        super().__init__(config, **options)
        self.state_path = self.retune.run_dir / "trainer_state.json"
        self.weights = TorchState()
        self._training = False

    # -- Trainer events ----------------------------------------------------------------

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> Any:
        if model is not None:
            self.weights.keep_initial(model)
        self._training = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        # A `trainer.evaluate()` after training is no time to tune.
        self._training = False
        return control

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> Any:
        if not self._training:
            return control
        return self._tune(state, control, dict(metrics or {}), kwargs)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        # With evaluation on, on_evaluate (after this event: the Trainer evaluates when
        # the epoch's events are done) has the epoch's eval row; act there instead.
        if not self._training or _evaluates(args):
            return control
        return self._tune(state, control, _last_train_row(state.log_history), kwargs)

    # -- what both events do -----------------------------------------------------------

    def _tune(
        self, state: Any, control: Any, metrics: dict[str, Any], kwargs: dict[str, Any]
    ) -> Any:
        model = kwargs.get("model")
        optimizer = kwargs.get("optimizer")
        scheduler = kwargs.get("lr_scheduler")
        epoch = _epoch_index(state.epoch)

        def act(decision: Decision) -> Outcome:
            if model is None or optimizer is None:
                return Outcome(epoch, decision, error="the Trainer passed no model or optimizer")
            return act_on(
                epoch,
                decision,
                model=model,
                optimizers=[optimizer],
                schedulers=[scheduler] if scheduler is not None else [],
                weights=self.weights,
                best=self.best,
            )

        outcome = self._tune_epoch(
            epoch,
            metrics,
            keep_best=None if model is None else lambda: self.weights.keep_best(model),
            write=lambda: self._write_state(state),
            metrics_format="hf-trainer-state",
            act=act,
            zero=getattr(state, "is_world_process_zero", True),
            broadcast=_broadcast_from_zero,
        )
        if outcome.stop:
            control.should_training_stop = True
        return control

    def _write_state(self, state: Any) -> Path:
        """`trainer_state.json` as the Trainer saves it: indent 2, sorted keys, NaN
        written bare (json.dumps' default, which retune reads); returns its path."""
        data = {"log_history": list(state.log_history)}
        for field in STATE_FIELDS:
            value = getattr(state, field, None)
            if value is not None:
                data[field] = value
        atomic_write(self.state_path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        return self.state_path


def _broadcast_from_zero(obj: Any) -> Any:
    """Process zero's object on every process of a distributed run (as is otherwise)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return obj
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _evaluates(args: Any) -> bool:
    # `eval_strategy` since transformers 4.41; `evaluation_strategy` before.
    strategy = getattr(args, "eval_strategy", None) or getattr(args, "evaluation_strategy", "no")
    return str(getattr(strategy, "value", strategy)) != "no"


def _last_train_row(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    for row in reversed(log_history):
        if "loss" in row:
            return dict(row)
    return {}


def _epoch_index(epoch: Any) -> int:
    """The Trainer's `state.epoch` counts completed epochs as a float (2.0 at the end of
    the second, 1.5 half way through it); callbacks number epochs from 0."""
    value = to_float(epoch)
    if value is None or not math.isfinite(value) or value <= 0:
        return 0
    return max(0, math.ceil(value - 1e-9) - 1)


__all__ = ["RetuneTrainerCallback"]
