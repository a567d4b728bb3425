"""`fsync sync` (two-way) through `app.run`, on every backend: changes flow both ways in one
run, a first run is safe, renames on either side are moves, and a settled pair plans nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fsync import app, planner_sync
from fsync.config import SyncOptions
from fsync.errors import ConfigError, SafetyAbort
from fsync.hashing import hash_file
from fsync.model import (
    ActionRecord,
    BaseEntry,
    ConflictPolicy,
    Digest,
    Direction,
    LocalEntry,
    RelPath,
    RunResult,
    SyncPolicy,
)
from fsync.progress import NullReporter
from fsync.remote.local import LocalRemote
from fsync.transfer.engine import execute
from fsync.transfer.outcome import EngineOptions, Outcome
from fsynctest.remotes import RemoteTree
from fsynctest.trees import listing, write

SYNC = Direction.SYNC


def sync(local: Path, tree: RemoteTree, direction: Direction = SYNC, **knobs: object) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=tree.url,
        direction=direction,
        storage_options=tree.storage_options,
        **knobs,  # type: ignore[arg-type]
    )
    return app.run(opts, NullReporter())


def planned(local: Path, tree: RemoteTree) -> list[str]:
    """The actions a sync would take now (a dry run), as `kind path`."""
    records: list[ActionRecord] = []
    opts = SyncOptions(
        str(local), tree.url, SYNC, dry_run=True, storage_options=tree.storage_options
    )
    app.run(opts, NullReporter(), on_action=records.append)
    return [f"{r.action} {r.path}" for r in records]


def files(local: Path) -> dict[str, bytes]:
    return {k: v for k, v in listing(local).items() if isinstance(v, bytes)}


def in_step(local: Path, tree: RemoteTree) -> dict[str, bytes]:
    """The files both sides hold, after checking they hold the same and nothing is left to
    do."""
    here = files(local)
    assert here == tree.tree()
    assert planned(local, tree) == []
    return here


def test_a_first_run_deletes_nothing_adopts_twins_and_keeps_both_of_a_clash(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    write(local, {"only-here.txt": "mine", "twin.txt": "same", "clash.txt": "mine"})
    remote_tree.write("only-there.txt", b"theirs")
    remote_tree.write("twin.txt", b"same")
    remote_tree.write("clash.txt", b"theirs, longer")
    dry = sync(local, remote_tree, dry_run=True)
    result = sync(local, remote_tree)
    # Two copies one way or the other, the clash's winner (the newer, else the local), and
    # the loser's conflict copy, sent or fetched to the other side.
    assert (result.uploaded + result.downloaded, result.deleted) == (4, 0)
    assert (dry.uploaded, dry.downloaded) == (result.uploaded, result.downloaded)
    assert (dry.bytes_sent, dry.bytes_received) == (result.bytes_sent, result.bytes_received)
    assert (result.conflicts, result.failed, result.unresolved) == (1, 0, 0)
    assert files(local) == remote_tree.tree()
    assert [k for k in files(local) if k.startswith("twin")] == ["twin.txt"]
    clash = {k: v for k, v in files(local).items() if k.startswith("clash")}
    assert sorted(clash.values()) == [b"mine", b"theirs, longer"]
    assert planned(local, remote_tree) == []


def test_changes_on_both_sides_flow_in_one_run(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = tmp_path / "local"
    write(local, {"a.txt": "a", "b.txt": "b", "c.txt": "c", "d/e.txt": "e"})
    sync(local, remote_tree)
    write(local, {"a.txt": "a, edited here", "new-here.txt": "n"})
    (local / "b.txt").unlink()
    remote_tree.write("c.txt", b"c, edited there")
    remote_tree.write("d/new-there.txt", b"m")
    remote_tree.delete("d/e.txt")
    result = sync(local, remote_tree)
    assert (result.uploaded, result.downloaded, result.deleted) == (2, 2, 2)
    assert (result.conflicts, result.failed) == (0, 0)
    assert in_step(local, remote_tree) == {
        "a.txt": b"a, edited here",
        "new-here.txt": b"n",
        "c.txt": b"c, edited there",
        "d/new-there.txt": b"m",
    }


@pytest.mark.parametrize("direction", [SYNC, Direction.PULL])
def test_rules_that_arrive_from_the_remote_hold_in_the_run_that_brings_them(
    remote_tree: RemoteTree, tmp_path: Path, direction: Direction
) -> None:
    """Another machine adds `secrets/` to `.fsyncignore`. The local rules were read as the
    run started, so the sync that brought the new rule down sent `secrets/key.pem` in the
    same run (and failed on a name there no remote holds), and a pull `--mirror` deleted it
    here; both leave it alone now, and bring the rules down."""
    local = tmp_path / "local"
    write(local, {".fsyncignore": "*.log\n", "a.txt": "a"})
    sync(local, remote_tree)
    rules = b"*.log\nsecrets/\n"
    remote_tree.write(".fsyncignore", rules)
    mine = {"secrets/key.pem": b"mine alone", "secrets/bad\\name": b"no remote holds it"}
    write(local, mine)
    result = sync(local, remote_tree, direction=direction, mirror=direction is Direction.PULL)
    assert (result.uploaded, result.downloaded, result.deleted, result.failed) == (0, 1, 0, 0)
    assert remote_tree.tree() == {".fsyncignore": rules, "a.txt": b"a"}
    assert files(local) == {".fsyncignore": rules, "a.txt": b"a", **mine}
    assert planned(local, remote_tree) == []


def test_a_conflict_copy_of_the_rules_holds_until_it_is_deleted(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    """Both machines change `.fsyncignore` at once: keep-both leaves one version under the
    name and the other in a conflict copy, whose rules held for no run after: the next sync
    sent what they leave out. A copy's rules hold until the user merges and deletes it."""
    local = tmp_path / "local"
    write(local, {".fsyncignore": "*.tmp\n", "a.txt": "a"})
    sync(local, remote_tree)
    write(local, {".fsyncignore": "*.tmp\nprivate/\n", "private/diary": "mine"})
    remote_tree.write(".fsyncignore", b"*.tmp\nsecrets/\n")
    write(local, {"secrets/key.pem": "mine too"})
    first = sync(local, remote_tree)
    assert first.conflicts == 1
    assert sync(local, remote_tree).uploaded == 0
    sent = remote_tree.tree()
    assert not any(p.startswith(("private/", "secrets/")) for p in sent), sent
    assert planned(local, remote_tree) == []


