"""Deferred folder syncs: one filesystem sync per batch makes every rename in it durable."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from fsync.durability import _SYNCFS, Durability, _reports_errors
from fsync.fileops import fsync_file, fsync_folder
from fsynctest.trees import held_open

if TYPE_CHECKING:
    from pathlib import Path


class CountingSync:
    """The real syncfs where there is one, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if _SYNCFS is not None:
            _SYNCFS(fd)


class Synced:
    """The real per-file and per-folder syncs, recording what they were given."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.folders: list[str] = []

    def file(self, path: str) -> None:
        self.files.append(path)
        fsync_file(path)

    def folder(self, path: str) -> None:
        self.folders.append(path)
        fsync_folder(path)

    def durability(self, root: Path, syncfs: CountingSync | None) -> Durability:
        return Durability(str(root), syncfs=syncfs, sync_file=self.file, sync_folder=self.folder)


def test_one_sync_per_flush_for_all_folders_and_none_without_changes(tmp_path: Path) -> None:
    sync = CountingSync()
    durable = Durability(str(tmp_path), syncfs=sync)
    durable.flush()
    assert sync.calls == 0
    for name in ("a", "b/c", "d"):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        (folder / "f").write_bytes(b"x")
        durable.renamed(str(folder))
    durable.renamed(str(tmp_path / "pruned-already"))
    durable.flush()
    assert sync.calls == 1
    durable.flush()
    assert sync.calls == 1


def test_a_root_that_vanished_still_flushes_folder_by_folder(tmp_path: Path) -> None:
    sync, synced = CountingSync(), Synced()
    durable = synced.durability(tmp_path / "gone", sync)
    durable.renamed(str(tmp_path))
    durable.flush()
    assert (sync.calls, synced.folders, synced.files) == (0, [str(tmp_path)], [])


def test_without_syncfs_each_staged_file_and_touched_folder_is_synced(tmp_path: Path) -> None:
    synced = Synced()
    durable = synced.durability(tmp_path, None)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"data")
    durable.staged(str(tmp_path / "sub" / "f"))
    durable.renamed(str(tmp_path))
    durable.renamed(str(tmp_path / "sub"))
    durable.flush()
    assert synced.files == [str(tmp_path / "sub" / "f")]
    assert synced.folders == [str(tmp_path), str(tmp_path / "sub")]
    durable.flush()  # each once
    assert (len(synced.files), len(synced.folders)) == (1, 2)


def test_with_syncfs_only_another_filesystem_is_synced_on_its_own(tmp_path: Path) -> None:
    sync, synced = CountingSync(), Synced()
    durable = synced.durability(tmp_path, sync)
    (tmp_path / "f").write_bytes(b"data")
    durable.staged(str(tmp_path / "f"))
    durable.renamed(str(tmp_path))
    durable.flush()
    assert (sync.calls, synced.files, synced.folders) == (1, [], [])


def test_a_staged_file_alone_takes_a_sync(tmp_path: Path) -> None:
    sync = CountingSync()
    durable = Durability(str(tmp_path), syncfs=sync)
    (tmp_path / "staged").write_bytes(b"bytes not yet synced")
    durable.staged(str(tmp_path / "staged"))
    durable.flush()
    assert sync.calls == 1
    durable.flush()
    assert sync.calls == 1


def test_without_syncfs_a_staged_file_discarded_meanwhile_is_no_error(
    tmp_path: Path,
) -> None:
    durable = Durability(str(tmp_path), syncfs=None)
    kept = tmp_path / "kept"
    kept.write_bytes(b"data")
    kept.chmod(0o600)
    durable.staged(str(kept))
    durable.staged(str(tmp_path / "discarded meanwhile"))
    durable.flush()
    assert kept.read_bytes() == b"data"


def test_syncfs_is_trusted_only_where_it_reports_lost_writes() -> None:
    assert _reports_errors("5.8.0")
    assert _reports_errors("6.18.44-fc-v595")
    assert not _reports_errors("5.4.0-150-generic")
    assert not _reports_errors("4.18.0-513.el8.x86_64")
    assert not _reports_errors("")


def test_staging_is_batched_only_on_a_local_disk_filesystem(tmp_path: Path) -> None:
    """procfs is no disk: there `syncfs` says nothing of files, so nothing may be staged."""
    assert not Durability("/proc/no/such/root").batches()
    assert not Durability(str(tmp_path), syncfs=None).batches()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_root_is_held_while_a_write_is_in_progress_and_let_go_after(tmp_path: Path) -> None:
    # A long `fsync watch` must not keep the disk it writes to from being unmounted between
    # its batches; but a write must never outlive the descriptor its sync reports errors on.
    sync = CountingSync()
    durable = Durability(str(tmp_path), syncfs=sync)
    durable.renamed(str(tmp_path))  # the previous batch, to be flushed meanwhile
    with durable.changing() as held:
        assert held
        (tmp_path / "one").write_bytes(b"written while another batch is flushed")
        durable.flush()
        assert (sync.calls, len(held_open(tmp_path))) == (1, 1)  # this write still going on
        durable.staged(str(tmp_path / "one"))
    assert len(held_open(tmp_path)) == 1  # staged, not synced yet
    durable.flush()
    assert (sync.calls, len(held_open(tmp_path))) == (2, 0)
    with durable.changing():  # the next write opens it again
        assert len(held_open(tmp_path)) == 1
        durable.renamed(str(tmp_path))
    durable.flush()
    assert (sync.calls, len(held_open(tmp_path))) == (3, 0)
    with durable.changing():
        pass  # a write that failed: nothing noted, nothing to sync
    durable.flush()
    assert (sync.calls, len(held_open(tmp_path))) == (3, 0)
