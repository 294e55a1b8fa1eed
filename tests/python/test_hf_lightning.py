"""retune.hf and retune.lightning over the real binary, with stand-in modules for
transformers and lightning (only their Callback base classes are needed to import the
callbacks) and stand-in trainers shaped as those frameworks pass them."""

from __future__ import annotations

import importlib
import json
import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import FakeModel, FakeOptimizer, FakeScheduler, read_config, write_config


def _import_with_stand_in(monkeypatch, module: str, stand_ins: dict[str, types.ModuleType]):
    for name, stand_in in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.delitem(sys.modules, module, raising=False)
    imported = importlib.import_module(module)
    # Drop it again afterwards, so nothing else gets the stand-in's subclass.
    monkeypatch.setitem(sys.modules, module, imported)
    return imported


@pytest.fixture
def hf(monkeypatch):
    transformers = types.ModuleType("transformers")
    transformers.TrainerCallback = type("TrainerCallback", (), {})
    module = _import_with_stand_in(monkeypatch, "retune.hf", {"transformers": transformers})
    yield module
    sys.modules.pop("retune.hf", None)


@pytest.fixture
def lightning(monkeypatch):
    root = types.ModuleType("lightning")
    pl = types.ModuleType("lightning.pytorch")
    pl.Callback = type("Callback", (), {"__init__": lambda self: None})
    root.pytorch = pl
    module = _import_with_stand_in(
        monkeypatch, "retune.lightning", {"lightning": root, "lightning.pytorch": pl}
    )
    yield module
    sys.modules.pop("retune.lightning", None)


# -- Hugging Face -----------------------------------------------------------------------


def _hf_state(log_history, epoch):
    return SimpleNamespace(
        log_history=log_history,
        epoch=epoch,
        global_step=int(epoch * 20),
        max_steps=60,
        num_train_epochs=3,
        train_batch_size=16,
        is_world_process_zero=True,
    )


def _hf_config(tmp_path):
    return write_config(
        tmp_path,
        model_name_or_path="tiny",
        learning_rate=0.05,
        weight_decay=0.0,
        num_train_epochs=3,
        per_device_train_batch_size=16,
        num_labels=4,
    )


def test_hf_callback_restarts_an_exploded_run_and_scales_the_schedule(hf, tmp_path):
    config = _hf_config(tmp_path)
    callback = hf.RetuneTrainerCallback(
        config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"], verbose=False
    )
    model = FakeModel()
    initial = {k: v.copy() for k, v in model.params.items()}
    optimizer = FakeOptimizer({"lr": 0.04, "weight_decay": 0.0}, {"lr": 0.04, "weight_decay": 0.0})
    optimizer.param_groups[0]["initial_lr"] = optimizer.param_groups[1]["initial_lr"] = 0.05
    scheduler = SimpleNamespace(scheduler=FakeScheduler(optimizer))  # accelerate's wrapper
    scheduler.scheduler.base_lrs = [0.05, 0.05]
    args = SimpleNamespace(eval_strategy="epoch")
    control = SimpleNamespace(should_training_stop=False)
    kwargs = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler}

    callback.on_train_begin(args, _hf_state([], 0.0), control, **kwargs)
    model.train_a_little(1e4)
    history = [
        {"epoch": 0.5, "grad_norm": math.nan, "learning_rate": 0.045, "loss": 31000.0, "step": 10},
        {"epoch": 1.0, "grad_norm": math.inf, "learning_rate": 0.04, "loss": 2.5e7, "step": 20},
        {
            "epoch": 1.0,
            "eval_accuracy": 0.25,
            "eval_loss": 8.1e7,
            "eval_runtime": 0.2,
            "eval_samples_per_second": 500.0,
            "step": 20,
        },
    ]
    state = _hf_state(history, 1.0)
    # With evaluation on, the epoch's end is left to on_evaluate (the eval row comes later).
    assert callback.on_epoch_end(args, state, control, **kwargs) is control
    assert callback.outcomes == []
    returned = callback.on_evaluate(args, state, control, metrics=history[-1], **kwargs)

    assert returned is control and not control.should_training_stop
    (outcome,) = callback.outcomes
    assert outcome.epoch == 0
    assert outcome.decision.restart
    assert outcome.actions_taken == ("restart (initial weights)",)
    for key, value in initial.items():
        np.testing.assert_array_equal(model.params[key], value)
    change = outcome.decision.change("learning_rate")
    assert (change.old, change.new) == (0.05, 0.005)
    assert read_config(config)["learning_rate"] == 0.005
    # The rate now, the schedule's base and the groups' initial_lr all ×0.1.
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.004, 0.004])
    assert scheduler.scheduler.base_lrs == pytest.approx([0.005, 0.005])
    assert [g["initial_lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.005])
    # trainer_state.json as the Trainer writes it: indent 2, sorted keys, NaN bare.
    text = (tmp_path / "run" / "trainer_state.json").read_text()
    assert text.startswith('{\n  "epoch": 1.0,\n  "global_step": 20,\n  "log_history": [')
    assert '"grad_norm": NaN' in text and '"grad_norm": Infinity' in text
    assert json.loads(text)["max_steps"] == 60


def test_hf_callback_without_evaluation_acts_at_epoch_end_until_it_stops(hf, tmp_path):
    config = write_config(
        tmp_path,
        learning_rate=0.001,
        num_train_epochs=40,
        per_device_train_batch_size=16,
        lr_scheduler={"type": "plateau", "min_lr": 1e-5},
    )
    callback = hf.RetuneTrainerCallback(
        config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"], verbose=False
    )
    args = SimpleNamespace(eval_strategy=SimpleNamespace(value="no"))  # an IntervalStrategy
    control = SimpleNamespace(should_training_stop=False)
    model, optimizer = FakeModel(), FakeOptimizer({"lr": 0.001, "weight_decay": 0.0})
    kwargs = {"model": model, "optimizer": optimizer, "lr_scheduler": None}
    callback.on_train_begin(args, _hf_state([], 0.0), control, **kwargs)
    history = []
    for epoch in range(1, 30):
        # The loss comes down, then stays flat whatever the rate: a plateau retune first
        # answers with a smaller rate, then, as that does not help, with stop_early.
        loss = {1: 2.0, 2: 1.2, 3: 0.95}.get(epoch, 0.9)
        lr = optimizer.param_groups[0]["lr"]  # what the Trainer logs: the live rate
        history.append(
            {"epoch": float(epoch), "learning_rate": lr, "loss": loss, "step": 20 * epoch}
        )
        callback.on_epoch_end(args, _hf_state(list(history), float(epoch)), control, **kwargs)
        # The live rate and the config retune rewrote agree after every call.
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            read_config(config)["learning_rate"]
        )
        if control.should_training_stop:
            break
    outcomes = callback.outcomes
    assert [o.epoch for o in outcomes] == list(range(len(outcomes)))
    assert all(o.decision is not None for o in outcomes)
    cuts = [o.decision.change("learning_rate") for o in outcomes if o.applied]
    # One cut for the plateau; when it brings no new best, retune stops the run rather
    # than cutting again (a cut that did not help is the evidence of convergence).
    assert len(cuts) >= 1 and all(c.new < c.old for c in cuts)
    assert control.should_training_stop and outcomes[-1].decision.stop_early
    assert outcomes[-1].decision.findings[0] == "plateau"
    assert optimizer.param_groups[0]["lr"] >= 1e-5
    # After training, a `trainer.evaluate()` does not call retune.
    calls = len(callback.outcomes)
    callback.on_train_end(args, _hf_state(history, 12.0), control, **kwargs)
    callback.on_evaluate(
        args, _hf_state(history, 12.0), control, metrics={"eval_loss": 1.0}, **kwargs
    )
    assert len(callback.outcomes) == calls


def test_hf_epoch_index_counts_from_zero(hf):
    assert [hf._epoch_index(e) for e in (None, 0.0, 0.5, 1.0, 1.5, 2.0)] == [0, 0, 0, 0, 1, 1]


# -- Lightning --------------------------------------------------------------------------


class _Tensor:
    """What trainer.callback_metrics holds: 0-d tensors with item()."""

    def __init__(self, value):
        self.value = value

    def item(self):
        return self.value


class _Strategy:
    def __init__(self, from_zero=None):
        self.from_zero = from_zero
        self.broadcasts = 0

    def broadcast(self, obj, src=0):
        assert src == 0
        self.broadcasts += 1
        return obj if self.from_zero is None else self.from_zero


def _trainer(epoch, metrics, optimizer, scheduler=None, zero=True, strategy=None):
    return SimpleNamespace(
        current_epoch=epoch,
        callback_metrics={k: _Tensor(v) for k, v in metrics.items()},
        is_global_zero=zero,
        strategy=strategy or _Strategy(),
        optimizers=[optimizer],
        lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)] if scheduler else [],
        should_stop=False,
    )


