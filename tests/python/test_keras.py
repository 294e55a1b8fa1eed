"""The Keras callback on real Keras 3 (JAX backend, CPU) and the real binary.

The main test trains the same small model twice from the same seed, with a learning rate
a hundred times too high (Adam at 1.0): once untouched, once with RetuneCallback. It
checks that retune was called after every epoch, that the learning rate really changed
inside the optimizer (read back: Keras keeps it as float32), and that the tuned run ended
better. The rest checks restore_checkpoint and changes other than the learning rate on a
real model, through the real binary.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import import_or_skip, read_config, write_config

keras = import_or_skip("keras")

from retune._decision import Decision  # noqa: E402
from retune.keras import RetuneCallback  # noqa: E402

CONFIG = {
    "model": "mlp",
    "hidden_units": 64,
    "num_classes": 10,
    "num_features": 10,
    "optimizer": "adam",
    "learning_rate": 1.0,
    "batch_size": 32,
    "epochs": 12,
    "num_train_samples": 2000,
    "num_val_samples": 500,
    "seed": 0,
}
# Keras stores the rate as float32: 0.1 reads back as 0.10000000149011612.
FLOAT32_RTOL = 1e-6


def make_data(cfg):
    """Labels from a fixed random "teacher" network: learnable to ~80% by a small MLP."""
    rng = np.random.default_rng(cfg["seed"])
    teacher = np.random.default_rng(1234)
    d, c = cfg["num_features"], cfg["num_classes"]
    w_lin = teacher.normal(size=(d, c))
    w1, w2 = teacher.normal(size=(d, 16)), teacher.normal(size=(16, c))
    n = cfg["num_train_samples"] + cfg["num_val_samples"]
    x = rng.normal(size=(n, d)).astype("float32")
    y = (2.0 * (x @ w_lin) + np.tanh(x @ w1) @ w2).argmax(axis=1)
    split = cfg["num_train_samples"]
    return (x[:split], y[:split]), (x[split:], y[split:])


def build(cfg, optimizer=None):
    keras.utils.set_random_seed(cfg["seed"])
    inputs = keras.Input(shape=(cfg["num_features"],))
    hidden = keras.layers.Dense(cfg["hidden_units"], activation="relu")(inputs)
    outputs = keras.layers.Dense(cfg["num_classes"], activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=cfg["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(cfg, callbacks, epochs=None):
    (x, y), (x_val, y_val) = make_data(cfg)
    model = build(cfg)
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        batch_size=cfg["batch_size"],
        epochs=epochs or cfg["epochs"],
        callbacks=callbacks,
        verbose=0,
    )
    return model, history.history


def live_lr(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keras")
    config = write_config(directory, **CONFIG)
    _, baseline = fit(CONFIG, [])
    callback = RetuneCallback(
        config, run_dir=directory / "retune", extra_args=["--provider", "rules"], verbose=False
    )
    model, tuned = fit(CONFIG, [callback])
    return SimpleRuns(directory, config, baseline, tuned, model, callback)


class SimpleRuns:
    def __init__(self, directory, config, baseline, tuned, model, callback):
        self.directory, self.config = directory, config
        self.baseline, self.tuned = baseline, tuned
        self.model, self.callback = model, callback


def test_retune_was_called_after_every_epoch(runs):
    epochs = len(runs.tuned["loss"])
    assert epochs == CONFIG["epochs"]
    assert [o.epoch for o in runs.callback.outcomes] == list(range(epochs))
    assert all(o.decision is not None and o.error is None for o in runs.callback.outcomes)
    history = (runs.directory / "retune" / "history.jsonl").read_text().splitlines()
    # One adjustment a call (its pending, applied and live lines share the id).
    ids = [json.loads(line)["adjustment_id"] for line in history]
    assert list(dict.fromkeys(ids)) == [o.decision.adjustment_id for o in runs.callback.outcomes]
    # The metrics file retune read: CSVLogger's format, with the optimizer's rate added.
    lines = (runs.directory / "retune" / "metrics.csv").read_bytes().split(b"\r\n")
    assert lines[0] == b"epoch,accuracy,learning_rate,loss,val_accuracy,val_loss"
    assert len([line for line in lines if line]) == epochs + 1


def test_the_learning_rate_really_changed_in_the_optimizer(runs):
    first = runs.callback.outcomes[0]
    # Epoch 0 at lr 1.0 saturates the softmax: retune restarts at Adam's usual rate, into
    # its range in one step (#12), not a tenth of a rate 100x too high.
    assert first.decision.restart and first.actions_taken == ("restart",)
    lr_changes = [
        (o, a) for o in runs.callback.outcomes for a in o.applied if a.canonical == "learning_rate"
    ]
    assert lr_changes and lr_changes[0][1].new == pytest.approx(0.001)
    last_change = lr_changes[-1][0].decision.change("learning_rate")
    # Read back from the optimizer: float32, so compare with a relative tolerance.
    assert live_lr(runs.model) == pytest.approx(last_change.new, rel=FLOAT32_RTOL)
    assert live_lr(runs.model) != pytest.approx(CONFIG["learning_rate"], rel=0.5)
    for _, applied in lr_changes:
        assert applied.value == pytest.approx(applied.new, rel=FLOAT32_RTOL)
    # The config on disk holds the same value, written exactly.
    assert read_config(runs.config)["learning_rate"] == last_change.new
    # And the rate logged for each epoch is the one the optimizer used in it.
    rows = (runs.directory / "retune" / "metrics.csv").read_text().splitlines()[1:]
    logged = [float(r.split(",")[2]) for r in rows]
    assert logged[0] == 1.0 and logged[1] == pytest.approx(0.001, rel=FLOAT32_RTOL)


def test_the_tuned_run_ends_better_than_the_same_run_without_retune(runs):
    base, tuned = runs.baseline, runs.tuned
    # Same seed, same data: the first epoch (before retune acted) is the same run.
    assert tuned["loss"][0] == pytest.approx(base["loss"][0], rel=1e-5)
    assert math.isfinite(tuned["val_loss"][-1])
    assert tuned["val_loss"][-1] < base["val_loss"][-1] / 2
    assert tuned["val_accuracy"][-1] > base["val_accuracy"][-1] + 0.2


def test_a_report_for_every_adjustment_and_for_no_other_epoch(runs):
    acted = [o for o in runs.callback.outcomes if o.decision.changes or o.decision.actions]
    assert acted and len(acted) < len(runs.callback.outcomes)
    for outcome in runs.callback.outcomes:
        if outcome in acted:
            assert outcome.decision.report.is_file()
            assert outcome.decision.report.with_suffix(".json").is_file()
        else:
            assert outcome.decision.report is None
    reports = sorted((runs.directory / "retune" / "reports").glob("*.md"))
    # Named so that they sort in the order they were written.
    assert reports == [o.decision.report for o in acted]


# -- restore_checkpoint and other changes on a real model ---------------------------------


def _ready_callback(tmp_path, config, cfg, optimizer=None):
    """A compiled model and a callback attached as fit attaches it (model and optimizer
    built, then on_train_begin), after one real epoch of training."""
    (x, y), _ = make_data(cfg)
    model = build(cfg, optimizer)
    model.build((None, cfg["num_features"]))
    model.optimizer.build(model.trainable_variables)
    callback = RetuneCallback(
        config, run_dir=tmp_path / "retune", extra_args=["--provider", "rules"], verbose=False
    )
    callback.set_model(model)
    callback.on_train_begin()
    model.fit(x[:256], y[:256], epochs=1, batch_size=cfg["batch_size"], verbose=0)
    return model, callback, (x, y)


def test_divergence_after_good_epochs_restores_the_best_weights(tmp_path):
    cfg = {**CONFIG, "optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9}
    config = write_config(tmp_path, **cfg)
    optimizer = keras.optimizers.SGD(learning_rate=0.5, momentum=0.9)
    model, callback, (x, y) = _ready_callback(tmp_path, config, cfg, optimizer)

    sane = {"loss": 1.5, "accuracy": 0.5, "val_loss": 1.5, "val_accuracy": 0.5}
    callback.on_epoch_end(0, sane)
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    callback.on_epoch_end(1, {**sane, "loss": 1.4, "val_loss": 1.4})
    best = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 10.0 for w in best])  # the weights of an epoch that blew up
    callback.on_epoch_end(2, {**sane, "loss": float("nan"), "val_loss": float("nan")})

    outcome = callback.outcomes[-1]
    assert outcome.decision.restore_checkpoint
    assert outcome.actions_taken == ("restore_checkpoint (epoch 2)",)
    for got, want in zip(model.get_weights(), best):
        np.testing.assert_array_equal(got, want)
    # The optimizer went back to the state fit started with (zero momentum, iteration
    # 0), except the rate, which is the new one.
    assert model.optimizer.momentums
    for variable in model.optimizer.momentums:
        assert not np.any(keras.ops.convert_to_numpy(variable))
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    assert live_lr(model) == pytest.approx(0.05, rel=FLOAT32_RTOL)
    assert read_config(config)["learning_rate"] == 0.05
    # Training goes on from the restored weights.
    model.fit(x[:256], y[:256], epochs=1, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def _decision(*changes):
    return Decision.from_json(
        {
            "adjustment_id": "adj-test",
            "changes": [
                {"parameter": p, "canonical": c, "old": old, "new": new}
                for p, c, old, new in changes
            ],
        }
    )


def test_weight_decay_reaches_the_traced_train_step(tmp_path):
    cfg = {**CONFIG, "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    config = write_config(tmp_path, **cfg)
    tuned, callback, (x, y) = _ready_callback(
        tmp_path / "a", config, cfg, keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    )
    plain, _, _ = _ready_callback(
        tmp_path / "b", config, cfg, keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    )
    start = tuned.get_weights()
    for a, b in zip(start, plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    traced = tuned.train_function
    outcome = callback._apply(0, _decision(("weight_decay", "weight_decay", 0.0, 0.1)))
    assert [(a.target, a.value) for a in outcome.applied] == [("optimizer.weight_decay", 0.1)]
    assert tuned.train_function is not traced  # traced again with the new constant
    # One identical SGD step on both: the decayed model differs by exactly lr·wd·w.
    for model in (tuned, plain):
        model.fit(x[:32], y[:32], epochs=1, batch_size=32, shuffle=False, verbose=0)
    for w, a, b in zip(start, tuned.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a - b, -0.01 * 0.1 * w, rtol=1e-3, atol=1e-7)


def test_other_changes_go_to_optimizer_attributes_or_are_said_not_applied(tmp_path):
    cfg = {**CONFIG, "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    config = write_config(tmp_path, **cfg)
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    model, callback, (x, y) = _ready_callback(tmp_path, config, cfg, optimizer)
    outcome = callback._apply(
        0,
        _decision(
            ("momentum", "momentum", 0.9, 0.5),
            ("beta_1", "adam_beta1", 0.9, 0.8),
            ("batch_size", "batch_size", 32, 16),
        ),
    )
    assert [(a.target, a.value) for a in outcome.applied] == [("optimizer.momentum", 0.5)]
    assert optimizer.momentum == 0.5
    assert [(n.canonical, n.reason) for n in outcome.not_applied] == [
        ("adam_beta1", "SGD has no live setting for it"),
        ("batch_size", "SGD has no live setting for it"),
    ]
    model.fit(x[:64], y[:64], epochs=1, verbose=0)  # the retraced step runs


def test_a_learning_rate_schedule_is_left_alone_and_said_so(tmp_path):
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=10, decay_rate=0.9)
    config = write_config(tmp_path, **CONFIG)
    model, callback, _ = _ready_callback(
        tmp_path, config, CONFIG, keras.optimizers.Adam(learning_rate=schedule)
    )
    outcome = callback._apply(0, _decision(("learning_rate", "learning_rate", 1.0, 0.1)))
    assert outcome.applied == ()
    assert "schedule" in outcome.not_applied[0].reason


def test_momentum_on_sgd_built_without_it_is_not_applied_live(tmp_path):
    cfg = {**CONFIG, "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.0}
    config = write_config(tmp_path, **cfg)
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    _, callback, _ = _ready_callback(tmp_path, config, cfg, optimizer)
    outcome = callback._apply(0, _decision(("momentum", "momentum", 0.0, 0.9)))
    assert outcome.applied == () and optimizer.momentum == 0.0
    assert "momentum slots" in outcome.not_applied[0].reason
