"""Applying changes to PyTorch-style optimizer parameter groups (any objects with their
dict shape; torch itself is never imported), scaling a live value by a change, and the
learning rate a callback adds to the epoch's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._decision import Applied, Change, NotApplied, _is_number


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
