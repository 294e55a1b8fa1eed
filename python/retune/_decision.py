"""The decision `retune suggest --format json` prints, as typed objects, and what a
callback did with it: `Change`, `Decision`, `Applied`, `NotApplied`, `Outcome`, and
`RetuneError` for a call that gave no decision. The actions a decision may carry are
named here too. Nothing else in the package is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

# What the trainer should do besides loading the new config: the binary's `Action`
# (src/advisor/mod.rs), written in snake_case.
Action = Literal["restore_checkpoint", "restart", "stop_early"]

RESTORE_CHECKPOINT: Final = "restore_checkpoint"
RESTART: Final = "restart"
STOP_EARLY: Final = "stop_early"


class RetuneError(RuntimeError):
    """The binary could not be run, failed, or printed something that is not a decision.

    `returncode` is the binary's exit code (2 bad input or usage, 3 LLM unavailable with
    fallback disabled, 4 an output could not be written), or None when it did not run.
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
    actions: tuple[Action, ...]
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
                # Not checked: an action a newer binary adds is kept, and no callback
                # acts on it.
                actions=tuple(cast(Action, str(a)) for a in data.get("actions", [])),
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
