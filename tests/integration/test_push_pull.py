"""The use cases driven directly (no CLI parser), against file:// and memory:// remotes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.errors import SafetyAbort
from fsync.manifest import Manifest
from fsync.model import ConflictPolicy, Direction
from fsync.paths import TEMP_TOKEN
from fsync.progress import NullReporter
from fsync.remote.local import LocalRemote
from fsynctest.reporting import Warnings
from fsynctest.trees import age_tree, listing, write


@pytest.fixture(params=["file", "memory"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty remote of each filesystem kind."""
    if request.param == "file":
        yield f"file://{tmp_path / 'remote'}"
        return
    root = f"memory://fsync-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def sync(local: Path, url: str, direction: Direction, **kw: object) -> app.RunResult:
    opts = SyncOptions(local_root=str(local), remote_url=url, direction=direction, **kw)  # type: ignore[arg-type]
    return app.run(opts, NullReporter())


def push(local: Path, url: str, **kw: object) -> app.RunResult:
    return sync(local, url, Direction.PUSH, **kw)


def pull(local: Path, url: str, **kw: object) -> app.RunResult:
    return sync(local, url, Direction.PULL, **kw)


TREE = {
    "a.txt": "alpha",
    "dir/b.txt": "bravo",
    "dir/deeper/c.bin": bytes(range(256)) * 100,
    "empty": b"",
    "spaced name.txt": "s",
    "ünï/ç.txt": "unicode",
}


def test_push_pull_round_trip(remote_url: str, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, TREE)
    r = push(src, remote_url)
    assert (r.uploaded, r.failed) == (len(TREE), 0)
    r = pull(dst, remote_url)
    assert (r.downloaded, r.failed) == (len(TREE), 0)
    assert listing(dst) == listing(src)
    assert push(src, remote_url).uploaded == 0
    assert pull(dst, remote_url).downloaded == 0


def test_verify_full_reads_each_upload_back_as_the_version_just_written(
    remote_url: str, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, TREE)
    r = push(src, remote_url, verify_full=True)
    assert (r.uploaded, r.failed) == (len(TREE), 0), r.errors
    assert pull(dst, remote_url).downloaded == len(TREE)
    assert listing(dst) == listing(src)


def _bytes_read() -> int:
    """What this process has read through system calls so far (`rchar`)."""
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="no /proc/self/io here")
def test_verify_full_reads_each_download_back_from_the_disk(tmp_path: Path) -> None:
    size = 8 << 20
    write(tmp_path / "src", {"big.bin": os.urandom(size)})
    remote = str(tmp_path / "remote")
    assert push(tmp_path / "src", remote).uploaded == 1
    read: dict[bool, int] = {}
    for verify_full in (False, True):
        before = _bytes_read()
        result = pull(tmp_path / f"dst-{verify_full}", remote, verify_full=verify_full)
        read[verify_full] = _bytes_read() - before
        assert (result.downloaded, result.failed) == (1, 0), result.errors
        assert listing(tmp_path / f"dst-{verify_full}") == listing(tmp_path / "src")
    assert read[True] - read[False] >= size  # the file was read once more, whole


def test_changes_flow_both_ways(remote_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, TREE)
    push(a, remote_url)
    pull(b, remote_url)
    write(b, {"dir/b.txt": "bravo two", "new.txt": "n"})
    (b / "a.txt").unlink()
    r = push(b, remote_url)
    assert (r.uploaded, r.deleted) == (2, 1)
    r = pull(a, remote_url)
    assert (r.downloaded, r.deleted) == (2, 1)
    assert listing(a) == listing(b)


@pytest.mark.parametrize("swap", ["folder to file", "file to folder"])
def test_a_folder_and_a_file_swapped_sync_in_one_run(
    remote_url: str, tmp_path: Path, swap: str
) -> None:
    """Run at once, the download of `f` met folder `f` before the deletes had emptied it,
    and was left as a conflict with a local change (exit 3) until the next run."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    before, after = {"f/in": "in", "k": "k"}, {"f": "file now", "k": "k"}
    if swap == "file to folder":
        before, after = after, before
    write(src, before)
    assert push(src, remote_url).failed == 0
    assert pull(dst, remote_url).downloaded == 2
    for name in before:
        (src / name).unlink()
    if (src / "f").is_dir():
        (src / "f").rmdir()
    write(src, after)

    pushed = push(src, remote_url)
    pulled = pull(dst, remote_url)

    for r in (pushed, pulled):
        assert (r.failed, r.conflicts, r.unresolved) == (0, 0, 0), r.errors
        assert app.exit_status(r) == 0
    assert listing(dst) == listing(src) == {k: v.encode() for k, v in after.items()}


def test_a_file_renamed_onto_an_emptied_folders_name_syncs_in_one_run(
    remote_url: str, tmp_path: Path
) -> None:
    """The move (a rename, not a transfer) waits for the delete that clears its way too."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"d/y": "y", "a/f": "f", "k": "k"})
    assert push(src, remote_url).failed == 0
    assert pull(dst, remote_url).downloaded == 3
    (src / "d" / "y").unlink()
    (src / "d").rmdir()
    (src / "a" / "f").rename(src / "d")

    pushed = push(src, remote_url)
    pulled = pull(dst, remote_url)

    for r in (pushed, pulled):
        assert (r.failed, r.conflicts, r.unresolved) == (0, 0, 0), r.errors
    assert listing(dst) == listing(src) == {"d": b"f", "k": b"k"}


