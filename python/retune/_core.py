"""What every trainer callback shares, under its former single name.

It was one module; it is now split along its seams, each part importing only those
before it in this list (and `_binary`; no cycles):

- `_decision`: the decision `retune suggest --format json` prints (`Change`,
  `Decision`), what a callback did with it (`Applied`, `NotApplied`, `Outcome`),
  `RetuneError`, and the actions (`RESTORE_CHECKPOINT`, `RESTART`, `STOP_EARLY`);
- `_metrics_log`: the metrics file (`MetricsLog`), `atomic_write`, `to_float`;
- `_param_groups`: changes applied to PyTorch-style optimizer parameter groups
  (`apply_to_param_groups`, `scale_live`, `with_learning_rate`);
- `_runner`: the call to the binary (`Retune`);
- `_tuner`: the round each callback runs after an epoch (`EpochTuner`, `BestTracker`,
  `carry_out`, `report`).

The tuning itself (diagnosis, rules or LLM, validation, cooldowns, history) is the
`retune` binary's; these modules only write what the trainer knows, run
`retune suggest --format json --in-place`, and turn its JSON into typed objects. The
framework modules (`retune.keras`, `retune.torch`, `retune.hf`, `retune.lightning`) add
what only their framework knows: where the learning rate lives, how to copy and restore
weights, how to stop. No framework is imported by any of them. The package's public
names are those `retune/__init__.py` re-exports; the rest serve the framework modules.

The package itself imports from the modules above; this one stays because
`examples/numpy_trainer.py` (and so code written after it) imports from
`retune._core`. It adds nothing of its own.
"""

from __future__ import annotations

from ._decision import (
    RESTART,
    RESTORE_CHECKPOINT,
    STOP_EARLY,
    Applied,
    Change,
    Decision,
    NotApplied,
    Outcome,
    RetuneError,
)
from ._metrics_log import KERAS_CSV, MetricsLog, atomic_write, to_float
from ._param_groups import (
    PARAM_GROUP_KEYS,
    apply_to_param_groups,
    scale_live,
    with_learning_rate,
)
from ._runner import ON_ERROR_CHOICES, Retune
from ._tuner import MONITOR_CANDIDATES, BestTracker, EpochTuner, carry_out, report

__all__ = [
    "KERAS_CSV",
    "MONITOR_CANDIDATES",
    "ON_ERROR_CHOICES",
    "PARAM_GROUP_KEYS",
    "RESTART",
    "RESTORE_CHECKPOINT",
    "STOP_EARLY",
    "Applied",
    "BestTracker",
    "Change",
    "Decision",
    "EpochTuner",
    "MetricsLog",
    "NotApplied",
    "Outcome",
    "Retune",
    "RetuneError",
    "apply_to_param_groups",
    "atomic_write",
    "carry_out",
    "report",
    "scale_live",
    "to_float",
    "with_learning_rate",
]
