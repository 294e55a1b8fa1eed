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
`stop_early`. The global-zero process then tells the history which changes the
optimizers took (`retune applied`), so cooldowns, `retune history` and `retune revert`
count those alone.

Metrics logged in `LightningModule.on_train_epoch_end` are not seen: Lightning runs a
callback's hook before the module's (only its own EarlyStopping and ModelCheckpoint run
after). Log epoch metrics from `training_step`/`validation_step` with `on_epoch=True`.
"""

from __future__ import annotations

import os
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl

from ._metrics_log import MetricsLog
from ._tuner import EpochTuner
from .torch import TorchState, act_on

# Lightning names per-step values `<name>_step` when a metric is logged with both
# on_step and on_epoch; the epoch-level twin is `<name>_epoch` (or `<name>`).
STEP_SUFFIX = "_step"


class RetuneCallback(EpochTuner, pl.Callback):
    """Calls `retune suggest` after every training epoch and applies the decision.

    config, run_dir, monitor, extra_args, on_error, verbose, report_on, history,
    report_dir, binary, timeout: as for the Keras callback (a report only for an epoch
    whose decision changes something, by default; `report_on="always"` for one every
    epoch).
    """

    def __init__(self, config: str | os.PathLike[str], **options: Any):
        super().__init__(config, **options)
        self.metrics = MetricsLog(self.retune.run_dir / "metrics.csv")
        self.weights = TorchState()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.weights.keep_initial(pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = int(trainer.current_epoch)
        metrics = epoch_metrics(trainer.callback_metrics)
        outcome = self._tune_epoch(
            epoch,
            metrics,
            keep_best=lambda: self.weights.keep_best(pl_module),
            write=lambda: self.metrics.append(epoch, metrics),
            act=lambda decision: act_on(
                epoch,
                decision,
                model=pl_module,
                optimizers=list(trainer.optimizers),
                schedulers=[c.scheduler for c in getattr(trainer, "lr_scheduler_configs", [])],
                weights=self.weights,
                best=self.best,
                where="trainer.optimizers[0].param_groups",
            ),
            zero=trainer.is_global_zero,
            broadcast=lambda obj: trainer.strategy.broadcast(obj, src=0),
        )
        if outcome.stop:
            trainer.should_stop = True


def epoch_metrics(callback_metrics: Any) -> dict[str, Any]:
    """The epoch-level entries of `trainer.callback_metrics` (tensors stay tensors; the
    metrics file turns them into floats)."""
    return {
        str(k): v for k, v in dict(callback_metrics).items() if not str(k).endswith(STEP_SUFFIX)
    }


__all__ = ["RetuneCallback", "epoch_metrics"]
