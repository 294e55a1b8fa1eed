#!/usr/bin/env python3
"""Write TensorBoard event files for retune's tests, with TensorBoard's own writer.

The values are not made up: they are real training runs already in the repository
(configs/examples/keras/*/history.csv, written by Keras' CSVLogger, and
configs/examples/formats/lightning/version_0/metrics.csv, written by Lightning's
CSVLogger), logged again the way each trainer logs to TensorBoard. Every file is written
by `tensorboard.summary.writer.event_file_writer.EventFileWriter`, the writer that
PyTorch's `torch.utils.tensorboard.SummaryWriter` wraps (its `FileWriter` is this class
plus `add_summary`/`add_event`), with the `Event`/`Summary`/`TensorProto` messages of
`tensorboard.compat.proto`. Neither PyTorch nor TensorFlow is needed.

Under configs/examples/formats/tensorboard/:

  pytorch/       SummaryWriter as a PyTorch loop uses it, one value per epoch with
                 step = epoch index: `add_scalar("Accuracy/train", ...)` into the main
                 file and `add_scalars("Loss", {"train": ..., "val": ...})`, which
                 PyTorch writes into the subfolders Loss_train/ and Loss_val/ with the
                 tag "Loss". Scalars are `simple_value` floats. Values: keras/diverging
                 (the loss turns NaN in the last epochs).
  lightning/version_0/
                 Lightning's TensorBoardLogger: every `log_metrics` call of the
                 Lightning run in formats/lightning is an `add_scalar` per metric at the
                 global step, with the `epoch` scalar Lightning adds to each call, the
                 `hp_metric` -1 and the hparams session summary `log_hyperparams`
                 writes. `simple_value` floats.
  tf2/           one file as TF2's `tf.summary.scalar` writes it: rank-0 DT_FLOAT
                 tensors with `float_val` and the "scalars" plugin metadata (built by
                 `tensorboard.plugins.scalar.summary_v2.scalar_pb`, the TF-free twin of
                 `tf.summary.scalar`), plus the learning rate as a DT_DOUBLE tensor.
                 Values: keras/healthy.
  keras/train/, keras/validation/
                 Keras 3's TensorBoard callback: `epoch_loss`, `epoch_accuracy` and
                 `epoch_learning_rate` at step = epoch index under train/, the
                 validation values without their `val_` prefix under validation/, plus
                 `evaluation_*_vs_iterations` at the optimizer's iteration count and the
                 `keras` model-config summary (a string tensor). Tensors carry raw
                 little-endian bytes in `tensor_content`, as TF's C++ summary writer
                 stores them (`Tensor::AsProtoTensorContent`). Values: keras/overfitting.

Under tests/fixtures/:

  events_truncated.bin   the tf2 file cut in the middle of a late record, as a file of a
                         run still being written (or a full disk) ends.
  events_corrupt.bin     the tf2 file with one byte of the second record's payload
                         flipped, so that record's data CRC fails.

Wall times, host name and process id are fixed so that a rerun writes the same bytes.
Every file is read back with TensorBoard's own loader before the script ends, and the
values compared with the source CSV.

Usage (from the repository root; about 5 s):

    pip install tensorboard
    python examples/make_tensorboard_fixtures.py
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import socket
import struct
import threading
import time as real_time
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer import event_file_writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "configs/examples/formats/tensorboard"
FIXTURES = REPO / "tests/fixtures"
# The clock every writer sees: 2026-09-21, one second per logged value.
START_TIME = 1_790_000_000.0
# Iterations per epoch of the Keras runs (200 samples, batch 32), for the
# `evaluation_*_vs_iterations` steps Keras writes.
KERAS_STEPS_PER_EPOCH = 7


class Clock:
    """Wall times that advance one second per call from the script's own thread. The
    writer's flushing thread reads the clock too, at times that vary from run to run,
    so it gets the real one."""

    def __init__(self) -> None:
        self.now = START_TIME

    def time(self) -> float:
        if threading.current_thread() is not threading.main_thread():
            return real_time.time()
        self.now += 1.0
        return self.now

    def __call__(self) -> float:
        return self.time()


CLOCK = Clock()


def fixed_environment() -> None:
    # EventFileWriter names its file events.out.tfevents.<time>.<host>.<pid>.<uid> and
    # stamps its first event with time.time().
    event_file_writer.time = CLOCK
    socket.gethostname = lambda: "retune"
    os.getpid = lambda: 4242


def history(scenario: str) -> list[dict[str, float]]:
    """A Keras CSVLogger file as rows of floats (nan stays nan)."""
    path = REPO / "configs/examples/keras" / scenario / "history.csv"
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class TorchSummaryWriter:
    """The part of `torch.utils.tensorboard.SummaryWriter` a training loop uses, over
    the same EventFileWriter: `add_scalar` writes `Summary.Value(tag, simple_value)` at
    `step`, `add_scalars` one writer per key in `<logdir>/<main_tag>_<key>/`."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.main = EventFileWriter(str(logdir))
        self.others: dict[str, EventFileWriter] = {}

    @staticmethod
    def event(summary: summary_pb2.Summary, step: int) -> event_pb2.Event:
        return event_pb2.Event(summary=summary, step=int(step), wall_time=CLOCK())

    @staticmethod
    def scalar(tag: str, value: float) -> summary_pb2.Summary:
        return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.main.add_event(self.event(self.scalar(tag, value), step))

    def add_scalars(self, main_tag: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            folder = str(self.logdir / (main_tag.replace("/", "_") + "_" + key))
            if folder not in self.others:
                self.others[folder] = EventFileWriter(folder)
            writer = self.others[folder]
            writer.add_event(self.event(self.scalar(main_tag, value), step))

    def add_summary(self, summary: summary_pb2.Summary, step: int) -> None:
        self.main.add_event(self.event(summary, step))

    def close(self) -> None:
        self.main.close()
        for writer in self.others.values():
            writer.close()


def tensor_content(value: float) -> tensor_pb2.TensorProto:
    """A rank-0 float32 tensor as TF's C++ writer stores it: raw bytes."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        tensor_content=struct.pack("<f", value),
    )


def scalars_metadata() -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )


class Tf2Writer:
    """A TF2 summary writer's output: `tf.summary.scalar` events with rank-0 tensors."""

    def __init__(self, logdir: Path) -> None:
        self.writer = EventFileWriter(str(logdir), filename_suffix=".v2")

    def write(self, step: int, value: summary_pb2.Summary.Value) -> None:
        summary = summary_pb2.Summary(value=[value])
        self.writer.add_event(event_pb2.Event(summary=summary, step=step, wall_time=CLOCK()))

    def scalar_content(self, tag: str, value: float, step: int) -> None:
        self.write(
            step,
            summary_pb2.Summary.Value(tag=tag, tensor=tensor_content(value), metadata=scalars_metadata()),
        )

    def close(self) -> None:
        self.writer.close()


def write_pytorch() -> None:
    rows = history("diverging")
    w = TorchSummaryWriter(OUT / "pytorch")
    for epoch, row in enumerate(rows):
        w.add_scalars("Loss", {"train": row["loss"], "val": row["val_loss"]}, epoch)
        w.add_scalar("Accuracy/train", row["accuracy"], epoch)
        w.add_scalar("Accuracy/val", row["val_accuracy"], epoch)
    w.close()


def hparams_session_start(hparams: dict[str, float]) -> summary_pb2.Summary:
    """What `SummaryWriter.add_hparams` and Lightning's `log_hyperparams` put into the
    event file: the hparams plugin's session-start summary, a tag without a value."""
    info = plugin_data_pb2.SessionStartInfo()
    for key, value in hparams.items():
        info.hparams[key].number_value = value
    content = plugin_data_pb2.HParamsPluginData(session_start_info=info, version=0)
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="hparams", content=content.SerializeToString(deterministic=True)
        )
    )
    return summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="_hparams_/session_start_info", metadata=metadata)]
    )


