"""The round every callback runs after an epoch: `EpochTuner` (keep the best weights,
write the metrics, ask the binary, act, log), `BestTracker` (which epoch's weights to
keep), `carry_out` (the order a decision is carried out in) and `report` (the line each
call logs). The framework modules add what only their framework knows.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._decision import (
    RESTART,
    RESTORE_CHECKPOINT,
    STOP_EARLY,
    Applied,
    Change,
    Decision,
    NotApplied,
    Outcome,
)
from ._metrics_log import KERAS_CSV, MetricsFormat, to_float
from ._runner import OnError, ReportOn, Retune

logger = logging.getLogger("retune")

# Losses a trainer may log, in the order a best checkpoint is judged by when the caller
# names none: validation before training, so the kept weights are the ones that
# generalise; the names are the ones Keras, Lightning and the HF Trainer write.
MONITOR_CANDIDATES = (
    "val_loss",
    "eval_loss",
    "validation_loss",
    "val/loss",
    "loss",
    "train_loss",
    "train/loss",
)


class BestTracker:
    """Which epoch's weights to keep: the lowest finite value of the monitored loss
    (`monitor`, or the first of MONITOR_CANDIDATES the metrics have)."""

    def __init__(self, monitor: str | None = None):
        self.monitor = monitor
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improved(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """True when this epoch is the best so far (the caller then copies its weights)."""
        key = self.monitor or next((k for k in MONITOR_CANDIDATES if k in metrics), None)
        if key is None:
            return False
        value = to_float(metrics.get(key))
        if value is None or not math.isfinite(value):
            return False
        if self.best is None or value < self.best:
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def reset(self) -> None:
        """After a restart every earlier epoch belongs to weights that are gone."""
        self.best = self.best_epoch = None


class EpochTuner:
    """What every framework's callback holds and does after an epoch; a subclass adds
    what its framework knows (where the weights and the learning rate live, how to stop)
    and calls `_tune_epoch` from its framework's hook.

    config: the training config (JSON) retune adjusts in place.
    run_dir: where the metrics file, the history and the reports go (default: a new
        directory `<config dir>/retune/<UTC time>`; pass an existing one to resume).
    monitor: the loss that picks the best weights (default: the first of
        MONITOR_CANDIDATES the metrics have).
    extra_args: more `retune suggest` flags, e.g. `["--provider", "rules"]`.
    on_error: "warn" (log and train on) or "raise" (RetuneError).
    verbose: print one line per epoch saying what happened.
    report_on: "change" (default: a report only for an epoch whose decision changes the
        config or asks for an action) or "always" (a report, JSON twin and chart every
        epoch); the history gets its line every epoch either way.
    history, report_dir, binary, timeout: as for `Retune`.

    `outcomes` holds one `Outcome` per call (decision, changes applied, actions taken).
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        run_dir: str | os.PathLike[str] | None = None,
        monitor: str | None = None,
        extra_args: Sequence[str] = (),
        on_error: OnError = "warn",
        verbose: bool = True,
        history: str | os.PathLike[str] | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        report_on: ReportOn = "change",
    ):
        super().__init__()  # the framework's callback base, which follows in the MRO
        self.retune = Retune(
            config,
            run_dir=run_dir,
            history=history,
            report_dir=report_dir,
            extra_args=extra_args,
            binary=binary,
            on_error=on_error,
            timeout=timeout,
            report_on=report_on,
        )
        self.best = BestTracker(monitor)
        self.verbose = verbose
        self.outcomes: list[Outcome] = []

    def _tune_epoch(
        self,
        epoch: int,
        metrics: Mapping[str, Any],
        *,
        keep_best: Callable[[], None] | None,
        write: Callable[[], Path],
        act: Callable[[Decision], Outcome],
        metrics_format: MetricsFormat = KERAS_CSV,
        zero: bool = True,
        broadcast: Callable[[Any], Any] | None = None,
    ) -> Outcome:
        """One epoch's round: keep the weights if the epoch is the best so far
        (`keep_best`; None when there are none to keep, and then the best is not tracked
        either), write the metrics file (`write`, which returns its path), ask retune, and
        carry out its decision (`act`); the outcome is kept in `outcomes` and logged, and
        the history is told which changes the running job took (`Retune.record_applied`).

        In a distributed run only process `zero` writes, asks and logs (the others would
        race on the files), and `broadcast` hands its decision to every process: all must
        apply the same one or their optimizers drift apart."""
        if keep_best is not None and self.best.improved(epoch, metrics):
            keep_best()
        decision: Decision | None = None
        error: str | None = None
        if zero:
            decision = self.retune.suggest(write(), metrics_format)
            error = self.retune.last_error
        if broadcast is not None:
            raw = dict(decision.raw) if decision is not None else None
            raw, error = broadcast((raw, error))
            decision = Decision.from_json(raw) if raw is not None else None
        outcome = Outcome(epoch, None, error=error) if decision is None else act(decision)
        if zero and decision is not None and decision.changes:
            # The binary wrote every change to the config; only the trainer knows which
            # the running optimizer took, and cooldowns, effects and `revert` must count
            # those alone.
            self.retune.record_applied(
                decision.adjustment_id, [a.parameter for a in outcome.applied]
            )
        self.outcomes.append(outcome)
        if zero:
            report(outcome, self.verbose)
        return outcome


def carry_out(
    epoch: int,
    decision: Decision,
    best: BestTracker,
    *,
    restore_best: Callable[[], bool],
    restart: Callable[[], str | None],
    apply_changes: Callable[[Sequence[Change]], tuple[Sequence[Applied], Sequence[NotApplied]]],
) -> Outcome:
    """Carry out a decision in the order every framework needs: restart or restore first
    (so the changes apply to the weights that go on), then the changes, then stop_early
    (which the caller turns into its framework's stop).

    `restore_best` loads the best weights kept and says whether there were any; without
    them the run restarts, as the initial weights are the only sane ones there are.
    `restart` reinitialises the weights (and drops the best kept: they belong to weights
    that are gone) and may say how, for the log."""
    taken: list[str] = []
    if decision.restart:
        how = restart()
        best.reset()
        taken.append(RESTART if how is None else f"{RESTART} ({how})")
    elif decision.restore_checkpoint:
        if restore_best():
            # Weights are kept only for an epoch `best` marked, so it has one.
            assert best.best_epoch is not None
            taken.append(f"{RESTORE_CHECKPOINT} (epoch {best.best_epoch + 1})")
        else:
            how = restart()
            best.reset()
            detail = "" if how is None else f"; {how}"
            taken.append(f"{RESTART} (no finite epoch to restore{detail})")
    applied, not_applied = apply_changes(decision.changes)
    if decision.stop_early:
        taken.append(STOP_EARLY)
    return Outcome(epoch, decision, tuple(applied), tuple(not_applied), tuple(taken))


def report(outcome: Outcome, verbose: bool) -> None:
    """One line per call: printed (verbose), else to the `retune` logger at INFO."""
    if verbose:
        print(outcome.describe(), flush=True)
    else:
        logger.info("%s", outcome.describe())
