"""hashing: digests of files and streams, and the stat guard around file hashing."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from blake3 import blake3

from fsync.errors import FileChangedError
from fsync.hashing import (
    HASH_VERSION,
    MAPPED_FILE,
    READ_CHUNK,
    SMALL_FILE,
    CacheRecord,
    HashingReader,
    StatSig,
    hash_file,
    hash_mapped,
    hash_stream,
    in_memory,
    new_hasher,
)
from fsync.model import Digest


def _b3(data: bytes) -> Digest:
    return Digest(blake3(data).hexdigest())


@pytest.mark.parametrize(
    "size",
    [0, 1, 1000, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, READ_CHUNK + 12345],
    ids=["empty", "one", "small", "below-1MiB", "exactly-1MiB", "above-1MiB", "over-a-chunk"],
)
def test_hash_file_equals_blake3_of_content(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    digest, sig = hash_file(str(path))

    assert digest == _b3(data)
    assert digest == digest.lower()
    assert len(digest) == 64
    assert sig == StatSig.from_stat(os.stat(path))
    assert sig.size == size


def test_hash_file_with_matching_before_signature(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    before = StatSig.from_stat(os.stat(path))

    digest, after = hash_file(str(path), before=before)

    assert digest == _b3(b"hello")
    assert after == before


@pytest.mark.parametrize("size", [10, SMALL_FILE + 10], ids=["small", "large"])
def test_file_rewritten_after_stat_raises_file_changed(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * size)
    stale = StatSig.from_stat(os.stat(path))
    path.write_bytes(b"b" * (size + 5))

    with pytest.raises(FileChangedError, match="changed while being read"):
        hash_file(str(path), before=stale)


def test_same_size_new_mtime_raises_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"same size")
    stale = StatSig.from_stat(os.stat(path))
    os.utime(path, ns=(stale.mtime_ns + 5_000_000_000, stale.mtime_ns + 5_000_000_000))

    with pytest.raises(FileChangedError):
        hash_file(str(path), before=stale)


def test_replaced_file_raises_file_changed(tmp_path: Path) -> None:
    """Same size and mtime but another inode (a rename over the file) is a change."""
    path = tmp_path / "f"
    path.write_bytes(b"one")
    stale = StatSig.from_stat(os.stat(path))
    other = tmp_path / "g"
    other.write_bytes(b"two")
    os.utime(other, ns=(stale.mtime_ns, stale.mtime_ns))
    keep_inode_busy = tmp_path / "old"
    os.link(path, keep_inode_busy)  # so the old inode number cannot be reused at once
    os.replace(other, path)

    with pytest.raises(FileChangedError):
        hash_file(str(path), before=stale)


def _sparse(path: Path, size: int, head: bytes = b"", tail: bytes = b"") -> Digest:
    """Make `path` a sparse file of `size` bytes (`head` and `tail` at its ends, zeros
    between: pages that need no disk); return its blake3."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size - len(tail))
        out.seek(0, os.SEEK_END)
        out.write(tail)
    hasher, zeros = blake3(head, max_threads=blake3.AUTO), bytes(16 << 20)
    left = size - len(head) - len(tail)
    while left:
        hasher.update(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    hasher.update(tail)
    return Digest(hasher.hexdigest())


def _needs_nowait(folder: Path) -> None:
    """Skip where reads cannot be asked not to wait (tmpfs, overlayfs): fsync never maps
    there, so neither the probe nor the child can be seen at work."""
    path = folder / "probe.bin"
    path.write_bytes(b"probe")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except OSError as exc:
        pytest.skip(f"reads that do not wait are not supported here ({exc.strerror})")
    finally:
        os.close(fd)
        path.unlink()


def test_a_child_hashes_a_file_through_a_map(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        path.rename(tmp_path / "moved.bin")  # the child hashes the open file, not the name
        assert hash_mapped(fd) == _b3(data)
    finally:
        os.close(fd)


def test_in_memory_tells_cached_pages_from_pages_on_disk(tmp_path: Path) -> None:
    _needs_nowait(tmp_path)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(8 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        assert in_memory(fd, 8 << 20)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped
        assert not in_memory(fd, 8 << 20)
    finally:
        os.close(fd)


def _child_maps(path: Path) -> int | None:
    """The pid of a child of this process that has `path` mapped (its /proc maps name it)."""
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])
            if parent == me:
                with open(f"/proc/{pid}/maps") as maps:
                    if str(path) in maps.read():
                        return int(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile
    return None


def _hash_watching_children(
    path: Path, then: Callable[[int], object] = lambda pid: None
) -> dict[str, object]:
    """`hash_file(path)` on a thread, which this one watches for a child mapping `path`;
    `then` runs with its pid as soon as one does. Returns the digest or error, and whether
    one did."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["digest"], _ = hash_file(str(path))
        except FileChangedError as exc:
            outcome["error"] = exc

    hashing = threading.Thread(target=run)
    hashing.start()
    deadline = time.monotonic() + 30
    while (child := _child_maps(path)) is None and hashing.is_alive():
        assert time.monotonic() < deadline, "no child mapped the file"
        time.sleep(0.001)
    mapped = child is not None
    if child is not None:
        then(child)
    hashing.join()
    return {**outcome, "mapped": mapped}


def test_a_large_file_in_memory_is_hashed_through_a_childs_map(tmp_path: Path) -> None:
    _needs_nowait(tmp_path)
    path = tmp_path / "big.bin"
    size = 2 * MAPPED_FILE + 4097  # holes: in memory, no disk; a child lives long enough
    expected = _sparse(path, size, os.urandom(5000), os.urandom(3000))
    assert _hash_watching_children(path) == {"digest": expected, "mapped": True}
    path.unlink()  # (its gigabyte of cached zeros with it)


def test_the_hashing_child_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    # A Ctrl-C for fsync's session would not stop blake3 in the child, only make it die at
    # the end and its hash be done again; in its own session the child never gets one.
    _needs_nowait(tmp_path)
    path = tmp_path / "big.bin"
    _sparse(path, 2 * MAPPED_FILE + 4097)
    sessions: list[int] = []
    outcome = _hash_watching_children(path, then=lambda pid: sessions.append(os.getsid(pid)))
    assert outcome["mapped"]
    (session,) = sessions
    assert session != os.getsid(0)
    path.unlink()


def test_a_file_truncated_under_the_childs_map_is_a_change_not_a_crash(tmp_path: Path) -> None:
    # The truncation kills the child with SIGBUS, as it would kill a process mapping the
    # file itself; hash_file reads the file after it, and finds it changed.
    _needs_nowait(tmp_path)
    path = tmp_path / "big.bin"
    _sparse(path, 1 << 30)
    outcome = _hash_watching_children(path, then=lambda _pid: os.truncate(path, 0))
    assert outcome["mapped"], f"the file was hashed without a child: {outcome}"
    assert isinstance(outcome.get("error"), FileChangedError)
    small = tmp_path / "after.bin"  # and a child still hashes the next file
    small.write_bytes(b"after")
    fd = os.open(small, os.O_RDONLY)
    try:
        assert hash_mapped(fd) == _b3(b"after")
    finally:
        os.close(fd)


def test_missing_file_and_directory_errors_propagate(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(str(tmp_path / "nope"))
    with pytest.raises(IsADirectoryError):
        hash_file(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_error_propagates(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(PermissionError):
        hash_file(str(path))


def test_hash_stream_matches_blake3() -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    assert hash_stream(io.BytesIO(data)) == _b3(data)
    assert hash_stream(io.BytesIO(data), chunk=READ_CHUNK) == _b3(data)
    assert hash_stream(io.BytesIO(b"")) == _b3(b"")


def test_new_hasher_is_blake3() -> None:
    for hasher in (new_hasher(), new_hasher(multithreaded=True)):
        hasher.update(b"abc")
        assert hasher.hexdigest() == _b3(b"abc")


def test_hashing_reader_read_in_chunks() -> None:
    data = os.urandom(100_000)
    seen: list[int] = []
    reader = HashingReader(io.BytesIO(data), on_read=seen.append)

    got = b""
    while chunk := reader.read(7_000):
        got += chunk

    assert got == data
    assert reader.digest() == _b3(data)
    assert reader.bytes_read == len(data)
    assert sum(seen) == len(data)
    assert all(n > 0 for n in seen)
    assert len(seen) == 15  # 14 full chunks and one short one; the final empty read is silent


def test_hashing_reader_readinto_and_copyfileobj(tmp_path: Path) -> None:
    data = os.urandom(SMALL_FILE * 2 + 3)
    src = tmp_path / "src"
    src.write_bytes(data)
    out = io.BytesIO()

    with HashingReader(open(src, "rb")) as reader:
        shutil.copyfileobj(reader, out, 65536)
        assert reader.digest() == _b3(data)
        assert reader.bytes_read == len(data)

    assert out.getvalue() == data
    assert reader.closed


def test_hashing_reader_readinto_from_raw_without_readinto() -> None:
    class OnlyRead:
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._buf.read(n)

        def close(self) -> None:
            self._buf.close()

    reader = HashingReader(OnlyRead(b"0123456789"))  # type: ignore[arg-type]
    buf = bytearray(4)
    parts = []
    while n := reader.readinto(buf):
        parts.append(bytes(buf[:n]))
    assert b"".join(parts) == b"0123456789"
    assert reader.digest() == _b3(b"0123456789")


def test_hashing_reader_readall_and_properties() -> None:
    raw = io.BytesIO(b"abc")
    reader = HashingReader(raw)
    assert reader.readable()
    assert not reader.seekable()
    assert reader.read() == b"abc"
    assert reader.read() == b""
    assert reader.digest() == _b3(b"abc")
    reader.close()
    assert raw.closed
    reader.close()  # closing twice is harmless


def test_cache_record_and_version_are_plain_values() -> None:
    sig = StatSig(1, 2, 3, 4, 0o100644)
    same = CacheRecord(StatSig(1, 2, 3, 4, 0o100644), _b3(b""), True)
    assert CacheRecord(sig, _b3(b""), True) == same
    assert CacheRecord(sig, _b3(b""), False) != same
    with pytest.raises(AttributeError):
        sig.size = 5  # type: ignore[misc]
    assert isinstance(HASH_VERSION, int)
