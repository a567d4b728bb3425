"""Content hashing: blake3 of files and streams, under a stat guard.

blake3 is imported here and nowhere else. A file is stat'ed before and after it is hashed;
if it moved in between, `FileChangedError` is raised rather than returning a digest of bytes
that were never on disk together (Syncthing's "file changed during hashing").

Large files are read with `preadv` into two 4 MiB buffers in turn: a reader thread fills
one while the multithreaded hasher digests the other, so the copy out of the page cache is
off the critical path while a core is free (measured on 2 idle cores, 1 GiB cached: 6.2 GB/s
with one buffer, 8.2 GB/s double-buffered, 8.6 GB/s for blake3's `update_mmap`, which b3sum
uses; on a busy machine the copy's CPU shows: 0.42 s against mmap's 0.33 s).

A map is never made in this process, because of its hazard: a file truncated by another
process while it is mapped kills the whole process with SIGBUS, and files being rewritten
(`open(path, "w")` truncates first) are exactly what a sync tool meets. Guarding each mapped
window with a read lease (`F_SETLEASE`, which makes other writers wait) was built and then
dropped, since it cannot close the hazard: an `O_RDONLY|O_TRUNC` open empties the file
without breaking a read lease, a lease whose break times out (`lease-break-time`: a stopped
process, slow storage) lets the truncation through, and a page that fails to read is SIGBUS
through a map where `preadv` raises an `OSError` that names the file (the first two were
reproduced, both SIGBUS). So a large file whose pages are all in memory is mapped by a child
process instead (`hash_mapped`), which dies in fsync's place; fsync then reads the file
itself, and that read says what happened.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import blake3 as _blake3_module
from blake3 import blake3

from fsync.errors import FileChangedError
from fsync.model import Digest

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from _typeshed import ReadableBuffer, WriteableBuffer

HASH_VERSION = 1
"""Version of the digest format; cached digests made by another version are not reused."""

SMALL_FILE = 1 << 20
"""Files below this size are read in one `read` call and hashed on the calling thread."""

READ_CHUNK = 4 << 20
"""Buffer size for large files: big enough to keep blake3's worker threads busy, small
enough that two stay in the caches (measured best of 1-16 MiB)."""

MAPPED_FILE = 256 << 20
"""Files from this size whose pages are in memory are hashed through a map, in a child
process. Starting it costs ~9 ms; the map spares the copy out of the page cache, ~0.1 CPU-s
per GiB, which shows in the time when the cores are busy (the bench, 1 GiB in process:
0.147 s against 0.230 s reading it here, b3sum 0.135 s) and barely when they are idle
(0.146 s against 0.140 s, measured by a review)."""

READ_AHEAD_WORKERS = 4
"""Threads that read ahead for large files; more concurrent large hashes wait their turn."""


def cpu_threads(most: int) -> int:
    """`most`, or the number of cores this process may run on if fewer (at least 1).

    For work that keeps a thread busy rather than waiting (hashing small files, writing to a
    local disk), a thread beyond the cores only takes the GIL from another at every system
    call. Measured on 2 cores, 20,000 small files: the scan's hashing took 1.40 s with 8
    threads (83,000 context switches) and 1.04 s with 2.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(1, min(most, cores))


_read_ahead_pool: ThreadPoolExecutor | None = None
_read_ahead_lock = threading.Lock()


def _read_ahead() -> ThreadPoolExecutor:
    """The shared read-ahead pool, made on first use (small files never need it)."""
    global _read_ahead_pool  # noqa: PLW0603 - one lazily made pool per process
    with _read_ahead_lock:
        if _read_ahead_pool is None:
            # Imported here: concurrent.futures (with logging) costs ~10 ms at start-up.
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            _read_ahead_pool = ThreadPoolExecutor(
                max_workers=READ_AHEAD_WORKERS, thread_name_prefix="fsync-readahead"
            )
        return _read_ahead_pool


@dataclass(frozen=True, slots=True)
class StatSig:
    """The stat fields that tell whether a file may have changed since it was hashed."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    mode: int

    @classmethod
    def from_stat(cls, st: os.stat_result) -> StatSig:
        """The signature of a stat result (`mode` is the full `st_mode`, type bits included)."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_mode)


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """A cached digest and the signature of the file it was computed from.

    `trusted` is False for a "racily clean" entry: the file's times were too close to the
    moment it was hashed for an unchanged signature to prove unchanged content, so the next
    scan hashes it again. Defined here, below both the scanner and the manifest, so neither
    has to import the other.
    """

    sig: StatSig
    digest: Digest
    trusted: bool


