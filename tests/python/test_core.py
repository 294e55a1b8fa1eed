"""retune's shared modules (_decision, _metrics_log, _runner, _tuner, _param_groups) and
retune._binary: the metrics file, the command, the call to the real binary and its
decision, errors, and changes applied to parameter groups."""

from __future__ import annotations

import ast
import json
import logging
import math
import stat
import subprocess
import sysconfig
from pathlib import Path

import pytest

import retune
from conftest import KERAS_FIXTURES, FakeOptimizer, FakeScheduler, read_config, write_config
from retune._binary import find_binary
from retune._decision import Change, Decision, NotApplied, Outcome, RetuneError
from retune._metrics_log import MetricsLog
from retune._param_groups import apply_to_param_groups
from retune._runner import Retune
from retune._tuner import BestTracker, EpochTuner

# -- the metrics file ---------------------------------------------------------------------


def test_metrics_log_writes_what_keras_csvlogger_writes(tmp_path):
    """Fed the epochs of a real Keras run, the file is byte for byte the CSV that
    keras.callbacks.CSVLogger wrote for that run (NaN epochs included)."""
    fixture = KERAS_FIXTURES / "diverging"
    history = json.loads((fixture / "history.json").read_text())
    log = MetricsLog(tmp_path / "metrics.csv")
    for epoch in range(len(history["loss"])):
        log.append(epoch, {k: v[epoch] for k, v in history.items()})
    assert log.path.read_bytes() == (fixture / "history.csv").read_bytes()


def test_metrics_log_adds_a_late_column_and_writes_na(tmp_path):
    log = MetricsLog(tmp_path / "m.csv")
    log.append(0, {"loss": 2.5, "accuracy": 0.125})
    log.append(1, {"loss": float("inf"), "accuracy": 0.25, "val_loss": 1.5, "note": "text"})
    assert log.path.read_bytes() == (
        b"epoch,accuracy,loss,val_loss\r\n0,0.125,2.5,NA\r\n1,0.25,inf,1.5\r\n"
    )


def test_metrics_log_resumes_and_replaces_relogged_epochs(tmp_path):
    path = tmp_path / "m.csv"
    first = MetricsLog(path)
    for epoch, loss in enumerate([3.0, 2.0, 1.0]):
        first.append(epoch, {"loss": loss})
    # A run that resumes from the checkpoint of epoch 1 logs epoch 2 again.
    resumed = MetricsLog(path)
    assert [e for e, _ in resumed.rows] == [0, 1, 2]
    resumed.append(2, {"loss": 1.5, "val_loss": 1.75})
    assert path.read_text().splitlines() == [
        "epoch,loss,val_loss",
        "0,3.0,NA",
        "1,2.0,NA",
        "2,1.5,1.75",
    ]


def test_metrics_log_takes_numpy_scalars_and_zero_d_arrays(tmp_path):
    np = pytest.importorskip("numpy")
    log = MetricsLog(tmp_path / "m.csv")
    log.append(0, {"loss": np.float32(0.5), "acc": np.array(0.25), "vec": np.ones(3)})
    assert log.path.read_text().splitlines() == ["epoch,acc,loss", "0,0.25,0.5"]


# -- the command and the real binary --------------------------------------------------


