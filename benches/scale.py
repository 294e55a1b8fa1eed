#!/usr/bin/env python3
"""Overhead and scale of the retune binary, as a process, the way users call it.

Three sections, each measured in one run on this machine:

  load   `retune diagnose` on generated metrics of 1k, 100k, 1M and 10M rows in each of
         four formats (Keras CSVLogger CSV, JSON Lines, Keras console log with verbose=2,
         Hugging Face trainer_state.json), written as those trainers write them: wall time
         (median of --repeat runs) and peak RSS (GNU time), beside a Python baseline that
         merely parses the same file (csv.reader; json.loads per line; a regex per line;
         json.load), run in its own process in the same run, and the ratio.
  prompt the size of the prompt `retune prompt` builds against the length of the run's
         history (0, 10, 100, 1000 entries, written by running `retune suggest --in-place`
         that many times), and what reading that history costs `prompt` and `suggest`.
  suggest `retune suggest` end to end on the seed examples with a stand-in
         OpenAI-compatible server on loopback that answers at once (the tool's own
         overhead around an LLM call), beside the rules advisor, median of --suggest-repeat.

Usage: python3 benches/scale.py [--quick] [--max-rows N] [--repeat N] [--only load,prompt]
Prints Markdown tables and writes them to benches/results/scale.md. Generated files live
in a temporary directory under /tmp and are deleted as soon as they are measured (the
10M-row files are 1.0–1.8 GB each, one on disk at a time).
"""

import argparse
import array
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The stand-in LLM the `suggest` section asks, shared with the other benches.
from standin import StandIn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benches", "results", "scale.md")

ROW_COUNTS = (1_000, 100_000, 1_000_000, 10_000_000)
QUICK_ROW_COUNTS = (1_000, 100_000)
HISTORY_LENGTHS = (0, 10, 100, 1000)
QUICK_HISTORY_LENGTHS = (0, 10, 100)
# Rows generated per write: big enough that Python's per-call overhead vanishes, small
# enough that a chunk of formatted text stays a few MB.
CHUNK = 20_000
# Keras and HF shapes: steps per epoch, and HF's logging_steps (4 train rows an epoch).
STEPS_PER_EPOCH = 100
HF_LOGGING_STEPS = 25
HF_BATCH = 8


# --- the trajectory every format logs -------------------------------------------------


def accuracy(loss):
    """An accuracy that rises as the loss falls, from chance (10 classes) to 0.99."""
    return min(0.99, max(0.1, 1 - loss / 2.6))


def trajectory(epochs, seed=0):
    """Per-epoch (loss, accuracy, val_loss, val_accuracy) of a run that learns, then
    plateaus with noise: chunks of float32 values widened to Python floats, as the
    frameworks log them (`0.4523000121116638`, not `0.4523`)."""
    rng = random.Random(seed)
    loss = 2.3
    done = 0
    while done < epochs:
        n = min(CHUNK, epochs - done)
        flat = []
        for _ in range(n):
            loss = max(0.05, loss * 0.9995 + rng.gauss(0, 0.002))
            val = loss * 1.05 + rng.gauss(0, 0.003)
            flat += (loss, accuracy(loss), val, accuracy(val * 0.97))
        # array('f') rounds to float32; tolist() widens back, exactly like float(np.float32).
        widened = array.array("f", flat).tolist()
        yield [widened[i : i + 4] for i in range(0, 4 * n, 4)]
        done += n


F32_LR = array.array("f", [0.001]).tolist()[0]


# --- generators: each writes `rows` rows and returns the epochs they span ---------------


def write_keras_csv(path, rows):
    """keras.callbacks.CSVLogger: `epoch` then the logs' keys sorted, 0-based epochs,
    csv.DictWriter's excel dialect (CRLF), values as str(float)."""
    with open(path, "w", newline="") as f:
        f.write("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\r\n")
        epoch = 0
        for chunk in trajectory(rows):
            lines = []
            for loss, acc, val, val_acc in chunk:
                lines.append(f"{epoch},{acc!r},{F32_LR!r},{loss!r},{val_acc!r},{val!r}\r\n")
                epoch += 1
            f.write("".join(lines))
    return rows


