"""Keras 3 callback: asks retune after every epoch and applies its decision to the
running `fit`.

    from retune.keras import RetuneCallback
    model.fit(x, y, validation_data=(xv, yv), epochs=20,
              callbacks=[RetuneCallback("run/config.json")])

Each epoch it appends the epoch's logs to a CSVLogger-format file (with the optimizer's
learning rate as `learning_rate`), runs `retune suggest --format json --in-place`, and
then, as the decision says: restores the best weights it kept in memory
(`restore_checkpoint`), sets the weights back to those `fit` started with (`restart`),
applies the accepted changes to the optimizer (`optimizer.learning_rate.assign`, or the
optimizer's own attribute for weight decay, momentum, Adam's betas and epsilon), and stops
training (`stop_early`). Changes Keras cannot make inside a running `fit` (batch size,
dropout, epochs ...) are in the rewritten config for the next run, and the log says so;
the history is told which changes the running `fit` took (`retune applied`), so
cooldowns, `retune history` and `retune revert` count those alone.

Tested on the JAX backend (CI trains a real model with it). It uses only Keras' own API
(optimizer variables, `get_weights`/`set_weights`, `make_train_function`), so the
TensorFlow and PyTorch backends should behave alike; JAX alone needs its trace caches
cleared after a change to a Python-float hyperparameter (see `retrace_train_step`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from ._decision import Applied, Change, Decision, NotApplied, Outcome
from ._metrics_log import MetricsLog, to_float
from ._param_groups import scale_live, with_learning_rate
from ._tuner import EpochTuner, carry_out

# Keras optimizer attributes holding a canonical parameter. They are plain Python floats
# read when the train step is traced, so after setting one the train function is
# rebuilt. The learning rate is a variable and is handled apart.
OPTIMIZER_ATTRIBUTES = {
    "weight_decay": "weight_decay",
    "momentum": "momentum",
    "adam_beta1": "beta_1",
    "adam_beta2": "beta_2",
    "adam_epsilon": "epsilon",
}


class RetuneCallback(EpochTuner, keras.callbacks.Callback):
    """Calls `retune suggest` after every epoch and applies the decision.

    config: the training config (JSON) retune adjusts in place.
    run_dir: where the metrics CSV, the history and the reports go (default: a new
        directory `<config dir>/retune/<UTC time>`; pass an existing one to resume).
    monitor: the loss that picks the best weights (default `val_loss`, else `loss`).
    extra_args: more `retune suggest` flags, e.g. `["--provider", "rules"]`.
    on_error: "warn" (log and train on) or "raise" (RetuneError).
    verbose: print one line per epoch saying what happened.
    report_on: "change" (the default) writes a report (Markdown, JSON twin, chart) only
        for an epoch whose decision changes the config or asks for an action; "always"
        writes one every epoch. The history gets a line every epoch either way.
    history, report_dir, binary, timeout: as for `retune.Retune`.

    `outcomes` holds one `Outcome` per epoch (decision, changes applied, actions taken).
    """

    def __init__(self, config: str | os.PathLike[str], **options: Any):
        super().__init__(config, **options)
        self.metrics = MetricsLog(self.retune.run_dir / "metrics.csv")
        self._best_weights: list[np.ndarray] | None = None
        self._initial_weights: list[np.ndarray] | None = None
        self._initial_optimizer: list[np.ndarray] | None = None

    # -- Keras hooks -------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # fit() builds the model and the optimizer before this hook, so these are the
        # weights and optimizer state a `restart` goes back to.
        self._initial_weights = _copy(self.model.get_weights())
        self._initial_optimizer = _copy([v.numpy() for v in self.model.optimizer.variables])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        row = with_learning_rate(logs, "learning_rate", self._learning_rate_value)
        self._tune_epoch(
            epoch,
            logs,
            keep_best=self._keep_best,
            write=lambda: self.metrics.append(epoch, row),
            act=lambda decision: self._apply(epoch, decision),
        )

    # -- applying a decision -----------------------------------------------------------

    def _apply(self, epoch: int, decision: Decision) -> Outcome:
        outcome = carry_out(
            epoch,
            decision,
            self.best,
            restore_best=self._restore_best,
            restart=self._restart,
            apply_changes=self._apply_changes,
        )
        if outcome.stop:
            self.model.stop_training = True
        return outcome

    def _keep_best(self) -> None:
        self._best_weights = _copy(self.model.get_weights())

    def _restore_best(self) -> bool:
        if self._best_weights is None:
            return False
        self._set_weights(self._best_weights)
        return True

    def _restart(self) -> None:
        self._set_weights(self._initial_weights)
        self._best_weights = None

    def _apply_changes(self, changes: Sequence[Change]) -> tuple[list[Applied], list[NotApplied]]:
        optimizer = self.model.optimizer
        applied: list[Applied] = []
        not_applied: list[NotApplied] = []
        retrace = False
        for change in changes:
            if change.canonical == "learning_rate":
                lr = optimizer.learning_rate
                if not isinstance(lr, keras.Variable):
                    not_applied.append(
                        NotApplied(
                            change.canonical,
                            change.parameter,
                            change.new,
                            "the optimizer's learning rate is a schedule, which Keras "
                            "does not let anyone set",
                        )
                    )
                    continue
                current = float(keras.ops.convert_to_numpy(lr))
                lr.assign(scale_live(current, change))
                applied.append(
                    Applied(
                        change.canonical,
                        change.parameter,
                        change.new,
                        "optimizer.learning_rate",
                        float(keras.ops.convert_to_numpy(lr)),
                    )
                )
                continue
            attribute = OPTIMIZER_ATTRIBUTES.get(change.canonical)
            if attribute is None or not hasattr(optimizer, attribute):
                not_applied.append(
                    NotApplied(
                        change.canonical,
                        change.parameter,
                        change.new,
                        f"{type(optimizer).__name__} has no live setting for it",
                    )
                )
                continue
            if change.canonical == "momentum" and getattr(optimizer, "momentums", None) == []:
                not_applied.append(
                    NotApplied(
                        change.canonical,
                        change.parameter,
                        change.new,
                        "Keras SGD built with momentum 0 has no momentum slots to use",
                    )
                )
                continue
            current = getattr(optimizer, attribute)
            setattr(optimizer, attribute, scale_live(current, change))
            retrace = True
            applied.append(
                Applied(
                    change.canonical,
                    change.parameter,
                    change.new,
                    f"optimizer.{attribute}",
                    getattr(optimizer, attribute),
                )
            )
        if retrace:
            retrace_train_step(self.model)
        return applied, not_applied

    def _set_weights(self, weights: list[np.ndarray] | None) -> None:
        if weights is None:  # on_train_begin did not run: nothing to go back to
            return
        self.model.set_weights(weights)
        self._reset_optimizer()

    def _reset_optimizer(self) -> None:
        """Back to the optimizer state `fit` started with, except the learning rate:
        the momentum and Adam moments of the abandoned weights would push the restored
        ones the same way again."""
        optimizer = self.model.optimizer
        lr = optimizer.learning_rate
        initial = self._initial_optimizer or []
        variables = optimizer.variables
        for i, variable in enumerate(variables):
            if variable is lr:
                continue
            if len(initial) == len(variables):
                variable.assign(initial[i])
            else:  # built after on_train_begin: slots start at zero
                variable.assign(np.zeros(variable.shape, dtype=variable.dtype))

    def _learning_rate_value(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return to_float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def retrace_train_step(model: Any) -> None:
    """Make the next train step read the optimizer's Python attributes again.

    They are constants in the traced step. A new train function is enough for the
    TensorFlow backend (a new tf.function) and the PyTorch one (eager); JAX caches
    traces by the Python function, and `make_train_function` wraps the same bound
    `train_step` again, so its caches are cleared too (everything is traced anew once:
    seconds, and only when such a change is made)."""
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()
    model.make_train_function(force=True)


def _copy(arrays: list[Any]) -> list[np.ndarray]:
    # Own copies: a backend may reuse (donate) the buffers behind a view.
    return [np.array(a, copy=True) for a in arrays]


__all__ = ["RetuneCallback"]
