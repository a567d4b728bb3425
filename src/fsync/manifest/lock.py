"""One fsync per local root at a time: an advisory lock on `ROOT/.fsync/lock`.

`flock` locks belong to the open file, and the kernel drops them when the holder dies, so a
lock left by a crashed or killed fsync is taken over by the next one without any stale-lock
guessing. The holder's pid is written into the file only to name it in the error message.
"""

from __future__ import annotations

import fcntl
import os

from fsync.errors import LockHeld
from fsync.manifest.db import check_is_file, state_dir

LOCK_NAME = "lock"


class RootLock:
    """The exclusive lock of one local root; use as a context manager or acquire/release."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises `LockHeld` if another process (or another `RootLock` on the same root) holds
        it, `ConfigError` if the root is missing or not a directory, and `RuntimeError` if
        this object already holds it.
        """
        if self._fd is not None:
            raise RuntimeError(f"the lock of {self.root} is already held by this object")
        path = os.path.join(state_dir(self.root), LOCK_NAME)
        check_is_file(path)
        # O_CLOEXEC: a child process (an --on-error hook) must not keep the lock alive.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"another fsync (pid {holder})" if holder else "another fsync"
            raise LockHeld(
                f"{who} is already working on {self.root}; wait for it to finish"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; does nothing if it is not held."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            # Clear the pid while still holding the lock, so the next holder's is never lost.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RootLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The pid written in the lock file, or None if it is empty or unreadable."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
