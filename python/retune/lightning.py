"""PyTorch Lightning callback: asks retune at the end of every training epoch and
adjusts the optimizers.

    from retune.lightning import RetuneCallback
    trainer = L.Trainer(max_epochs=20, callbacks=[RetuneCallback("run/config.json")])

At `on_train_epoch_end` (after that epoch's validation, so `trainer.callback_metrics`
holds both `val_*` and the epoch-level training metrics) it appends those metrics to a
CSVLogger-format file (per-step `*_step` values left out), runs
`retune suggest --format json --in-place` on the global-zero process, broadcasts the
decision so every process applies the same one, and then: loads the best weights it
kept (by `val_loss`, else `train_loss`) for `restore_checkpoint`, the initial weights
for `restart`, applies the accepted changes to `trainer.optimizers[i].param_groups`
(with the schedulers' `base_lrs` scaled alike), and sets `trainer.should_stop` for
`stop_early`.

Metrics logged in `LightningModule.on_train_epoch_end` are not seen: Lightning runs a
callback's hook before the module's (only its own EarlyStopping and ModelCheckpoint run
after). Log epoch metrics from `training_step`/`validation_step` with `on_epoch=True`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl

from ._core import BestTracker, Decision, MetricsLog, Outcome, Retune, report
from .torch import TorchState, act_on

# Lightning names per-step values `<name>_step` when a metric is logged with both
# on_step and on_epoch; the epoch-level twin is `<name>_epoch` (or `<name>`).
STEP_SUFFIX = "_step"


class RetuneCallback(pl.Callback):
    """Calls `retune suggest` after every training epoch and applies the decision.

    config, run_dir, monitor, extra_args, on_error, verbose: as for the Keras callback.
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        run_dir: str | os.PathLike[str] | None = None,
        monitor: str | None = None,
        extra_args: Sequence[str] = (),
        on_error: str = "warn",
        verbose: bool = True,
        history: str | os.PathLike[str] | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ):
        super().__init__()
        self.retune = Retune(
            config,
            run_dir=run_dir,
            history=history,
            report_dir=report_dir,
            extra_args=extra_args,
            binary=binary,
            on_error=on_error,
            timeout=timeout,
        )
        self.metrics = MetricsLog(self.retune.run_dir / "metrics.csv")
        self.best = BestTracker(monitor)
        self.weights = TorchState()
        self.verbose = verbose
        self.outcomes: list[Outcome] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights.keep_initial(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = int(trainer.current_epoch)
        metrics = epoch_metrics(trainer.callback_metrics)
        if self.best.improved(epoch, metrics):
            self.weights.keep_best(pl_module)
        raw: dict[str, Any] | None = None
        error: str | None = None
        if trainer.is_global_zero:
            self.metrics.append(epoch, metrics)
            decision = self.retune.suggest(self.metrics.path, "keras-csv")
            raw = dict(decision.raw) if decision is not None else None
            error = self.retune.last_error
        # Every process must apply the same decision or their optimizers drift apart.
        raw, error = trainer.strategy.broadcast((raw, error), src=0)
        if raw is None:
            outcome = Outcome(epoch, None, error=error)
        else:
            outcome = act_on(
                epoch,
                Decision.from_json(raw),
                model=pl_module,
                optimizers=list(trainer.optimizers),
                schedulers=[c.scheduler for c in getattr(trainer, "lr_scheduler_configs", [])],
                weights=self.weights,
                best=self.best,
                where="trainer.optimizers[0].param_groups",
            )
            if outcome.stop:
                trainer.should_stop = True
        self.outcomes.append(outcome)
        if trainer.is_global_zero:
            report(outcome, self.verbose)


def epoch_metrics(callback_metrics: Any) -> dict[str, Any]:
    """The epoch-level entries of `trainer.callback_metrics` (tensors stay tensors; the
    metrics file turns them into floats)."""
    return {
        str(k): v for k, v in dict(callback_metrics).items() if not str(k).endswith(STEP_SUFFIX)
    }


__all__ = ["RetuneCallback", "epoch_metrics"]
