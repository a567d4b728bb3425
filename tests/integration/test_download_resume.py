"""Partial downloads left by a dead run, continued (or thrown away) by the next one.

The partial state is made the way a crash leaves it: a temp file holding the first blocks
of the download beside its destination, and the journal row vouching for the blocks that
reached the disk. A kill of a real process is tested against S3 in test_s3.py (where the
resumed file is checked against the object's stored blake3); here the remote is a plain
folder and memory://, an fsspec filesystem: neither stores hashes, so a resumed file is
checked by the version it was listed as and its size, as any download from them is.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.manifest.journal import TransferJournal
from fsync.model import Direction, RelPath, RunResult
from fsync.progress import NullReporter
from fsync.remote import open_remote
from fsync.transfer.download import RESUME_BLOCK
from fsynctest import partials

if TYPE_CHECKING:
    from pathlib import Path

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


def pull(remote_url: str, dst: Path, reporter: NullReporter | None = None) -> RunResult:
    opts = SyncOptions(local_root=str(dst), remote_url=remote_url, direction=Direction.PULL)
    return app.run(opts, reporter or NullReporter())


def leave_partial(dst: Path, remote_url: str, content: bytes, blocks: int) -> Path:
    """A partial pull of `big.bin` from `remote_url`, killed after `blocks` checkpoints."""
    remote = open_remote(remote_url)
    listed = remote.list().entries[RelPath("big.bin")]
    return partials.leave_partial(
        dst, "big.bin", remote.url, listed.fingerprint, content, blocks=blocks
    )


def assert_clean(dst: Path, data: bytes) -> None:
    assert (dst / "big.bin").read_bytes() == data
    assert sorted(os.listdir(dst)) == [".fsync", "big.bin"]
    with TransferJournal.open(str(dst)) as journal:
        assert journal.partials() == []


@pytest.fixture
def folder_remote(tmp_path: Path, data: bytes) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    return str(src)


def test_resumes_after_the_verified_blocks(folder_remote: str, tmp_path: Path, data: bytes) -> None:
    dst = tmp_path / "dst"
    leave_partial(dst, folder_remote, data, blocks=2)
    progress = Progress()
    result = pull(folder_remote, dst, progress)
    assert (result.downloaded, result.failed) == (1, 0)
    assert result.bytes_received == SIZE - 2 * RESUME_BLOCK
    assert progress.shown == SIZE  # the kept prefix counts: the bar reaches its end
    assert_clean(dst, data)


def test_a_damaged_block_is_fetched_again_with_all_after_it(
    folder_remote: str, tmp_path: Path, data: bytes
) -> None:
    dst = tmp_path / "dst"
    temp = leave_partial(dst, folder_remote, data, blocks=3)
    with open(temp, "r+b") as out:  # bit rot in the second block
        out.seek(RESUME_BLOCK + 77)
        out.write(bytes([data[RESUME_BLOCK + 77] ^ 1]))
    result = pull(folder_remote, dst)
    assert result.bytes_received == SIZE - RESUME_BLOCK
    assert_clean(dst, data)


def test_a_truncated_partial_keeps_only_whole_blocks(
    folder_remote: str, tmp_path: Path, data: bytes
) -> None:
    """The journal vouches for 3 blocks, but the disk lost the tail (no fsync reached it)."""
    dst = tmp_path / "dst"
    temp = leave_partial(dst, folder_remote, data, blocks=3)
    os.truncate(temp, 2 * RESUME_BLOCK + 10)
    result = pull(folder_remote, dst)
    assert result.bytes_received == SIZE - 2 * RESUME_BLOCK
    assert_clean(dst, data)


def test_a_partial_of_an_older_version_is_thrown_away(
    folder_remote: str, tmp_path: Path, data: bytes
) -> None:
    dst = tmp_path / "dst"
    leave_partial(dst, folder_remote, data, blocks=2)
    newer = data[:-1] + bytes([data[-1] ^ 1])
    (tmp_path / "src" / "big.bin").write_bytes(newer)
    result = pull(folder_remote, dst)
    assert (result.downloaded, result.bytes_received) == (1, SIZE)
    assert_clean(dst, newer)


def test_a_partial_of_a_big_version_goes_when_a_small_one_replaces_it(
    folder_remote: str, tmp_path: Path, data: bytes
) -> None:
    """The new version is small (never journaled): the old partial must not be orphaned."""
    dst = tmp_path / "dst"
    temp = leave_partial(dst, folder_remote, data, blocks=2)
    (tmp_path / "src" / "big.bin").write_bytes(b"small now")
    result = pull(folder_remote, dst)
    assert (result.downloaded, result.failed) == (1, 0)
    assert not temp.exists()
    assert_clean(dst, b"small now")


def test_a_partial_nobody_will_continue_is_removed(
    folder_remote: str, tmp_path: Path, data: bytes
) -> None:
    """The remote file was deleted after the partial was left: the partial goes too."""
    dst = tmp_path / "dst"
    temp = leave_partial(dst, folder_remote, data, blocks=1)
    os.unlink(tmp_path / "src" / "big.bin")
    (tmp_path / "src" / "other.txt").write_text("x")
    result = pull(folder_remote, dst)
    assert (result.downloaded, result.failed) == (1, 0)
    assert not temp.exists()
    assert sorted(os.listdir(dst)) == [".fsync", "other.txt"]
    with TransferJournal.open(str(dst)) as journal:
        assert journal.partials() == []


def test_memory_remote_resumes_through_fsspec(tmp_path: Path, data: bytes) -> None:
    """The ranged read of an fsspec filesystem continues the file, byte for byte."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    url = f"memory://resume-{os.getpid()}-{tmp_path.name}"
    push = SyncOptions(local_root=str(src), remote_url=url, direction=Direction.PUSH)
    assert app.run(push, NullReporter()).failed == 0
    dst = tmp_path / "dst"
    leave_partial(dst, url, data, blocks=2)
    result = pull(url, dst)
    assert (result.downloaded, result.bytes_received) == (1, SIZE - 2 * RESUME_BLOCK)
    assert_clean(dst, data)