def write_jsonl(path, rows):
    """A custom loop's `f.write(json.dumps(row) + "\\n")`, a train and a val row per epoch
    as in configs/examples/formats/metrics.jsonl (values rounded to 4 places there too)."""
    epochs = math.ceil(rows / 2)
    written = 0
    stamp = 1751550000.0
    with open(path, "w") as f:
        epoch = 1
        for chunk in trajectory(epochs):
            lines = []
            for loss, acc, val, val_acc in chunk:
                stamp += 48.3
                lines.append(
                    json.dumps(
                        {
                            "epoch": epoch,
                            "phase": "train",
                            "loss": round(loss, 4),
                            "accuracy": round(acc, 4),
                            "lr": 0.001,
                            "timestamp": round(stamp, 1),
                        }
                    )
                    + "\n"
                )
                written += 1
                if written < rows:
                    lines.append(
                        json.dumps(
                            {
                                "epoch": epoch,
                                "phase": "val",
                                "loss": round(val, 4),
                                "accuracy": round(val_acc, 4),
                                "timestamp": round(stamp + 6.2, 1),
                            }
                        )
                        + "\n"
                    )
                    written += 1
                epoch += 1
            f.write("".join(lines))
    return epochs


def keras_value(v):
    # keras/src/utils/progbar.py, verbose == 2: `f" {avg:.4f}"` above 1e-3, else `.4e`.
    return f"{v:.4f}" if v > 1e-3 else f"{v:.4e}"


def write_keras_log(path, rows):
    """`model.fit(..., verbose=2)` captured to a file: ProgbarLogger's `Epoch N/M` header,
    then one line per epoch, `count - Ts - Xms/step - k: v …`, exactly as
    keras/src/utils/progbar.py builds it for verbose 2 (no bar, no ANSI escapes)."""
    steps = STEPS_PER_EPOCH
    with open(path, "w") as f:
        epoch = 1
        for chunk in trajectory(rows):
            lines = []
            for loss, acc, val, val_acc in chunk:
                ms = 12 + epoch % 3
                lines.append(
                    f"Epoch {epoch}/{rows}\n"
                    f"{steps}/{steps} - {ms * steps / 1000:.0f}s - {ms}ms/step"
                    f" - accuracy: {keras_value(acc)} - loss: {keras_value(loss)}"
                    f" - val_accuracy: {keras_value(val_acc)} - val_loss: {keras_value(val)}\n"
                )
                epoch += 1
            f.write("".join(lines))
    return rows


def hf_text(value):
    """One value as json.dumps writes it (floats by repr, as CPython's encoder does)."""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def hf_entry(entry):
    """One log_history entry as `json.dumps(state, indent=2, sort_keys=True)` lays it out
    inside the top-level object (entry at depth 2, its keys at depth 3)."""
    fields = ",\n".join(f'      "{k}": {hf_text(entry[k])}' for k in sorted(entry))
    return "    {\n" + fields + "\n    }"


def hf_rows(rows):
    """The log_history of transformers.Trainer with logging_steps=25, eval each epoch, a
    linear learning-rate decay, and the final summary row: `rows` entries in all."""
    train_rows_per_epoch = STEPS_PER_EPOCH // HF_LOGGING_STEPS
    per_epoch = train_rows_per_epoch + 1
    epochs = max(1, math.ceil((rows - 1) / per_epoch))
    max_steps = epochs * STEPS_PER_EPOCH
    rng = random.Random(1)
    emitted = 0
    step = 0
    epoch = 0
    for loss, _, val, val_acc in (e for chunk in trajectory(epochs) for e in chunk):
        grads = array.array(
            "f", [abs(rng.gauss(3.5, 1.2)) for _ in range(train_rows_per_epoch)]
        ).tolist()
        for k in range(train_rows_per_epoch):
            if emitted == rows - 1:
                break
            step += HF_LOGGING_STEPS
            yield {
                "epoch": step / STEPS_PER_EPOCH,
                "grad_norm": grads[k],
                "learning_rate": 2e-05 * (1 - step / max_steps),
                "loss": round(loss * (1.03 - 0.02 * k), 4),
                "step": step,
            }
            emitted += 1
        if emitted == rows - 1:
            break
        epoch += 1
        runtime = round(3.1 + rng.random() * 0.3, 4)
        yield {
            "epoch": float(epoch),
            "eval_accuracy": round(val_acc, 3),
            "eval_loss": val,
            "eval_runtime": runtime,
            "eval_samples_per_second": round(240 / runtime, 3),
            "eval_steps_per_second": round(30 / runtime, 3),
            "step": step,
        }
        emitted += 1
    yield {
        "epoch": step / STEPS_PER_EPOCH,
        "step": step,
        "total_flos": 662360951808000.0 * epochs / 5,
        "train_loss": 0.41874,
        "train_runtime": 42.3 * epochs,
        "train_samples_per_second": 23.646,
        "train_steps_per_second": 2.956,
    }


def hf_top(rows):
    """The top-level scalars of trainer_state.json for a run of `rows` log entries."""
    epochs = max(1, math.ceil((rows - 1) / (STEPS_PER_EPOCH // HF_LOGGING_STEPS + 1)))
    steps = epochs * STEPS_PER_EPOCH
    return {
        "best_global_step": steps,
        "best_metric": 0.826,
        "best_model_checkpoint": f"out/checkpoint-{steps}",
        "epoch": float(epochs),
        "eval_steps": 500,
        "global_step": steps,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "logging_steps": HF_LOGGING_STEPS,
        "max_steps": steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": epochs,
        "save_steps": 500,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": True,
                },
                "attributes": {},
            }
        },
        "total_flos": 662360951808000.0 * epochs / 5,
        "train_batch_size": HF_BATCH,
        "trial_name": None,
        "trial_params": None,
    }


def write_hf_state(path, rows):
    """transformers' TrainerState.save_to_json: `json.dumps(asdict(state), indent=2,
    sort_keys=True) + "\\n"`, written entry by entry so 10M rows need no 10M-entry list.
    check_hf_layout proves the bytes equal json.dumps's on a small file."""
    top = hf_top(rows)
    whole = json.dumps({**top, "log_history": []}, indent=2, sort_keys=True)
    head, tail = whole.split('"log_history": []')
    with open(path, "w") as f:
        f.write(head + '"log_history": [\n')
        buf = []
        first = True
        for entry in hf_rows(rows):
            buf.append(("" if first else ",\n") + hf_entry(entry))
            first = False
            if len(buf) >= CHUNK:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf) + "\n  ]" + tail + "\n")
    return top["num_train_epochs"]


def check_hf_layout(tmp):
    """The streamed trainer_state.json is byte for byte what json.dumps writes."""
    path = os.path.join(tmp, "check_trainer_state.json")
    write_hf_state(path, 1_003)
    expected = (
        json.dumps({**hf_top(1_003), "log_history": list(hf_rows(1_003))}, indent=2, sort_keys=True)
        + "\n"
    )
    with open(path) as f:
        got = f.read()
    os.remove(path)
    if got != expected:
        sys.exit("internal error: the streamed trainer_state.json differs from json.dumps's layout")


FORMATS = {
    # name: (file name, generator, label, what a row is, Python baseline)
    "csv": ("history.csv", write_keras_csv, "Keras CSVLogger CSV", "epoch", "csv.reader"),
    "jsonl": (
        "metrics.jsonl",
        write_jsonl,
        "JSON Lines",
        "line (train or val)",
        "json.loads per line",
    ),
    "keras-log": (
        "training.log",
        write_keras_log,
        "Keras console log (verbose=2)",
        "epoch",
        "re per line",
    ),
    "hf": (
        "trainer_state.json",
        write_hf_state,
        "HF trainer_state.json",
        "log_history entry",
        "json.load",
    ),
}

# Each baseline parses the file and nothing more (no epochs, no series): the least a
# Python tool reading the format must do. It runs in its own process (so its peak RSS is
# its own) and prints the seconds its parse took, interpreter start-up excluded.
BASELINES = {
    "csv": """
import csv, sys, time
t = time.perf_counter()
with open(sys.argv[1], newline="") as f:
    for _ in csv.reader(f):
        pass
print(time.perf_counter() - t)
""",
    "jsonl": """
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    for line in f:
        if line.strip():
            json.loads(line)
print(time.perf_counter() - t)
""",
    "keras-log": r"""
import re, sys, time
header = re.compile(r"^Epoch (\d+)/(\d+)$")
value = re.compile(r" - ([A-Za-z_][^\s:]*): (\S+)")
t = time.perf_counter()
with open(sys.argv[1]) as f:
    for line in f:
        if not header.match(line):
            value.findall(line)
print(time.perf_counter() - t)
""",
    "hf": """
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    json.load(f)
print(time.perf_counter() - t)
""",
}


