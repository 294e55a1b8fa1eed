"""A helper for a plain PyTorch training loop: one call per epoch.

    from retune.torch import RetuneTuner
    tuner = RetuneTuner(optimizer, "run/config.json", model=model, scheduler=scheduler)
    for epoch in range(epochs):
        ...train, validate...
        if tuner.step(epoch, {"loss": train_loss, "val_loss": val_loss,
                              "val_accuracy": val_acc}, model).stop:
            break

`step` appends the epoch to a CSVLogger-format file, runs
`retune suggest --format json --in-place`, and applies the decision: the best weights
(a copy of `model.state_dict()` kept on the CPU) for `restore_checkpoint`, the weights the
model had when the tuner was made (or each module's `reset_parameters()`) for `restart`,
the accepted changes to `optimizer.param_groups` (`lr`, `weight_decay`, `momentum`,
Adam's `betas` and `eps`; a scheduler's `base_lrs` follow the learning rate), and
`Outcome.stop` for `stop_early`. Then it tells the history which changes the optimizer
took (`retune applied`): a change with no live setting is in the config only, and
starts no cooldown, shows no effect in `retune history` and is proposed again.

torch is never imported: the helper only calls methods of the objects it is given, so
`import retune.torch` works without PyTorch installed (and the tests use stand-ins).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._decision import Applied, Change, Decision, NotApplied, Outcome
from ._metrics_log import MetricsLog
from ._param_groups import apply_to_param_groups, with_learning_rate
from ._tuner import BestTracker, EpochTuner, carry_out


class TorchState:
    """Weights kept in memory for `restore_checkpoint` and `restart`, shared by the
    PyTorch, Hugging Face and Lightning helpers."""

    def __init__(self) -> None:
        self.initial: dict[str, Any] | None = None
        self.best: dict[str, Any] | None = None

    def keep_initial(self, model: Any) -> None:
        self.initial = state_copy(model)

    def keep_best(self, model: Any) -> None:
        self.best = state_copy(model)

    def restore_best(self, model: Any, optimizers: Iterable[Any]) -> bool:
        """Load the best weights; False when none were kept."""
        if self.best is None:
            return False
        model.load_state_dict(self.best)
        reset_optimizer_state(optimizers)
        return True

    def restart(self, model: Any, optimizers: Iterable[Any]) -> str:
        """Reinitialise the weights: back to the kept initial ones, else every module's
        own `reset_parameters()` (fresh random weights). Returns which it did."""
        if self.initial is not None:
            model.load_state_dict(self.initial)
            how = "initial weights"
        else:
            count = 0
            for module in model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
                    count += 1
            how = f"reset_parameters() of {count} modules"
        self.best = None
        reset_optimizer_state(optimizers)
        return how


def state_copy(model: Any) -> dict[str, Any]:
    """A copy of `model.state_dict()` on the CPU, so keeping the best epoch does not
    double the model's GPU memory (load_state_dict copies back onto the device)."""
    out = {}
    for key, value in model.state_dict().items():
        if hasattr(value, "detach"):
            out[key] = value.detach().to("cpu", copy=True)
        else:
            out[key] = copy.deepcopy(value)
    return out


def reset_optimizer_state(optimizers: Iterable[Any]) -> None:
    """Drop momentum buffers and Adam moments (`optimizer.state`): they belong to the
    weights just abandoned and would push the restored ones the same way again. torch
    recreates them on the next step; the parameter groups (rates) stay."""
    for optimizer in optimizers:
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        state = getattr(inner, "state", None)
        if state is not None and hasattr(state, "clear"):
            state.clear()


def act_on(
    epoch: int,
    decision: Decision,
    *,
    model: Any,
    optimizers: Sequence[Any],
    schedulers: Iterable[Any],
    weights: TorchState,
    best: BestTracker,
    where: str = "optimizer.param_groups",
) -> Outcome:
    """Carry out a decision on a torch model and its optimizers (`carry_out`'s order:
    restart or restore, the changes, then stop_early, which the caller turns into its
    framework's stop)."""
    schedulers = list(schedulers)

    def apply_changes(changes: Sequence[Change]) -> tuple[list[Applied], list[NotApplied]]:
        applied, not_applied = [], []
        for i, optimizer in enumerate(optimizers):
            a, n = apply_to_param_groups(
                optimizer.param_groups,
                changes,
                schedulers,
                where=where if len(optimizers) == 1 else f"optimizers[{i}].param_groups",
            )
            applied += a
            if i == 0:
                not_applied += n
        return applied, not_applied

    return carry_out(
        epoch,
        decision,
        best,
        restore_best=lambda: weights.restore_best(model, optimizers),
        restart=lambda: weights.restart(model, optimizers),
        apply_changes=apply_changes,
    )


class RetuneTuner(EpochTuner):
    """Calls `retune suggest` once per epoch of a PyTorch loop and applies the decision.

    optimizer: the torch.optim optimizer whose parameter groups are tuned.
    config: the training config (JSON) retune adjusts in place.
    model: pass it here to keep its initial weights for `restart` (otherwise a restart
        calls each module's `reset_parameters()`).
    scheduler: a learning-rate scheduler whose `base_lrs` must follow a changed rate.
    run_dir, monitor, extra_args, on_error, verbose, report_on, history, report_dir,
        binary, timeout: as for the Keras callback (a report only for an epoch whose
        decision changes something, by default; `report_on="always"` for one every
        epoch).
    """

    def __init__(
        self,
        optimizer: Any,
        config: str | os.PathLike[str],
        *,
        model: Any = None,
        scheduler: Any = None,
        **options: Any,
    ):
        self.optimizer = optimizer
        self.scheduler = scheduler
        super().__init__(config, **options)
        self.metrics = MetricsLog(self.retune.run_dir / "metrics.csv")
        self.weights = TorchState()
        if model is not None:
            self.weights.keep_initial(model)

    def step(self, epoch: int, metrics: Mapping[str, Any], model: Any) -> Outcome:
        """Record the epoch (0-based), ask retune, apply its decision; returns what was
        done (`.stop` is True when the loop should end)."""
        row = with_learning_rate(metrics, "lr", self._learning_rate)
        return self._tune_epoch(
            epoch,
            metrics,
            keep_best=lambda: self.weights.keep_best(model),
            write=lambda: self.metrics.append(epoch, row),
            act=lambda decision: act_on(
                epoch,
                decision,
                model=model,
                optimizers=[self.optimizer],
                schedulers=[self.scheduler] if self.scheduler is not None else [],
                weights=self.weights,
                best=self.best,
            ),
        )

    def _learning_rate(self) -> Any:
        groups = self.optimizer.param_groups
        return groups[0]["lr"] if groups else None


__all__ = ["RetuneTuner", "TorchState", "act_on", "reset_optimizer_state", "state_copy"]