def new_hasher(*, multithreaded: bool = False) -> blake3:
    """A fresh blake3 hasher; `multithreaded` pays off only for inputs of megabytes."""
    return blake3(max_threads=blake3.AUTO) if multithreaded else blake3()


def _same_file(before: StatSig, after: StatSig) -> bool:
    return (
        before.size == after.size and before.mtime_ns == after.mtime_ns and before.ino == after.ino
    )


def hash_file(path: str, before: StatSig | None = None) -> tuple[Digest, StatSig]:
    """Hash the file at `path`; return its digest and its signature after hashing.

    `before` is the signature the caller already holds (e.g. from a directory scan); without
    it the file is stat'ed first. Raises `FileChangedError` when size, mtime or inode differ
    between the two stats or the file's length is not what `before` says. OS errors such as
    `FileNotFoundError` and `PermissionError` propagate unchanged.
    """
    if before is None:
        before = StatSig.from_stat(os.stat(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if before.size < SMALL_FILE:
            # One read of one byte more than expected: a file that grew is caught here
            # without reading an unbounded amount into memory.
            data = os.read(fd, before.size + 1)
            read = len(data)
            digest = blake3(data).hexdigest()
        elif (
            before.size >= MAPPED_FILE
            and in_memory(fd, before.size)
            and (mapped := hash_mapped(fd)) is not None
        ):
            # The child hashed the file as it was; the stats around it say if that was
            # `before` all along (a change of size, mtime or inode is caught below).
            read, digest = before.size, mapped
        else:
            read, digest = hash_descriptor(fd, before.size)
    finally:
        os.close(fd)
    after = StatSig.from_stat(os.stat(path))
    if read != before.size or not _same_file(before, after):
        raise FileChangedError(f"{path}: changed while being read")
    return Digest(digest), after


def _module_root() -> str:
    """The folder to put on a child's `sys.path` for it to import the `blake3` this process has."""
    spec = _blake3_module.__spec__
    if spec is None or spec.origin is None:
        return ""
    root = os.path.dirname(spec.origin)
    return os.path.dirname(root) if spec.submodule_search_locations else root


_NO_BLAKE3 = 3
"""The child's exit status when it cannot import blake3: it never will, so none is started
again. Any other failure (a file it cannot open, a signal) concerns one file."""

_MAPPED_HASH = (
    "import sys\n"
    "sys.path[:0] = [p for p in sys.argv[1:2] if p]\n"
    "try:\n"
    "    from blake3 import blake3\n"
    "except ImportError:\n"
    f"    sys.exit({_NO_BLAKE3})\n"
    "hasher = blake3(max_threads=blake3.AUTO)\n"
    "hasher.update_mmap(sys.argv[2])\n"
    "print(hasher.hexdigest())\n"
)
"""What the child runs (isolated: `-I -S`, no site, no environment): b3sum's way of hashing."""

_BLAKE3_ROOT = _module_root()
_map_in_child = bool(sys.executable)
"""Whether a child may hash for this process: False once one could not start or import."""


def in_memory(fd: int, size: int, samples: int = 16) -> bool:
    """True when pages spread over the open file `fd` (`size` bytes) are in the page cache,
    each read with `RWF_NOWAIT`, which fails rather than wait for the disk.

    Only then is a map worth it: its threads fault pages in the order they hash them, which
    seeks on a spinning disk where `preadv` reads in order.
    """
    probe = bytearray(1)
    try:
        for i in range(samples):
            os.preadv(fd, [probe], (size - 1) * i // (samples - 1), os.RWF_NOWAIT)
    except (OSError, AttributeError):  # BlockingIOError: on disk; any other: cannot tell
        return False
    return True


def hash_mapped(fd: int) -> str | None:
    """The blake3 of the open file `fd`, read through a map by a child process; None when
    the child did not hash it (the caller then reads the file itself).

    The child dies of SIGBUS when a page cannot be read (the file truncated under it, an I/O
    error): None then, and the caller's own read finds the change or raises the error. It
    hashes the file `fd` is open on (`/dev/fd`), whatever its path names by then. It runs in
    a session of its own: a Ctrl-C meant for fsync would not stop its hashing anyway (blake3
    checks for no signal), only make it die at the end and its work be done again here.
    """
    global _map_in_child  # noqa: PLW0603 - one switch per process
    if not _map_in_child:
        return None
    argv = [sys.executable, "-I", "-S", "-c", _MAPPED_HASH, _BLAKE3_ROOT, f"/dev/fd/{fd}"]
    try:
        done = subprocess.run(
            argv,
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError):  # no interpreter to start: never will be
        _map_in_child = False
        return None
    except OSError:  # out of processes or memory, for now
        return None
    digest = done.stdout.strip()
    if done.returncode == 0 and len(digest) == 64:
        return digest
    if done.returncode == _NO_BLAKE3:
        _map_in_child = False
    return None


def hash_descriptor(
    fd: int, size: int, also: Callable[[memoryview], object] | None = None
) -> tuple[int, str]:
    """(bytes read, hex blake3) of the open file `fd`, expected to hold `size` bytes, read
    from its start with `preadv` (the descriptor's offset does not move).

    Reads stop one byte past `size`: a file that keeps growing is known to have changed, and
    is not read to its (moving) end. `also` is given every chunk hashed, in order, for a
    second digest of the same pass (S3's `md5chksum`).
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    hasher = blake3(max_threads=blake3.AUTO)
    bufs = (bytearray(READ_CHUNK), bytearray(READ_CHUNK))
    pool = _read_ahead()
    read = 0
    pending: Future[int] = pool.submit(os.preadv, fd, [bufs[0]], 0)
    turn = 0
    try:
        while n := pending.result():
            read += n
            if read > size:
                break
            pending = pool.submit(os.preadv, fd, [bufs[1 - turn]], read)
            chunk = memoryview(bufs[turn])[:n]
            hasher.update(chunk)
            if also is not None:
                also(chunk)
            turn = 1 - turn
    finally:
        # The caller closes `fd` next: no read may still be in flight on it.
        if not pending.cancel():
            pending.exception()
    return read, hasher.hexdigest()


def hash_stream(reader: BinaryIO, chunk: int = 1 << 20) -> Digest:
    """The digest of everything `reader` yields from its current position to its end."""
    hasher = blake3(max_threads=blake3.AUTO) if chunk >= READ_CHUNK else blake3()
    while data := reader.read(chunk):
        hasher.update(data)
    return Digest(hasher.hexdigest())


class HashingReader(io.RawIOBase):
    """A read-only, non-seekable wrapper that hashes every byte read through it.

    The transfer engine streams a file through this to learn the blake3 of exactly the bytes
    it sent, in the same pass. `on_read(n)` is called with the size of each chunk read
    (progress reporting). Closing the wrapper closes `raw`.
    """

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._raw = raw
        self._on_read = on_read
        # Single-threaded: chunks arrive at network pace and many transfers run at once.
        self._blake3 = blake3()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def fileno(self) -> int:
        """The descriptor of `raw` (an error if it has none): a reader that must know the
        content before streaming it (S3's `md5chksum`) reads it ahead with `pread`, which
        leaves this stream where it is."""
        return self._raw.fileno()

    def _account(self, data: ReadableBuffer) -> None:
        self._blake3.update(data)
        n = memoryview(data).nbytes
        self.bytes_read += n
        if self._on_read is not None and n:
            self._on_read(n)

    def read(self, size: int | None = -1) -> bytes:
        """Read up to `size` bytes (all that is left when `size` is negative or None)."""
        data = self._raw.read(-1 if size is None else size)
        self._account(data)
        return data

    def readall(self) -> bytes:
        """Read everything that is left."""
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into `buffer`; returns the number of bytes read (0 at the end)."""
        view = memoryview(buffer).cast("B")
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            n = readinto(view) or 0
        else:
            data = self._raw.read(len(view))
            n = len(data)
            view[:n] = data
        self._account(view[:n])
        return n

    def close(self) -> None:
        """Close the wrapper and the underlying stream."""
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()

    def digest(self) -> Digest:
        """The blake3 of the bytes read so far."""
        return Digest(self._blake3.hexdigest())
