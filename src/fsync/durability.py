"""Make local writes durable before the manifest vouches for them, at one sync per batch.

Every file fsync publishes must reach the disk before its rename (so a power cut never
leaves a torn file under a real name), and every rename before the manifest records it (so
the base never vouches for a file the disk lost). A writer that stages its files (the local
remote, see `remote.base.Stager`) notes each with `staged` and does not sync it; every rename
notes its folder with `renamed`. `flush` makes all of that durable at once: one `syncfs` of
the root's filesystem on Linux, or else an fsync of each staged file and touched folder (also
for those on another filesystem than the root, a mount inside the tree). The engine flushes
once before it publishes a batch of staged files and once before it records the batch.

Measured on a 20,000-file push to a local folder: the 20,000 fsyncs took 6.4 s; the 158
`syncfs` calls that replace them, writing the same bytes, 0.5 s. (Sharing one `syncfs`
among the files of concurrent writers, at most 8 at once, bought nothing: a `syncfs` costs
about two `fsync`s here.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Callable

_SyncFs = Callable[[int], None]


def _load_syncfs() -> _SyncFs | None:
    """libc's `syncfs`, raising `OSError` on failure; None where the platform lacks it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except Exception:  # no libc (Windows: CDLL(None) is a TypeError), or no syncfs in it
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


_SYNCFS = _load_syncfs()


class Durability:
    """The writes under one folder tree (a local root) and what makes them durable.

    Thread-safe: the engine's workers call `staged` and `renamed` concurrently; `flush` is
    called by the thread that records outcomes. The root is opened at the first staged file
    or flush (a push may create it); while files are staged it stays open, because `syncfs`
    reports a failed write-back only if it happened after the descriptor was opened: one
    opened at flush time would miss the kernel failing to write a staged file in the
    background meanwhile. `close` releases it.
    """

    def __init__(self, root: str, *, syncfs: _SyncFs | None = _SYNCFS) -> None:
        self._root = root
        self._syncfs = syncfs
        self._lock = threading.Lock()
        self._folders: set[str] = set()
        self._files: dict[str, list[str]] = {}
        """Staged files not yet synced, by folder."""
        self._fd: int | None = None
        """The root, held open from before the first staged byte (see above)."""

    def staged(self, path: str) -> None:
        """Note a file written without an fsync: the next `flush` makes its bytes durable.

        Call it before writing the file, so that a failure to write it back is reported.
        """
        with self._lock:
            if self._fd is None and self._syncfs is not None:
                self._fd = _open_folder(self._root)
            self._files.setdefault(os.path.dirname(path), []).append(path)

    def renamed(self, folder: str) -> None:
        """Note that an entry of `folder` changed (a rename, create or delete in it)."""
        with self._lock:
            self._folders.add(folder)

    def flush(self) -> None:
        """Make every staged file and every change of a folder noted so far durable."""
        with self._lock:
            folders, self._folders = self._folders, set()
            files, self._files = self._files, {}
            held = self._fd
        if not folders and not files:
            return
        elsewhere = folders | files.keys()
        if self._syncfs is not None:
            fd = held if held is not None else _open_folder(self._root)
            if fd is not None:
                try:
                    dev = os.fstat(fd).st_dev
                    self._syncfs(fd)
                finally:
                    if fd != held:
                        os.close(fd)
                elsewhere = {f for f in elsewhere if _device(f) not in (dev, None)}
        for folder in sorted(elsewhere):
            for path in files.get(folder, ()):
                _fsync_file(path)
            if folder in folders:
                _fsync_folder(folder)

    def close(self) -> None:
        """Release the root's descriptor, if held (what is staged is no longer watched)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _open_folder(folder: str) -> int | None:
    """A descriptor of `folder` to sync its filesystem by; None if it cannot be opened."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        return os.open(folder, flags)
    except OSError:
        return None


def _device(folder: str) -> int | None:
    """The device `folder` is on; None if it is gone (a delete pruned it: nothing to sync)."""
    try:
        return os.stat(folder).st_dev
    except OSError:
        return None


def _fsync_file(path: str) -> None:
    """fsync a staged file; one already discarded (gone) needs nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    """fsync a folder (a rename in it), where the platform lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno == errno.EIO:
            raise  # the disk lost a write: the manifest must not record it
        # Other refusals mean this platform or filesystem cannot sync a folder at all.
    finally:
        os.close(fd)
