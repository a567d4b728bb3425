"""A second writer changes a file between fsync's listing and its write: the change survives.

The second writer is a progress listener (fsync's own `Reporter` hooks, no patching): it acts
once the plan is made (`plan_ready`, before any action runs) or as the file's transfer starts
(`file_started`, after the bytes are staged and before they are published). Whatever fsync
was about to overwrite or delete, on the remote or locally, is then no longer the version the
plan saw; the action is refused and reported as a conflict left for the next run (exit 3),
and the next run keeps both versions.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

from fsync import app
from fsync.config import SyncOptions
from fsync.model import Direction, RunResult
from fsync.progress import NullReporter, Reporter
from fsynctest.remotes import FolderTree, RemoteTree
from fsynctest.trees import listing, write

PUSH, PULL, SYNC = Direction.PUSH, Direction.PULL, Direction.SYNC


class SecondWriter(NullReporter):
    """Runs `act` once: when the plan is ready, or when the transfer of `path` starts."""

    def __init__(self, act: Callable[[], None], *, path: str | None = None) -> None:
        super().__init__()
        self.act, self.path, self.fired = act, path, False

    def _fire(self) -> None:
        if not self.fired:
            self.fired = True
            self.act()

    def plan_ready(self, files: int, total_bytes: int) -> None:
        if self.path is None:
            self._fire()

    def file_started(self, path: str, size: int) -> None:
        if path == self.path:
            self._fire()


def run(
    local: Path, tree: RemoteTree, direction: Direction, reporter: Reporter | None = None
) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=tree.url,
        direction=direction,
        storage_options=tree.storage_options,
    )
    return app.run(opts, reporter or NullReporter())


def synced(tmp_path: Path, tree: RemoteTree) -> Path:
    local = tmp_path / "local"
    write(local, {"doc.txt": "version 1", "gone.txt": "to be deleted", "keep.txt": "k"})
    assert run(local, tree, PUSH).uploaded == 3
    return local


def raced(result: RunResult, path: str) -> None:
    """`result` left `path` alone as a conflict: counted, reported, exit status 3."""
    assert (result.failed, result.conflicts, result.unresolved) == (0, 1, 1), result.errors
    assert int(app.exit_status(result)) == 3
    assert [n.path for n in result.notices if n.reason.startswith("conflict")] == [path]


def test_push_meets_a_remote_write_before_publishing(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    write(local, {"doc.txt": "version 2, mine"})
    writer = SecondWriter(lambda: remote_tree.write("doc.txt", b"theirs"), path="doc.txt")
    result = run(local, remote_tree, PUSH, writer)
    assert writer.fired
    raced(result, "doc.txt")
    assert remote_tree.read("doc.txt") == b"theirs"
    later = run(local, remote_tree, PUSH)
    assert (later.conflicts, later.failed, later.unresolved) == (1, 0, 0)
    assert {b"theirs", b"version 2, mine"} <= set(remote_tree.tree().values())


def test_push_meets_a_remote_write_before_deleting(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    (local / "gone.txt").unlink()
    writer = SecondWriter(lambda: remote_tree.write("gone.txt", b"theirs, still wanted"))
    raced(run(local, remote_tree, PUSH, writer), "gone.txt")
    assert remote_tree.read("gone.txt") == b"theirs, still wanted"


def test_pull_meets_a_local_write_before_replacing(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    remote_tree.write("doc.txt", b"version 2, theirs")
    writer = SecondWriter(
        lambda: write(local, {"doc.txt": "mine, written meanwhile"}), path="doc.txt"
    )
    result = run(local, remote_tree, PULL, writer)
    assert writer.fired
    raced(result, "doc.txt")
    assert listing(local)["doc.txt"] == b"mine, written meanwhile"
    later = run(local, remote_tree, PULL)
    assert (later.conflicts, later.failed, later.unresolved) == (1, 0, 0)
    assert {b"mine, written meanwhile", b"version 2, theirs"} <= set(listing(local).values())


def test_pull_meets_a_local_write_before_deleting(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    remote_tree.delete("gone.txt")
    writer = SecondWriter(lambda: write(local, {"gone.txt": "mine, still wanted"}))
    raced(run(local, remote_tree, PULL, writer), "gone.txt")
    assert listing(local)["gone.txt"] == b"mine, still wanted"


def rewrite_keeping_size_and_mtime(path: Path, text: str) -> None:
    """What a write within one timestamp tick, or a tool that restores the mtime, leaves:
    the same size and mtime, new content (ctime moves)."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_pull_meets_a_same_size_same_mtime_local_write(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    remote_tree.write("doc.txt", b"version 2")
    remote_tree.delete("gone.txt")

    def both() -> None:
        rewrite_keeping_size_and_mtime(local / "doc.txt", "MINE!!!!!")
        rewrite_keeping_size_and_mtime(local / "gone.txt", "mine, wanted!")

    result = run(local, remote_tree, PULL, SecondWriter(both))
    assert (result.conflicts, result.unresolved, result.downloaded, result.deleted) == (2, 2, 0, 0)
    assert listing(local)["doc.txt"] == b"MINE!!!!!"
    assert listing(local)["gone.txt"] == b"mine, wanted!"


