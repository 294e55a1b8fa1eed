"""Shared fixtures: the real `retune` binary, configs in a temporary run directory, and
stand-in trainer objects shaped like torch's (parameter groups, state dicts).

The binary is the one the installed wheel ships (found as the callbacks find it), or a
development build (RETUNE_BINARY, else target/release/retune). Without one the tests
fail: they exist to exercise the callbacks through the real binary.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

# Before anything imports keras: the tests train on CPU with JAX.
os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = Path(__file__).resolve().parents[2]
KERAS_FIXTURES = REPO / "configs" / "examples" / "keras"
# Set by CI, where a framework that should be installed must not be skipped silently.
REQUIRE_ENV = "RETUNE_REQUIRE"


def _development_builds() -> list[Path]:
    roots = [os.environ.get("CARGO_TARGET_DIR"), REPO / "target"]
    return [Path(r) / "release" / "retune" for r in roots if r]


@pytest.fixture(scope="session", autouse=True)
def binary() -> str:
    from retune._binary import find_binary

    try:
        path = find_binary()
    except FileNotFoundError as e:
        path = next((str(p) for p in _development_builds() if p.is_file()), None)
        if path is None:
            pytest.fail(f"{e}; or build one with `cargo build --release`", pytrace=False)
        os.environ["RETUNE_BINARY"] = path
    return path


def import_or_skip(name: str):
    """Import a framework; skip without it, unless RETUNE_REQUIRE names it (CI)."""
    required = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    if name.split(".")[0] in required:
        return importlib.import_module(name)
    return pytest.importorskip(name)


def write_config(directory: Path, **values) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def read_config(path: Path) -> dict:
    return json.loads(path.read_text())


# -- stand-ins for torch objects ---------------------------------------------------------


class FakeOptimizer:
    """torch.optim's shape: `param_groups` (list of dicts) and per-parameter `state`."""

    def __init__(self, *groups: dict):
        self.param_groups = [dict(g) for g in groups]
        self.state = {"p0": {"momentum_buffer": np.ones(3)}}


class FakeScheduler:
    """A LambdaLR-like scheduler: it recomputes each group's rate from `base_lrs`."""

    def __init__(self, optimizer: FakeOptimizer):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]


class FakeModel:
    """`state_dict()` returns the live arrays, as torch returns tensors sharing the
    parameters' storage: a checkpoint that does not copy is changed by training."""

    def __init__(self):
        self.params = {"w": np.array([1.0, 2.0, 3.0]), "b": np.zeros(2)}
        self.resets = 0

    def state_dict(self):
        return dict(self.params)

    def load_state_dict(self, state):
        for k, v in state.items():
            self.params[k][...] = v  # copy into the live storage, as torch does

    def modules(self):
        return [self]

    def reset_parameters(self):
        self.resets += 1
        for v in self.params.values():
            v[...] = 0.5

    def train_a_little(self, delta: float):
        for v in self.params.values():
            v += delta  # in place, like optimizer.step()
