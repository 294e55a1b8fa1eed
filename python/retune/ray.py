"""retune in a Ray Tune sweep: a tuner for each trial, and a scheduler that stops the
trials retune gives up on.

    from ray import tune
    from retune.ray import RetuneRayTuner, RetuneScheduler

    def trainable(config):
        model, optimizer = build(config)
        tuner = RetuneRayTuner(optimizer, config, model=model)
        for epoch in range(config["epochs"]):
            metrics = train_one_epoch(model, optimizer)   # {"loss": …, "val_loss": …}
            outcome = tuner.step(epoch, metrics, model)
            tune.report({**metrics, **tuner.result(outcome)})
            if outcome.stop:
                break

    scheduler = RetuneScheduler()
    tune.Tuner(
        trainable,
        param_space={"lr": tune.grid_search([0.001, 0.01, 0.5]), "epochs": 20},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(callbacks=[scheduler.callback()]),
    ).fit()

`RetuneRayTuner` is the PyTorch loop's tuner (`retune.torch.RetuneTuner`: anything with
`param_groups`, a numpy loop's included) with the trial's folder as its home: the trial's
config is written to `<trial folder>/retune/config.json`, and the metrics, history and
reports go beside it, so each trial keeps its own and Ray syncs them with the trial's
results. The decision is applied to the live optimiser, as in a plain loop.
`result(outcome)` is what to add to the trial's `tune.report`: the decision's actions,
how many changes the optimiser took, and the learning rate now.

`RetuneScheduler` is a `FIFOScheduler` (Ray's public `TrialScheduler` API, where ASHA and
PBT live) that stops a trial when retune's decision for it says `stop_early`, or
`restart` or `restore_checkpoint` with no change the trial took: the trial as configured
has nothing left to try. A trial whose trainable reports `result(outcome)` is judged by
its own tuner's decision; any other trial is judged by the scheduler itself, which
writes the trial's reported metrics to `<trial folder>/retune-scheduler/metrics.csv` and
runs `retune suggest` on a copy of the trial's config there. Why a trial was stopped is
logged (the `retune` logger), written to `<trial folder>/retune-scheduler/stopped.json`,
and, with `scheduler.callback()` among the run's callbacks, added to the trial's last
result as `retune_stopped`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray.tune
from ray.tune import Callback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ._decision import RESTART, RESTORE_CHECKPOINT, STOP_EARLY, Decision, Outcome
from ._metrics_log import KERAS_CSV, MetricsLog, atomic_write, to_float
from ._runner import Retune
from .torch import RetuneTuner

logger = logging.getLogger("retune")

# The keys `RetuneRayTuner.result` adds to a trial's report, which the scheduler reads.
ACTIONS_KEY = "retune_actions"
APPLIED_KEY = "retune_changes_applied"
LR_KEY = "retune_lr"
DIAGNOSIS_KEY = "retune_diagnosis"
# The key `callback()` adds to the last result of a trial the scheduler stopped.
STOPPED_KEY = "retune_stopped"

# Where the tuner and the scheduler keep their files, inside the trial's folder. Two
# folders: a trial may have both, and each has its own config copy and history.
TUNER_DIR = "retune"
SCHEDULER_DIR = "retune-scheduler"

# What Ray adds to every result (ray.tune.result): counters, clocks and host names, not
# the model's metrics; the scheduler leaves them out of the metrics file it writes.
RAY_BOOKKEEPING = frozenset(
    {
        "training_iteration",
        "iterations_since_restore",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "timestamp",
        "timesteps_total",
        "timesteps_since_restore",
        "episodes_total",
        "done",
        "pid",
        "hostname",
        "node_ip",
        "date",
        "trial_id",
        "experiment_id",
        "experiment_tag",
        "checkpoint_dir_name",
        "should_checkpoint",
        ACTIONS_KEY,
        APPLIED_KEY,
        LR_KEY,
        DIAGNOSIS_KEY,
        STOPPED_KEY,
    }
)


def json_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's config as JSON retune can read and adjust: numbers, strings, bools,
    lists and nested objects as they are, numpy scalars as Python numbers. Values JSON
    cannot hold (a function, a dataset handle) are left out: they are not settings retune
    could tune, and Ray's own `params.json` leaves them out the same way."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        plain = _plain(value)
        if plain is not _UNSET:
            out[str(key)] = plain
    return out


_UNSET = object()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return json_config(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return [v for v in items if v is not _UNSET]
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            return _UNSET
    return _UNSET


def current_trial_dir() -> Path:
    """The running trial's folder (`ray.tune.get_context().get_trial_dir()`)."""
    return Path(ray.tune.get_context().get_trial_dir())


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write the trial's config for retune, unless it is there already: a restored trial
    goes on with the config retune adjusted, as a resumed loop does."""
    if not path.exists():
        atomic_write(path, json.dumps(json_config(config), indent=2) + "\n")


class RetuneRayTuner(RetuneTuner):
    """`retune.torch.RetuneTuner` for a Ray Tune function trainable.

    optimizer: anything with `param_groups` (a torch optimizer, or a numpy loop's own
        `[{"lr": …}]` holder) whose rates are tuned live.
    config: the trial's config (the dict Ray passes the trainable).
    model, scheduler: as for `RetuneTuner`.
    trial_dir: the trial's folder; default, the running trial's (Ray's context).
    Other options (monitor, extra_args, on_error, verbose …) as for `RetuneTuner`.
    """

    def __init__(
        self,
        optimizer: Any,
        config: Mapping[str, Any],
        *,
        model: Any = None,
        scheduler: Any = None,
        trial_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ):
        home = Path(trial_dir) if trial_dir is not None else current_trial_dir()
        run_dir = home / TUNER_DIR
        config_path = run_dir / "config.json"
        write_config(config_path, config)
        options.setdefault("run_dir", run_dir)
        super().__init__(optimizer, config_path, model=model, scheduler=scheduler, **options)
        self.trial_dir = home

    def result(self, outcome: Outcome) -> dict[str, Any]:
        """What to add to the trial's `tune.report` for this epoch: the actions taken
        (`retune_actions`, comma-separated, empty for none), how many changes the
        optimiser took (`retune_changes_applied`), the live learning rate (`retune_lr`)
        and retune's one-line diagnosis (`retune_diagnosis`)."""
        decision = outcome.decision
        out: dict[str, Any] = {
            ACTIONS_KEY: ",".join(decision.actions) if decision is not None else "",
            APPLIED_KEY: len(outcome.applied),
            DIAGNOSIS_KEY: decision.diagnosis if decision is not None else "",
        }
        lr = to_float(self._learning_rate())
        if lr is not None:
            out[LR_KEY] = lr
        return out


def gives_up(actions: list[str], applied: int) -> str | None:
    """Why a trial should stop, from retune's actions and the changes it took; None when
    it should go on."""
    if STOP_EARLY in actions:
        return "retune decided stop_early"
    for action in (RESTART, RESTORE_CHECKPOINT):
        if action in actions and applied == 0:
            return f"retune decided {action} with no change the trial took"
    return None


class RetuneScheduler(FIFOScheduler):
    """Runs trials first in, first out (as `FIFOScheduler`) and stops a trial when
    retune's decision for it gives up on it (`gives_up`).

    extra_args: more `retune suggest` flags for the scheduler's own calls (default
        `["--provider", "rules", "--report-on", "change"]`: one call per trial per result
        must not wait on an LLM, nor leave three files a result).
    binary, timeout: as for `Retune`.
    """

    def __init__(
        self,
        *,
        extra_args: list[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ):
        super().__init__()
        self.extra_args = (
            ["--provider", "rules", "--report-on", "change"]
            if extra_args is None
            else list(extra_args)
        )
        self.binary = binary
        self.timeout = timeout
        self._logs: dict[str, tuple[Retune, MetricsLog]] = {}
        # Why each stopped trial was stopped, by trial id.
        self.stopped: dict[str, str] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        reason = self._judge(trial, result)
        if reason is None:
            return str(TrialScheduler.CONTINUE)
        iteration = result.get("training_iteration")
        why = f"stopped at iteration {iteration}: {reason}"
        self.stopped[str(trial.trial_id)] = why
        logger.warning("retune: trial %s %s", trial.trial_id, why)
        folder = _trial_folder(trial)
        if folder is not None:
            atomic_write(
                folder / SCHEDULER_DIR / "stopped.json",
                json.dumps({"trial_id": str(trial.trial_id), "iteration": iteration, "why": reason})
                + "\n",
            )
        return str(TrialScheduler.STOP)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self._logs.pop(str(trial.trial_id), None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._logs.pop(str(trial.trial_id), None)

    def debug_string(self) -> str:
        return f"Using RetuneScheduler: {len(self.stopped)} trials stopped by retune."

    def callback(self) -> Callback:
        """A Ray callback that writes why into the result the trial was stopped at
        (`retune_stopped`): the scheduler sees a copy of each result, callbacks see the
        one Ray logs."""
        return _StopNotes(self)

    def _judge(self, trial: Any, result: Mapping[str, Any]) -> str | None:
        if ACTIONS_KEY in result:
            actions = [a for a in str(result[ACTIONS_KEY]).split(",") if a]
            applied = to_float(result.get(APPLIED_KEY)) or 0.0
            return gives_up(actions, int(applied))
        decision = self._suggest(trial, result)
        if decision is None:
            return None
        reason = gives_up(list(decision.actions), 0)
        if reason is not None and decision.diagnosis:
            reason = f"{reason} ({decision.diagnosis})"
        return reason

    def _suggest(self, trial: Any, result: Mapping[str, Any]) -> Decision | None:
        """retune's decision on the trial's results so far, from the scheduler's own copy
        of its config and metrics (the trial's `params.json` is Ray's and stays as it is)."""
        key = str(trial.trial_id)
        if key not in self._logs:
            folder = _trial_folder(trial)
            if folder is None:
                return None
            home = folder / SCHEDULER_DIR
            write_config(home / "config.json", dict(trial.config))
            retune = Retune(
                home / "config.json",
                run_dir=home,
                extra_args=self.extra_args,
                binary=self.binary,
                timeout=self.timeout,
            )
            self._logs[key] = (retune, MetricsLog(home / "metrics.csv"))
        retune, log = self._logs[key]
        iteration = to_float(result.get("training_iteration"))
        epoch = int(iteration) - 1 if iteration is not None and math.isfinite(iteration) else 0
        metrics = {k: v for k, v in result.items() if k not in RAY_BOOKKEEPING}
        return retune.suggest(log.append(epoch, metrics), KERAS_CSV)


def _trial_folder(trial: Any) -> Path | None:
    """Where the trial's files are written on this (the driver's) machine: Ray syncs them
    with the trial's folder under the experiment's storage path."""
    path = getattr(trial, "local_path", None)
    return Path(path) if path else None


class _StopNotes(Callback):
    def __init__(self, scheduler: RetuneScheduler):
        self.scheduler = scheduler

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        why = self.scheduler.stopped.get(str(trial.trial_id))
        if why is not None and STOPPED_KEY not in result:
            result[STOPPED_KEY] = why


__all__ = [
    "RetuneRayTuner",
    "RetuneScheduler",
    "current_trial_dir",
    "gives_up",
    "json_config",
]