def test_pull_meets_a_local_file_where_it_would_rename(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = synced(tmp_path, remote_tree)
    remote_tree.rename("doc.txt", "renamed.txt")
    writer = SecondWriter(lambda: write(local, {"renamed.txt": "mine, just created"}))
    result = run(local, remote_tree, PULL, writer)
    raced(result, "renamed.txt")
    assert listing(local)["renamed.txt"] == b"mine, just created"
    assert listing(local)["doc.txt"] == b"version 1"


def test_sync_meets_writers_on_both_sides(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = synced(tmp_path, remote_tree)
    write(local, {"doc.txt": "mine, to send"})
    remote_tree.write("keep.txt", b"theirs, to fetch")

    def both() -> None:
        remote_tree.write("doc.txt", b"theirs, written meanwhile")
        write(local, {"keep.txt": "mine, written meanwhile"})

    result = run(local, remote_tree, SYNC, SecondWriter(both))
    assert (result.failed, result.conflicts, result.unresolved) == (0, 2, 2)
    assert remote_tree.read("doc.txt") == b"theirs, written meanwhile"
    assert listing(local)["keep.txt"] == b"mine, written meanwhile"
    later = run(local, remote_tree, SYNC)
    assert (later.failed, later.unresolved) == (0, 0)
    assert listing(local) == remote_tree.tree()
    assert {b"mine, to send", b"theirs, written meanwhile", b"mine, written meanwhile"} <= set(
        remote_tree.tree().values()
    )


class Editor(NullReporter):
    """Saves each file the way editors do (write beside, rename over) at a random moment
    just after its download's last bytes arrive: around fsync's check of the local file
    and its rename of the download over it."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.random = random.Random(7)
        self.left: dict[str, int] = {}
        self.timers: list[threading.Timer] = []

    def file_started(self, path: str, size: int) -> None:
        self.left[path] = size

    def advance(self, path: str, nbytes: int) -> None:
        self.left[path] -= nbytes
        if self.left[path] == 0:
            timer = threading.Timer(self.random.uniform(0, 0.003), self.save, (path,))
            self.timers.append(timer)
            timer.start()

    def save(self, path: str) -> None:
        tmp = self.folder / f".{path}.swp"
        tmp.write_text(f"edited here: {path}")
        tmp.rename(self.folder / path)


def test_a_pull_never_replaces_an_edit_made_while_it_runs(tmp_path: Path) -> None:
    """A save landing between the check before each replacement and the rename (a window of
    microseconds to milliseconds) must be kept too, as a conflict copy: every edit
    survives, in the file or beside it."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    names = [f"f{i}.txt" for i in range(300)]
    write(local, {name: f"synced {name} " * 3000 for name in names})
    assert run(local, FolderTree(remote), PUSH).failed == 0
    write(remote, {name: f"changed there {name} " * 3000 for name in names})
    editor = Editor(local)
    result = run(local, FolderTree(remote), PULL, editor)
    for timer in editor.timers:
        timer.join()
    assert result.failed == 0, result.errors
    kept = {name: (local / name).read_text() for name in os.listdir(local) if name[0] == "f"}
    for name in names:
        stem = name.removesuffix(".txt")
        versions = {text for kept_name, text in kept.items() if kept_name.split(".")[0] == stem}
        assert f"edited here: {name}" in versions, f"the edit of {name} is lost"