@pytest.mark.parametrize("direction", [SYNC, Direction.PUSH, Direction.PULL])
def test_the_same_change_on_both_sides_is_recorded_not_a_conflict(
    remote_tree: RemoteTree, tmp_path: Path, direction: Direction
) -> None:
    """Both sides edited to the same bytes (a copy made by hand, or a run killed after its
    copy and before its record) is DESIGN's "record only". A new size proves a change from
    the base, not a change from the other side: on a remote without stored hashes the
    content must still be compared, else each such file was a conflict with a copy."""
    local = tmp_path / "local"
    write(local, {"a.txt": "orig", "b.txt": "b"})
    sync(local, remote_tree)
    write(local, {"a.txt": "the same new, longer content"})
    remote_tree.write("a.txt", b"the same new, longer content")
    result = sync(local, remote_tree, direction=direction)
    assert (result.conflicts, result.uploaded, result.downloaded) == (0, 0, 0)
    assert in_step(local, remote_tree) == {"a.txt": b"the same new, longer content", "b.txt": b"b"}


@pytest.mark.parametrize("direction", [SYNC, Direction.PUSH, Direction.PULL])
def test_a_file_replaced_here_by_a_link_is_left_alone_on_both_sides(
    remote_tree: RemoteTree, tmp_path: Path, direction: Direction
) -> None:
    """fsync does not follow the link (by default), so the path holds nothing it syncs: taken
    for deleted, a push deleted the remote copy, and a remote edit met the link at every run
    as "the local file changed during the run" (exit 3, which no policy resolved)."""
    local = tmp_path / "local"
    write(local, {"a": "v0", "b": "B"})
    sync(local, remote_tree)
    (local / "a").unlink()
    (local / "a").symlink_to("b")
    remote_tree.write("a", b"edited there")
    for _ in range(2):
        result = sync(local, remote_tree, direction=direction)
        assert (result.failed, result.conflicts, result.unresolved) == (0, 0, 0), result.errors
        assert app.exit_status(result) == 0
    assert (local / "a").is_symlink()
    assert remote_tree.tree()["a"] == b"edited there"