def write_lightning() -> None:
    source = REPO / "configs/examples/formats/lightning/version_0/metrics.csv"
    w = TorchSummaryWriter(OUT / "lightning/version_0")
    # log_hyperparams: the session summary, then hp_metric -1 at step 0.
    w.add_summary(hparams_session_start({"lr": 0.02, "batch_size": 64}), 0)
    w.add_scalar("hp_metric", -1.0, 0)
    with source.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            # One log_metrics call: the logged metrics, then the `epoch` Lightning adds.
            for key, cell in row.items():
                if key not in ("step", "epoch") and cell != "":
                    w.add_scalar(key, float(cell), step)
            w.add_scalar("epoch", float(row["epoch"]), step)
    w.close()


def write_tf2() -> None:
    rows = history("healthy")
    w = Tf2Writer(OUT / "tf2")
    for epoch, row in enumerate(rows):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            value = scalar_summary.scalar_pb(name, row[name]).value[0]
            w.write(epoch, value)
        lr = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(),
            double_val=[1e-3 * 0.9**epoch],
        )
        w.write(epoch, summary_pb2.Summary.Value(tag="learning_rate", tensor=lr, metadata=scalars_metadata()))
    w.close()


def write_keras() -> None:
    rows = history("overfitting")
    train = Tf2Writer(OUT / "keras/train")
    validation = Tf2Writer(OUT / "keras/validation")
    # write_graph=True: the model config as a string tensor at step 0.
    config = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        string_val=[b'{"class_name": "Sequential"}'],
    )
    graph = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="graph_keras_model", content=b"1")
    )
    train.write(0, summary_pb2.Summary.Value(tag="keras", tensor=config, metadata=graph))
    for epoch, row in enumerate(rows):
        iterations = (epoch + 1) * KERAS_STEPS_PER_EPOCH
        for name in ("accuracy", "loss"):
            validation.scalar_content(f"evaluation_{name}_vs_iterations", row[f"val_{name}"], iterations)
        for name in ("accuracy", "loss"):
            train.scalar_content(f"epoch_{name}", row[name], epoch)
        # float32, as Keras keeps it: 0.001 reads back as 0.0010000000474974513.
        train.scalar_content("epoch_learning_rate", 0.001, epoch)
        for name in ("accuracy", "loss"):
            validation.scalar_content(f"epoch_{name}", row[f"val_{name}"], epoch)
    train.close()
    validation.close()


