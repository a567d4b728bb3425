"""Partial downloads left by a dead run, continued (or thrown away) by the next one.

The partial state is made the way a crash leaves it: a temp file holding the first blocks
of the download beside its destination, and the journal row vouching for the blocks that
reached the disk. A kill of a real process is tested in test_s3.py. Here the remote is a
bucket on moto that `fsync push` filled (objects carrying their blake3: what lets a resumed
file be checked whole), and, for what is never continued, a plain folder and memory://.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.manifest.journal import TransferJournal
from fsync.model import Direction, RelPath, RunResult
from fsync.progress import NullReporter
from fsync.remote import open_remote
from fsync.transfer.download import RESUME_BLOCK
from fsynctest import partials
from fsynctest.remotes import empty_bucket, new_bucket

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import S3Server

SIZE = 3 * RESUME_BLOCK + 12345


@pytest.fixture
def data() -> bytes:
    return random.Random(11).randbytes(SIZE)


class Progress(NullReporter):
    """Adds up the bytes the progress display is told about."""

    def __init__(self) -> None:
        super().__init__()
        self.shown = 0

    def advance(self, path: str, nbytes: int) -> None:
        self.shown += nbytes


@dataclass
class Store:
    """A remote that `fsync push` keeps equal to the folder `src`."""

    url: str
    src: Path
    options: dict[str, Any]

    def put(self, files: dict[str, bytes]) -> None:
        """Make `src` hold exactly `files` and push it (deletes included)."""
        for old in self.src.iterdir():
            if old.is_file():
                old.unlink()
        for name, content in files.items():
            (self.src / name).write_bytes(content)
        opts = SyncOptions(
            local_root=str(self.src),
            remote_url=self.url,
            direction=Direction.PUSH,
            storage_options=self.options,
            force=True,
        )
        assert app.run(opts, NullReporter()).failed == 0

    def pull(self, dst: Path, reporter: NullReporter | None = None) -> RunResult:
        opts = SyncOptions(
            local_root=str(dst),
            remote_url=self.url,
            direction=Direction.PULL,
            storage_options=self.options,
        )
        return app.run(opts, reporter or NullReporter())

    def leave_partial(self, dst: Path, content: bytes, blocks: int) -> Path:
        """A partial pull of `big.bin`, killed after `blocks` checkpoints."""
        remote = open_remote(self.url, storage_options=self.options)
        listed = remote.list().entries[RelPath("big.bin")]
        return partials.leave_partial(
            dst, "big.bin", remote.url, listed.fingerprint, content, blocks=blocks
        )


@pytest.fixture
def store(moto_server: S3Server, tmp_path: Path, data: bytes) -> Iterator[Store]:
    client = moto_server.boto3_client()
    bucket = new_bucket(client)
    src = tmp_path / "src"
    src.mkdir()
    s = Store(f"s3://{bucket}/tree", src, moto_server.storage_options())
    s.put({"big.bin": data})
    try:
        yield s
    finally:
        empty_bucket(client, bucket)
        client.close()


def assert_clean(dst: Path, data: bytes) -> None:
    assert (dst / "big.bin").read_bytes() == data
    assert sorted(os.listdir(dst)) == [".fsync", "big.bin"]
    with TransferJournal.open(str(dst)) as journal:
        assert journal.partials() == []


def test_resumes_after_the_verified_blocks(store: Store, tmp_path: Path, data: bytes) -> None:
    dst = tmp_path / "dst"
    store.leave_partial(dst, data, blocks=2)
    progress = Progress()
    result = store.pull(dst, progress)
    assert (result.downloaded, result.failed) == (1, 0)
    assert result.bytes_received == SIZE - 2 * RESUME_BLOCK
    assert progress.shown == SIZE  # the kept prefix counts: the bar reaches its end
    assert_clean(dst, data)


def test_a_damaged_block_is_fetched_again_with_all_after_it(
    store: Store, tmp_path: Path, data: bytes
) -> None:
    dst = tmp_path / "dst"
    temp = store.leave_partial(dst, data, blocks=3)
    with open(temp, "r+b") as out:  # bit rot in the second block
        out.seek(RESUME_BLOCK + 77)
        out.write(bytes([data[RESUME_BLOCK + 77] ^ 1]))
    result = store.pull(dst)
    assert result.bytes_received == SIZE - RESUME_BLOCK
    assert_clean(dst, data)


def test_a_truncated_partial_keeps_only_whole_blocks(
    store: Store, tmp_path: Path, data: bytes
) -> None:
    """The journal vouches for 3 blocks, but the disk lost the tail (no fsync reached it)."""
    dst = tmp_path / "dst"
    temp = store.leave_partial(dst, data, blocks=3)
    os.truncate(temp, 2 * RESUME_BLOCK + 10)
    result = store.pull(dst)
    assert result.bytes_received == SIZE - 2 * RESUME_BLOCK
    assert_clean(dst, data)


def test_a_partial_of_an_older_version_is_thrown_away(
    store: Store, tmp_path: Path, data: bytes
) -> None:
    dst = tmp_path / "dst"
    store.leave_partial(dst, data, blocks=2)
    newer = data[:-1] + bytes([data[-1] ^ 1])
    store.put({"big.bin": newer})
    result = store.pull(dst)
    assert (result.downloaded, result.bytes_received) == (1, SIZE)
    assert_clean(dst, newer)


def test_a_partial_of_a_big_version_goes_when_a_small_one_replaces_it(
    store: Store, tmp_path: Path, data: bytes
) -> None:
    """The new version is small (never journaled): the old partial must not be orphaned."""
    dst = tmp_path / "dst"
    temp = store.leave_partial(dst, data, blocks=2)
    store.put({"big.bin": b"small now"})
    result = store.pull(dst)
    assert (result.downloaded, result.failed) == (1, 0)
    assert not temp.exists()
    assert_clean(dst, b"small now")


def test_a_partial_nobody_will_continue_is_removed(
    store: Store, tmp_path: Path, data: bytes
) -> None:
    """The remote file was deleted after the partial was left: the partial goes too."""
    dst = tmp_path / "dst"
    temp = store.leave_partial(dst, data, blocks=1)
    store.put({"other.txt": b"x"})
    result = store.pull(dst)
    assert (result.downloaded, result.failed) == (1, 0)
    assert not temp.exists()
    assert sorted(os.listdir(dst)) == [".fsync", "other.txt"]
    with TransferJournal.open(str(dst)) as journal:
        assert journal.partials() == []


@pytest.mark.parametrize("kind", ["folder", "memory"])
def test_a_store_without_hashes_never_continues_a_partial(
    tmp_path: Path, data: bytes, kind: str
) -> None:
    """Its version token is size and mtime: a file rewritten in place with both kept (here
    `touch -r`; a coarse clock does it too) made the resumed prefix of the old version and
    the rest of the new one a file of neither, published with exit 0 and never repaired."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    url = str(src) if kind == "folder" else f"memory://resume-{os.getpid()}-{tmp_path.name}"
    if kind == "memory":
        push = SyncOptions(local_root=str(src), remote_url=url, direction=Direction.PUSH)
        assert app.run(push, NullReporter()).failed == 0
    store = Store(url, src, {})
    dst = tmp_path / "dst"
    temp = store.leave_partial(dst, data, blocks=2)
    if kind == "folder":
        stamp = os.stat(src / "big.bin")
        newer = b"NEW!" + data[4:]  # the part the partial holds differs
        (src / "big.bin").write_bytes(newer)
        os.utime(src / "big.bin", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    else:
        newer = data
    result = store.pull(dst)
    assert (result.downloaded, result.failed, result.bytes_received) == (1, 0, SIZE)
    assert not temp.exists()
    assert_clean(dst, newer)
