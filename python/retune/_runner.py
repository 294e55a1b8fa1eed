"""The call to the binary: `Retune` runs `retune suggest --format json --in-place` on a
metrics file and turns what it prints into a `Decision` (or a `RetuneError`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ._binary import find_binary
from ._decision import Decision, RetuneError
from ._metrics_log import MetricsFormat

logger = logging.getLogger("retune")

# What a failed call does: log a warning and let training go on, or raise RetuneError.
OnError = Literal["warn", "raise"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("warn", "raise")

# When `suggest` writes a report (`--report-on`): a trainer calls it every epoch, and
# `"always"` leaves a Markdown report, its JSON twin and a chart for each, healthy epochs
# included (89 files after a 30-epoch Keras run), so a trainer's default is `"change"`:
# a report only for a decision that changes the config or asks for an action. The
# history line is written every call either way.
ReportOn = Literal["change", "always"]
REPORT_ON_CHOICES: tuple[ReportOn, ...] = ("change", "always")


class Retune:
    """One training run's connection to the binary.

    `config` is the training config (a JSON object) that `retune suggest --in-place`
    adjusts. Everything else goes into `run_dir`: the metrics file the callback writes,
    the run's history (`history.jsonl`, which carries cooldowns and the text of every
    earlier config) and the reports. Without `run_dir`, each run gets a new directory
    `<config's directory>/retune/<UTC time>`; pass the same `run_dir` again to resume a
    run with its metrics and history.

    After the trainer acted on a decision, `record_applied` tells the history which
    changes the running job really took (`retune applied`).

    `report_on="change"` (the default) writes a report (Markdown, JSON twin, chart) only
    for a decision that changes the config or asks for an action; `"always"` writes one
    every call, healthy epochs included. The history gets its line every call either way.

    `extra_args` go to `retune suggest` as they are (`["--provider", "rules"]`,
    `["--num-classes", "10"]`, `["--space", "space.toml"]` ...); a `--report-on` among
    them wins over `report_on`. `on_error="warn"` logs a failed call and lets training go
    on; `"raise"` raises RetuneError.
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        run_dir: str | os.PathLike[str] | None = None,
        history: str | os.PathLike[str] | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        binary: str | os.PathLike[str] | None = None,
        on_error: OnError = "warn",
        timeout: float | None = None,
        report_on: ReportOn = "change",
    ):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, not {on_error!r}")
        if report_on not in REPORT_ON_CHOICES:
            raise ValueError(f"report_on must be one of {REPORT_ON_CHOICES}, not {report_on!r}")
        self.config = Path(os.path.abspath(config))
        self.run_dir = Path(os.path.abspath(run_dir or _new_run_dir(self.config)))
        self.history = Path(os.path.abspath(history or self.run_dir / "history.jsonl"))
        self.report_dir = Path(os.path.abspath(report_dir or self.run_dir / "reports"))
        self.extra_args = [str(a) for a in extra_args]
        self._binary = str(binary) if binary is not None else None
        self.on_error = on_error
        self.timeout = timeout
        self.report_on = report_on
        # Why the last call gave no decision (None after a successful one).
        self.last_error: str | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_binary()
        return self._binary

    def command(
        self, metrics: str | os.PathLike[str], metrics_format: MetricsFormat | None = None
    ) -> list[str]:
        """The exact command line `suggest` runs."""
        cmd = [
            self.binary,
            "suggest",
            "--config",
            str(self.config),
            "--metrics",
            os.path.abspath(metrics),
        ]
        if metrics_format:
            cmd += ["--metrics-format", metrics_format]
        cmd += [
            "--format",
            "json",
            "--in-place",
            "--history",
            str(self.history),
            "--report-dir",
            str(self.report_dir),
        ]
        if not any(a == "--report-on" or a.startswith("--report-on=") for a in self.extra_args):
            cmd += ["--report-on", self.report_on]
        cmd += self.extra_args
        return cmd

    def suggest(
        self, metrics: str | os.PathLike[str], metrics_format: MetricsFormat | None = None
    ) -> Decision | None:
        """Run `retune suggest` on the metrics file and return its decision.

        On failure: raises RetuneError with on_error="raise"; logs a warning and returns
        None with on_error="warn", so a tuning failure never stops the training."""
        try:
            decision = self._suggest(metrics, metrics_format)
        except RetuneError as e:
            self.last_error = str(e)
            if self.on_error == "raise":
                raise
            logger.warning("retune: no adjustment this epoch: %s", e)
            return None
        self.last_error = None
        return decision

    def record_applied(self, adjustment_id: str, parameters: Sequence[str]) -> bool:
        """Tell the history which changes of `adjustment_id` the running job took live
        (`retune applied`); the others count as not applied, so they start no cooldown,
        show no effect in `retune history`, and are proposed again. Returns whether the
        record was written; a failure is handled as `on_error` says."""
        cmd = [
            self.binary,
            "applied",
            "--history",
            str(self.history),
            adjustment_id,
            *dict.fromkeys(parameters),
        ]
        try:
            done = self._run(cmd)
        except RetuneError as e:
            error = e
        else:
            if done.returncode == 0:
                return True
            error = RetuneError(
                f"retune applied exited with code {done.returncode}: "
                f"{done.stderr.strip() or '(no message)'}",
                returncode=done.returncode,
                stderr=done.stderr,
                command=cmd,
            )
        if self.on_error == "raise":
            raise error
        logger.warning("retune: could not record what was applied: %s", error)
        return False

    def _suggest(
        self, metrics: str | os.PathLike[str], metrics_format: MetricsFormat | None
    ) -> Decision:
        try:
            cmd = self.command(metrics, metrics_format)
        except FileNotFoundError as e:
            raise RetuneError(str(e)) from e
        started = time.monotonic()
        done = self._run(cmd)
        elapsed = time.monotonic() - started
        stderr = done.stderr.strip()
        if done.returncode != 0:
            raise RetuneError(
                f"retune exited with code {done.returncode}: {stderr or '(no message)'}",
                returncode=done.returncode,
                stderr=done.stderr,
                command=cmd,
            )
        if stderr:
            logger.info("retune (stderr): %s", stderr)
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError as e:
            raise RetuneError(
                f"retune printed something that is not JSON ({e}): {done.stdout[:200]!r}",
                returncode=0,
                stderr=done.stderr,
                command=cmd,
            ) from e
        if not isinstance(data, dict):
            raise RetuneError("retune printed JSON that is not an object", command=cmd)
        decision = Decision.from_json(data, base=Path.cwd())
        logger.debug("retune: %s in %.0f ms", decision.adjustment_id, elapsed * 1000)
        return decision

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        """Run the binary with no stdin (a trainer's terminal is not its input), its
        output captured as UTF-8, within `timeout`; a binary that cannot be started or
        runs out of time is a RetuneError. The exit code is the caller's to judge."""
        try:
            return subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=self.timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RetuneError(f"could not run {cmd[0]}: {e}", command=cmd) from e


def _new_run_dir(config: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    root = config.parent / "retune"
    candidate = root / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate
