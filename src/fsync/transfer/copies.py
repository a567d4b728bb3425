"""Put a version at a new name without ever replacing a file: conflict copies, backups, renames.

Each helper either places the bytes under a name that was free or raises `FileExistsError`,
so keeping one version can never cost another. Used by the engine (conflict copies on both
sides, local renames) and by `--backup-dir` (`transfer.backup`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Protocol

from fsync.errors import FileChangedError, VerificationError
from fsync.fileops import create_exclusive, place_new, temp_beside, unlink_quietly
from fsync.hashing import HashingReader
from fsync.model import Digest, LocalEntry, RelPath, RemoteEntry
from fsync.remote.base import ObjectMeta, Remote

CHUNK = 1 << 20

OnRead = Callable[[int], None]


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before worker threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()
"""The mode a new file gets by default: what `open` would give it under the umask."""


class CopyJournal(Protocol):
    """Where a conflict copy made on the remote is remembered until its conflict's outcome
    is recorded (the manifest's transfer journal), so a run cut short in between (a kill, a
    failed upload) is not followed by a second copy of the same version."""

    def copy_made(self, source: str, path: RelPath, fingerprint: str) -> RelPath | None:
        """The copy journaled for version `fingerprint` of `path` on `source`, or None."""
        ...

    def copying(self, source: str, path: RelPath, fingerprint: str, copy: RelPath) -> None:
        """Record, before it is made, that this version of `path` is copied to `copy`."""
        ...


def free_name(make: Callable[[int], RelPath], taken: Callable[[RelPath], bool]) -> RelPath:
    """The first of `make(1)`, `make(2)`, ... that is not `taken` (at most 1000 tries).

    Raises `FileExistsError` when every try is taken.
    """
    for n in range(1, 1001):
        name = make(n)
        if not taken(name):
            return name
    raise FileExistsError(errno.EEXIST, "no free name", make(1))


def fetch_new(
    remote: Remote,
    path: RelPath,
    dst: str,
    *,
    expect: RemoteEntry | None = None,
    on_read: OnRead | None = None,
    mode: int = FILE_MODE,
) -> tuple[Digest, int]:
    """Download the object at `path` into the new local file `dst`; return (digest, size).

    The bytes go to a temp file beside `dst`, hashed as they arrive and flushed to disk,
    then `place_new` puts it in place (`FileExistsError` if `dst` appeared). With `expect`,
    only that version is read (`RemoteChanged` when the object was replaced since: a
    replacement of the same size would pass the size check where the digest is unknown),
    its size and digest (where known) must match, else `VerificationError`, and its mtime,
    where known, is given to the file.
    """
    tmp = temp_beside(dst)
    try:
        fd = create_exclusive(tmp)
        with os.fdopen(fd, "wb") as out, remote.open_read(path, expect=expect) as src:
            reader = HashingReader(src, on_read=on_read)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), mode)
        digest, size = reader.digest(), reader.bytes_read
        if expect is not None:
            _check_fetched(path, expect, digest, size)
            if expect.mtime_ns is not None:
                os.utime(tmp, ns=(expect.mtime_ns, expect.mtime_ns))
        place_new(tmp, dst)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return Digest(digest), size


def _check_fetched(path: RelPath, expect: RemoteEntry, digest: str, size: int) -> None:
    if size != expect.size:
        raise VerificationError(f"{path}: received {size} bytes, expected {expect.size}")
    if expect.digest is not None and digest != expect.digest:
        raise VerificationError(f"{path}: content does not match its recorded blake3")


def send_new(
    store: Remote,
    path: RelPath,
    full: str,
    entry: LocalEntry,
    *,
    on_read: OnRead | None = None,
) -> RemoteEntry:
    """Upload the local file `full` (as `entry` describes it) to `path`, which must be absent.

    The bytes read must hash to `entry.digest`, else `FileChangedError` and nothing is
    published; an object already at `path` raises `RemoteChanged` (the store's check).
    """
    with open(full, "rb") as raw:
        reader = HashingReader(raw, on_read=on_read)

        def verify() -> None:
            if reader.bytes_read != entry.size or reader.digest() != entry.digest:
                raise FileChangedError("changed while being copied")

        meta = ObjectMeta(entry.size, entry.digest, entry.mtime_ns, 0o100000 | entry.mode)
        return store.put(path, reader, meta, expect=None, before_publish=verify)
