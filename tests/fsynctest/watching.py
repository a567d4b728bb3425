"""Drive `fsync.watch.watch` in a thread, record what it reports, and poll for outcomes."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fsync.config import WatchOptions
from fsync.model import RunResult
from fsync.paths import is_temp_name
from fsync.watch import watch

DEADLINE = 10.0


def eventually(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def raise_in(thread: threading.Thread | str, exc: type[BaseException]) -> None:
    """Raise `exc` inside a running thread (or the one so named), at its next Python step.

    How a bug, or a stray `SystemExit`, would end that thread: the fault is injected into the
    real thread, not into fsync's code.
    """
    if isinstance(thread, str):
        (thread,) = [t for t in threading.enumerate() if t.name == thread]
    assert thread.ident is not None
    hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(exc)
    )
    assert hit == 1, f"no running thread {thread.name}"


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (not `.fsync/`, not fsync temp files) → its bytes."""
    out: dict[str, bytes] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".fsync"]
        for name in filenames:
            if is_temp_name(name):
                continue
            full = Path(dirpath) / name
            try:
                out[full.relative_to(root).as_posix()] = full.read_bytes()
            except FileNotFoundError:
                continue  # replaced or deleted while we looked: the next poll sees it
    return out


class Recorder:
    """A `WatchDisplay` that keeps everything it is told, for assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done: list[tuple[str, str, str | None]] = []
        self.warnings: list[str] = []
        self.ready = threading.Event()
        self.totals_seen = RunResult()
        self.failing_seen: dict[str, str] = {}

    def plan_ready(self, files: int, total_bytes: int) -> None:
        pass

    def file_started(self, path: str, size: int) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        with self._lock:
            self.done.append((path, action, error))

    def warning(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)

    def close(self) -> None:
        pass

    def watching(self, local: str, remote: str) -> None:
        self.ready.set()

    def queued(self, count: int) -> None:
        pass

    def totals(self, result: RunResult, failing: Mapping[str, str]) -> None:
        with self._lock:
            self.totals_seen = dataclasses.replace(result, errors=list(result.errors))
            self.failing_seen = dict(failing)

    def stop(self) -> None:
        pass

    def actions(self, path: str) -> list[str]:
        """The actions reported for `path`, in order (failures as `action!`)."""
        with self._lock:
            return [a + ("!" if e else "") for p, a, e in self.done if p == path]


class Watching:
    """One watch session running in a thread; `stop()` ends it and returns its totals.

    The remote is the folder `remote`, or `url` when given (`remote` is then unused)."""

    def __init__(
        self, local: Path, remote: Path, *, url: str | None = None, **options: object
    ) -> None:
        self.local = local
        self.remote = remote
        self.url = url or f"file://{remote}"
        self.display = Recorder()
        self._stop = threading.Event()
        self._result: list[RunResult] = []
        self._error: list[BaseException] = []
        opts = WatchOptions(str(local), self.url, **options)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._run, args=(opts,), name="test-watch")
        self._thread.start()
        eventually(
            lambda: self.display.ready.is_set() or not self._thread.is_alive(),
            "the watch to start",
            timeout=30,
        )
        if self._error:
            raise self._error[0]

    def _run(self, opts: WatchOptions) -> None:
        try:
            self._result.append(watch(opts, self.display, stop=self._stop))
        except BaseException as exc:
            self._error.append(exc)

    def converge(
        self, what: str = "the remote to equal the local tree", timeout: float = DEADLINE
    ) -> None:
        """Wait until the remote holds exactly the local files."""
        eventually(lambda: tree(self.remote) == tree(self.local), what, timeout)

    def counts(self) -> RunResult:
        """The session's totals as last reported."""
        return self.display.totals_seen

    def stop(self) -> RunResult:
        """Ask the session to stop, wait for it, and return its totals."""
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the watch did not stop"
        if self._error:
            raise self._error[0]
        return self._result[0]
