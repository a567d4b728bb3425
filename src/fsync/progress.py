"""How the core reports progress, and the three ways it is shown.

The core calls a `Reporter`; it never imports rich. `RichReporter` draws a live display on a
terminal, `PlainReporter` writes one line per finished file (no ANSI codes, no carriage
returns), `NullReporter` is silent (`--quiet`, `--json`). rich is imported only when a
terminal display is actually built, which keeps start-up cheap for scripted runs. `fsync
watch` reports through a `WatchDisplay`, shown the same three ways. Every name and line shown
passes through `fsync.terminal.printable`: paths come from whoever wrote the remote.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol, TextIO

from fsync.terminal import human_bytes, interrupts_held, printable, write_line, write_whole

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.progress import Progress, TaskID

    from fsync.model import RunResult


class Reporter(Protocol):
    """Receives progress events; every method may be called from worker threads."""

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """The plan is known: `files` files are about to change (each gets a `file_done`;
        conflict copies made on the way are more), by transfers of `total_bytes` in all."""
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

    shows_errors = False
    """Whether `file_done` puts a failure on stderr as it happens (the summary then does
    not repeat it)."""

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
            write_line(self._err, f"fsync: warning: {message}")

    def close(self) -> None:
        """Nothing to stop."""


class PlainReporter(NullReporter):
    """One plain line per finished action, for logs and pipes.

    Lines are written out at most every `FLUSH_EVERY` seconds, in one write, not one by one:
    a write per line cost 0.5 s of a 20,000-file local push (a system call and a thread
    switch each, also where `PYTHONUNBUFFERED` makes every write one), and a reader of the
    pipe still sees progress several times a second. Anything written to stderr, and
    `close`, write them out first, so the two streams keep their order.
    """

    FLUSH_EVERY = 0.2
    shows_errors = True

    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(err)
        self._out = out
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._flushed = time.monotonic()

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Write `ACTION PATH` (or `failed ACTION PATH: ERROR` to stderr)."""
        with self._lock:
            if error is None:
                self._lines.append(printable(f"{action} {path}") + "\n")
                if time.monotonic() - self._flushed >= self.FLUSH_EVERY:
                    self._write_out()
            else:
                self._err_line(f"fsync: error: {action} {path}: {error}")

    def warning(self, message: str) -> None:
        """Write `fsync: warning: MESSAGE` to stderr, after the lines before it."""
        with self._lock:
            self._write_out()
        super().warning(message)

    def close(self) -> None:
        """Write out the lines still held."""
        with self._lock:
            self._write_out()

    def _write_out(self) -> None:
        """Write the held lines in one go (call with the lock held).

        A Ctrl-C waits until they are all written and let go (`interrupts_held`,
        `write_whole`): one landing in between left them held, and `close` wrote them a
        second time.
        """
        with interrupts_held():
            if self._lines:
                write_whole(self._out, "".join(self._lines))
                self._lines.clear()
            else:
                self._out.flush()
        self._flushed = time.monotonic()

    def _err_line(self, line: str) -> None:
        self._write_out()
        if self._err is not None:
            write_line(self._err, line)


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
        )

        from fsync.progress_columns import RateColumn, TimeLeftColumn

        self._console = Console(file=err)
        self._progress: Progress = Progress(
            TextColumn("{task.description}", justify="left", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            RateColumn(),
            TimeLeftColumn(),
            console=self._console,
            transient=True,
        )
        self._total: TaskID | None = None
        self._bars = _Bars(self._progress)
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
        """Show a bar for `path` while it is in flight (`_Bars`)."""
        with self._lock:
            self._bars.start(path, size)
            self._count()

    def _count(self) -> None:
        """Show the files done of all, and in flight, on the overall bar (with the lock)."""
        if self._total is not None:
            text = f"{self._done}/{self._files} files, {len(self._bars)} in flight"
            self._progress.update(self._total, description=text)

    def advance(self, path: str, nbytes: int) -> None:
        """Move the file's bar and the overall bar (and print the lines held, when due)."""
        with self._lock:
            self._bars.advance(path, nbytes)
            if self._lines and time.monotonic() - self._flushed >= self.FLUSH_EVERY:
                self._write_out()
        if self._total is not None:
            self._progress.advance(self._total, nbytes)

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Drop the file's bar and print a line above the display: held, as the plain lines
        are (`PlainReporter`), since every print redraws the display. Printed one by one,
        the lines of a push of 20,000 small files to a terminal made it take 63 s, not 6."""
        with self._lock:
            self._bars.done(path)
            self._done += 1
            self._files = max(self._files, self._done)  # (a conflict copy is one more)
            self._count()
            if error is None:
                self._lines.append(printable(f"{action} {path}"))
                if time.monotonic() - self._flushed >= self.FLUSH_EVERY:
                    self._write_out()
            else:
                self._write_out()
                self._print(f"fsync: error: {action} {path}: {error}", highlight=True)

    def warning(self, message: str) -> None:
        """Print the warning above the live display, after the lines before it."""
        with self._lock:
            self._write_out()
            self._print(f"fsync: warning: {message}")

    def close(self) -> None:
        """Print the lines still held and stop the live display."""
        with self._lock:
            self._write_out()
        self._progress.stop()

    def _write_out(self) -> None:
        """Print the held lines above the display in one go (call with the lock held)."""
        _print_held(self._console, self._lines)
        self._flushed = time.monotonic()

    def _print(self, line: str, highlight: bool = False) -> None:
        """Text above the live display, as it reads: escaped, no markup."""
        self._console.print(printable(line), markup=False, highlight=highlight)


class _Bars:
    """The bars of files in flight in a live display: one per file of at least `smallest`
    bytes, at most `SHOWN` at once; the rest are counted (`__len__`).

    The display drew a row for every file sent and not yet published (a batch of small
    files is published at once), and each new bar of a push redraws it (rich's `add_task`
    refreshes a started `Progress`): a push of 1,500 small files to a terminal took 4
    minutes, not 0.6 s. A small file's bar is gone before it can be read anyway. Files
    wait for a place in the order they started, and a bar whose bytes are all sent gives
    its place up. Callers hold their lock around every call.
    """

    SHOWN = 8
    SMALLEST = 1 << 20
    """A push's smallest file with a bar of its own."""

    def __init__(self, progress: Progress, smallest: int = SMALLEST) -> None:
        self._progress = progress
        self._smallest = smallest
        self._in_flight: set[str] = set()
        self._shown: dict[str, TaskID] = {}
        self._left: dict[str, int] = {}
        """Bytes still to move of each file in flight that has or may get a bar."""
        self._waiting: dict[str, int] = {}
        """Files that wait for a bar, in the order they started: their bytes moved."""

    def __len__(self) -> int:
        return len(self._in_flight)

    def start(self, path: str, size: int) -> None:
        """`path` (`size` bytes) is in flight: a bar now if it is large and there is room.
        A file started again (sent again: it changed meanwhile) starts from nothing."""
        if path in self._in_flight:
            self.done(path)  # (its first bar stayed on screen to the end of the run)
        self._in_flight.add(path)
        if size < self._smallest:
            return
        self._left[path] = size
        if len(self._shown) < self.SHOWN:
            self._shown[path] = self._progress.add_task(_short(path), total=size or None)
        else:
            self._waiting[path] = 0

    def advance(self, path: str, nbytes: int) -> None:
        """`nbytes` more of `path` moved; a bar that is full makes room for the next."""
        left = self._left.get(path)
        if left is None:
            return
        left = self._left[path] = left - nbytes
        task = self._shown.get(path)
        if task is None:
            if path in self._waiting:
                self._waiting[path] += nbytes
            return
        self._progress.advance(task, nbytes)
        if left <= 0 < nbytes:
            self._progress.remove_task(self._shown.pop(path))
            self._show_next()

    def done(self, path: str) -> None:
        """`path` is no longer in flight."""
        self._in_flight.discard(path)
        self._left.pop(path, None)
        self._waiting.pop(path, None)
        task = self._shown.pop(path, None)
        if task is not None:
            self._progress.remove_task(task)
            self._show_next()

    def _show_next(self) -> None:
        """Give free places to the files waiting longest that still have bytes to move."""
        while self._waiting and len(self._shown) < self.SHOWN:
            path = next(iter(self._waiting))
            moved = self._waiting.pop(path)
            left = self._left[path]
            if left > 0 or not moved:
                self._shown[path] = self._progress.add_task(
                    _short(path), total=(left + moved) or None, completed=moved
                )


def _short(path: str, width: int = 40) -> str:
    """`path` escaped (`printable`) and cut to its last `width` characters, for a bar."""
    path = printable(path)
    return path if len(path) <= width else "…" + path[-(width - 1) :]


# --- fsync watch ---------------------------------------------------------------------------


class WatchDisplay(Reporter, Protocol):
    """What `fsync watch` shows beyond one plan's progress.

    The engine calls `close()` after every plan; for a watch that ends nothing: `stop()` ends
    the session's display. Every method may be called from worker threads.
    """

    def watching(self, local: str, remote: str) -> None:
        """The startup sync is done; changes are followed from now on."""
        ...

    def queued(self, count: int) -> None:
        """`count` changed paths wait to be synced (settling, or due for a retry)."""
        ...

    def totals(self, result: RunResult, failing: Mapping[str, str]) -> None:
        """The session's running totals, and the paths failing now with their errors."""
        ...

    def stop(self) -> None:
        """The session is over: stop any live display (safe to call twice)."""
        ...


class NullWatchDisplay(NullReporter):
    """A silent watch (`--quiet`, `--json`): warnings still go to stderr."""

    def watching(self, local: str, remote: str) -> None:
        """Ignored."""

    def queued(self, count: int) -> None:
        """Ignored."""

    def totals(self, result: RunResult, failing: Mapping[str, str]) -> None:
        """Ignored."""

    def stop(self) -> None:
        """Nothing to stop."""


class PlainWatchDisplay(PlainReporter):
    """A watch as log lines: one per synced file, with the time; errors to stderr."""

    def watching(self, local: str, remote: str) -> None:
        """Say on stderr that changes are followed now."""
        self._err_line(f"fsync: watching {local} -> {remote} (Ctrl-C to stop)")

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Write `HH:MM:SS ACTION PATH` (or the error, with the time, to stderr)."""
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            if error is None:
                write_line(self._out, f"{stamp} {action} {path}")
            else:
                self._err_line(f"fsync: error: {stamp} {action} {path}: {error} (will retry)")

    def queued(self, count: int) -> None:
        """Not shown: the lines of synced files say enough."""

    def totals(self, result: RunResult, failing: Mapping[str, str]) -> None:
        """Not shown until the end of the session."""

    def stop(self) -> None:
        """Nothing to stop."""


class RichWatchDisplay(NullWatchDisplay):
    """A live terminal display of a watch: queued, in flight, failing; above it, a
    `HH:MM:SS ACTION PATH` line per file synced, as a piped watch prints them. The display
    showed only the last eight: a watch left running on a terminal kept no record of what
    it had sent."""

    FAILING = 5
    FLUSH_EVERY = RichReporter.FLUSH_EVERY
    RATE_SAMPLES = 40
    """The rate shown is over the last this many refreshes (10 s at 4 a second)."""

    def __init__(self, err: TextIO) -> None:
        super().__init__(err)
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._console = Console(file=err)
        self._progress = Progress(
            TextColumn("  {task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            console=self._console,
        )
        self._lock = threading.Lock()
        # Bars for small files too (eight at most): a watch's display draws itself four
        # times a second whatever changes, so a new bar costs no drawing (unlike a push's).
        self._bars = _Bars(self._progress, smallest=0)
        self._plan = [0, 0]
        """The files of the plan running done, and planned (none running: 0, 0)."""
        self._lines: list[str] = []
        """Lines held to print above the display in one go (each print redraws it)."""
        self._flushed = time.monotonic()
        self._failing: dict[str, str] = {}
        self._where = ""
        self._queued = 0
        self._totals: dict[str, int] = {}
        self._moved_bytes = 0
        self._samples: deque[tuple[float, int]] = deque(maxlen=self.RATE_SAMPLES)
        self._live: Live | None = None

    def _start(self) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                get_renderable=self._render,
                console=self._console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()

    def watching(self, local: str, remote: str) -> None:
        """Show what is watched; the display runs from now on."""
        self._where = f"watching {local} → {remote}  (Ctrl-C to stop)"
        self._start()

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """Make sure the display runs (the startup push comes before `watching`), and show
        how far the plan is: the totals move only once it is done, so a startup push of
        5,000 files read "queued 0 · up 0" for all its 26 s."""
        with self._lock:
            self._plan = [0, files]
        if files:
            self._start()

    def close(self) -> None:
        """The plan is done (the engine's call after each): its lines are printed and its
        count goes."""
        with self._lock:
            self._write_out()
            self._plan = [0, 0]

    def file_started(self, path: str, size: int) -> None:
        """Show a bar for `path` while it is in flight (`_Bars`)."""
        with self._lock:
            self._bars.start(path, size)

    def advance(self, path: str, nbytes: int) -> None:
        """Move the file's bar, and count the bytes for the rate."""
        with self._lock:
            self._bars.advance(path, nbytes)
            self._moved_bytes += nbytes

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Move `path` from in flight to a line above the display (or the failing list)."""
        with self._lock:
            self._bars.done(path)
            self._plan[0] += 1
            self._plan[1] = max(self._plan[1], self._plan[0])  # (a conflict copy is one more)
            if error is None:
                self._lines.append(printable(f"{time.strftime('%H:%M:%S')} {action} {path}"))
                self._failing.pop(path, None)
                if time.monotonic() - self._flushed >= self.FLUSH_EVERY:
                    self._write_out()
            else:
                self._failing[path] = error

    def warning(self, message: str) -> None:
        """Print the warning above the live display, after the lines before it."""
        with self._lock:
            self._write_out()
        self._console.print(printable(f"fsync: warning: {message}"), markup=False, highlight=False)

    def _write_out(self) -> None:
        """Print the held lines above the display in one go (call with the lock held)."""
        _print_held(self._console, self._lines)
        self._flushed = time.monotonic()

    def queued(self, count: int) -> None:
        """Show how many changes wait."""
        self._queued = count

    def totals(self, result: RunResult, failing: Mapping[str, str]) -> None:
        """Show the session's totals and exactly the paths failing now."""
        with self._lock:
            self._totals = {
                "uploaded": result.uploaded,
                "downloaded": result.downloaded,
                "moved": result.moved,
                "deleted": result.deleted,
                "bytes": result.bytes_sent + result.bytes_received,
            }
            self._failing = dict(failing)

    def stop(self) -> None:
        """Print the lines still held and stop the live display."""
        with self._lock:
            self._write_out()
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            t = self._totals
            self._samples.append((time.monotonic(), self._moved_bytes))
            (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
            rate = human_bytes((b1 - b0) / (t1 - t0) if t1 > t0 else 0.0)
            done, planned = self._plan
            batch = f"sending {done}/{planned} · " if planned else ""
            # What goes on now, then the session's totals: on one line they took 88 columns
            # and wrapped on an 80-column terminal.
            now = f"{batch}queued {self._queued} · in flight {len(self._bars)} · {rate}/s"
            totals = (
                f"up {t.get('uploaded', 0)} · down {t.get('downloaded', 0)} · "
                f"moved {t.get('moved', 0)} · deleted {t.get('deleted', 0)} · "
                f"{human_bytes(t.get('bytes', 0))} · failed {len(self._failing)}"
            )
            where = Text(printable(self._where), style="bold")
            lines: list[RenderableType] = [where, Text(now), Text(totals)]
            if self._progress.tasks:
                lines.append(self._progress)
            failing = sorted(self._failing.items())[: self.FAILING]
            lines += [Text(printable(f"  failing {p}: {e}"), style="red") for p, e in failing]
        return Group(*lines)


def _print_held(console: Console, lines: list[str]) -> None:
    """Print `lines` (escaped already) above a live display in one go, and let them go; a
    Ctrl-C waits until they are out (`interrupts_held`): one landing in between left them
    held, to be printed a second time."""
    with interrupts_held():
        if lines:
            console.print("\n".join(lines), markup=False, highlight=False)
            lines.clear()
