"""What every trainer callback shares: the metrics file, the call to the binary, the
decision it prints, the round each callback runs after an epoch, and applying changes to
PyTorch-style optimizer parameter groups.

The tuning itself (diagnosis, rules or LLM, validation, cooldowns, history) is the
`retune` binary's; this module only writes what the trainer knows, runs
`retune suggest --format json --in-place`, and turns its JSON into typed objects. What
every callback does after an epoch (`EpochTuner`: keep the best weights, write the
metrics, ask the binary, act, log) and the order a decision is carried out in
(`carry_out`) are here too. The framework modules (`retune.keras`, `retune.torch`,
`retune.hf`, `retune.lightning`) add what only their framework knows: where the learning
rate lives, how to copy and restore weights, how to stop. No framework is imported here.
The package's public names are those `retune/__init__.py` re-exports; the rest serve the
framework modules.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._binary import find_binary

logger = logging.getLogger("retune")

RESTORE_CHECKPOINT = "restore_checkpoint"
RESTART = "restart"
STOP_EARLY = "stop_early"

ON_ERROR_CHOICES = ("warn", "raise")

# `--metrics-format` of the file MetricsLog writes.
KERAS_CSV = "keras-csv"

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


class RetuneError(RuntimeError):
    """The binary could not be run, failed, or printed something that is not a decision.

    `returncode` is the binary's exit code (2 bad input or usage, 3 LLM unavailable with
    fallback disabled, 1 an output could not be written), or None when it did not run.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        stderr: str = "",
        command: Sequence[str] = (),
    ):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr
        self.command = list(command)


@dataclass(frozen=True)
class Change:
    """One accepted change: `parameter` is the config's key (dotted for nested keys),
    `canonical` the parameter-space name (`learning_rate`, `weight_decay` ...)."""

    parameter: str
    canonical: str
    old: Any
    new: Any
    rationale: str = ""
    confidence: float | None = None
    clamped: Mapping[str, Any] | None = None

    @property
    def factor(self) -> float | None:
        """new / old for nonzero numbers: applied to a live value, it keeps per-group
        rates and a schedule's shape (with one constant rate it gives exactly `new`)."""
        if _is_number(self.old) and _is_number(self.new) and self.old != 0:
            return float(self.new) / float(self.old)
        return None


@dataclass(frozen=True)
class Decision:
    """The JSON object `retune suggest --format json` prints, typed where callers use it
    and whole in `raw`."""

    adjustment_id: str
    epoch: int | None
    provider: str
    diagnosis: str
    changes: tuple[Change, ...]
    actions: tuple[str, ...]
    findings: tuple[str, ...]
    report: Path | None
    config_out: Path | None
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Path | None = None) -> Decision:
        """Build from the decision object; relative paths are taken from `base` (the
        binary's working directory)."""
        try:
            changes = tuple(
                Change(
                    parameter=c["parameter"],
                    canonical=c.get("canonical") or c["parameter"],
                    old=c.get("old"),
                    new=c["new"],
                    rationale=c.get("rationale", ""),
                    confidence=c.get("confidence"),
                    clamped=c.get("clamped"),
                )
                for c in data.get("changes", [])
            )
            return cls(
                adjustment_id=str(data["adjustment_id"]),
                epoch=data.get("epoch"),
                provider=str(data.get("provider", "")),
                diagnosis=str(data.get("diagnosis", "")),
                changes=changes,
                actions=tuple(str(a) for a in data.get("actions", [])),
                findings=tuple(str(f["id"]) for f in data.get("findings", [])),
                report=_path_or_none(data.get("report"), base),
                config_out=_path_or_none(data.get("config_out"), base),
                raw=data,
            )
        except (KeyError, TypeError) as e:
            raise RetuneError(f"the decision lacks a field the callbacks need: {e!r}") from e

    def change(self, canonical: str) -> Change | None:
        """The change of a parameter by its canonical name, if any."""
        return next((c for c in self.changes if c.canonical == canonical), None)

    @property
    def restore_checkpoint(self) -> bool:
        return RESTORE_CHECKPOINT in self.actions

    @property
    def restart(self) -> bool:
        return RESTART in self.actions

    @property
    def stop_early(self) -> bool:
        return STOP_EARLY in self.actions


@dataclass(frozen=True)
class Applied:
    """A change that reached the live optimizer: `target` says where, `value` what it
    holds now (read back, so a float32 rate shows as the framework stores it)."""

    canonical: str
    parameter: str
    new: Any
    target: str
    value: Any