def test_renames_on_either_side_move_instead_of_copying(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    write(local, {"docs/a.txt": "alpha" * 1000, "b.txt": "bravo" * 1000, "k.txt": "k"})
    sync(local, remote_tree)
    (local / "docs").rename(local / "papers")  # a local folder rename
    remote_tree.rename("b.txt", "archive/b.txt")  # a remote rename
    result = sync(local, remote_tree)
    assert (result.moved, result.uploaded, result.downloaded, result.deleted) == (2, 0, 0, 0)
    assert (result.bytes_sent, result.bytes_received) == (0, 0)
    assert set(in_step(local, remote_tree)) == {"papers/a.txt", "archive/b.txt", "k.txt"}


def test_skip_leaves_a_conflict_for_later(remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = tmp_path / "local"
    write(local, {"doc.txt": "v1"})
    sync(local, remote_tree)
    write(local, {"doc.txt": "mine"})
    remote_tree.write("doc.txt", b"theirs")
    result = sync(local, remote_tree, on_conflict=ConflictPolicy.SKIP)
    assert (result.unresolved, int(app.exit_status(result))) == (1, 3)
    assert (files(local)["doc.txt"], remote_tree.read("doc.txt")) == (b"mine", b"theirs")
    assert sync(local, remote_tree).conflicts == 1  # keep-both resolves it next time
    assert files(local) == remote_tree.tree()


@pytest.mark.parametrize("side", ["local", "remote"])
def test_an_emptied_side_stops_the_run(side: str, remote_tree: RemoteTree, tmp_path: Path) -> None:
    local = tmp_path / "local"
    write(local, {"a.txt": "a", "b.txt": "b"})
    sync(local, remote_tree)
    for name in ("a.txt", "b.txt"):
        if side == "local":
            (local / name).unlink()
        else:
            remote_tree.delete(name)
    with pytest.raises(SafetyAbort, match=f"the {side} side is empty"):
        sync(local, remote_tree)
    survivors = remote_tree.tree() if side == "local" else files(local)
    assert set(survivors) == {"a.txt", "b.txt"}
    assert sync(local, remote_tree, force=True).deleted == 2
    assert files(local) == remote_tree.tree() == {}


def test_mirror_has_no_meaning_for_sync(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    opts = SyncOptions(str(tmp_path / "local"), f"file://{tmp_path / 'remote'}", SYNC, mirror=True)
    with pytest.raises(ConfigError, match="--mirror"):
        app.run(opts, NullReporter())


class ListSink:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def commit(self, outcomes: list[Outcome]) -> None:
        self.outcomes.extend(outcomes)


def test_a_conflict_copy_never_takes_a_name_the_plan_acts_on(tmp_path: Path) -> None:
    """The copy's name is stamped to the second: a path of the same run with that name (here
    a base entry gone from both sides, which the run forgets) must not be reused, or the
    run would record the copy and forget it in one go."""
    local, remote_root = tmp_path / "local", tmp_path / "remote"
    write(local, {"a.txt": "mine"})
    write(remote_root, {"a.txt": "theirs, longer"})
    remote = LocalRemote(str(remote_root))
    here = {RelPath("a.txt"): _entry(local / "a.txt")}
    taken = RelPath("a.conflict-20250101-000000-box.txt")
    base = {taken: BaseEntry(1, Digest("gone"), "1:1", 1)}
    plan = planner_sync.plan_sync(here, remote.list().entries, base, SyncPolicy(SYNC))
    assert sorted((a.path, a.kind.value, a.keep_copy) for a in plan.actions)[0] == (
        "a.conflict-20250101-000000-box.txt",
        "forget",
        False,
    )
    assert [a.path for a in plan.actions if a.keep_copy and a.share_copy] == ["a.txt"]
    clock = datetime(2025, 1, 1, tzinfo=UTC)
    options = EngineOptions(host="box", clock=lambda: clock)
    sink = ListSink()
    result = execute(plan, str(local), remote, sink, NullReporter(), options=options)
    assert (result.failed, result.conflicts) == (0, 1)
    copies = [o.path for o in sink.outcomes if o.base is not None and o.path != "a.txt"]
    assert copies == ["a.conflict-20250101-000000-box-2.txt"]
    assert files(local) == {k: v for k, v in listing(remote_root).items() if isinstance(v, bytes)}


def _entry(path: Path) -> LocalEntry:
    digest, sig = hash_file(str(path))
    return LocalEntry(sig.size, sig.mtime_ns, digest)


def _change_type_here(local: Path, tree: RemoteTree, swap: str) -> tuple[str, str]:
    """Sync `local` with a file `x` (or `d/f1`), then turn it into a folder with `x/y` in it
    (or turn folder `d` into a file); returns the old path and the new one."""
    old, new = ("x", "x/y") if swap == "file to folder" else ("d/f1", "d")
    write(local, {old: "old", "k": "k"})
    sync(local, tree)
    (local / old).unlink()
    if swap == "folder to file":
        (local / "d").rmdir()
    write(local, {new: "new here"})
    return old, new


@pytest.mark.parametrize("swap", ["file to folder", "folder to file"])
def test_a_type_change_here_against_an_edit_there_changes_neither_side(
    remote_tree: RemoteTree, tmp_path: Path, swap: str
) -> None:
    """A file became a folder here (or a folder a file) while the remote edited the old
    path: the edit is kept, so it stays in the way of the new path. The run uploaded the new
    path beside it anyway, making a file and a folder of one name on S3 that every later
    run refused (and on a folder remote failed on "Not a directory" that a dry run did not
    predict); now each run refuses both paths, changes neither side, and exits 1."""
    local = tmp_path / "local"
    old, new = _change_type_here(local, remote_tree, swap)
    remote_tree.write(old, b"edited there")
    before = (files(local), remote_tree.tree())

    for _ in range(2):
        dry = sync(local, remote_tree, dry_run=True)
        result = sync(local, remote_tree)
        for r in (dry, result):
            assert (r.uploaded, r.downloaded, r.deleted, r.failed) == (0, 0, 0, 2), r.errors
            assert app.exit_status(r) == 1
            assert sorted(e.path for e in r.errors) == sorted([old, new])
        assert (files(local), remote_tree.tree()) == before


@pytest.mark.parametrize("swap", ["file to folder", "folder to file"])
def test_a_type_change_on_one_side_syncs_in_one_run(
    remote_tree: RemoteTree, tmp_path: Path, swap: str
) -> None:
    """Where the other side has not changed the old path, it is deleted there and the new
    path takes its name: nothing stays in the way."""
    local = tmp_path / "local"
    _, new = _change_type_here(local, remote_tree, swap)
    result = sync(local, remote_tree)
    assert (result.uploaded, result.deleted, result.failed) == (1, 1, 0), result.errors
    assert in_step(local, remote_tree) == {new: b"new here", "k": b"k"}


@pytest.mark.parametrize("direction", [SYNC, Direction.PUSH])
def test_a_file_is_not_sent_beside_remote_files_under_its_name(
    remote_tree: RemoteTree, tmp_path: Path, direction: Direction
) -> None:
    """Another tool wrote `d/x`; a local file `d` cannot join it: on S3 it was uploaded
    beside `d/x` (exit 0), and no pull or sync could bring the pair to a disk again."""
    local = tmp_path / "local"
    remote_tree.write("d/x", b"theirs")
    write(local, {"d": "mine", "k1": "1"})
    result = sync(local, remote_tree, direction=direction)
    assert (result.uploaded, result.failed) == (1, 1 + (direction is SYNC)), result.errors
    assert app.exit_status(result) == 1
    assert "d/ (d/x)" in next(e.error for e in result.errors if e.path == "d")
    assert remote_tree.tree() == {"d/x": b"theirs", "k1": b"1"}
    other = tmp_path / "other"
    assert sync(other, remote_tree, direction=Direction.PULL).failed == 0
    assert files(other) == {"d/x": b"theirs", "k1": b"1"}
