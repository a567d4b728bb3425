"""Watch a local root with watchdog and report settled batches of changed paths.

watchdog is imported here and nowhere else. Its handler runs on watchdog's single dispatch
thread, so it only turns each event into a `RelPath` and hands it to the `Debouncer` (no I/O,
no locks held for long); this module's own thread takes settled paths from the debouncer
every tick and reports them through `on_batch(paths, full_rescan)`.

The watcher is a hint, never the truth (STYLE.md rule 9): a full rescan is requested every
`rescan_every` seconds (jittered by ±10 % so many watchers do not rescan in step), and at
once wherever loss of events can be detected: the kernel's inotify queue overflowed, a watch
could not be added because `fs.inotify.max_user_watches` or `max_user_instances` is reached,
or the observer's threads died. Each is reported through `on_warning` with its cause and fix.
After an overflow or a death the observer is replaced first, and the rescan asked for once
its watches are all in place, so nothing written meanwhile falls between the two.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from fsync.debounce import FOLDER_SIG, Debouncer, Sig
from fsync.errors import UnsafePathError
from fsync.ignore import STATE_DIR
from fsync.model import RelPath
from fsync.paths import is_temp_name, to_relpath

try:  # inotify exists on Linux only; elsewhere watchdog's default observer serves
    from watchdog.observers.inotify import InotifyFullEmitter, InotifyObserver
    from watchdog.observers.inotify_c import InotifyEvent, InotifyFD, Mask
except (ImportError, OSError):  # pragma: no cover - not Linux
    InotifyObserver = None  # type: ignore[assignment,misc]

OnBatch = Callable[[set[RelPath], bool], None]
"""Receives a batch of settled paths, or `full_rescan=True` (paths may then be empty)."""

_WARNED_MAX = 10_000
"""Distinct warnings remembered for rate limiting; beyond, the record starts afresh."""

EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileMovedEvent,
    DirMovedEvent,
]
"""What the watcher asks the kernel for: opens and read-only closes are left out, so fsync
reading a file to upload it raises no event at all."""

LIMITED_RESCAN_EVERY = 30.0
"""Seconds between full rescans once a watch could not be added (`WATCH_LIMIT_FIX`), where
`rescan_every` is longer: changes in folders without a watch waited for the hourly one."""

WATCH_LIMIT_FIX = (
    "the inotify watch limit (fs.inotify.max_user_watches) is reached, so changes in some "
    f"folders are seen only by full rescans (every {LIMITED_RESCAN_EVERY:.0f} s from now); "
    "raise it: sysctl -w fs.inotify.max_user_watches=524288 (and in /etc/sysctl.d/ to keep it)"
)
INSTANCE_LIMIT_FIX = (
    "the inotify instance limit (fs.inotify.max_user_instances) is reached, so events are "
    "not watched and changes are found by polling; raise it: sysctl -w "
    "fs.inotify.max_user_instances=1024 (and in /etc/sysctl.d/ to keep it)"
)
OVERFLOW_FIX = (
    "the kernel's inotify event queue overflowed and events were lost; rescanning the whole "
    "tree. If it recurs, raise fs.inotify.max_queued_events: sysctl -w "
    "fs.inotify.max_queued_events=65536"
)

HEALTH_EVERY = 1.0
"""Seconds between checks that the observer's threads are still alive."""

STOP_WAIT = 10.0
"""Seconds `stop` waits for each thread to end."""

WARN_AGAIN_AFTER = 60.0
"""The same loss warning is repeated at most this often."""

POLL_INTERVAL = 2.0
"""Seconds between snapshots of the polling observer, the fallback where inotify fails."""


def jittered(interval: float, rng: random.Random, spread: float = 0.1) -> float:
    """`interval` moved at random by up to ±`spread` of itself."""
    return interval * (1.0 + rng.uniform(-spread, spread))


