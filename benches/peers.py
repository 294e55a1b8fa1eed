#!/usr/bin/env python3
"""retune beside the published log diagnosers on PyPI, on the same corpus of real logs.

Measures, in one run on this machine, for retune and four peers:
  * runmedic        CLI  `runmedic diagnose FILE --json`
  * trainproof      CLI  `trainproof doctor FILE --json`
  * training-doctor API  `Doctor().load(FILE); Doctor.analyze()` (its README's "Analyze
                         existing logs"; it has no CLI)
  * sk-autod        CLI  `sk-autod check --train-loss=A,B,.. --val-loss=A,B,.. --output json`
                         (it reads no files: it takes two equal-length per-epoch arrays; this
                         script gives it the train/val loss curves that runmedic's reader
                         finds in the file, one point per evaluation, see SK_AUTOD_CURVES)
every run of the corpus (`--corpus`, default tests/real): files read, verdicts correct
against the labels, misses, false alarms, median wall seconds per call (whole process).

The peers are installed from PyPI at pinned versions into a cached virtualenv
(~/.cache/retune/peers-venv), reused when it already holds those versions. Each peer is
used the way its own README says (its CLI when it has one), with auto-detection of the
format; a file it cannot read, or a call that fails, counts as "not read".

Scoring (per tool, per run, against tests/real/labels.toml `[runs.<slug>]`):
  * a tool's findings are turned into our condition names with the tables below
    (PEER_WORDS); retune's finding ids are our names already;
  * `chance_level` and `not_learning` are one condition for every tool (EQUIVALENT);
  * correct  = read, every `must` found (any severity), one of `any_of` found when given,
               no false alarm;
  * missed   = read and a `must` (or every `any_of`) not found;
  * false alarm = read and a warning/critical finding that maps to a `must_not` condition
               (unless the same finding also names a condition the run is labelled with:
               a broad word such as "learning rate too high" is not punished for its
               breadth when it is about the right problem), or, on a `healthy = true` run,
               any warning/critical finding at all (info is allowed, as for retune).
  * Findings about the machine rather than the curves (idle GPU, slow steps, memory,
    crash lines in stdout) are outside what the labels judge: they neither count as a
    finding nor as a false alarm (OUT_OF_SCOPE).

Usage: python3 benches/peers.py [--corpus tests/real] [--binary target/release/retune]
       [--tools retune,runmedic,...] [--detail] [--json] [--out FILE]
       [--skip-ambiguous] [--venv DIR] [--no-install] [--timeout 120]
Prints a Markdown table per tool (and per run with --detail); --out writes the same text
to a file; --json prints one JSON document instead.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tomllib

# ---------------------------------------------------------------------------------------
# The peers, pinned (the versions on PyPI when this script was written).
# training-doctor reads TensorBoard through the `tensorboard` package, which its own
# `[tensorboard]` extra installs (its loader's error message says to install it).
PEERS = {
    "runmedic": {"version": "0.1.1", "requirement": "runmedic==0.1.1"},
    "trainproof": {"version": "0.22.0", "requirement": "trainproof==0.22.0"},
    "training-doctor": {
        "version": "0.1.0",
        "requirement": "training-doctor[tensorboard]==0.1.0",
    },
    "sk-autod": {"version": "0.1.1", "requirement": "sk-autod==0.1.1"},
}
ALL_TOOLS = ["retune", *PEERS]

# ---------------------------------------------------------------------------------------
# The peers' words -> our condition names.
#
# Our conditions (tests/real labels): divergence, chance_level / not_learning, plateau,
# slow_convergence, overfitting, oscillation, val_at_chance, grad_norm_spike,
# grad_norm_rising, degenerate_loss, accuracy_pinned, metric_out_of_range,
# warmup_unfinished, and the config checks.
#
# A word maps to every condition it fairly covers: "the loss is not decreasing" covers
# not_learning and plateau; "learning rate too high" (spikes, NaN or a rising loss)
# covers divergence and oscillation. An empty tuple: a problem claim with no condition of
# ours (it still counts as a claim on a healthy run).
PEER_WORDS = {
    "runmedic": {  # Finding.check; severity critical | warning | info
        "non_finite": ("divergence",),  # "`loss` became NaN/inf at step N"
        "divergence": ("divergence",),  # "Training loss diverged after step N"
        "loss_spikes": ("oscillation",),  # "Loss spikes (N)"
        "no_learning": ("not_learning", "plateau"),  # "The model is not learning" (names ln k)
        "overfitting": ("overfitting",),  # "Overfitting since step N" / "Mild overfitting"
        "val_below_train": (),  # info: "val below train", usually fine
        "grad_spikes": ("grad_norm_spike",),  # gradient-norm spikes
        "constant_lr_plateau": ("plateau",),  # info: "Loss plateaued with a constant LR"
        "log:anomaly_nan": ("divergence",),  # autograd anomaly NaN in stdout
    },
    "trainproof": {  # finding id; level FAIL | WARN | INFO | PASS
        "TP-NAN": ("divergence",),  # "NaN or Inf detected in loss."
        "TP-NAN-GRAD": ("divergence",),  # "Gradient norm is NaN or Inf"
        "TP-ZERO-LOSS": ("degenerate_loss",),  # "Loss is exactly zero on every logged step"
        "TP-ZERO-LOSS-ONSET": ("degenerate_loss",),  # "... then became exactly zero"
        "TP-FLAT": ("not_learning", "plateau"),  # "Loss curve is completely flat (dead run)."
        "TP-DIVERGE": ("divergence",),  # "Loss curve is diverging." (end > 1.5 x min)
        "TP-DEAD-RUN": ("not_learning", "plateau"),  # "Loss never improved over the run"
        "TP-ZERO-GRAD": ("not_learning",),  # "Gradient norm is exactly zero on every step"
        "TP-GRAD-SPIKE": ("grad_norm_spike",),  # "Gradient norm spikes detected."
        "TP-ZERO-LR": ("not_learning",),  # "Learning rate is zero for the entire run"
        "TP-ZERO-LR-PARTIAL": (),  # "Learning rate is zero for a large fraction"
        "TP-OVERFIT": ("overfitting",),  # "Overfitting detected: eval loss ... degraded"
        "TP-PASS": (),  # the verdict line of a clean run (level PASS)
    },
    "training-doctor": {  # Diagnosis.detector_name; severity critical | warning | info
        "lr_too_high": ("divergence", "oscillation"),  # "Learning rate likely too high"
        "lr_too_low": ("slow_convergence", "not_learning", "plateau"),  # "may be too low"
        "plateau": ("plateau", "not_learning"),  # "Training plateau detected"
        "early_plateau": ("plateau", "not_learning"),  # "Early training plateau"
        "overfitting": ("overfitting",),  # "Overfitting detected"
        "train_eval_mismatch": (),  # "Unusual train/eval pattern"
        "gradient_instability": ("grad_norm_spike", "divergence"),  # NaN/exploding grads
        "mixed_precision_instability": ("divergence",),
    },
    "sk-autod": {  # Finding.detector_name; severity CRITICAL | HIGH | MEDIUM | WARNING | INFO
        "Classic overfitting": ("overfitting",),  # "Validation loss increased while ..."
        "Exploding gradient": ("divergence", "oscillation"),  # "Training loss spiked sharply"
        "LR too high": ("oscillation", "divergence"),  # "Loss oscillates without a ... trend"
        "LR too low": ("slow_convergence",),  # "Loss is decreasing too slowly"
        "Underfitting": ("not_learning", "plateau"),  # "Both ... stay high, little improvement"
        "Dying ReLU proxy": ("plateau", "not_learning"),  # "plateaus early and remains high"
        "Noisy training": ("oscillation",),  # "Loss flips direction frequently"
        "Data leakage": (),  # "Validation loss is consistently lower than training loss."
        "Missed early stopping": ("overfitting",),  # "Validation loss had an earlier minimum"
        "Label noise floor": ("plateau",),  # "Loss has flattened above a ... high floor."
    },
}

# Findings about the machine or the process, not the curves: not judged by the labels.
OUT_OF_SCOPE = {
    "runmedic": {"input_bound", "slow_steps", "slowdown", "memory_growth", "log:*"},
    "trainproof": {"TP-THROUGHPUT", "TP-GPU-UTIL", "TP-STEP-CLIFF", "TP-LOADER-BOUND"},
    "training-doctor": set(),
    "sk-autod": set(),
}

# Severity words -> info | warning | critical.
SEVERITY = {
    "runmedic": {"critical": "critical", "warning": "warning", "info": "info"},
    "trainproof": {"FAIL": "critical", "WARN": "warning", "INFO": "info", "PASS": "info"},
    "training-doctor": {"critical": "critical", "warning": "warning", "info": "info"},
    "sk-autod": {
        "CRITICAL": "critical",
        "HIGH": "warning",
        "MEDIUM": "warning",
        "WARNING": "warning",
        "INFO": "info",
    },
    "retune": {"critical": "critical", "warning": "warning", "info": "info"},
}

# Conditions that are one and the same for scoring (the labels may use either name).
EQUIVALENT = [{"chance_level", "not_learning"}]

# ---------------------------------------------------------------------------------------
# Code run inside the peers' virtualenv (the peers' own APIs; nothing else is imported).

TRAINING_DOCTOR = r"""
import json, math, sys
from training_doctor import Doctor
doctor = Doctor()
try:
    doctor.load(sys.argv[1])
