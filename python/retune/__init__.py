"""retune between epochs: trainer callbacks over the `retune` binary.

The wheel installs the Rust binary `retune` beside this package; the callbacks call it
after every epoch (`retune suggest --format json --in-place`) and apply what it decides
to the live optimizer. Each framework has its module, imported only when you use it:

    from retune.keras import RetuneCallback        # Keras 3
    from retune.torch import RetuneTuner           # a plain PyTorch loop
    from retune.hf import RetuneTrainerCallback    # Hugging Face Trainer
    from retune.lightning import RetuneCallback    # PyTorch Lightning
    from retune.ray import RetuneRayTuner, RetuneScheduler   # Ray Tune trials

`import retune` itself imports no framework.
"""

from ._binary import find_binary
from ._decision import Applied, Change, Decision, NotApplied, Outcome, RetuneError
from ._metrics_log import MetricsLog
from ._param_groups import apply_to_param_groups
from ._runner import Retune
from ._tuner import BestTracker

__all__ = [
    "Applied",
    "BestTracker",
    "Change",
    "Decision",
    "MetricsLog",
    "NotApplied",
    "Outcome",
    "Retune",
    "RetuneError",
    "apply_to_param_groups",
    "find_binary",
]
