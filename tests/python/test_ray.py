"""retune.ray on a real local Ray cluster (`ray.init(num_cpus=2)` on loopback): sweeps of
five trials of a numpy MLP, one learning rate far too high.

- With `RetuneRayTuner` in the trainable: the sick trial's live rate is cut and its
  weights restarted; the healthy trials are untouched; each trial keeps its retune files
  in its own folder.
- With only `RetuneScheduler` (a trainable that knows nothing of retune): the sick trial
  is stopped and says why in its result; the healthy trials run every epoch; then
  `retune review` of the experiment folder names the sick trial with sibling evidence.

Skipped without Ray unless RETUNE_REQUIRE names it (`.ci/ray.sh` does).
RETUNE_RAY_KEEP=DIR keeps the scheduler's experiment folder there (the fixture of
tests/ray.rs is a trimmed copy of one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import import_or_skip

ray = import_or_skip("ray")

from ray import tune  # noqa: E402

# The sweep: rates a momentum-SGD MLP learns with in EPOCHS epochs without overfitting
# (retune leaves them alone), and one 300x past the highest.
HEALTHY_LRS = [0.005, 0.01, 0.02, 0.03]
SICK_LR = 10.0
EPOCHS = 8
# Starts of the local cluster tried before the tests fail (see `cluster`).
RAY_START_ATTEMPTS = 3


def make_data(seed: int) -> tuple[Any, Any, Any, Any]:
    """Labels from a fixed random teacher network, learnable to about 0.8 accuracy."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(1234)
    w_lin = teacher.normal(size=(10, 10))
    w1, w2 = teacher.normal(size=(10, 16)), teacher.normal(size=(16, 10))
    x = rng.normal(size=(2500, 10))
    y = (2.0 * (x @ w_lin) + np.tanh(x @ w1) @ w2).argmax(axis=1)
    return x[:2000], y[:2000], x[2000:], y[2000:]