class Watcher:
    """Watches `root` recursively; reports batches through `on_batch` from its own thread.

    `ignore(path)` drops paths from batches (the scanner applies the rules again, so this
    only spares work); it must be true only for a path excluded whether it is a file or a
    folder (`IgnoreMatcher.ignores_unseen`): a batch names a moved-in folder alone.
    `on_warning` receives one line per detected loss of events. Timing knobs are in seconds;
    `clock` and `rng` are injectable for tests.
    """

    def __init__(
        self,
        root: str,
        on_batch: OnBatch,
        *,
        on_warning: Callable[[str], None],
        ignore: Callable[[RelPath], bool] | None = None,
        quiet: float = 0.15,
        max_hold: float = 1.0,
        settle_max: float = 60.0,
        rescan_every: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        # watchdog names events by the folder a link leads to: a root given as a link (or
        # under one) is followed here too, or no event would fall under it.
        self.root = os.path.realpath(root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._on_batch = on_batch
        self._on_warning = on_warning
        self._ignore = ignore
        self._clock = clock
        self._rng = rng or random.Random()
        self.rescan_every = rescan_every
        self.debouncer = Debouncer(self._sig, quiet=quiet, max_hold=max_hold, settle_max=settle_max)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._rescan = threading.Event()
        self._overflowed = threading.Event()
        self._warned: dict[str, float] = {}
        self._observer: BaseObserver | None = None
        self._observer_lock = threading.Lock()
        self._root_id: tuple[int, int] | None = None
        self._track_writes = False
        self._thread: threading.Thread | None = None
        self._next_rescan = 0.0
        self._next_health = 0.0
        self._handler = _Handler(self)

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start watching. Raises `OSError` if `root` cannot be watched at all."""
        self._observer = self._start_observer()
        self._start_thread()

    def stop(self) -> None:
        """Stop the observer and the watcher's thread, and wait for both (a while: a thread
        stuck in watchdog is left behind, as a daemon, rather than blocking the exit)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT)
            self._thread = None
        self._stop_observer()

    def alive(self) -> bool:
        """True while the watcher's thread runs (stopped on purpose, it is not alive)."""
        return self._thread is not None and self._thread.is_alive()

    def revive(self) -> None:
        """Start a new thread after the watcher's own died, and rescan the whole tree.

        Each tick's failures are caught, so this is for what gets past that (a
        `BaseException` raised in the thread); the new thread restarts the observer.
        """
        self._stop_observer()
        self._rescan.set()
        self._start_thread()

    def request_rescan(self) -> None:
        """Ask for a full rescan at the next tick (events may have been lost)."""
        self._rescan.set()
        self._wake.set()

    def suppress(self, path: RelPath, mtime_ns: int) -> None:
        """fsync itself wrote `path` (a pull) with `mtime_ns`: do not report it as a change."""
        self.debouncer.suppress(path, mtime_ns, self._clock())

    def held(self) -> set[RelPath]:
        """Paths changed but not settled yet: a full rescan must leave them to their batch."""
        return self.debouncer.held()

    def set_ignore(self, ignore: Callable[[RelPath], bool] | None) -> None:
        """Replace the ignore test (after `.fsyncignore` changed)."""
        self._ignore = ignore

    def overflowed(self) -> None:
        """The kernel's event queue overflowed: events were lost, and watches may be missing
        (for folders made meanwhile). The watcher's thread replaces the observer, then asks
        for a rescan (`_restart`); called on the inotify reader's thread, so it only signals.
        """
        self._overflowed.set()
        self._wake.set()

    def warn_loss(self, message: str) -> None:
        """Report a loss of events (at most once a minute per message) and rescan; past the
        watch limit, rescan every `LIMITED_RESCAN_EVERY` seconds from now on."""
        if message == WATCH_LIMIT_FIX:
            self.rescan_every = min(self.rescan_every, LIMITED_RESCAN_EVERY)
        self.request_rescan()  # first: a failing `on_warning` must not cost the rescan
        self._warn_once(message)

    def _warn_once(self, message: str) -> None:
        """Pass `message` on, unless it was passed on less than `WARN_AGAIN_AFTER` ago."""
        now = self._clock()
        if len(self._warned) > _WARNED_MAX:
            self._warned.clear()  # (a long watch meeting ever new messages)
        if now >= self._warned.get(message, -WARN_AGAIN_AFTER) + WARN_AGAIN_AFTER:
            self._warned[message] = now
            self._on_warning(message)

    # --- the observer --------------------------------------------------------------------

    def _start_observer(self) -> BaseObserver:
        """An observer scheduled on the root and started; polling where inotify is out."""
        self._root_id = _identity(self.root)
        observer: BaseObserver | None
        try:
            observer = _make_inotify_observer(self.warn_loss, self.overflowed)
            self._track_writes = observer is not None and InotifyObserver is not None
        except OSError as err:
            if err.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self.warn_loss(INSTANCE_LIMIT_FIX)
            observer = None
        if observer is None:
            observer = PollingObserver(timeout=POLL_INTERVAL)
            self._track_writes = False
        try:
            observer.schedule(self._handler, self.root, recursive=True, event_filter=EVENT_TYPES)
            observer.start()
        except OSError as err:
            _stop_quietly(observer)
            if err.errno != errno.ENOSPC:
                raise
            self.warn_loss(WATCH_LIMIT_FIX)
            observer = PollingObserver(timeout=POLL_INTERVAL)
            self._track_writes = False
            observer.schedule(self._handler, self.root, recursive=True, event_filter=EVENT_TYPES)
            observer.start()
        return observer

    def _stop_observer(self) -> None:
        with self._observer_lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            _stop_quietly(observer)

    def _set_observer(self, observer: BaseObserver) -> bool:
        """Keep `observer` as the one watching; False (and it is stopped) if `stop` came
        meanwhile: starting one can outlast `stop`'s wait for this thread."""
        with self._observer_lock:
            if not self._stopping.is_set():
                self._observer = observer
                return True
        _stop_quietly(observer)
        return False

    def _healthy(self) -> bool:
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        if _identity(self.root) != self._root_id:
            return False  # the root was moved away or replaced: the watches follow the old one
        reader_alive = getattr(observer, "reader_alive", None)
        if reader_alive is not None and not reader_alive():
            return False
        return all(e.is_alive() for e in observer.emitters) and bool(observer.emitters)

    def _heal(self) -> None:
        """Restart a dead observer (the root vanished, a thread died) and rescan."""
        self._restart("the file watcher stopped and was restarted; rescanning the whole tree")

    def _restart(self, why: str) -> None:
        """Replace the observer by a new one, with fresh watches on the whole tree, then ask
        for a rescan and say `why`.

        The rescan is asked for only once every watch is in place: one that starts earlier
        can pass a folder before its watch is back and miss what is written there meanwhile,
        until the next periodic rescan. A new observer, rather than watchdog's own repair of
        its watches after an overflow, is the one state known to be whole.
        """
        self._stop_observer()
        if not os.path.isdir(self.root):
            self.warn_loss(f"the local root {self.root} is gone; waiting for it to come back")
            return
        try:
            observer = self._start_observer()
        except OSError as err:
            self.warn_loss(f"cannot watch {self.root} ({err.strerror or err}); retrying")
            return
        if self._set_observer(observer):
            self.warn_loss(why)

    # --- the watcher's thread ------------------------------------------------------------

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fsync-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        now = self._clock()
        self._next_rescan = now + jittered(self.rescan_every, self._rng)
        self._next_health = now if self._observer is None else now + HEALTH_EVERY
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception as exc:  # one bad tick (a bug, in watchdog or here) must not
                # end the watch: the thread would die silently and changes go unsynced
                self._next_health = self._clock()
                with contextlib.suppress(Exception):
                    self.warn_loss(f"the file watcher failed ({exc!r}); rescanning the whole tree")
                self._stopping.wait(HEALTH_EVERY)  # no busy loop if every tick fails

    def _tick(self) -> None:
        """Wait for the debouncer, a health check or a rescan; report what is ready."""
        now = self._clock()
        busy = len(self.debouncer) > 0
        next_due = min(self._next_rescan, self._next_health)
        wait = self.debouncer.tick if busy else max(0.0, next_due - now)
        self._wake.wait(min(wait, HEALTH_EVERY))
        self._wake.clear()
        if self._stopping.is_set():
            return
        now = self._clock()
        if self._overflowed.is_set():
            self._overflowed.clear()
            self._next_health = now + HEALTH_EVERY
            self._restart(OVERFLOW_FIX)
        elif now >= self._next_health:
            self._next_health = now + HEALTH_EVERY
            if not self._healthy():
                self._heal()
        full = self._rescan.is_set() or now >= self._next_rescan
        if full:
            self._rescan.clear()
            self._next_rescan = now + jittered(self.rescan_every, self._rng)
        ready = self.debouncer.take_ready(now)
        ignore = self._ignore
        if ignore is not None:
            ready = {p for p in ready if not ignore(p)}
        if ready or full:
            self._report(ready, full)

    def _report(self, paths: set[RelPath], full: bool) -> None:
        try:
            self._on_batch(paths, full)
        except Exception as exc:  # a broken consumer must not kill the watch
            self._on_warning(f"the watcher's batch consumer failed: {exc!r}")

    # --- events --------------------------------------------------------------------------

    def rel(self, path: str | bytes) -> RelPath | None:
        """The `RelPath` of an absolute event path, or None for paths fsync leaves alone."""
        text = os.fsdecode(path)
        if not text.startswith(self._prefix):
            return None
        rel = text[len(self._prefix) :]
        if os.sep != "/":  # pragma: no cover - Windows
            rel = rel.replace(os.sep, "/")
        name = rel.rpartition("/")[2]
        if name == STATE_DIR or is_temp_name(name):
            return None
        if rel.startswith(STATE_DIR + "/") or f"/{STATE_DIR}/" in rel:
            return None
        try:
            return to_relpath(rel)
        except UnsafePathError:
            self._warn_unsafe(rel)
            return None

    def _warn_unsafe(self, rel: str) -> None:
        """Say that `rel` is not sent: at once (a scan says it too, at the next rescan), for
        its first bad name only (not for each file in a folder so named), and once a minute
        at most (a file being written sends an event per write)."""
        ignore = self._ignore
        if ignore is not None and ignore(RelPath(rel)):
            return
        head = ""
        for part in rel.split("/"):
            head = f"{head}/{part}" if head else part
            try:
                to_relpath(head)
            except UnsafePathError as e:
                self._warn_once(f"not sent: {e} (a name no remote can hold)")
                return

    def on_event(self, event: FileSystemEvent) -> None:
        """Record one watchdog event (runs on watchdog's dispatch thread: keep it cheap)."""
        now = self._clock()
        tree = event.is_directory
        woke = False
        if isinstance(event, FileSystemMovedEvent):
            src = self.rel(event.src_path) if event.src_path else None
            dst = self.rel(event.dest_path) if event.dest_path else None
            if src is not None:
                woke |= self.debouncer.record(src, now, tree=tree, writing=False, partner=dst)
            if dst is not None:
                woke |= self.debouncer.record(dst, now, tree=tree, writing=False, partner=src)
        else:
            path = self.rel(event.src_path)
            if path is None:
                self._root_event(event)
                return
            writing = self._writing(event)
            woke = self.debouncer.record(path, now, tree=tree, writing=writing)
        if woke:
            self._wake.set()

    def _writing(self, event: FileSystemEvent) -> bool | None:
        """True for "being written", False for "closed after writing", None for neither."""
        if not self._track_writes or event.is_directory:
            return None
        # Only a write says a writer is at work: a "created" event may be one watchdog made
        # up while walking a new folder, for a file closed long before (no close follows).
        if type(event) is FileModifiedEvent:
            return True
        if isinstance(event, FileClosedEvent | FileDeletedEvent):
            return False
        return None

    def _root_event(self, event: FileSystemEvent) -> None:
        """The root itself deleted or moved away: the observer stops; let the health check see."""
        if os.fsdecode(event.src_path).rstrip(os.sep) == self.root and isinstance(
            event, DirDeletedEvent | DirMovedEvent
        ):
            self._wake.set()

    def _sig(self, path: RelPath) -> Sig:
        try:
            st = os.lstat(os.path.join(self.root, path))
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return FOLDER_SIG
        return (st.st_size, st.st_mtime_ns)