except Exception as e:
    print(json.dumps({"read": False, "error": f"{type(e).__name__}: {e}"}))
    raise SystemExit(0)
diagnoses = doctor.analyze()
print(json.dumps({
    "read": True,
    "metrics": doctor.store.get_metrics(),
    "diagnoses": [{"detector": d.detector_name, "problem": d.problem,
                   "severity": d.severity.value, "confidence": d.confidence, "step": d.step}
                  for d in diagnoses],
}))
"""

# sk-autod takes arrays, not files. A Keras history JSON gives it `loss` and `val_loss`
# as they are (what its README does with `history.history`); other files go through
# runmedic's reader (zero
# dependencies, reads CSV, JSON Lines, HF trainer_state.json, TensorBoard and stdout):
# the series runmedic takes as train and val loss, one point per val evaluation, train
# being the mean of the train points logged since the previous evaluation (or the last
# one before it). A run without a val loss cannot be given to sk-autod.
SK_AUTOD_CURVES = r"""
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
if path.suffix == ".json":  # Keras history.history: the arrays its README passes
    try:
        h = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        h = None
    if isinstance(h, dict) and isinstance(h.get("loss"), list) and isinstance(h.get("val_loss"), list):
        print(json.dumps({"train": h["loss"], "val": h["val_loss"], "series": ["loss", "val_loss"]}))
        raise SystemExit(0)