@dataclass(frozen=True)
class NotApplied:
    """A change the trainer could not make live; the config (rewritten in place) has it
    for the next run."""

    canonical: str
    parameter: str
    new: Any
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What one call did: the decision (None when retune failed and on_error="warn"),
    the changes applied to the live trainer and those that could not be, and the actions
    carried out (`restore_checkpoint`, `restart`, `stop_early`)."""

    epoch: int
    decision: Decision | None
    applied: tuple[Applied, ...] = ()
    not_applied: tuple[NotApplied, ...] = ()
    actions_taken: tuple[str, ...] = ()
    error: str | None = None

    @property
    def stop(self) -> bool:
        return STOP_EARLY in self.actions_taken

    def describe(self) -> str:
        """One line for the training log. Epochs are counted from 1 there, as on the
        Keras console and in retune's reports; `epoch` itself is the trainer's 0-based
        index."""
        head = f"retune after epoch {self.epoch + 1}:"
        if self.decision is None:
            return f"{head} no decision ({self.error})"
        parts = []
        for a in self.applied:
            parts.append(
                f"{a.canonical} {_short(_old_of(self.decision, a.canonical))} → "
                f"{_short(a.new)} ({a.target} = {_live(a.value)})"
            )
        for n in self.not_applied:
            parts.append(f"{n.canonical} → {_short(n.new)} in the config only ({n.reason})")
        if self.actions_taken:
            parts.append("did " + ", ".join(self.actions_taken))
        if not parts:
            found = ", ".join(self.decision.findings) or "nothing to act on"
            parts.append(f"no change ({found})")
        report = f"; report {self.decision.report}" if self.decision.changes else ""
        return f"{head} {'; '.join(parts)}{report}"


class MetricsLog:
    """The metrics file the trainer has, written as Keras' CSVLogger writes it: a header
    of `epoch` then the metric names sorted, 0-based epochs, CRLF line ends (Python's csv
    module), `NA` where an epoch lacks a metric, non-finite values as `nan`/`inf`.

    Unlike CSVLogger, a metric that first appears in a later epoch (validation every
    other epoch, say) gets a column: the whole file is rewritten, atomically, each epoch.
    An existing file is read first, so a resumed run keeps its earlier epochs; an epoch
    logged again (a run that resumed from an older checkpoint) replaces the rows from
    that epoch on.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._rows: list[tuple[int, dict[str, float]]] = []
        if self.path.exists():
            self._rows = _read_metrics_csv(self.path)

    @property
    def rows(self) -> list[tuple[int, dict[str, float]]]:
        return list(self._rows)

    def append(self, epoch: int, metrics: Mapping[str, Any]) -> Path:
        """Record the epoch and rewrite the file; returns its path."""
        values = {}
        for key, value in metrics.items():
            number = to_float(value)
            if number is not None:
                values[str(key)] = number
        self._rows = [(e, r) for e, r in self._rows if e < epoch]
        self._rows.append((int(epoch), values))
        self._write()
        return self.path

    def _write(self) -> None:
        keys = sorted({k for _, row in self._rows for k in row})
        lines = [["epoch", *keys]]
        for epoch, row in self._rows:
            lines.append([str(epoch), *(_csv_value(row.get(k)) for k in keys)])
        buffer = io.StringIO()
        csv.writer(buffer).writerows(lines)  # lineterminator \r\n, as CSVLogger
        atomic_write(self.path, buffer.getvalue())


def atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory and rename it, so a reader
    (the binary, a person tailing the file) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Retune:
    """One training run's connection to the binary.

    `config` is the training config (a JSON object) that `retune suggest --in-place`
    adjusts. Everything else goes into `run_dir`: the metrics file the callback writes,
    the run's history (`history.jsonl`, which carries cooldowns and the text of every
    earlier config) and the reports. Without `run_dir`, each run gets a new directory
    `<config's directory>/retune/<UTC time>`; pass the same `run_dir` again to resume a
    run with its metrics and history.

    `extra_args` go to `retune suggest` as they are (`["--provider", "rules"]`,
    `["--num-classes", "10"]`, `["--space", "space.toml"]` ...). `on_error="warn"` logs a
    failed call and lets training go on; `"raise"` raises RetuneError.
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        run_dir: str | os.PathLike[str] | None = None,
        history: str | os.PathLike[str] | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        binary: str | os.PathLike[str] | None = None,
        on_error: str = "warn",
        timeout: float | None = None,
    ):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, not {on_error!r}")
        self.config = Path(os.path.abspath(config))
        self.run_dir = Path(os.path.abspath(run_dir or _new_run_dir(self.config)))
        self.history = Path(os.path.abspath(history or self.run_dir / "history.jsonl"))
        self.report_dir = Path(os.path.abspath(report_dir or self.run_dir / "reports"))
        self.extra_args = [str(a) for a in extra_args]
        self._binary = str(binary) if binary is not None else None
        self.on_error = on_error
        self.timeout = timeout
        # Why the last call gave no decision (None after a successful one).
        self.last_error: str | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_binary()
        return self._binary

    def command(
        self, metrics: str | os.PathLike[str], metrics_format: str | None = None
    ) -> list[str]:
        """The exact command line `suggest` runs."""
        cmd = [
            self.binary,
            "suggest",
            "--config",
            str(self.config),
            "--metrics",
            os.path.abspath(metrics),
        ]
        if metrics_format:
            cmd += ["--metrics-format", metrics_format]
        cmd += [
            "--format",
            "json",
            "--in-place",
            "--history",
            str(self.history),
            "--report-dir",
            str(self.report_dir),
            *self.extra_args,
        ]
        return cmd

    def suggest(
        self, metrics: str | os.PathLike[str], metrics_format: str | None = None
    ) -> Decision | None:
        """Run `retune suggest` on the metrics file and return its decision.

        On failure: raises RetuneError with on_error="raise"; logs a warning and returns
        None with on_error="warn", so a tuning failure never stops the training."""
        try:
            decision = self._suggest(metrics, metrics_format)
        except RetuneError as e:
            self.last_error = str(e)
            if self.on_error == "raise":
                raise
            logger.warning("retune: no adjustment this epoch: %s", e)
            return None
        self.last_error = None
        return decision

    def _suggest(self, metrics, metrics_format) -> Decision:
        try:
            cmd = self.command(metrics, metrics_format)
        except FileNotFoundError as e:
            raise RetuneError(str(e)) from e
        started = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=self.timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RetuneError(f"could not run {cmd[0]}: {e}", command=cmd) from e
        elapsed = time.monotonic() - started
        stderr = done.stderr.strip()
        if done.returncode != 0:
            raise RetuneError(
                f"retune exited with code {done.returncode}: {stderr or '(no message)'}",
                returncode=done.returncode,
                stderr=done.stderr,
                command=cmd,
            )
        if stderr:
            logger.info("retune (stderr): %s", stderr)
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError as e:
            raise RetuneError(
                f"retune printed something that is not JSON ({e}): {done.stdout[:200]!r}",
                returncode=0,
                stderr=done.stderr,
                command=cmd,
            ) from e
        if not isinstance(data, dict):
            raise RetuneError("retune printed JSON that is not an object", command=cmd)
        decision = Decision.from_json(data, base=Path.cwd())
        logger.debug("retune: %s in %.0f ms", decision.adjustment_id, elapsed * 1000)
        return decision


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
        on_error: str = "warn",
        verbose: bool = True,
        history: str | os.PathLike[str] | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
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
        metrics_format: str = KERAS_CSV,
        zero: bool = True,
        broadcast: Callable[[Any], Any] | None = None,
    ) -> Outcome:
        """One epoch's round: keep the weights if the epoch is the best so far
        (`keep_best`; None when there are none to keep, and then the best is not tracked
        either), write the metrics file (`write`, which returns its path), ask retune, and
        carry out its decision (`act`); the outcome is kept in `outcomes` and logged.

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


def with_learning_rate(
    metrics: Mapping[str, Any], key: str, rate: Callable[[], Any]
) -> dict[str, Any]:
    """The epoch's metrics, plus the optimizer's live learning rate (`rate()`, skipped
    when None) under `key` unless the trainer logged one as `lr` or `learning_rate`:
    retune judges a rate by the epochs that ran with it."""
    row = dict(metrics)
    if "lr" not in row and "learning_rate" not in row:
        value = rate()
        if value is not None:
            row[key] = value
    return row


# Where a canonical parameter lives in a PyTorch parameter group: a key, or a key and an
# index into its tuple (Adam's `betas`). The names are torch.optim's.
PARAM_GROUP_KEYS: dict[str, tuple[str, int | None]] = {
    "learning_rate": ("lr", None),
    "weight_decay": ("weight_decay", None),
    "momentum": ("momentum", None),
    "adam_beta1": ("betas", 0),
    "adam_beta2": ("betas", 1),
    "adam_epsilon": ("eps", None),
}


