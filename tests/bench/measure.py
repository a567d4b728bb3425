"""Run one command and measure it: wall time, CPU time and peak RSS from the kernel.

`os.wait4` returns the child's rusage: CPU time of it and the descendants it waited for.
Its `ru_maxrss` cannot be taken as is: Linux carries the high-water mark across `execve`,
and a child forked from this (large) Python process starts with our resident set, so every
tool would seem to need at least what the bench holds. GNU time (`/usr/bin/time`, Debian's
`time`) is a small process that forks the tool itself, so its `%M` is the tool's own peak;
without it the wait4 figure is reported and marked as an upper bound. Output goes to files,
never pipes, so a chatty tool cannot block on a full pipe while we wait for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

GNU_TIME = "/usr/bin/time"


def per_tool_rss() -> bool:
    """True when peak RSS can be measured per tool (GNU time is there; see the docstring)."""
    return os.access(GNU_TIME, os.X_OK)


@dataclass(frozen=True)
class Sample:
    """One timed run: wall and CPU seconds, peak RSS in KiB, and whether it succeeded.

    `error` is the last line of stderr (or the exit status) when the command failed.
    `requests` are the S3 requests the counting proxy saw during the run, by operation.
    """

    seconds: float
    cpu_seconds: float
    rss_kib: int
    ok: bool
    error: str = ""
    stdout: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    per_small_file: Counter[int] = field(default_factory=Counter)
    """S3 only: how many small files' keys received k requests (k -> files), listings aside."""


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300.0,
) -> Sample:
    """Run `argv` to completion (killed after `timeout` s) and return its `Sample`.

    The timeout is a safety net: one anchor (aws s3 sync's downloads, s3transfer) was seen
    to hang with every thread waiting on a semaphore; the row then says "timed out".
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r") as rss_file,
    ):
        exact_rss = per_tool_rss()
        prefix = [GNU_TIME, "-f", "%M", "-o", rss_file.name] if exact_rss else []
        began = time.perf_counter()
        try:
            proc = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return Sample(0.0, 0.0, 0, ok=False, error=f"cannot start {argv[0]}: {exc}")
        expired = threading.Event()
        timer = threading.Timer(timeout, _kill_group, args=(proc.pid, expired))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - began
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped here: keep Popen from waiting on it again
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        rss_kib = usage.ru_maxrss
        if exact_rss:
            # "Command exited with non-zero status N" may come first; the figure is last.
            lines = rss_file.read().strip().splitlines()
            with contextlib.suppress(IndexError, ValueError):
                rss_kib = int(lines[-1])
    ok = code == 0 and not expired.is_set()
    error = ""
    if expired.is_set():
        error = f"timed out after {timeout:.0f} s (killed)"
    elif not ok:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        error = f"exit {code}: {last}"[:300] if code > 0 else f"killed by signal {-code}"
    return Sample(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        rss_kib=rss_kib,
        ok=ok,
        error=error,
        stdout=stdout,
    )


def _kill_group(pid: int, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Row:
    """The samples of one tool in one scenario, and what the table shows of them."""

    scenario: str
    tool: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""
    megabytes: float = 0.0
    """Data moved per run (MB), for a throughput column; 0 when not meaningful."""
    inner_seconds: list[float] = field(default_factory=list)
    """Times the tool reported for its own work (without process start-up), if it does."""

    @property
    def good(self) -> list[Sample]:
        """The successful samples."""
        return [s for s in self.samples if s.ok]

    @property
    def failed(self) -> bool:
        """True when no sample succeeded (the row shows the error instead of times)."""
        return bool(self.samples) and not self.good

    def median(self) -> float | None:
        """Median wall seconds of the successful samples, or None."""
        good = self.good
        return statistics.median(s.seconds for s in good) if good else None

    def spread(self) -> tuple[float, float] | None:
        """(min, max) wall seconds of the successful samples, or None."""
        good = self.good
        if not good:
            return None
        return min(s.seconds for s in good), max(s.seconds for s in good)

    def cpu_median(self) -> float | None:
        """Median CPU (user + system) seconds of the successful samples, or None."""
        good = self.good
        return statistics.median(s.cpu_seconds for s in good) if good else None

    def peak_rss_mib(self) -> float | None:
        """The largest peak RSS over all samples, in MiB."""
        if not self.samples:
            return None
        return max(s.rss_kib for s in self.samples) / 1024

    def last_requests(self) -> Counter[str]:
        """The S3 requests of the last successful sample (or the last sample)."""
        good = self.good or self.samples
        return good[-1].requests if good else Counter()

    def first_error(self) -> str:
        """The first failure's message, or ""."""
        for s in self.samples:
            if not s.ok:
                return s.error
        return ""