# --- measuring processes -----------------------------------------------------------------


def clean_env(**extra):
    """The environment without anything that would point retune at a real LLM, a user
    config file or a proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("OPENAI_", "RETUNE_", "AZURE_OPENAI_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(extra)
    return env


def run(cmd, env=None, cwd=None):
    out = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    if out.returncode != 0:
        sys.exit(
            f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr.decode(errors='replace')}"
        )
    return out


def wall(cmd, env=None, cwd=None):
    """Seconds one process takes, start-up included, as a trainer calling retune pays."""
    start = time.perf_counter()
    out = run(cmd, env, cwd)
    return time.perf_counter() - start, out.stdout


def peak_rss(cmd, env=None):
    """Peak RSS (KiB) of one process, via GNU time, and its stdout."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr.decode(errors='replace')}")
    return int(out.stderr.decode().strip().splitlines()[-1]), out.stdout


def ms(seconds):
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"


def mib(kib):
    return f"{kib / 1024:,.1f} MiB"


def span(times):
    return f"{ms(min(times))}–{ms(max(times))}"


def size(nbytes):
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.2f} GB"
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.1f} kB"


# --- section: load + diagnose ----------------------------------------------------------


def bench_load(args, tmp, out):
    env = clean_env()
    rows_list = [r for r in (QUICK_ROW_COUNTS if args.quick else ROW_COUNTS) if r <= args.max_rows]
    check_hf_layout(tmp)
    results = []
    for name in args.formats:
        file_name, generate, label, _, _ = FORMATS[name]
        for rows in rows_list:
            path = os.path.join(tmp, file_name)
            t0 = time.perf_counter()
            epochs = generate(path, rows)
            generated = time.perf_counter() - t0
            nbytes = os.path.getsize(path)
            cmd = [args.binary, "diagnose", "--metrics", path, "--format", "json"]
            # The memory run doubles as the warm-up (binary and file in the page cache).
            rss, stdout = peak_rss(cmd, env)
            read = json.loads(stdout)["metrics"]
            if read["epochs"] != epochs:
                sys.exit(
                    f"{label}, {rows:,} rows: retune read {read['epochs']} epochs, "
                    f"the file has {epochs}"
                )
            times = [wall(cmd, env)[0] for _ in range(args.repeat)]
            # The I/O floor: `wc -l` reads every byte and finds every line end, no more.
            floor = statistics.median(wall(["wc", "-l", path])[0] for _ in range(args.repeat))
            base_times, base_rss = [], 0
            for _ in range(args.repeat):
                kib, stdout = peak_rss([sys.executable, "-c", BASELINES[name], path])
                base_times.append(float(stdout))
                base_rss = max(base_rss, kib)
            os.remove(path)
            row = dict(
                format=name,
                label=label,
                rows=rows,
                epochs=epochs,
                bytes=nbytes,
                median=statistics.median(times),
                rss=rss,
                base=statistics.median(base_times),
                base_rss=base_rss,
                floor=floor,
            )
            results.append(row)
            print(
                f"  {label}, {rows:,} rows ({size(nbytes)}, generated in {generated:.0f} s): "
                f"retune {ms(row['median'])} {mib(rss)}; Python {ms(row['base'])} "
                f"{mib(base_rss)}; wc -l {ms(floor)}",
                file=sys.stderr,
            )

    startup = statistics.median(
        wall([sys.executable, "-c", "import csv, json, re, sys, time"])[0]
        for _ in range(args.repeat)
    )
    out.append("### Load + diagnose: `retune diagnose --metrics FILE --format json`\n")
    out.append(
        f"Median of {args.repeat} runs each. retune's time is the whole process "
        f"(start-up, read, diagnose, JSON out); the baseline's is its parse loop "
        f"alone, in its own Python process (its start-up, {ms(startup)} here, excluded). "
        f"Ratio = baseline ÷ retune. The floor is `wc -l` on the same file (a process that "
        f"reads every byte and counts the lines, nothing more), start-up included as "
        f"retune's is; × floor = retune ÷ `wc -l`.\n"
    )
    out.append(
        "| format | rows | epochs | file | retune | peak RSS "
        "| Python baseline | its peak RSS | ratio | `wc -l` | × floor |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        base_name = FORMATS[r["format"]][4]
        out.append(
            f"| {r['label']} | {r['rows']:,} | {r['epochs']:,} | {size(r['bytes'])} | "
            f"{ms(r['median'])} | {mib(r['rss'])} | {ms(r['base'])} ({base_name}) | "
            f"{mib(r['base_rss'])} | {r['base'] / r['median']:.1f}× | {ms(r['floor'])} | "
            f"{r['median'] / r['floor']:.1f}× |"
        )
    out.append("")
    out.append(
        "A row is: "
        + "; ".join(f"{FORMATS[n][2]}: one {FORMATS[n][3]}" for n in args.formats)
        + "."
    )
    for name in args.formats:
        own = [r for r in results if r["format"] == name]
        if len(own) > 1:
            lo, hi = own[0], own[-1]
            out.append(
                f"- {lo['label']}: peak RSS {mib(lo['rss'])} at {lo['rows']:,} rows, "
                f"{mib(hi['rss'])} at {hi['rows']:,} ({hi['rss'] / lo['rss']:.2f}×)."
            )
    out.append("")
    return results


# --- section: prompt size against history length -----------------------------------------


def grow_history(args, work, entries):
    """A real history: `retune suggest --in-place` called once an epoch on a run whose
    metrics keep growing, as a trainer calls it. The run learns, stalls and overfits in
    turn, so the rules change the learning rate, dropout and weight decay along the way."""
    config = os.path.join(work, "config.json")
    metrics = os.path.join(work, "history.csv")
    history = os.path.join(work, "history.jsonl")
    with open(config, "w") as f:
        json.dump(
            {
                "model": "mlp",
                "optimizer": "adam",
                "learning_rate": 0.001,
                "batch_size": 32,
                "epochs": entries + 1,
                "dropout": 0.1,
                "weight_decay": 0.0001,
                "num_classes": 10,
                "seed": 7,
            },
            f,
            indent=2,
        )
    rng = random.Random(3)
    loss, val = 2.3, 2.3
    env = clean_env()
    with open(metrics, "w", newline="") as f:
        f.write("epoch,accuracy,loss,val_accuracy,val_loss\r\n")
    for epoch in range(entries):
        phase = (epoch // 25) % 3
        if phase == 0:  # learning
            loss *= 0.93
            val = loss * 1.05
        elif phase == 1:  # stalled
            loss *= 1 + rng.gauss(0, 0.004)
            val = loss * 1.05 * (1 + rng.gauss(0, 0.004))
        else:  # overfitting: train falls, validation rises
            loss *= 0.95
            val *= 1.03
        loss, val = max(loss, 0.02), max(val, 0.02)
        with open(metrics, "a", newline="") as f:
            f.write(f"{epoch},{1 - loss / 2.5!r},{loss!r},{1 - val / 2.4!r},{val!r}\r\n")
        run(
            [
                args.binary,
                "suggest",
                "--config",
                config,
                "--metrics",
                metrics,
                "--in-place",
                "--history",
                history,
                "--report-dir",
                os.path.join(work, "reports"),
                "--provider",
                "rules",
                "--format",
                "json",
            ],
            env,
        )
        # The reports are not measured; dropping them keeps the temp dir small.
        shutil.rmtree(os.path.join(work, "reports"), ignore_errors=True)
    return config, metrics, history


def bench_prompt(args, tmp, out):
    lengths = QUICK_HISTORY_LENGTHS if args.quick else HISTORY_LENGTHS
    work = os.path.join(tmp, "history-run")
    os.makedirs(work)
    t0 = time.perf_counter()
    config, metrics, history = grow_history(args, work, max(lengths))
    grown = time.perf_counter() - t0
    with open(history) as f:
        lines = f.readlines()
    if len(lines) != max(lengths):
        sys.exit(f"history has {len(lines)} lines after {max(lengths)} calls")
    entries = [json.loads(line) for line in lines]
    with_changes = sum(1 for e in entries if e["changes"])
    with_actions = sum(1 for e in entries if e["actions"])
    env = clean_env()
    rows = []
    for n in lengths:
        prefix = os.path.join(work, f"history_{n}.jsonl")
        with open(prefix, "w") as f:
            f.writelines(lines[:n])
        prompt_cmd = [
            args.binary,
            "prompt",
            "--config",
            config,
            "--metrics",
            metrics,
            "--history",
            prefix,
            "--format",
            "json",
        ]
        _, stdout = wall(prompt_cmd, env)
        shown = json.loads(stdout)
        prompt_times = [wall(prompt_cmd, env)[0] for _ in range(args.repeat)]
        suggest_cmd = [
            args.binary,
            "suggest",
            "--config",
            config,
            "--metrics",
            metrics,
            "--history",
            prefix,
            "--dry-run",
            "--provider",
            "rules",
            "--format",
            "json",
        ]
        suggest_times = [wall(suggest_cmd, env)[0] for _ in range(args.repeat)]
        rows.append(
            (
                n,
                sum(1 for e in entries[:n] if e["changes"]),
                sum(1 for e in entries[:n] if e["actions"]),
                os.path.getsize(prefix),
                shown["characters"],
                shown["estimated_tokens"],
                statistics.median(prompt_times),
                statistics.median(suggest_times),
            )
        )
        print(
            f"  history {n}: {shown['characters']} chars, {shown['estimated_tokens']} tokens",
            file=sys.stderr,
        )

    out.append("### Prompt size against history length\n")
    out.append(
        f"The history is real: `retune suggest --in-place --provider rules` called once "
        f"an epoch for {max(lengths):,} epochs on a run that learns, stalls and overfits in "
        f"turn and ignores the advice to stop ({with_changes} of its {len(lines):,} lines "
        f"changed a value, {with_actions} asked for an action such as `restore_checkpoint`; "
        f"{grown:.0f} s to write). Each row gives `retune prompt --format json` the first N "
        f"lines of it, with the same config and the same {max(lengths):,}-epoch metrics. "
        f"Times: median of {args.repeat}.\n"
    )
    out.append(
        "| history entries | with changes | with actions | history file | prompt characters "
        "| estimated tokens | `retune prompt` | `retune suggest --dry-run` (rules) |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, changed, acted, nbytes, chars, tokens, p, s in rows:
        out.append(
            f"| {n:,} | {changed} | {acted} | {size(nbytes)} | {chars:,} | {tokens:,} "
            f"| {ms(p)} | {ms(s)} |"
        )
    out.append("")
    return rows


# --- section: suggest end to end with a stand-in LLM ---------------------------------------
# The stand-in (benches/standin.py) answers each seed example with one learning-rate change
# the validator accepts, with a rationale that cites the run's numbers, as a good model would.


def bench_suggest(args, tmp, out):
    server = StandIn()
    cache = os.path.join(tmp, "cache")
    # An empty user config dir: no retune.toml of the user's is read.
    env = clean_env(
        RETUNE_CACHE_DIR=cache,
        XDG_CONFIG_HOME=os.path.join(tmp, "xdg"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    rows = []
    try:
        for name, metrics in (("seed000", "training.log"), ("seed003", "metrics.json")):
            work = os.path.join(tmp, name)
            shutil.copytree(os.path.join(ROOT, "configs", "examples", name), work)
            base = [
                args.binary,
                "suggest",
                "--config",
                os.path.join(work, "config.json"),
                "--metrics",
                os.path.join(work, metrics),
                "--report-dir",
                os.path.join(work, "reports"),
                "--history",
                os.path.join(work, "history.jsonl"),
                "--format",
                "json",
            ]
            variants = {
                "rules": base + ["--provider", "rules"],
                "llm": base
                + [
                    "--provider",
                    "openai",
                    "--base-url",
                    server.url(name),
                    "--no-cache",
                ],
            }
            times = {"rules": [], "llm": []}
            before = server.calls[name]
            # Interleaved, so both see the same machine state; a fresh history each time,
            # so every call does the same work (no cooldown from the call before).
            for _ in range(args.suggest_repeat):
                for variant, cmd in variants.items():
                    history = os.path.join(work, "history.jsonl")
                    if os.path.exists(history):
                        os.remove(history)
                    seconds, stdout = wall(cmd, env, cwd=work)
                    decision = json.loads(stdout)
                    if variant == "llm":
                        accepted = [c["parameter"] for c in decision["changes"]]
                        if decision["provider"] != "openai" or accepted != ["learning_rate"]:
                            sys.exit(
                                f"{name}: the stand-in's answer was not applied: provider "
                                f"{decision['provider']}, changes {accepted}, rejected "
                                f"{decision['rejected']}"
                            )
                    times[variant].append(seconds)
            if server.calls[name] - before != args.suggest_repeat:
                sys.exit(
                    f"{name}: {server.calls[name] - before} requests for "
                    f"{args.suggest_repeat} calls (the cache or a retry was in the way)"
                )
            rows.append((name, metrics, times))
            print(
                f"  suggest {name}: rules {ms(statistics.median(times['rules']))}, "
                f"stand-in LLM {ms(statistics.median(times['llm']))}",
                file=sys.stderr,
            )
    finally:
        server.shutdown()

    n = args.suggest_repeat
    out.append("### `retune suggest` end to end, with a stand-in LLM that answers at once\n")
    out.append(
        f"`retune suggest --provider openai --base-url http://127.0.0.1:PORT/v1 --no-cache` "
        f"against a Python `http.server` on loopback that returns a valid answer (one "
        f"learning-rate change, accepted by validation and written) as soon as asked; "
        f"beside it the rules advisor on the same files, calls interleaved. Whole process, "
        f"writing the report, chart, config and history line; median (min–max) of {n}.\n"
    )
    out.append("| example | rules advisor | stand-in LLM | LLM ÷ rules | target < 50 ms |")
    out.append("|---|---:|---:|---:|---|")
    for name, metrics, times in rows:
        rules, llm = statistics.median(times["rules"]), statistics.median(times["llm"])
        out.append(
            f"| {name} (`{metrics}`) | {ms(rules)} ({span(times['rules'])}) | "
            f"{ms(llm)} ({span(times['llm'])}) | {llm / rules:.2f}× | "
            f"{'met' if llm < 0.05 else '**not met**'} |"
        )
    out.append("")
    return rows


# Sections by name, in the order they run. `review` throughput (`retune review DIR...`)
# belongs here once that command exists: a function with this signature that times it on
# a folder of runs made with the generators above, and a name in this table.
SECTIONS = {
    "load": bench_load,
    "prompt": bench_prompt,
    "suggest": bench_suggest,
}


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def git(*args):
        out = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"tree at {commit}{dirty}; load average {os.getloadavg()[0]:.2f} at the start"
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "retune"))
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument("--suggest-repeat", type=int, default=20, help="calls per suggest variant")
    ap.add_argument(
        "--max-rows",
        type=int,
        default=ROW_COUNTS[-1],
        help="largest metrics file, in rows (default 10,000,000)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="1k and 100k rows only, histories up to 100 entries"
    )
    ap.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"metrics formats to load (default {','.join(FORMATS)})",
    )
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run (default {','.join(SECTIONS)})"
    )
    ap.add_argument("--out", default=RESULTS, help="where the Markdown goes")
    args = ap.parse_args()
    args.formats = [f for f in args.formats.split(",") if f]
    sections = [s for s in args.only.split(",") if s]
    for bad in [f for f in args.formats if f not in FORMATS] + [
        s for s in sections if s not in SECTIONS
    ]:
        sys.exit(f"unknown format or section: {bad}")
    if args.repeat < 1 or args.suggest_repeat < 1:
        sys.exit("--repeat and --suggest-repeat must be at least 1")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")
    if not os.path.exists("/usr/bin/time"):
        sys.exit("GNU time (/usr/bin/time) is needed for peak memory")

    started = time.perf_counter()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(args.binary)))
    out = [f"Machine: {machine()}. Binary: `{os.path.relpath(args.binary, ROOT)}` built {built}.\n"]
    tmp = tempfile.mkdtemp(prefix="retune-scale-", dir="/tmp")
    try:
        # Measure a private copy: a build in the shared target dir must not swap the
        # binary halfway through the run.
        private = os.path.join(tmp, "retune")
        shutil.copy2(args.binary, private)
        args.binary = private
        for name in sections:
            print(f"{name} …", file=sys.stderr)
            SECTIONS[name](args, tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python3 benches/scale.py " + " ".join(sys.argv[1:])
    out.append(
        f"`{command.strip()}` took {time.perf_counter() - started:.0f} s in all; "
        f"load average {os.getloadavg()[0]:.2f} at the end."
    )
    text = "\n".join(out) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
