"""The metrics file a callback writes for the binary (`MetricsLog`, Keras CSVLogger's
format), the atomic write every file the callbacks write goes through, and `to_float`,
which turns a trainer's metric value (a number, a numpy scalar, a tensor) into a float.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

# The binary's `--metrics-format` choices (`retune suggest --help`).
MetricsFormat = Literal[
    "snapshot",
    "keras-history",
    "keras-csv",
    "keras-log",
    "lightning-csv",
    "hf-trainer-state",
    "json-lines",
    "tensorboard",
]

# `--metrics-format` of the file MetricsLog writes.
KERAS_CSV: Final = "keras-csv"


class MetricsLog:
    """The metrics file the trainer has, written as Keras' CSVLogger writes it: a header
    of `epoch` then the metric names sorted, 0-based epochs, CRLF line ends (Python's csv
    module), `NA` where an epoch lacks a metric, non-finite values as `nan`/`inf`.

    Unlike CSVLogger, a metric that first appears in a later epoch (validation every
    other epoch, say) gets a column: the whole file is rewritten, atomically, each epoch.
    An existing file is read first, so a resumed run keeps its earlier epochs; an epoch
    logged again (a run that resumed from an older checkpoint) replaces the rows from
    that epoch on.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._rows: list[tuple[int, dict[str, float]]] = []
        if self.path.exists():
            self._rows = _read_metrics_csv(self.path)

    @property
    def rows(self) -> list[tuple[int, dict[str, float]]]:
        return list(self._rows)

    def append(self, epoch: int, metrics: Mapping[str, Any]) -> Path:
        """Record the epoch and rewrite the file; returns its path."""
        values = {}
        for key, value in metrics.items():
            number = to_float(value)
            if number is not None:
                values[str(key)] = number
        self._rows = [(e, r) for e, r in self._rows if e < epoch]
        self._rows.append((int(epoch), values))
        self._write()
        return self.path

    def _write(self) -> None:
        keys = sorted({k for _, row in self._rows for k in row})
        lines = [["epoch", *keys]]
        for epoch, row in self._rows:
            lines.append([str(epoch), *(_csv_value(row.get(k)) for k in keys)])
        buffer = io.StringIO()
        csv.writer(buffer).writerows(lines)  # lineterminator \r\n, as CSVLogger
        atomic_write(self.path, buffer.getvalue())


def atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory and rename it, so a reader
    (the binary, a person tailing the file) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def to_float(value: Any) -> float | None:
    """A metric value as a float: Python and numpy numbers, 0-d arrays and tensors
    (anything with `item()`); None for what is not a number (strings, lists)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            result = item()
        except (TypeError, ValueError, RuntimeError):  # not a single element
            return None
        return float(result) if isinstance(result, (int, float)) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _csv_value(value: float | None) -> str:
    if value is None:
        return "NA"
    return repr(value)  # nan, inf, -inf, and floats in shortest round-trip form


def _read_metrics_csv(path: Path) -> list[tuple[int, dict[str, float]]]:
    rows: list[tuple[int, dict[str, float]]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            try:
                epoch = int(record.pop("epoch"))
            except (KeyError, TypeError, ValueError):
                continue  # a repeated header or a torn line of another writer
            values = {}
            for k, v in record.items():
                if k is None or v in (None, "", "NA"):
                    continue
                try:
                    values[k] = float(v)
                except ValueError:
                    continue
            rows.append((epoch, values))
    return rows