class _Handler(FileSystemEventHandler):
    """Forwards every event to the watcher; nothing else runs on the dispatch thread."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher.on_event(event)
        except Exception as exc:  # raised here, it would end watchdog's dispatch thread
            self._watcher.warn_loss(f"a file event was lost ({exc!r}); rescanning the whole tree")


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of `path`, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _stop_quietly(observer: BaseObserver) -> None:
    """Stop `observer`, whatever state it is in (it may have died, or never started)."""
    with contextlib.suppress(Exception):
        observer.stop()
    with contextlib.suppress(RuntimeError):
        observer.join(timeout=STOP_WAIT)


def _make_inotify_observer(
    on_loss: Callable[[str], None], on_overflow: Callable[[], None]
) -> BaseObserver | None:
    """An inotify observer that reports overflows and watch limits, or None off Linux.

    watchdog (issue #654 and later) logs a queue overflow and swallows a failed watch on a
    subfolder; the subclass of its inotify reader below sees both first, and tells
    `on_overflow` and `on_loss`. Raises `OSError` (EMFILE) when no inotify instance can be
    created.
    """
    if InotifyObserver is None:  # pragma: no cover - not Linux
        return None

    class _LossAwareFD(InotifyFD):
        def handle_event(self, event: InotifyEvent) -> None:
            if event.is_queue_overflow:
                # Not passed on: watchdog would take down every watch and add them again
                # here, while a rescan may already run; the watcher replaces this observer.
                on_overflow()
                return
            super().handle_event(event)

        def _get_or_create_watch(self, path: bytes, mask: Mask) -> Any:
            try:
                return super()._get_or_create_watch(path, mask)
            except OSError as err:
                if err.errno == errno.ENOSPC:
                    on_loss(WATCH_LIMIT_FIX)
                raise

        def _add_callback(self, path: bytes, mask: Mask, callback: Any, id_: Any) -> Any:
            # watchdog's version warns (RuntimeWarning, on its reader thread) when a folder
            # made by `mkdir -p` is registered twice, once by the walk of its new parent and
            # once by its own event; the second registration is the same callback, so it is
            # harmless, and the warning would only reach the user's terminal as noise.
            watch = self._get_or_create_watch(path, mask)
            watch.callbacks[id_] = callback
            return watch.wd

    class _Observer(InotifyObserver):
        def __init__(self) -> None:
            fd = _LossAwareFD()
            fd.start()
            self._inotify_fd = fd
            BaseObserver.__init__(self, InotifyFullEmitter, inotify_fd=fd)

        def reader_alive(self) -> bool:
            """True while the thread reading the inotify descriptor runs."""
            return bool(self._inotify_fd.is_alive())

    return _Observer()


# watchdog logs overflows and swallowed watch failures itself; fsync reports them in its own
# words (above), so its records would only repeat them on stderr.
logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)
logging.getLogger("watchdog.observers.inotify_c").setLevel(logging.CRITICAL)