from runmedic import loaders, roles
try:
    runs = loaders.load(sys.argv[1])
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"})); raise SystemExit(0)
for run in runs:
    r = roles.detect(run)
    if not r.get("train_loss") or not r.get("val_loss"):
        continue
    t, v = run.series[r["train_loss"][0]], run.series[r["val_loss"][0]]
    train, val, prev = [], [], None
    for vs, vv in zip(v.steps, v.values):
        pts = [x for s, x in zip(t.steps, t.values) if (prev is None or s > prev) and s <= vs]
        if not pts:
            pts = [x for s, x in zip(t.steps, t.values) if s <= vs][-1:]
        prev = vs
        if pts:
            train.append(sum(pts) / len(pts)); val.append(vv)
    print(json.dumps({"train": train, "val": val,
                      "series": [r["train_loss"][0], r["val_loss"][0]]}))
    raise SystemExit(0)
print(json.dumps({"error": "no train loss and val loss series found"}))
"""

# ---------------------------------------------------------------------------------------


def venv_python(venv):
    return venv / "bin" / "python"


def installed_versions(venv):
    py = venv_python(venv)
    if not py.exists():
        return {}
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        f"for n in {list(PEERS)!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))"
    )
    try:
        p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(p.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def ensure_venv(venv, install):
    have = installed_versions(venv)
    missing = [n for n, p in PEERS.items() if have.get(n) != p["version"]]
    if not missing:
        return have
    if not install:
        sys.exit(f"peers.py: {venv} lacks {', '.join(missing)} (run without --no-install)")
    print(f"peers.py: installing {', '.join(missing)} into {venv}", file=sys.stderr)
    if not venv_python(venv).exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    reqs = [PEERS[n]["requirement"] for n in PEERS]
    subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        check=True,
    )
    have = installed_versions(venv)
    still = [n for n, p in PEERS.items() if have.get(n) != p["version"]]
    if still:
        sys.exit(f"peers.py: could not install {', '.join(still)}")
    return have


# ---------------------------------------------------------------------------------------
# The corpus


def load_labels(corpus):
    main = corpus / "labels.toml"
    files = [main] if main.exists() else sorted(corpus.glob("labels*.toml"))
    if not files:
        sys.exit(f"peers.py: no labels.toml or labels*.toml in {corpus}")
    runs = {}
    for f in files:
        with f.open("rb") as fh:
            data = tomllib.load(fh)
        for slug, lab in data.get("runs", {}).items():
            runs[slug] = lab
    return runs, files


def read_source(folder):
    out = {}
    src = folder / "SOURCE.txt"
    if src.exists():
        for line in src.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"\s*([a-z_]+)\s*:\s*(.*?)\s*$", line)
            if m and m.group(1) not in out:
                out[m.group(1)] = m.group(2)
    return out


def is_history_json(path):
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace").replace("NaN", "null")
                          .replace("-Infinity", "null").replace("Infinity", "null"))
    except ValueError:
        return False
    return isinstance(data, dict) and any(isinstance(v, list) for v in data.values())


def metrics_path(folder, fmt, source_path):
    """The file (or, for several TensorBoard event files, the folder) every tool is given."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SOURCE.txt")
    if fmt == "tensorboard":
        ev = [p for p in files if p.name.startswith("events.out.tfevents")]
        if len(ev) == 1:
            return ev[0]
        if ev:
            dirs = {p.parent for p in ev}
            return dirs.pop() if len(dirs) == 1 else folder
        return None
    base = Path(source_path).name if source_path else ""
    named = [p for p in files if base and p.name == base]
    if len(named) == 1 and not (fmt in ("keras_history", "snapshot") and named[0].name.startswith("config")):
        return named[0]
    pick = {
        "hf": lambda p: p.name == "trainer_state.json",
        "lightning_csv": lambda p: p.name == "metrics.csv",
        "keras_csv": lambda p: p.suffix == ".csv",
        "keras_log": lambda p: p.suffix in (".log", ".txt", ".out"),
        "jsonl": lambda p: p.suffix in (".jsonl", ".json", ".log", ".txt"),
        "keras_history": lambda p: p.suffix == ".json" and is_history_json(p),
        "snapshot": lambda p: p.suffix == ".json" and not p.name.startswith("config"),
    }.get(fmt, lambda p: not p.name.startswith("config"))
    cands = [p for p in files if pick(p)]
    return cands[0] if cands else (files[0] if len(files) == 1 else None)


