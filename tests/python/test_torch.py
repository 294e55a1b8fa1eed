"""retune.torch.RetuneTuner over the real binary, with stand-ins for the model, the
optimizer and the scheduler (torch itself is not needed: the helper never imports it)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import FakeModel, FakeOptimizer, FakeScheduler, read_config, write_config
from retune.torch import RetuneTuner

SANE = {"loss": 1.5, "accuracy": 0.5, "val_loss": 1.5, "val_accuracy": 0.5}


def _tuner(tmp_path, config, optimizer, model=None, scheduler=None):
    return RetuneTuner(
        optimizer,
        config,
        model=model,
        scheduler=scheduler,
        run_dir=tmp_path / "run",
        extra_args=["--provider", "rules"],
        verbose=False,
    )


def test_divergence_after_sane_epochs_restores_the_best_weights_and_cuts_the_rate(tmp_path):
    config = write_config(
        tmp_path, optimizer="sgd", lr=0.5, momentum=0.9, num_classes=10, batch_size=32, epochs=10
    )
    model = FakeModel()
    optimizer = FakeOptimizer({"lr": 0.5, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9})
    scheduler = FakeScheduler(optimizer)
    tuner = _tuner(tmp_path, config, optimizer, model, scheduler)

    model.train_a_little(1.0)
    first = tuner.step(0, SANE, model)
    model.train_a_little(1.0)
    second = tuner.step(1, {**SANE, "loss": 1.4, "val_loss": 1.4}, model)
    best_weights = {k: v.copy() for k, v in model.params.items()}
    model.train_a_little(100.0)  # the epoch that blows up; changes the live arrays
    third = tuner.step(2, {**SANE, "loss": math.nan, "val_loss": math.nan}, model)

    assert first.decision and not first.decision.actions and not first.applied
    assert second.decision and not second.decision.actions
    assert third.decision.restore_checkpoint
    assert third.actions_taken == ("restore_checkpoint (epoch 2)",)
    for key, value in best_weights.items():
        np.testing.assert_array_equal(model.params[key], value)
    assert optimizer.state == {}  # momentum of the blown-up weights dropped
    # lr 0.5 → 0.05 in the config; every group ×0.1, the scheduler's base rates too.
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.005])
    assert scheduler.base_lrs == pytest.approx([0.05, 0.005])
    assert read_config(config)["lr"] == 0.05
    assert [a.target for a in third.applied] == ["optimizer.param_groups[0..1].lr"]
    assert not third.stop
    # The metrics file has the three epochs, the optimizer's rate and the NaN.
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines() == [
        "epoch,accuracy,loss,lr,val_accuracy,val_loss",
        "0,0.5,1.5,0.5,0.5,1.5",
        "1,0.5,1.4,0.5,0.5,1.4",
        "2,0.5,nan,0.5,0.5,nan",
    ]
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    assert len({e["adjustment_id"] for e in history}) == 3
    # What the optimizer took is on record: the rate cut of the third call.
    assert history[-1] == {
        "time": history[-1]["time"],
        "adjustment_id": third.decision.adjustment_id,
        "state": "live",
        "applied": ["lr"],
    }


def test_a_first_epoch_that_explodes_restarts_from_the_initial_weights(tmp_path):
    config = write_config(
        tmp_path, optimizer="sgd", lr=5.0, momentum=0.9, num_classes=10, batch_size=32, epochs=6
    )
    model = FakeModel()
    initial = {k: v.copy() for k, v in model.params.items()}
    optimizer = FakeOptimizer({"lr": 5.0, "momentum": 0.9, "weight_decay": 0.0})
    tuner = _tuner(tmp_path, config, optimizer, model)

    model.train_a_little(1e6)
    outcome = tuner.step(
        0, {"loss": 3.7e9, "accuracy": 0.27, "val_loss": 6.8e10, "val_accuracy": 0.25}, model
    )

    assert outcome.decision.restart
    assert outcome.actions_taken == ("restart (initial weights)",)
    for key, value in initial.items():
        np.testing.assert_array_equal(model.params[key], value)
    # 5.0 for SGD is far above its range: cut to its usual rate in one step (#12).
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert optimizer.state == {}
    assert read_config(config)["lr"] == 0.0125
    assert tuner.best.best is None  # the exploded epoch is no checkpoint


def test_restart_without_kept_weights_calls_reset_parameters(tmp_path):
    config = write_config(
        tmp_path, optimizer="sgd", lr=5.0, momentum=0.9, num_classes=10, batch_size=32, epochs=6
    )
    model = FakeModel()
    optimizer = FakeOptimizer({"lr": 5.0, "momentum": 0.9})
    tuner = _tuner(tmp_path, config, optimizer)  # no model given: nothing kept
    outcome = tuner.step(0, {"loss": 3.7e9, "accuracy": 0.27}, model)
    assert outcome.actions_taken == ("restart (reset_parameters() of 1 modules)",)
    assert model.resets == 1


def test_overfitting_without_regularisation_restores_and_stops(tmp_path):
    config = write_config(
        tmp_path, optimizer="adam", learning_rate=0.001, num_classes=10, batch_size=32, epochs=40
    )
    model = FakeModel()
    optimizer = FakeOptimizer({"lr": 0.001, "betas": (0.9, 0.999)})
    tuner = _tuner(tmp_path, config, optimizer, model)
    val_losses = [1.9, 1.6, 1.4, 1.3, 1.25, 1.3, 1.36, 1.42, 1.5]
    outcome = None
    for epoch, val_loss in enumerate(val_losses):
        model.train_a_little(1.0)
        if epoch == 4:
            best_weights = {k: v.copy() for k, v in model.params.items()}
        metrics = {"loss": 2.0 - 0.2 * epoch, "accuracy": 0.3 + 0.07 * epoch, "val_loss": val_loss}
        outcome = tuner.step(epoch, metrics, model)
        if outcome.stop:
            break
    # val_loss rose three epochs in a row (5, 6, 7) after its best (epoch 4).
    assert outcome.stop and epoch == 7
    assert outcome.decision.findings == ("overfitting",)
    assert outcome.actions_taken == ("restore_checkpoint (epoch 5)", "stop_early")
    for key, value in best_weights.items():
        np.testing.assert_array_equal(model.params[key], value)
    assert len(tuner.outcomes) == 8


def test_a_failing_call_leaves_the_optimizer_alone(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("not json")
    optimizer = FakeOptimizer({"lr": 0.1})
    tuner = _tuner(tmp_path, config, optimizer, FakeModel())
    outcome = tuner.step(0, SANE, FakeModel())
    assert outcome.decision is None and "code 2" in outcome.error
    assert optimizer.param_groups[0]["lr"] == 0.1