def records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each record in an event file's bytes."""
    out, at = [], 0
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        out.append((at, length))
        at += 8 + 4 + length + 4
    return out


def write_broken_copies() -> None:
    (source,) = (OUT / "tf2").glob("events.out.tfevents.*")
    data = source.read_bytes()
    spans = records(data)
    # Cut half way through the payload of the record three from the end.
    at, length = spans[-3]
    (FIXTURES / "events_truncated.bin").write_bytes(data[: at + 12 + length // 2])
    # Flip one byte in the payload of the second record.
    at, length = spans[1]
    flipped = bytearray(data)
    flipped[at + 12 + length // 2] ^= 0x01
    (FIXTURES / "events_corrupt.bin").write_bytes(bytes(flipped))


def scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of an event file, read with TensorBoard's own loader."""
    out: dict[str, list[tuple[int, float]]] = {}
    for record in event_file_loader.RawEventFileLoader(str(path)).Load():
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                v = value.simple_value
            elif kind == "tensor" and value.tensor.dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
                t = value.tensor
                if t.tensor_content:
                    (v,) = struct.unpack("<f", t.tensor_content)
                else:
                    v = (list(t.float_val) + list(t.double_val))[0]
            else:
                continue
            out.setdefault(value.tag, []).append((event.step, v))
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == np.float32(b)


def check() -> None:
    def only(folder: str) -> Path:
        (path,) = (OUT / folder).glob("events.out.tfevents.*")
        return path

    diverging = history("diverging")
    loss = scalars(only("pytorch/Loss_train"))["Loss"]
    assert len(loss) == len(diverging) and all(
        same(v, row["loss"]) for (_, v), row in zip(loss, diverging)
    ), loss
    assert [s for s, _ in scalars(only("pytorch"))["Accuracy/val"]] == list(range(len(diverging)))
    overfitting = history("overfitting")
    val = scalars(only("keras/validation"))["epoch_loss"]
    assert [v for _, v in val] == [float(np.float32(r["val_loss"])) for r in overfitting]
    healthy = history("healthy")
    tf2 = scalars(only("tf2"))
    assert [v for _, v in tf2["val_accuracy"]] == [float(np.float32(r["val_accuracy"])) for r in healthy]
    lightning = scalars(only("lightning/version_0"))
    assert lightning["epoch"][-1][1] == 5.0, lightning["epoch"][-1]
    # TensorBoard's loader stops at the broken record of each copy.
    truncated = list(event_file_loader.RawEventFileLoader(str(FIXTURES / "events_truncated.bin")).Load())
    assert 0 < len(truncated) < len(records(only("tf2").read_bytes())), len(truncated)


def main() -> None:
    fixed_environment()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    write_pytorch()
    write_lightning()
    write_tf2()
    write_keras()
    write_broken_copies()
    check()
    for path in sorted(OUT.rglob("events.out.tfevents.*")) + [
        FIXTURES / "events_truncated.bin",
        FIXTURES / "events_corrupt.bin",
    ]:
        print(f"{path.stat().st_size:7d}  {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