def corpus_runs(corpus, labels, skip_ambiguous):
    runs = []
    for slug in sorted(labels):
        lab = labels[slug]
        if skip_ambiguous and lab.get("ambiguous"):
            continue
        folder = corpus / slug
        src = read_source(folder) if folder.is_dir() else {}
        fmt = src.get("format", "?")
        path = metrics_path(folder, fmt, src.get("path")) if folder.is_dir() else None
        runs.append({"slug": slug, "format": fmt, "path": path, "label": lab})
    return runs


# ---------------------------------------------------------------------------------------
# Running the tools. Each returns (read, findings, error); a finding is (word, severity).


def run_proc(cmd, timeout, env=None):
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, f"timeout after {timeout}s"
    except OSError as e:
        return None, time.perf_counter() - t0, str(e)
    return p, time.perf_counter() - t0, None


def first_line(text):
    for line in (text or "").strip().splitlines()[::-1]:
        if line.strip():
            return line.strip()[:160]
    return ""


def last_line(text):
    lines = [x for x in (text or "").splitlines() if x.strip()]
    return lines[-1] if lines else ""


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


class Runner:
    def __init__(self, args, venv):
        self.args = args
        self.bin = venv / "bin"
        self.py = str(venv_python(venv))
        # PYTHONHASHSEED: training-doctor picks its step column from a set of names.
        self.env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")

    def retune(self, path):
        p, dt, err = run_proc(
            [self.args.binary, "diagnose", "--metrics", str(path), "--format", "json"], self.args.timeout
        )
        if err:
            return False, [], err, dt
        doc = parse_json(p.stdout)
        if p.returncode not in (0, 1) or not isinstance(doc, dict) or "findings" not in doc:
            return False, [], f"exit {p.returncode}: {first_line(p.stderr) or first_line(p.stdout)}", dt
        return True, [(f["id"], f.get("severity", "info")) for f in doc["findings"]], None, dt

    def runmedic(self, path):
        p, dt, err = run_proc([str(self.bin / "runmedic"), "diagnose", str(path), "--json"], self.args.timeout, self.env)
        if err:
            return False, [], err, dt
        doc = parse_json(p.stdout)
        if not isinstance(doc, list):
            return False, [], f"exit {p.returncode}: {first_line(p.stderr) or first_line(p.stdout)}", dt
        judged = [r for r in doc if r.get("roles", {}).get("train_loss") or r.get("roles", {}).get("val_loss")]
        if not judged:
            return False, [], "no train or val loss series found", dt
        return True, [(f["check"], f["severity"]) for r in judged for f in r["findings"]], None, dt

    def trainproof(self, path):
        p, dt, err = run_proc(
            [str(self.bin / "trainproof"), "doctor", str(path), "--json"], self.args.timeout, self.env
        )
        if err:
            return False, [], err, dt
        doc = parse_json(p.stdout)
        if not isinstance(doc, dict):
            return False, [], f"exit {p.returncode}: {first_line(p.stderr) or first_line(p.stdout)}", dt
        reports = [
            r for r in doc.get("reports") or []
            if r.get("verdict") in ("PASS", "WARN", "FAIL")
            and not any(f.get("id") in ("TP-NO-RECORDS", "TP-NO-LOSS") for f in r.get("findings", []))
        ]
        if not reports:
            why = doc.get("error") or "; ".join(
                f.get("message", "") for r in doc.get("reports") or [] for f in r.get("findings", [])
            )
            return False, [], f"exit {p.returncode}: {why or 'not judged'}", dt
        return True, [(f["id"], f["level"]) for r in reports for f in r["findings"]], None, dt

    def training_doctor(self, path):
        # Its format detection takes a .csv file or a folder of event files (its README:
        # `doctor.load("lightning_logs/version_0/")`), not an event file itself.
        if path.is_file() and path.name.startswith("events.out.tfevents"):
            path = path.parent
        p, dt, err = run_proc([self.py, "-c", TRAINING_DOCTOR, str(path)], self.args.timeout, self.env)
        if err:
            return False, [], err, dt
        doc = parse_json(last_line(p.stdout))
        if not isinstance(doc, dict):
            return False, [], f"exit {p.returncode}: {first_line(p.stderr)}", dt
        if not doc.get("read"):
            return False, [], doc.get("error", "not read"), dt
        if not {"loss", "train_loss", "eval_loss"} & set(doc.get("metrics", [])):
            return False, [], "no loss metric among " + ",".join(doc.get("metrics", [])[:8]), dt
        return True, [(d["detector"], d["severity"]) for d in doc["diagnoses"]], None, dt

    def sk_autod(self, path):
        p, _, err = run_proc([self.py, "-c", SK_AUTOD_CURVES, str(path)], self.args.timeout, self.env)
        if err:
            return False, [], "curves: " + err, 0.0
        curves = parse_json(last_line(p.stdout))
        if not isinstance(curves, dict) or "error" in curves:
            why = curves.get("error") if isinstance(curves, dict) else first_line(p.stderr)
            return False, [], f"curves: {why}", 0.0
        fmt = lambda xs: ",".join(repr(float(x)) for x in xs)  # noqa: E731
        p, dt, err = run_proc(
            [str(self.bin / "sk-autod"), "check", f"--train-loss={fmt(curves['train'])}",
             f"--val-loss={fmt(curves['val'])}", "--output", "json"],
            self.args.timeout, self.env,
        )
        if err:
            return False, [], err, dt
        doc = parse_json(p.stdout)
        if p.returncode != 0 or not isinstance(doc, dict):
            return False, [], f"exit {p.returncode}: {first_line(p.stderr)}", dt
        return True, [(f["detector_name"], f["severity"]) for f in doc["findings"]], None, dt

    def run(self, tool, path):
        fn = {
            "retune": self.retune,
            "runmedic": self.runmedic,
            "trainproof": self.trainproof,
            "training-doctor": self.training_doctor,
            "sk-autod": self.sk_autod,
        }[tool]
        return fn(path)