class NumpyMLP:
    """One ReLU hidden layer; `state_dict`/`load_state_dict` as torch names them, which is
    all the tuner asks of a model."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)

        def glorot(fan_in: int, fan_out: int) -> Any:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, size=(fan_in, fan_out))

        self.params = {
            "w1": glorot(10, 64),
            "b1": np.zeros(64),
            "w2": glorot(64, 10),
            "b2": np.zeros(10),
        }

    def state_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params = {k: np.array(v, copy=True) for k, v in state.items()}

    def forward(self, x: Any) -> tuple[Any, Any]:
        hidden = np.maximum(0.0, x @ self.params["w1"] + self.params["b1"])
        return hidden, hidden @ self.params["w2"] + self.params["b2"]

    def loss_and_accuracy(self, x: Any, y: Any) -> tuple[float, float]:
        with np.errstate(all="ignore"):  # a blown-up run overflows: that is the data
            _, z = self.forward(x)
            z = z - z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-log_p[np.arange(len(y)), y].mean()), float((z.argmax(axis=1) == y).mean())


class NumpySGD:
    """SGD with momentum; its rate lives in `param_groups`, as torch's does, so the tuner
    changes it live. `state` holds the velocities (the tuner clears it on a restart)."""

    def __init__(self, lr: float, momentum: float):
        self.param_groups = [{"lr": lr, "momentum": momentum}]
        self.state: dict[str, Any] = {}

    def step(self, model: NumpyMLP, x: Any, y: Any) -> None:
        lr, momentum = self.param_groups[0]["lr"], self.param_groups[0]["momentum"]
        with np.errstate(all="ignore"):
            hidden, z = model.forward(x)
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(y)), y] -= 1.0
            dz = p / len(y)
            dh = (dz @ model.params["w2"].T) * (hidden > 0)
            grads = {"w2": hidden.T @ dz, "b2": dz.sum(0), "w1": x.T @ dh, "b1": dh.sum(0)}
            for k, g in grads.items():
                v = momentum * self.state.get(k, np.zeros_like(g)) - lr * g
                self.state[k] = v
                model.params[k] = model.params[k] + v


def trainable(config: dict[str, Any]) -> None:
    """One trial: EPOCHS epochs, a report each; with retune when the config says so."""
    from retune.ray import RetuneRayTuner

    x, y, x_val, y_val = make_data(config["seed"])
    model = NumpyMLP(config["seed"])
    optimizer = NumpySGD(config["lr"], config["momentum"])
    tuner = (
        RetuneRayTuner(
            optimizer, config, model=model, extra_args=["--provider", "rules"], verbose=False
        )
        if config["retune"]
        else None
    )
    order_rng = np.random.default_rng(config["seed"])
    for epoch in range(config["epochs"]):
        order = order_rng.permutation(len(x))
        for start in range(0, len(x), config["batch_size"]):
            batch = order[start : start + config["batch_size"]]
            optimizer.step(model, x[batch], y[batch])
        loss, acc = model.loss_and_accuracy(x, y)
        val_loss, val_acc = model.loss_and_accuracy(x_val, y_val)
        metrics = {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc}
        if tuner is None:
            tune.report(metrics)
            continue
        outcome = tuner.step(epoch, metrics, model)
        tune.report({**metrics, **tuner.result(outcome)})
        if outcome.stop:
            break


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A local cluster of 2 CPUs on loopback; workers get this module by value (they
    cannot import a test file) and the package from this process's sys.path."""
    import ray.cloudpickle

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Ray waits a fixed 30 s for its raylet to register; on a loaded 2-core machine (CI
    # beside other builds) that is sometimes too short, and a second start succeeds.
    for attempt in range(RAY_START_ATTEMPTS):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt + 1 == RAY_START_ATTEMPTS:
                raise
    yield
    ray.shutdown()


def sweep(tmp: Path, name: str, *, with_tuner: bool) -> tuple[Any, Any]:
    from retune.ray import RetuneScheduler

    scheduler = RetuneScheduler()
    tuner = tune.Tuner(
        trainable,
        param_space={
            "lr": tune.grid_search([*HEALTHY_LRS, SICK_LR]),
            "momentum": 0.9,
            "batch_size": 32,
            "epochs": EPOCHS,
            "seed": 0,
            "retune": with_tuner,
        },
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            storage_path=str(tmp), name=name, verbose=0, callbacks=[scheduler.callback()]
        ),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    return results, scheduler


def by_lr(results: Any) -> dict[float, Any]:
    return {r.config["lr"]: r for r in results}


def rows(result: Any) -> list[dict[str, Any]]:
    text = (Path(result.path) / "result.json").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_tuner_in_each_trial_cuts_the_sick_rate_and_leaves_the_rest(
    cluster: Any, tmp_path: Path
) -> None:
    results, scheduler = sweep(tmp_path, "tuned", with_tuner=True)
    trials = by_lr(results)
    assert sorted(trials) == sorted([*HEALTHY_LRS, SICK_LR])

    sick = rows(trials[SICK_LR])
    actions = [r["retune_actions"] for r in sick]
    assert any("restart" in a for a in actions), actions
    assert sick[-1]["retune_lr"] < SICK_LR / 5, sick[-1]
    folder = Path(trials[SICK_LR].path)
    assert json.loads((folder / "retune" / "config.json").read_text())["lr"] < SICK_LR
    assert (folder / "retune" / "history.jsonl").is_file()
    assert list((folder / "retune" / "reports").glob("*.md"))
    # Its decisions applied a change each time they restarted, so the scheduler let the
    # tuner go on.
    assert str(trials[SICK_LR].metrics["trial_id"]) not in scheduler.stopped

    for lr in HEALTHY_LRS:
        healthy = rows(trials[lr])
        assert len(healthy) == EPOCHS, (lr, len(healthy))
        assert all(
            r["retune_changes_applied"] == 0 and r["retune_actions"] == "" for r in healthy
        ), (
            lr,
            healthy,
        )
        assert all(r["retune_lr"] == lr for r in healthy)
        assert healthy[-1]["val_accuracy"] > 0.5, (lr, healthy[-1])
        assert (
            json.loads((Path(trials[lr].path) / "retune" / "config.json").read_text())["lr"] == lr
        )


def test_the_scheduler_stops_the_sick_trial_and_review_names_it(
    cluster: Any, tmp_path: Path, binary: str
) -> None:
    results, scheduler = sweep(tmp_path, "scheduled", with_tuner=False)
    trials = by_lr(results)

    sick = rows(trials[SICK_LR])
    assert len(sick) < EPOCHS, len(sick)
    why = sick[-1]["retune_stopped"]
    assert "retune decided" in why and "restart" in why, why
    stopped = json.loads(
        (Path(trials[SICK_LR].path) / "retune-scheduler" / "stopped.json").read_text()
    )
    assert stopped["trial_id"] == sick[-1]["trial_id"]
    # The trial's own config is Ray's and stays as it was.
    assert json.loads((Path(trials[SICK_LR].path) / "params.json").read_text())["lr"] == SICK_LR
    for lr in HEALTHY_LRS:
        healthy = rows(trials[lr])
        assert len(healthy) == EPOCHS and "retune_stopped" not in healthy[-1], (lr, healthy[-1])
    assert len(scheduler.stopped) == 1

    experiment = tmp_path / "scheduled"
    keep = os.environ.get("RETUNE_RAY_KEEP")
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(experiment, keep)
    review = subprocess.run(
        [
            binary,
            "review",
            str(experiment),
            "--format",
            "json",
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert review.returncode in (0, 1), review.stderr
    runs = {Path(r["source"]["dir"]).name: r for r in json.loads(review.stdout)["runs"]}
    assert len(runs) == len(HEALTHY_LRS) + 1, sorted(runs)
    sick_run = runs[Path(trials[SICK_LR].path).name]
    assert sick_run["status"] == "critical", sick_run
    text = json.dumps(sick_run)
    assert "Sibling runs: divergence here at lr 10" in text, text
    for lr in HEALTHY_LRS:
        assert runs[Path(trials[lr].path).name]["status"] == "healthy", runs[
            Path(trials[lr].path).name
        ]
