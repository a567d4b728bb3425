"""hashing: digests of files and streams, and the stat guard around file hashing."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from blake3 import blake3

from fsync.errors import FileChangedError
from fsync.hashing import (
    HASH_VERSION,
    READ_CHUNK,
    SMALL_FILE,
    CacheRecord,
    HashingReader,
    StatSig,
    hash_file,
    hash_stream,
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