@pytest.mark.parametrize("direction", [Direction.PULL, Direction.SYNC])
def test_an_empty_local_folder_gives_way_to_a_remote_file(
    remote_url: str, tmp_path: Path, direction: Direction
) -> None:
    """It holds no data: removed, the file takes its name. It was a conflict (exit 3) at
    every run, which no --on-conflict could resolve."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"d": "a file", "k": "k"})
    assert push(src, remote_url).failed == 0
    (dst / "d").mkdir(parents=True)

    r = sync(dst, remote_url, direction)

    assert (r.downloaded, r.failed, r.conflicts, r.unresolved) == (2, 0, 0, 0), r.errors
    assert listing(dst) == {"d": b"a file", "k": b"k"}


@pytest.mark.parametrize("direction", [Direction.PULL, Direction.SYNC])
@pytest.mark.parametrize("how", ["fetched", "renamed there"])
def test_a_folder_holding_only_empty_folders_gives_way_to_a_remote_file(
    remote_url: str, tmp_path: Path, direction: Direction, how: str
) -> None:
    """`rm d/s/f` leaves `d/s/` behind: the download of the remote's file `d` failed at
    every run, "a local folder of that name is in the way"; and so did a file renamed there
    into the place of an empty folder here, though a new file took it (sync tester)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"y": "a file", "k": "k"})
    assert push(src, remote_url).failed == 0
    assert sync(dst, remote_url, direction).failed == 0
    (dst / "d" / "s" / "t").mkdir(parents=True)
    (dst / "d" / "e").mkdir()
    if how == "fetched":
        write(src, {"d": "a file"})
    else:
        (src / "y").rename(src / "d")
    assert push(src, remote_url).failed == 0

    r = sync(dst, remote_url, direction)

    assert (r.failed, r.conflicts, r.unresolved) == (0, 0, 0), r.errors
    assert listing(dst) == listing(src)


@pytest.mark.parametrize("direction", [Direction.PULL, Direction.SYNC])
def test_a_local_folder_holding_files_stays_in_a_remote_files_way(
    remote_url: str, tmp_path: Path, direction: Direction
) -> None:
    """Refused as the planner's failure, naming what is in the way, on every run, dry or
    not (exit 1: no --on-conflict resolves it, and a file landing meanwhile is no race)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"d": "a file", "k": "k"})
    assert push(src, remote_url).failed == 0
    write(dst, {"d/mine": "mine"})
    for dry_run, fetched in ((True, 1), (False, 1), (False, 0)):  # (k, the first time)
        r = sync(dst, remote_url, direction, dry_run=dry_run)
        failed = 1 + (direction is Direction.SYNC)  # (a sync does not send d/mine either)
        assert (r.downloaded, r.failed, r.unresolved) == (fetched, failed, 0), r.errors
        assert app.exit_status(r) == 1
        assert "keeps files under d/ (d/mine)" in r.errors[0].error
    assert listing(dst) == {"d/mine": b"mine", "k": b"k"}


def test_a_local_folder_holding_only_ignored_files_is_a_failure_not_a_conflict(
    remote_url: str, tmp_path: Path
) -> None:
    """The scan shows the planner no file in it, so the download meets it: it stays, and
    the run fails naming it (it was a conflict, exit 3, which no next run resolved)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"d": "a file", "k": "k"})
    assert push(src, remote_url).failed == 0
    write(dst, {"d/scratch.tmp": "ignored"})

    r = pull(dst, remote_url, excludes=("*.tmp",))

    assert (r.downloaded, r.failed, r.conflicts, r.unresolved) == (1, 1, 0, 0), r.errors
    assert "a local folder of that name is in the way" in r.errors[0].error
    assert app.exit_status(r) == 1
    assert listing(dst) == {"d/scratch.tmp": b"ignored", "k": b"k"}


@pytest.mark.parametrize("into", [True, False], ids=["into its folder", "out of its folder"])
def test_a_file_moved_into_a_folder_of_its_own_name_syncs_in_one_run(
    remote_url: str, tmp_path: Path, into: bool
) -> None:
    """`n` renamed to `n/x` (or back) cannot be one rename on the other side: the file is in
    the way of its own new folder. It failed on every run, push and pull alike."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    before, after = {"n": "moved content", "k": "k"}, {"n/x": "moved content", "k": "k"}
    if not into:
        before, after = after, before
    write(src, before)
    assert push(src, remote_url).failed == 0
    assert pull(dst, remote_url).downloaded == 2
    hold = tmp_path / "hold"
    if into:  # mkdir t; mv n t/x; mv t n
        hold.mkdir()
        (src / "n").rename(hold / "x")
        hold.rename(src / "n")
    else:  # mv n/x t; rmdir n; mv t n
        (src / "n" / "x").rename(hold)
        (src / "n").rmdir()
        hold.rename(src / "n")

    pushed = push(src, remote_url)
    pulled = pull(dst, remote_url)

    for r in (pushed, pulled):
        assert (r.failed, r.conflicts, r.unresolved) == (0, 0, 0), r.errors
    assert listing(dst) == listing(src) == {k: v.encode() for k, v in after.items()}
    assert (push(src, remote_url).unchanged, pull(dst, remote_url).unchanged) == (2, 2)


class _Counted(NullReporter):
    """Keeps the count each plan announced and the paths it then reported done."""

    def __init__(self) -> None:
        super().__init__()
        self.announced: list[int] = []
        self.done: list[str] = []

    def plan_ready(self, files: int, total_bytes: int) -> None:
        self.announced.append(files)

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        self.done.append(path)


def test_a_plan_announces_every_file_it_then_reports(remote_url: str, tmp_path: Path) -> None:
    """The count a display shows as "sending D/N" covers deletes and moves, not only the
    transfers: a watch showed "sending 6/1" for one upload and five deletes."""
    local = tmp_path / "local"
    write(local, {f"old{i}.txt": f"old {i}" for i in range(5)} | {"doc.txt": "v1"})
    push(local, remote_url)
    for i in range(3):
        (local / f"old{i}.txt").unlink()
    (local / "old3.txt").rename(local / "renamed.txt")
    write(local, {"doc.txt": "v2", "new.txt": "new"})
    counted = _Counted()
    opts = SyncOptions(local_root=str(local), remote_url=remote_url, direction=Direction.PUSH)
    result = app.run(opts, counted)
    assert (result.uploaded, result.deleted, result.moved) == (2, 3, 1)
    assert counted.announced == [6]
    assert sorted(counted.done) == sorted(
        ["old0.txt", "old1.txt", "old2.txt", "renamed.txt", "doc.txt", "new.txt"]
    )


def test_conflict_keep_both_loses_nothing(remote_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"doc.txt": "original"})
    push(a, remote_url)
    pull(b, remote_url)
    write(b, {"doc.txt": "edited in b"})
    push(b, remote_url)
    write(a, {"doc.txt": "edited in a"})
    r = pull(a, remote_url)
    assert r.conflicts == 1
    files = listing(a)
    assert files["doc.txt"] == b"edited in b"
    copies = [k for k in files if k.startswith("doc.conflict-")]
    assert len(copies) == 1
    assert copies[0].endswith(".txt")
    assert files[copies[0]] == b"edited in a"


def test_conflict_skip_exits_3(remote_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"doc.txt": "original"})
    push(a, remote_url)
    pull(b, remote_url)
    write(b, {"doc.txt": "edited in b"})
    push(b, remote_url)
    write(a, {"doc.txt": "edited in a"})
    r = push(a, remote_url, on_conflict=ConflictPolicy.SKIP)
    assert r.unresolved == 1
    assert app.exit_status(r) == 3
    assert listing(a)["doc.txt"] == b"edited in a"
    pull(b, remote_url)
    assert listing(b)["doc.txt"] == b"edited in b"


def test_max_delete_stops_before_deleting(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {f"f{i}.txt": str(i) for i in range(10)})
    push(src, remote_url)
    for i in range(6):
        (src / f"f{i}.txt").unlink()
    with pytest.raises(SafetyAbort):
        push(src, remote_url)
    with pytest.raises(SafetyAbort):
        push(src, remote_url, max_delete="5")
    r = push(src, remote_url, max_delete="6")
    assert r.deleted == 6


def test_emptied_source_root_stops(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"keep.txt": "k"})
    push(src, remote_url)
    (src / "keep.txt").unlink()
    with pytest.raises(SafetyAbort):
        push(src, remote_url)
    assert push(src, remote_url, force=True).deleted == 1


class EditWhileSent(NullReporter):
    """A progress listener that rewrites the file being sent with `new()` after its first
    chunk is read, or with `every`, after each chunk (a file that never holds still).

    This is what a user editing a file during a push looks like to fsync: the bytes already
    read no longer match the file on disk.
    """

    def __init__(self, target: Path, new: Callable[[], bytes], *, every: bool = False) -> None:
        super().__init__()
        self.target, self.new, self.every, self.edits = target, new, every, 0

    @property
    def fired(self) -> bool:
        return self.edits > 0

    def advance(self, path: str, nbytes: int) -> None:
        if self.target.name in path and (self.every or not self.edits):
            self.edits += 1
            self.target.write_bytes(self.new())


def test_file_modified_during_upload_is_never_published_half_old(
    remote_url: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    old = b"o" * (5 << 20)
    new = b"n" * (3 << 20)
    write(src, {"big.bin": old})
    age_tree(src)
    opts = SyncOptions(local_root=str(src), remote_url=remote_url, direction=Direction.PUSH)
    reporter = EditWhileSent(src / "big.bin", lambda: new)
    r = app.run(opts, reporter)
    assert reporter.fired
    assert r.failed == 0
    fs, root = fsspec.core.url_to_fs(remote_url)
    assert fs.cat_file(f"{root}/big.bin") == new
    assert push(src, remote_url).uploaded == 0


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_remote_entry_fsync_skips_is_not_taken_for_deleted(
    tmp_path: Path, direction: Direction, kind: str
) -> None:
    # The synced doc.txt becomes, on a folder remote, a link (not followed) or a FIFO: it is
    # skipped with a warning, as a local link is, and both stay; it was not deleted over
    # there, and an unchanged local copy is nothing to send.
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"doc.txt": "v1", "other.txt": "o"})
    assert push(local, f"file://{remote}").uploaded == 2
    (remote / "doc.txt").unlink()
    if kind == "link":
        (tmp_path / "elsewhere.txt").write_text("not part of the tree")
        (remote / "doc.txt").symlink_to(tmp_path / "elsewhere.txt")
    else:
        os.mkfifo(remote / "doc.txt")
    reporter = Warnings()
    opts = SyncOptions(local_root=str(local), remote_url=f"file://{remote}", direction=direction)
    result = app.run(opts, reporter)
    assert result.errors == []
    assert (result.deleted, result.downloaded, result.uploaded) == (0, 0, 0)
    what = "a symbolic link" if kind == "link" else "a special file"
    assert reporter.lines == [
        f"skipping doc.txt on the remote: it is {what} (fsync neither follows nor replaces it)"
    ]
    assert (local / "doc.txt").read_text() == "v1"
    assert (remote / "doc.txt").is_symlink() or (remote / "doc.txt").is_fifo()
    if kind == "link":
        assert (tmp_path / "elsewhere.txt").read_text() == "not part of the tree"


@pytest.mark.parametrize("direction", [Direction.PUSH, Direction.SYNC])
def test_a_local_change_a_remote_link_blocks_fails_and_leaves_the_link(
    tmp_path: Path, direction: Direction
) -> None:
    # Sending doc.txt would replace the link (or write through it): the file fails, saying
    # why, and the link and what it leads to are as they were.
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"doc.txt": "v1", "other.txt": "o"})
    assert push(local, f"file://{remote}").uploaded == 2
    (remote / "doc.txt").unlink()
    (tmp_path / "elsewhere.txt").write_text("not part of the tree")
    (remote / "doc.txt").symlink_to(tmp_path / "elsewhere.txt")
    (local / "doc.txt").write_text("v2, edited here")
    result = sync(local, f"file://{remote}", direction)
    assert [(e.path, e.error) for e in result.errors] == [
        (
            "doc.txt",
            "not sent: on the remote, doc.txt is a symbolic link, which fsync neither "
            "follows nor replaces (remove it there, or rename this file)",
        )
    ]
    assert (result.failed, result.uploaded, result.downloaded) == (1, 0, 0)
    assert (remote / "doc.txt").is_symlink()
    assert (tmp_path / "elsewhere.txt").read_text() == "not part of the tree"
    assert (local / "doc.txt").read_text() == "v2, edited here"


@pytest.mark.parametrize("direction", [Direction.PUSH, Direction.SYNC])
def test_a_remote_link_to_a_folder_inside_the_root_is_not_written_through(
    tmp_path: Path, direction: Direction
) -> None:
    # `d` -> `s`: a file sent as d/new.txt landed in s/, where no listing saw it again.
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(remote, {"s/theirs.txt": "t"})
    (remote / "d").symlink_to("s", target_is_directory=True)
    write(local, {"d/new.txt": "n", "s/theirs.txt": "t"})
    result = sync(local, f"file://{remote}", direction)
    assert [e.path for e in result.errors] == ["d/new.txt"]
    assert listing(remote / "s") == {"theirs.txt": b"t"}
    assert os.readlink(remote / "d") == "s"


def test_a_remote_folder_that_became_a_link_keeps_the_local_files(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"docs/a.txt": "a", "docs/b.txt": "b", "other.txt": "o", "more.txt": "m"})
    assert push(local, f"file://{remote}").uploaded == 4
    (tmp_path / "elsewhere").mkdir()
    for name in ("a.txt", "b.txt"):
        (remote / "docs" / name).unlink()
    (remote / "docs").rmdir()
    (remote / "docs").symlink_to(tmp_path / "elsewhere")  # refused, not gone
    result = pull(local, f"file://{remote}")
    assert result.deleted == 0
    assert listing(local)["docs/a.txt"] == b"a"


def test_a_file_that_never_stops_changing_fails_with_one_clear_line(
    tmp_path: Path, remote_url: str
) -> None:
    """Left for the next run; its error named the path twice ("log.bin: log.bin changed
    while being uploaded")."""
    local = tmp_path / "local"
    write(local, {"log.bin": os.urandom(1 << 20), "calm.txt": "c"})
    opts = SyncOptions(local_root=str(local), remote_url=remote_url, direction=Direction.PUSH)
    log = local / "log.bin"
    reporter = EditWhileSent(log, lambda: os.urandom(log.stat().st_size), every=True)
    result = app.run(opts, reporter)
    assert reporter.edits > 1  # every attempt met an edit
    assert [(e.path, e.error) for e in result.errors] == [
        ("log.bin", "changed while being uploaded (not published; the next run sends it)")
    ]
    assert result.uploaded == 1


@pytest.mark.parametrize("direction", [Direction.PUSH, Direction.PULL, Direction.SYNC])
def test_a_run_removes_from_a_folder_remote_only_its_roots_abandoned_temp_files(
    tmp_path: Path, direction: Direction
) -> None:
    """A folder remote may be shared by several machines and roots, each writing temp files
    there under its own process's token: a run removes only those of this root's runs that
    never ended (killed outright) or could not remove them, never one of a token its history
    does not know (another run may be writing it now), nor one of its own process, nor a
    link or folder of that form, nor anything in a dry run."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    url = f"file://{remote}"
    write(local, {"a.txt": "a"})
    assert push(local, url).uploaded == 1
    with Manifest.open(str(local)) as manifest:
        manifest.start_run("push", LocalRemote(str(remote)).key, "deadbeef")  # killed: no end
        # one that ended, though a temp of its could not be removed (an append-only folder)
        ended = manifest.start_run("push", LocalRemote(str(remote)).key, "cafef00d")
        manifest.finish_run(ended, 1, {})
    abandoned = [
        ".fsync-deadbeef00000001.tmp",
        "d/e/.fsync-deadbeef00000002.tmp",
        "d/.fsync-cafef00d00000001.tmp",
    ]
    kept = [
        ".fsync-0123456700000001.tmp",  # a token this root's history does not know
        f"d/.fsync-{TEMP_TOKEN}00000001.tmp",  # this process's own
        ".fsync-deadbeef.tmp",  # not a temp name: a user's file
        ".fsync-deadbeef0000000g.tmp",
    ]
    write(remote, dict.fromkeys(abandoned + kept, "partial"))
    write(local, dict.fromkeys(abandoned, "partial"))  # (the scan's sweep of LOCAL alike)
    (remote / "f").mkdir()
    (remote / "f" / ".fsync-deadbeef00000003.tmp").symlink_to(remote / "a.txt")
    (remote / "f" / ".fsync-deadbeef00000004.tmp").mkdir()

    assert sync(local, url, direction, dry_run=True).failed == 0
    assert {*abandoned, *kept} <= listing(remote).keys()

    result = sync(local, url, direction)

    assert result.failed == 0, result.errors
    assert listing(remote) == {"a.txt": b"a", **dict.fromkeys(kept, b"partial")}
    assert not listing(local).keys() & set(abandoned)
    assert (remote / "f" / ".fsync-deadbeef00000003.tmp").is_symlink()
    assert (remote / "f" / ".fsync-deadbeef00000004.tmp").is_dir()