def test_lightning_callback_restores_and_cuts_the_rate(lightning, tmp_path):
    config = write_config(
        tmp_path,
        optimizer="sgd",
        lr=0.5,
        momentum=0.9,
        num_classes=10,
        batch_size=32,
        max_epochs=10,
    )
    callback = lightning.RetuneCallback(
        config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"], verbose=False
    )
    module = FakeModel()
    optimizer = FakeOptimizer({"lr": 0.5, "momentum": 0.9})
    scheduler = FakeScheduler(optimizer)
    callback.on_train_start(None, module)
    epochs = [
        {"train_loss": 1.5, "train_loss_step": 1.2, "val_loss": 1.5, "val_acc": 0.5},
        {"train_loss": 1.4, "train_loss_step": 1.3, "val_loss": 1.4, "val_acc": 0.6},
        {"train_loss": math.nan, "train_loss_step": math.nan, "val_loss": math.nan, "val_acc": 0.1},
    ]
    for epoch, metrics in enumerate(epochs):
        module.train_a_little(1.0 if epoch < 2 else 1e6)
        if epoch == 1:
            best = {k: v.copy() for k, v in module.params.items()}
        trainer = _trainer(epoch, metrics, optimizer, scheduler)
        callback.on_train_epoch_end(trainer, module)

    outcome = callback.outcomes[-1]
    assert outcome.actions_taken == ("restore_checkpoint (epoch 2)",)
    for key, value in best.items():
        np.testing.assert_array_equal(module.params[key], value)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert scheduler.base_lrs == pytest.approx([0.05])
    assert outcome.applied[0].target == "trainer.optimizers[0].param_groups[0].lr"
    assert trainer.strategy.broadcasts == 1 and not trainer.should_stop
    # Per-step values stay out of the file; tensors became floats.
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines() == [
        "epoch,train_loss,val_acc,val_loss",
        "0,1.5,0.5,1.5",
        "1,1.4,0.6,1.4",
        "2,nan,0.1,nan",
    ]


def test_lightning_other_processes_apply_the_decision_of_process_zero(lightning, tmp_path):
    config = write_config(tmp_path, lr=0.5)
    callback = lightning.RetuneCallback(config, run_dir=tmp_path / "run", verbose=False)
    decision = {
        "adjustment_id": "adj-from-zero",
        "changes": [{"parameter": "lr", "canonical": "learning_rate", "old": 0.5, "new": 0.25}],
        "actions": ["stop_early"],
        "findings": [{"id": "plateau"}],
        "report": str(tmp_path / "reports" / "adj-from-zero.md"),
    }
    optimizer = FakeOptimizer({"lr": 0.5})
    trainer = _trainer(
        0, {"train_loss": 1.0}, optimizer, zero=False, strategy=_Strategy((decision, None))
    )
    callback.on_train_epoch_end(trainer, FakeModel())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    assert trainer.should_stop
    assert not (tmp_path / "run" / "metrics.csv").exists()  # only process zero writes
    assert read_config(config) == {"lr": 0.5}  # and only it runs retune
