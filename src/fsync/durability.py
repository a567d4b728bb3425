"""Make local writes durable before the manifest vouches for them, at one sync per batch.

Every file fsync publishes must reach the disk before its rename (so a power cut never
leaves a torn file under a real name), and every rename before the manifest records it (so
the base never vouches for a file the disk lost). Its writer fsyncs the file's data before
the rename, as before; the folder fsync each rename used to need (a journal commit per
file: a fifth of a 20,000-file push, measured) is deferred to `flush`, which the engine calls
once per batch of outcomes, just before recording them: one `syncfs` of the root's filesystem
on Linux, or an fsync of each touched folder elsewhere (or for a folder on another
filesystem than the root, a mount inside the tree).

A group commit of the file syncs themselves (writers sharing one `syncfs`) was measured too
and bought nothing here: `syncfs` costs several times an `fsync` on this machine's large
root filesystem, and at 8 transfers a group holds at most 8 files.
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

    Thread-safe: the engine's workers call `renamed` concurrently; `flush` is
    called by the thread that records outcomes. The root is opened at the first flush (a
    push may create it).
    """

    def __init__(self, root: str, *, syncfs: _SyncFs | None = _SYNCFS) -> None:
        self._root = root
        self._syncfs = syncfs
        self._lock = threading.Lock()
        self._folders: set[str] = set()

    def renamed(self, folder: str) -> None:
        """Note that an entry of `folder` changed (a rename, create or delete in it)."""
        with self._lock:
            self._folders.add(folder)

    def flush(self) -> None:
        """Make every change of a folder noted so far durable."""
        with self._lock:
            folders, self._folders = self._folders, set()
        if not folders:
            return
        elsewhere = folders
        if self._syncfs is not None:
            try:
                fd = os.open(self._root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    dev = os.fstat(fd).st_dev
                    self._syncfs(fd)
                finally:
                    os.close(fd)
                elsewhere = {f for f in folders if _device(f) not in (dev, None)}
        for folder in sorted(elsewhere):
            _fsync_folder(folder)


def _device(folder: str) -> int | None:
    """The device `folder` is on; None if it is gone (a delete pruned it: nothing to sync)."""
    try:
        return os.stat(folder).st_dev
    except OSError:
        return None


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