def apply_to_param_groups(
    param_groups: Sequence[dict[str, Any]],
    changes: Iterable[Change],
    schedulers: Iterable[Any] = (),
    *,
    where: str = "param_groups",
) -> tuple[list[Applied], list[NotApplied]]:
    """Apply changes to torch.optim parameter groups (any objects with their dict shape).

    A number that was nonzero is scaled by new/old in every group, so groups with their
    own rates keep their ratios and a schedule keeps its shape; with one group and a
    constant rate the group ends at exactly `new`. A value that was 0 (weight decay off)
    is set to `new` in every group. For the learning rate, a scheduler's `base_lrs` (and
    the groups' `initial_lr`) are scaled too: LambdaLR, StepLR, CosineAnnealingLR and the
    Hugging Face schedules recompute the rate from them each step and would undo a change
    made to `lr` alone.
    """
    applied: list[Applied] = []
    not_applied: list[NotApplied] = []
    schedulers = [_unwrap_scheduler(s) for s in schedulers if s is not None]
    for change in changes:
        spot = PARAM_GROUP_KEYS.get(change.canonical)
        if spot is None:
            not_applied.append(_no_live_value(change, "PyTorch optimizers"))
            continue
        key, index = spot
        groups = [g for g in param_groups if key in g]
        if not groups or not _is_number(change.new):
            not_applied.append(
                NotApplied(
                    change.canonical,
                    change.parameter,
                    change.new,
                    f"the optimizer's parameter groups have no `{key}`",
                )
            )
            continue
        for group in groups:
            current = group[key] if index is None else group[key][index]
            value = scale_live(current, change)
            if index is None:
                group[key] = value
            else:
                parts = list(group[key])
                parts[index] = value
                group[key] = type(group[key])(parts)
            if key == "lr" and "initial_lr" in group:
                group["initial_lr"] = scale_live(group["initial_lr"], change)
        if key == "lr":
            for scheduler in schedulers:
                base = getattr(scheduler, "base_lrs", None)
                if base is not None:
                    scheduler.base_lrs = [scale_live(b, change) for b in base]
        values = [g[key] if index is None else g[key][index] for g in groups]
        target = f"{where}[{_span(len(groups))}].{key}" + ("" if index is None else f"[{index}]")
        applied.append(
            Applied(
                change.canonical,
                change.parameter,
                change.new,
                target,
                values[0] if len(set(values)) == 1 else values,
            )
        )
    return applied, not_applied


def report(outcome: Outcome, verbose: bool) -> None:
    """One line per call: printed (verbose), else to the `retune` logger at INFO."""
    if verbose:
        print(outcome.describe(), flush=True)
    else:
        logger.info("%s", outcome.describe())


def to_float(value: Any) -> float | None:
    """A metric value as a float: Python and numpy numbers, 0-d arrays and tensors
    (anything with `item()`); None for what is not a number (strings, lists)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            result = item()
        except (TypeError, ValueError, RuntimeError):  # not a single element
            return None
        return float(result) if isinstance(result, (int, float)) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _no_live_value(change: Change, framework: str) -> NotApplied:
    return NotApplied(
        change.canonical,
        change.parameter,
        change.new,
        f"{framework} have no live setting for it",
    )


def scale_live(current: Any, change: Change) -> float:
    """The live value after a change: scaled by new/old when both it and `old` are
    nonzero numbers, else `new` itself (weight decay switched on from 0 or None)."""
    factor = change.factor
    if factor is None or not _is_number(current) or current == 0:
        return float(change.new)
    return float(current) * factor


def _span(n: int) -> str:
    return "0" if n == 1 else f"0..{n - 1}"


def _unwrap_scheduler(scheduler: Any) -> Any:
    # accelerate's AcceleratedScheduler keeps the torch scheduler in `.scheduler`.
    inner = getattr(scheduler, "scheduler", None)
    return inner if inner is not None and hasattr(inner, "base_lrs") else scheduler


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    """Shortest round-trip form of a float (`0.05`, not `0.05000000074505806` for a
    float32 read back: the caller passes the value it means)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _live(value: Any) -> str:
    """A value read back from a framework: 7 significant digits, the precision of a
    float32, so Keras' 0.10000000149011612 shows as the 0.1 it stands for."""
    if isinstance(value, float):
        return f"{value:.7g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_live(v) for v in value) + "]"
    return str(value)


def _old_of(decision: Decision, canonical: str) -> Any:
    change = decision.change(canonical)
    return change.old if change else "?"


def _path_or_none(value: Any, base: Path | None) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path


def _new_run_dir(config: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    root = config.parent / "retune"
    candidate = root / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def _csv_value(value: float | None) -> str:
    if value is None:
        return "NA"
    return repr(value)  # nan, inf, -inf, and floats in shortest round-trip form


def _read_metrics_csv(path: Path) -> list[tuple[int, dict[str, float]]]:
    rows: list[tuple[int, dict[str, float]]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            try:
                epoch = int(record.pop("epoch"))
            except (KeyError, TypeError, ValueError):
                continue  # a repeated header or a torn line of another writer
            values = {}
            for k, v in record.items():
                if k is None or v in (None, "", "NA"):
                    continue
                try:
                    values[k] = float(v)
                except ValueError:
                    continue
            rows.append((epoch, values))
    return rows