def test_command_is_suggest_json_in_place_with_history_and_reports(tmp_path, binary):
    config = write_config(tmp_path, lr=0.1)
    r = Retune(config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"])
    assert r.command(tmp_path / "m.csv", "keras-csv") == [
        binary,
        "suggest",
        "--config",
        str(config),
        "--metrics",
        str(tmp_path / "m.csv"),
        "--metrics-format",
        "keras-csv",
        "--format",
        "json",
        "--in-place",
        "--history",
        str(tmp_path / "run" / "history.jsonl"),
        "--report-dir",
        str(tmp_path / "run" / "reports"),
        "--report-on",
        "change",
        "--provider",
        "rules",
    ]


def test_report_on_is_change_unless_asked_otherwise(tmp_path):
    config = write_config(tmp_path, lr=0.1)

    def report_on(r: Retune) -> list[str]:
        cmd = r.command(tmp_path / "m.csv")
        return [cmd[i + 1] for i, a in enumerate(cmd) if a == "--report-on"]

    assert report_on(Retune(config, run_dir=tmp_path / "a")) == ["change"]
    assert report_on(Retune(config, run_dir=tmp_path / "b", report_on="always")) == ["always"]
    # A flag among extra_args wins, and is not given twice.
    asked = Retune(config, run_dir=tmp_path / "c", extra_args=["--report-on", "always"])
    assert report_on(asked) == ["always"]
    with pytest.raises(ValueError, match="report_on"):
        Retune(config, report_on="never")  # type: ignore[arg-type]


def test_a_healthy_epoch_leaves_a_history_line_and_no_report(tmp_path):
    """Through the binary: by default a decision that changes nothing writes no report,
    JSON twin or chart; `report_on="always"` writes them."""
    fixture = KERAS_FIXTURES / "healthy"
    config = tmp_path / "config.json"
    config.write_bytes((fixture / "config.json").read_bytes())
    quiet = Retune(config, run_dir=tmp_path / "quiet", extra_args=["--provider", "rules"])
    decision = quiet.suggest(fixture / "history.csv", "keras-csv")
    assert decision is not None and not decision.changes and not decision.actions
    assert decision.report is None
    assert not (tmp_path / "quiet" / "reports").exists()
    assert len((tmp_path / "quiet" / "history.jsonl").read_text().splitlines()) == 1
    always = Retune(
        config, run_dir=tmp_path / "always", extra_args=["--provider", "rules"], report_on="always"
    )
    decision = always.suggest(fixture / "history.csv", "keras-csv")
    assert decision is not None and decision.report is not None and decision.report.is_file()


def test_default_run_dir_is_new_per_run_beside_the_config(tmp_path):
    config = write_config(tmp_path, lr=0.1)
    a, b = Retune(config), Retune(config)
    assert a.run_dir.parent == b.run_dir.parent == tmp_path / "retune"
    assert a.run_dir != b.run_dir and a.run_dir.is_dir() and b.run_dir.is_dir()


def test_suggest_through_the_binary_on_a_real_diverging_keras_run(tmp_path):
    fixture = KERAS_FIXTURES / "diverging_from_start"
    config = tmp_path / "config.json"
    config.write_bytes((fixture / "config.json").read_bytes())
    r = Retune(config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"])
    decision = r.suggest(fixture / "history.csv", "keras-csv")

    assert isinstance(decision, Decision)
    assert decision.provider == "rules"
    assert decision.restart and not decision.restore_checkpoint and not decision.stop_early
    assert "divergence" in decision.findings
    lr = decision.change("learning_rate")
    # SGD at 5.0 is far above its usual range (#12): one cut lands on its usual rate
    # (0.0125 at batch 32, momentum 0.9) instead of 10x down to 0.5, still far too high.
    assert (lr.parameter, lr.old, lr.new) == ("lr", 5.0, 0.0125)
    assert lr.factor == pytest.approx(0.0025)
    # --in-place: the config now holds the new value, and nothing else changed.
    before = json.loads((fixture / "config.json").read_text())
    assert read_config(config) == {**before, "lr": 0.0125}
    assert decision.config_out == config
    assert decision.report.is_file() and decision.report.parent == tmp_path / "run" / "reports"
    lines = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    # The adjustment with the old text, written before the config, then its confirmation.
    assert [(e["adjustment_id"], e.get("state")) for e in lines] == [
        (decision.adjustment_id, "pending"),
        (decision.adjustment_id, "applied"),
    ]


def test_the_history_is_told_what_the_trainer_could_not_apply(tmp_path, binary):
    fixture = KERAS_FIXTURES / "diverging_from_start"
    config = tmp_path / "config.json"
    config.write_bytes((fixture / "config.json").read_bytes())
    tuner = EpochTuner(config, run_dir=tmp_path / "run", extra_args=["--provider", "rules"])
    tuner.verbose = False

    def act(decision: Decision) -> Outcome:
        # A trainer whose optimizer takes none of the changes live.
        missed = tuple(
            NotApplied(c.canonical, c.parameter, c.new, "no live setting") for c in decision.changes
        )
        return Outcome(0, decision, not_applied=missed)

    outcome = tuner._tune_epoch(
        0,
        {},
        keep_best=None,
        write=lambda: fixture / "history.csv",
        act=act,
    )
    assert outcome.decision is not None and outcome.decision.changes
    lines = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    assert lines[-1] == {
        "time": lines[-1]["time"],
        "adjustment_id": outcome.decision.adjustment_id,
        "state": "live",
        "applied": [],
    }
    # `retune history` shows no change as made: the rate was never taken.
    shown = subprocess.run(
        [binary, "history", str(tmp_path / "run" / "history.jsonl"), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [entry] = json.loads(shown)
    assert entry["adjustment_id"] == outcome.decision.adjustment_id
    assert entry["changes"] == []


def test_bad_config_warns_by_default_and_training_goes_on(tmp_path, caplog):
    config = tmp_path / "config.json"
    config.write_text('{"lr": 0.1,,}')
    r = Retune(config, run_dir=tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="retune"):
        assert r.suggest(KERAS_FIXTURES / "healthy" / "history.csv") is None
    assert "exited with code 2" in caplog.text and "config.json" in caplog.text
    assert r.last_error and "config.json" in r.last_error


def test_bad_config_raises_with_on_error_raise(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("[1, 2]")
    r = Retune(config, run_dir=tmp_path / "run", on_error="raise")
    with pytest.raises(RetuneError) as info:
        r.suggest(KERAS_FIXTURES / "healthy" / "history.csv")
    assert info.value.returncode == 2
    assert "config.json" in info.value.stderr
    assert info.value.command[1] == "suggest"


def test_on_error_must_be_warn_or_raise(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        Retune(write_config(tmp_path, lr=0.1), on_error="ignore")


def test_missing_binary_is_a_retune_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RETUNE_BINARY", str(tmp_path / "nowhere" / "retune"))
    r = Retune(write_config(tmp_path, lr=0.1), run_dir=tmp_path / "run", on_error="raise")
    with pytest.raises(RetuneError, match="RETUNE_BINARY"):
        r.suggest(KERAS_FIXTURES / "healthy" / "history.csv")
    r.on_error = "warn"
    assert r.suggest(KERAS_FIXTURES / "healthy" / "history.csv") is None


def test_a_decision_without_its_fields_is_a_retune_error():
    with pytest.raises(RetuneError, match="adjustment_id"):
        Decision.from_json({"changes": []})


# -- finding the binary ---------------------------------------------------------------


def _fake_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_binary_prefers_the_scripts_dir_then_path(tmp_path, monkeypatch):
    monkeypatch.delenv("RETUNE_BINARY", raising=False)
    scripts = tmp_path / "venv" / "bin"
    on_path = _fake_executable(tmp_path / "elsewhere" / "retune")
    real_get_path = sysconfig.get_path

    def get_path(name, scheme=None, *args, **kwargs):
        if name == "scripts":
            return str(scripts if scheme is None else tmp_path / "user" / "bin")
        return real_get_path(name, *args, **kwargs)

    monkeypatch.setattr(sysconfig, "get_path", get_path)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_binary() == str(on_path)
    beside = _fake_executable(scripts / "retune")
    assert find_binary() == str(beside)


def test_find_binary_override_must_be_executable(tmp_path, monkeypatch):
    plain = tmp_path / "retune"
    plain.write_text("")
    monkeypatch.setenv("RETUNE_BINARY", str(plain))
    with pytest.raises(FileNotFoundError, match="not an executable"):
        find_binary()
    _fake_executable(plain)
    assert find_binary() == str(plain)


def test_find_binary_says_how_to_install_when_nothing_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv("RETUNE_BINARY", raising=False)
    monkeypatch.setattr(sysconfig, "get_path", lambda *a, **k: str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="pip install retune"):
        find_binary()


def test_import_retune_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, retune, retune.torch\n"
        "bad = [m for m in ('keras', 'torch', 'transformers', 'lightning', "
        "'pytorch_lightning', 'jax', 'numpy') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert retune.Retune is Retune


# -- parameter groups -----------------------------------------------------------------


def _change(canonical, old, new, parameter=None):
    return Change(parameter or canonical, canonical, old, new)


def test_learning_rate_scales_every_group_and_the_scheduler():
    opt = FakeOptimizer({"lr": 0.5, "weight_decay": 0.0}, {"lr": 0.05, "weight_decay": 0.0})
    sched = FakeScheduler(opt)
    applied, not_applied = apply_to_param_groups(
        opt.param_groups, [_change("learning_rate", 0.5, 0.05, "optimizer.lr")], [sched]
    )
    assert not not_applied
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    assert sched.base_lrs == pytest.approx([0.05, 0.005])
    assert applied[0].target == "param_groups[0..1].lr"
    assert applied[0].parameter == "optimizer.lr"


def test_weight_decay_from_zero_is_set_and_betas_keep_their_tuple():
    opt = FakeOptimizer({"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8})
    applied, _ = apply_to_param_groups(
        opt.param_groups,
        [
            _change("weight_decay", 0.0, 1e-4),
            _change("adam_beta2", 0.999, 0.99),
            _change("adam_epsilon", 1e-8, 1e-7),
        ],
    )
    group = opt.param_groups[0]
    assert group["weight_decay"] == 1e-4
    assert isinstance(group["betas"], tuple) and group["betas"] == pytest.approx((0.9, 0.99))
    assert group["eps"] == pytest.approx(1e-7)
    assert [a.target for a in applied] == [
        "param_groups[0].weight_decay",
        "param_groups[0].betas[1]",
        "param_groups[0].eps",
    ]


def test_changes_without_a_live_setting_are_reported_not_applied():
    opt = FakeOptimizer({"lr": 1e-3, "betas": (0.9, 0.999)})
    applied, not_applied = apply_to_param_groups(
        opt.param_groups, [_change("momentum", 0.0, 0.9), _change("batch_size", 64, 32)]
    )
    assert applied == []
    assert [(n.canonical, n.reason) for n in not_applied] == [
        ("momentum", "the optimizer's parameter groups have no `momentum`"),
        ("batch_size", "PyTorch optimizers have no live setting for it"),
    ]
    assert "momentum" not in opt.param_groups[0]


def test_best_tracker_prefers_val_loss_and_skips_non_finite():
    best = BestTracker()
    assert best.improved(0, {"loss": 0.1, "val_loss": 2.0})
    assert not best.improved(1, {"loss": 0.01, "val_loss": 2.5})
    assert not best.improved(2, {"loss": 0.01, "val_loss": math.nan})
    assert best.improved(3, {"val_loss": 1.0}) and best.best_epoch == 3
    best.reset()
    assert best.best is None and best.improved(4, {"val_loss": 9.0})
    named = BestTracker("eval_loss")
    assert not named.improved(0, {"loss": 1.0}) and named.improved(1, {"eval_loss": 1.0})


def test_outcome_describes_changes_in_shortest_form(tmp_path):
    decision = Decision.from_json(
        {
            "adjustment_id": "adj-1",
            "changes": [
                {"parameter": "lr", "canonical": "learning_rate", "old": 1.0, "new": 0.1},
                {"parameter": "batch_size", "canonical": "batch_size", "old": 64, "new": 32},
            ],
            "actions": ["restart"],
            "findings": [{"id": "divergence"}],
            "report": "reports/adj-1.md",
        },
        base=tmp_path,
    )
    from retune._decision import Applied

    outcome = Outcome(
        0,
        decision,
        (Applied("learning_rate", "lr", 0.1, "optimizer.learning_rate", 0.10000000149011612),),
        (NotApplied("batch_size", "batch_size", 32, "set when the run starts"),),
        ("restart",),
    )
    assert outcome.describe() == (
        "retune after epoch 1: learning_rate 1.0 → 0.1 (optimizer.learning_rate = 0.1); "
        "batch_size → 32 in the config only (set when the run starts); did restart; "
        f"report {tmp_path / 'reports' / 'adj-1.md'}"
    )
    assert not outcome.stop
    assert Outcome(3, None, error="boom").describe() == "retune after epoch 4: no decision (boom)"


def test_python_m_retune_runs_the_binary():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "retune", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("retune ")


def test_shared_modules_import_one_way():
    """Each of the modules the callbacks share imports only modules before it here, so
    their import graph has no cycle (and `_core` is re-exports only)."""
    order = ["_binary", "_decision", "_metrics_log", "_param_groups", "_runner", "_tuner"]
    package = Path(retune.__file__).parent
    for i, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        assert imported <= set(order[:i]), (name, imported)
    core = ast.parse((package / "_core.py").read_text(encoding="utf-8"))
    assert all(isinstance(node, (ast.Expr, ast.ImportFrom, ast.Assign)) for node in core.body), (
        "_core.py should only re-export"
    )
