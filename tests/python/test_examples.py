"""The examples under examples/: the numpy trainer runs for real (with and without
retune), the others must at least compile (torch is not installed in CI)."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import retune
from conftest import REPO
from retune._binary import find_binary

EXAMPLES = REPO / "examples"


def _run_example(name: str, *args: str, tmp_path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numpy_trainer_ends_better_with_retune(tmp_path):
    tuned = _run_example("numpy_trainer.py", "--dir", str(tmp_path / "with"), tmp_path=tmp_path)
    plain = _run_example(
        "numpy_trainer.py", "--dir", str(tmp_path / "without"), "--no-retune", tmp_path=tmp_path
    )
    assert plain["learning_rate"] == 10.0 and tuned["learning_rate"] < 1.0
    assert tuned["final_val_accuracy"] > plain["final_val_accuracy"] + 0.3
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert config["lr"] == tuned["learning_rate"]  # the live rate is the config's


@pytest.mark.parametrize(
    "name",
    [
        "keras_example.py",
        "numpy_trainer.py",
        "torch_example.py",
        "hf_example.py",
        "lightning_example.py",
    ],
)
def test_example_compiles(name, tmp_path):
    py_compile.compile(str(EXAMPLES / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_running_from_the_installed_package():
    """In CI the tests run against the installed wheel: the package comes from the venv's
    site-packages and the binary from the venv's scripts directory."""
    if not os.environ.get("RETUNE_EXPECT_INSTALLED"):
        pytest.skip("CI sets RETUNE_EXPECT_INSTALLED when it runs these tests from the wheel")
    package = Path(retune.__file__).resolve()
    assert REPO / "python" not in package.parents, package
    assert Path(sysconfig.get_path("purelib")) in package.parents, package
    assert Path(find_binary()).parent == Path(sysconfig.get_path("scripts"))