# ---------------------------------------------------------------------------------------
# Scoring


def expand(cond):
    for group in EQUIVALENT:
        if cond in group:
            return set(group)
    return {cond}


def out_of_scope(tool, word):
    oos = OUT_OF_SCOPE.get(tool, set())
    return word in oos or any(o.endswith("*") and word.startswith(o[:-1]) for o in oos)


def conditions(tool, word):
    """Our conditions for a tool's word; None when the word is not in the table."""
    if tool == "retune":
        return set().union(*(expand(c) for c in [word]))
    table = PEER_WORDS[tool]
    if word in table:
        return set().union(set(), *(expand(c) for c in table[word]))
    return None


def score(tool, label, read, findings):
    res = {"read": read, "correct": False, "missed": False, "false_alarm": False,
           "found": [], "claims": [], "missing": [], "alarms": [], "unmapped": []}
    if not read:
        return res
    rank = {"info": 0, "warning": 1, "critical": 2}
    items = []
    for word, sev in findings:
        if out_of_scope(tool, word):
            continue
        s = SEVERITY[tool].get(sev, "warning")
        conds = conditions(tool, word)
        if conds is None:
            res["unmapped"].append(word)
            conds = set()
        items.append((word, s, conds))
    found = set().union(set(), *(c for _, _, c in items))
    must = [expand(m) for m in label.get("must", [])]
    any_of = [expand(a) for a in label.get("any_of", [])]
    must_not = set().union(set(), *(expand(m) for m in label.get("must_not", [])))
    wanted = set().union(set(), *must, *any_of)
    res["missing"] = [m for m, e in zip(label.get("must", []), must) if not e & found]
    if any_of and not any(e & found for e in any_of):
        res["missing"].append("any_of(" + ",".join(label.get("any_of", [])) + ")")
    res["missed"] = bool(res["missing"])
    for word, s, conds in items:
        if rank[s] < 1:
            continue
        if word not in res["claims"]:
            res["claims"].append(word)
        if label.get("healthy"):
            res["alarms"].append(word)
        elif conds & must_not and not conds & wanted:
            res["alarms"].append(word)
    res["false_alarm"] = bool(res["alarms"])
    res["correct"] = not res["missed"] and not res["false_alarm"]
    res["found"] = sorted(found)
    return res


