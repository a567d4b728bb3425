"""`--backup-dir` end to end, on every backend: what a run overwrites or deletes is kept there.

The backup dir may lie beside the remote on its store (versions go there server-side, and
local versions are uploaded to it) or be a local folder (local versions are renamed into it,
remote ones downloaded). A version keeps its relative path; a taken name gets a timestamp
before the extension; a backup dir inside a synced tree is left out of the sync.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.errors import ConfigError
from fsync.model import Direction, RunResult
from fsync.progress import NullReporter
from fsynctest.remotes import RemoteTree
from fsynctest.trees import listing, write

PUSH, PULL, SYNC = Direction.PUSH, Direction.PULL, Direction.SYNC
FILES = {"a.txt": "alpha", "dir/b.txt": "bravo", "c.txt": "charlie"}


def run(local: Path, tree: RemoteTree, direction: Direction, **knobs: object) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=tree.url,
        direction=direction,
        storage_options=tree.storage_options,
        **knobs,  # type: ignore[arg-type]
    )
    result = app.run(opts, NullReporter())
    assert result.failed == 0, result.errors
    return result


def synced(tmp_path: Path, tree: RemoteTree) -> Path:
    local = tmp_path / "local"
    write(local, FILES)
    assert run(local, tree, PUSH).uploaded == len(FILES)
    return local


def backup_of(kind: str, tmp_path: Path, tree: RemoteTree) -> tuple[str, RemoteTree | Path]:
    """(URL to pass, where to look): beside the remote, or a local folder."""
    if kind == "beside":
        beside = tree.sibling("backup")
        return beside.url, beside
    return str(tmp_path / "kept"), tmp_path / "kept"


def kept(where: RemoteTree | Path) -> dict[str, bytes]:
    if isinstance(where, Path):
        return {k: v for k, v in listing(where).items() if isinstance(v, bytes)}
    return where.tree()


@pytest.mark.parametrize("kind", ["beside", "folder"])
def test_push_keeps_what_it_deletes_and_overwrites(
    kind: str, remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    url, where = backup_of(kind, tmp_path, remote_tree)
    (local / "a.txt").unlink()
    write(local, {"dir/b.txt": "bravo, second edition"})
    result = run(local, remote_tree, PUSH, backup_dir=url)
    assert (result.deleted, result.uploaded) == (1, 1)
    assert kept(where) == {"a.txt": b"alpha", "dir/b.txt": b"bravo"}
    assert remote_tree.tree() == {"dir/b.txt": b"bravo, second edition", "c.txt": b"charlie"}


@pytest.mark.parametrize("kind", ["beside", "folder"])
def test_pull_keeps_what_it_deletes_and_overwrites(
    kind: str, remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    url, where = backup_of(kind, tmp_path, remote_tree)
    remote_tree.delete("a.txt")
    remote_tree.write("dir/b.txt", b"bravo, their edition")
    result = run(local, remote_tree, PULL, backup_dir=url)
    assert (result.deleted, result.downloaded) == (1, 1)
    assert kept(where) == {"a.txt": b"alpha", "dir/b.txt": b"bravo"}
    assert listing(local) == {"dir/b.txt": b"bravo, their edition", "c.txt": b"charlie"}


@pytest.mark.parametrize("kind", ["beside", "folder"])
def test_sync_keeps_versions_from_both_sides(
    kind: str, remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    url, where = backup_of(kind, tmp_path, remote_tree)
    (local / "a.txt").unlink()  # goes to the remote: the remote version is kept
    remote_tree.write("dir/b.txt", b"bravo, their edition")  # comes here: ours is kept
    result = run(local, remote_tree, SYNC, backup_dir=url)
    assert (result.deleted, result.downloaded, result.uploaded) == (1, 1, 0)
    assert kept(where) == {"a.txt": b"alpha", "dir/b.txt": b"bravo"}
    assert (
        listing(local)
        == remote_tree.tree()
        == {
            "dir/b.txt": b"bravo, their edition",
            "c.txt": b"charlie",
        }
    )


def test_a_taken_name_gets_a_timestamp(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    url, where = backup_of("beside", tmp_path, remote_tree)
    for edition in ("second", "third"):
        write(local, {"a.txt": f"alpha, {edition} edition"})
        assert run(local, remote_tree, PUSH, backup_dir=url).uploaded == 1
    names = kept(where)
    assert names.pop("a.txt") == b"alpha"
    ((name, content),) = names.items()
    assert re.fullmatch(r"a\.\d{8}-\d{6}\.txt", name), name
    assert content == b"alpha, second edition"


def test_a_backup_dir_inside_the_trees_is_not_synced(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    write(local, {"a.txt": "alpha, second edition"})
    run(local, remote_tree, PUSH, backup_dir=f"{remote_tree.url}/.trash")
    assert remote_tree.tree()[".trash/a.txt"] == b"alpha"
    remote_tree.write("c.txt", b"charlie, their edition")
    result = run(local, remote_tree, PULL, backup_dir=str(local / ".trash"))
    assert result.downloaded == 1
    assert listing(local)[".trash/c.txt"] == b"charlie"
    # Each side's .trash stays out of later runs that name it, so nothing crosses over.
    again = run(local, remote_tree, SYNC, backup_dir=str(local / ".trash"))
    assert (again.uploaded, again.downloaded, again.deleted, again.unresolved) == (0, 0, 0, 0)
    assert ".trash/a.txt" not in listing(local)
    assert ".trash/c.txt" not in remote_tree.tree()


def test_a_backup_dir_holding_a_tree_is_refused(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    for url in (str(tmp_path), str(local), remote_tree.url):
        with pytest.raises(ConfigError, match="holds"):
            run(local, remote_tree, PUSH, backup_dir=url)


def test_a_backup_dir_on_another_store_is_refused(tmp_path: Path) -> None:
    local = tmp_path / "local"
    write(local, FILES)
    opts = SyncOptions(
        str(local), "memory://fsync-test-elsewhere", PUSH, backup_dir="s3://bucket/backup"
    )
    with pytest.raises(ConfigError, match="neither a local folder nor on the same store"):
        app.run(opts, NullReporter())
