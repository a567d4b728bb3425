"""How the core reports progress, and the three ways it is shown.

The core calls a `Reporter`; it never imports rich. `RichReporter` draws a live display on a
terminal, `PlainReporter` writes one line per finished file (no ANSI codes, no carriage
returns), `NullReporter` is silent (`--quiet`, `--json`). rich is imported only when a
terminal display is actually built, which keeps start-up cheap for scripted runs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Reporter(Protocol):
    """Receives progress events; every method may be called from worker threads."""

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """The plan is known: `files` transfers of `total_bytes` in all are about to start."""
        ...

    def file_started(self, path: str, size: int) -> None:
        """A transfer of `path` (`size` bytes) started."""
        ...

    def advance(self, path: str, nbytes: int) -> None:
        """`nbytes` more bytes of `path` moved."""
        ...

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """`action` on `path` finished; `error` is set when it failed."""
        ...

    def warning(self, message: str) -> None:
        """A warning the user should see even when the run goes on."""
        ...

    def close(self) -> None:
        """The run is over: stop any live display."""
        ...


class NullReporter:
    """Shows nothing but warnings, which still go to stderr."""

    def __init__(self, err: TextIO | None = None) -> None:
        self._err = err

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """Ignored."""

    def file_started(self, path: str, size: int) -> None:
        """Ignored."""

    def advance(self, path: str, nbytes: int) -> None:
        """Ignored."""

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Ignored."""

    def warning(self, message: str) -> None:
        """Write `fsync: warning: MESSAGE` to stderr."""
        if self._err is not None:
            self._err.write(f"fsync: warning: {message}\n")
            self._err.flush()

    def close(self) -> None:
        """Nothing to stop."""


class PlainReporter(NullReporter):
    """One plain line per finished action, for logs and pipes."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(err)
        self._out = out
        self._lock = threading.Lock()

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Write `ACTION PATH` (or `failed ACTION PATH: ERROR` to stderr)."""
        with self._lock:
            if error is None:
                self._out.write(f"{action} {path}\n")
                self._out.flush()
            else:
                self._err_line(f"fsync: error: {action} {path}: {error}")

    def _err_line(self, line: str) -> None:
        if self._err is not None:
            self._err.write(line + "\n")
            self._err.flush()


class RichReporter(PlainReporter):
    """A live display on a terminal: files and bytes done, rate, ETA, files in flight."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(out, err)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = Console(file=err)
        self._progress: Progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._total: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}
        self._files = 0
        self._done = 0

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """Start the live display with an overall bar."""
        if files == 0:
            return
        self._files = files
        self._progress.start()
        self._total = self._progress.add_task(f"0/{files} files", total=total_bytes or None)

    def file_started(self, path: str, size: int) -> None:
        """Add a bar for `path` while it is in flight."""
        with self._lock:
            self._tasks[path] = self._progress.add_task(_short(path), total=size or None)

    def advance(self, path: str, nbytes: int) -> None:
        """Move the file's bar and the overall bar."""
        task = self._tasks.get(path)
        if task is not None:
            self._progress.advance(task, nbytes)
        if self._total is not None:
            self._progress.advance(self._total, nbytes)

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Drop the file's bar and print a line above the display."""
        with self._lock:
            task = self._tasks.pop(path, None)
            if task is not None:
                self._progress.remove_task(task)
            self._done += 1
            if self._total is not None:
                self._progress.update(self._total, description=f"{self._done}/{self._files} files")
        if error is None:
            self._console.print(f"{action} {path}", markup=False, highlight=False)
        else:
            self._console.print(f"fsync: error: {action} {path}: {error}", markup=False)

    def warning(self, message: str) -> None:
        """Print the warning above the live display."""
        self._console.print(f"fsync: warning: {message}", markup=False, highlight=False)

    def close(self) -> None:
        """Stop the live display."""
        self._progress.stop()


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]