# ---------------------------------------------------------------------------------------
# Output


def summarize(tools, runs, versions):
    out = {}
    for tool in tools:
        rs = [r["results"][tool] for r in runs]
        secs = [x["seconds"] for x in rs if x.get("seconds")]
        out[tool] = {
            "version": versions.get(tool, "?"),
            "runs": len(rs),
            "read": sum(x["read"] for x in rs),
            "correct": sum(x["correct"] for x in rs),
            "missed": sum(x["missed"] for x in rs),
            "false_alarms": sum(x["false_alarm"] for x in rs),
            "median_seconds": statistics.median(secs) if secs else None,
            "claims_per_read_run": (
                sum(len(x["claims"]) for x in rs if x["read"]) / max(1, sum(x["read"] for x in rs))
            ),
        }
    return out


def pct(a, b):
    return f"{100 * a / b:.0f}%" if b else "–"


def markdown(summary, runs, detail, corpus_desc):
    lines = [f"Corpus: {corpus_desc}, {len(runs)} labelled runs.", ""]
    lines += [
        "| tool | version | read | correct | correct of read | missed | false alarms "
        "| problems claimed per read run | median s/call |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, s in summary.items():
        n, rd = s["runs"], s["read"]
        sec = f"{s['median_seconds']:.2f}" if s["median_seconds"] is not None else "–"
        lines.append(
            f"| {tool} | {s['version']} | {rd}/{n} | {s['correct']}/{n} ({pct(s['correct'], n)}) "
            f"| {s['correct']}/{rd} ({pct(s['correct'], rd)}) | {s['missed']} | {s['false_alarms']} "
            f"| {s['claims_per_read_run']:.1f} | {sec} |"
        )
    if detail:
        tools = list(summary)
        lines += ["", "| run | format | label | " + " | ".join(tools) + " |",
                  "|---|---|---|" + "---|" * len(tools)]
        for r in runs:
            lab = r["label"]
            want = "healthy" if lab.get("healthy") else "+".join(lab.get("must", []))
            if lab.get("any_of"):
                want += (" " if want else "") + "any(" + ",".join(lab["any_of"]) + ")"
            if lab.get("ambiguous"):
                want += " (ambiguous)"
            cells = []
            for t in tools:
                x = r["results"][t]
                if not x["read"]:
                    cells.append("not read")
                    continue
                mark = "✓" if x["correct"] else "+".join(
                    k for k, v in (("miss", x["missed"]), ("FA", x["false_alarm"])) if v)
                said = ",".join(x["found"]) or "–"
                if x["alarms"]:
                    said += " [" + ",".join(sorted(set(x["alarms"]))) + "]"
                cells.append(f"{mark} {said}")
            lines.append(f"| {r['slug']} | {r['format']} | {want or '–'} | " + " | ".join(cells) + " |")
        lines += ["", "✓ correct; miss: a labelled condition not found; FA: false alarm "
                  "(the finding words that raised it in brackets); conditions are what the "
                  "tool's words map to."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="tests/real", type=Path)
    ap.add_argument("--binary", default="target/release/retune")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--venv", default=Path.home() / ".cache/retune/peers-venv", type=Path)
    ap.add_argument("--no-install", action="store_true", help="fail instead of installing the peers")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    ap.add_argument("--skip-ambiguous", action="store_true", help="leave out runs labelled ambiguous")
    ap.add_argument("--detail", action="store_true", help="also a table per run")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead")
    ap.add_argument("--out", type=Path, help="also write the Markdown to this file")
    args = ap.parse_args()

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in ALL_TOOLS]
    if bad:
        sys.exit(f"peers.py: unknown tool(s) {bad}; choose from {ALL_TOOLS}")
    versions = {}
    if any(t in PEERS for t in tools):
        versions.update(ensure_venv(args.venv, not args.no_install))
    if "retune" in tools:
        try:
            v = subprocess.run([args.binary, "--version"], capture_output=True, text=True, timeout=30)
            versions["retune"] = (v.stdout.split() or ["?"])[-1]
        except OSError as e:
            sys.exit(f"peers.py: cannot run {args.binary}: {e}")

    labels, label_files = load_labels(args.corpus)
    runs = corpus_runs(args.corpus, labels, args.skip_ambiguous)
    runner = Runner(args, args.venv)
    for i, r in enumerate(runs, 1):
        r["results"] = {}
        print(f"[{i}/{len(runs)}] {r['slug']}", file=sys.stderr)
        for tool in tools:
            if r["path"] is None:
                read, findings, err, dt = False, [], "no metrics file in the folder", None
            else:
                read, findings, err, dt = runner.run(tool, r["path"])
            res = score(tool, r["label"], read, findings)
            res.update(words=[f"{w}:{s}" for w, s in findings], error=err,
                       seconds=round(dt, 4) if dt else None)
            r["results"][tool] = res

    summary = summarize(tools, runs, versions)
    desc = f"{args.corpus} ({', '.join(f.name for f in label_files)})"
    if args.json:
        doc = {
            "corpus": str(args.corpus), "labels": [str(f) for f in label_files],
            "tools": summary,
            "runs": [{"slug": r["slug"], "format": r["format"],
                      "path": str(r["path"]) if r["path"] else None, "label": r["label"],
                      "results": r["results"]} for r in runs],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    md = markdown(summary, runs, args.detail, desc)
    if not args.json:
        print(md, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
