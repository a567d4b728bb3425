"""`fsync watch` end to end: the real watchdog observer on real folders, a file:// remote.

Each test changes the local tree the way people and programs do, then polls (with a
deadline, never a fixed sleep) until the remote equals the local tree, and checks how it got
there through the session's counters and the actions it reported.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.model import Direction, RunResult
from fsync.progress import NullReporter
from fsync.watch import IGNORE_GONE_SETTLE
from fsynctest.trees import held_open, write
from fsynctest.watching import Watching, eventually, raise_in, tree

pytestmark = pytest.mark.watch

FAST = {"retry_delay": 0.05, "retry_max_delay": 0.2}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Watching]]:
    """Start watch sessions on tmp_path/local → tmp_path/remote; all are stopped afterwards."""
    sessions: list[Watching] = []
    before = set(threading.enumerate())
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir(exist_ok=True)

    def start_session(**options: object) -> Watching:
        session = Watching(local, remote, **{**FAST, **options})
        sessions.append(session)
        return session

    yield start_session
    for session in sessions:
        session.stop()
    left = [t.name for t in threading.enumerate() if t not in before]
    assert left == [], f"threads left running: {left}"


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A folder of this process's memory:// filesystem of its own, emptied afterwards (the
    filesystem outlives the test)."""
    root = f"/fsync-watch-{uuid.uuid4().hex}"
    yield root
    memory = fsspec.filesystem("memory")
    for key in memory.find(root):
        memory.rm(key)


def test_startup_pushes_what_is_there(tmp_path: Path, start: Callable[..., Watching]) -> None:
    (tmp_path / "local" / "sub").mkdir(parents=True)
    (tmp_path / "local" / "sub" / "a.txt").write_text("already here")
    w = start()
    w.converge()
    assert w.stop().uploaded == 1


def test_create_modify_append_delete(start: Callable[..., Watching]) -> None:
    w = start()
    f = w.local / "notes.txt"
    f.write_text("first")
    w.converge("a created file")
    f.write_text("second, longer")
    w.converge("a modified file")
    with f.open("a") as out:
        out.write(" and more")
    w.converge("an appended file")
    (w.local / "other.txt").write_text("keeps the delete under the safety cap")
    w.converge()
    f.unlink()
    w.converge("a deleted file")
    result = w.stop()
    assert (result.uploaded, result.deleted, result.failed) == (4, 1, 0)


def test_a_renamed_file_is_moved_not_sent(start: Callable[..., Watching]) -> None:
    w = start()
    (w.local / "big.bin").write_bytes(os.urandom(300_000))
    w.converge()
    eventually(lambda: w.counts().uploaded == 1, "the upload to be counted")
    sent = w.counts().bytes_sent
    (w.local / "big.bin").rename(w.local / "renamed.bin")
    w.converge("the rename")
    result = w.stop()
    assert result.moved == 1
    assert result.bytes_sent == sent == 300_000
    assert w.display.actions("renamed.bin") == ["move"]


def _sent_photos(w: Watching, paths: list[str]) -> int:
    """Make a file of distinct content at each of `paths`, and `keep.txt`; wait until the
    watch has sent them all, and return the bytes it has sent in the session."""
    for i, name in enumerate(paths):
        path = w.local / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000) + bytes([i % 256]))
    (w.local / "keep.txt").write_text("x")
    w.converge()
    eventually(lambda: w.counts().uploaded == len(paths) + 1, "the uploads to be counted")
    return w.counts().bytes_sent


def test_a_renamed_folder_is_moved_file_by_file(start: Callable[..., Watching]) -> None:
    w = start()
    sent = _sent_photos(w, [f"photos/2024/img{i:02}.jpg" for i in range(20)])
    (w.local / "photos").rename(w.local / "pictures")
    w.converge("the folder rename")
    result = w.stop()
    assert result.moved == 20
    assert result.bytes_sent == sent
    assert not (w.remote / "photos").exists()


def test_a_folder_moved_into_a_folder_just_made_is_moved_not_sent_again(
    start: Callable[..., Watching],
) -> None:
    """`mkdir archive && mv photos archive/`: the kernel reports no arrival in `archive`,
    which has no watch yet, so watchdog sees the folder made with its files in it, and the
    departure alone, half a second later (its wait for an arrival to pair it with). Planned
    apart, the files were sent again and the old ones deleted."""
    w = start()
    sent = _sent_photos(w, [f"photos/{i % 8}/{i // 8 % 8}/img{i:03}.jpg" for i in range(200)])
    (w.local / "archive").mkdir()
    (w.local / "photos").rename(w.local / "archive" / "photos")
    w.converge("the move")
    result = w.stop()
    assert (result.moved, result.uploaded, result.deleted) == (200, 201, 0)
    assert result.bytes_sent == sent
    assert not (w.remote / "photos").exists()


def test_an_editor_save_ends_as_one_upload_of_the_final_content(
    start: Callable[..., Watching],
) -> None:
    w = start()
    doc = w.local / "doc.txt"
    doc.write_text("version 1")
    w.converge()
    # What editors do: write a temporary file beside the original, then rename it over.
    tmp = w.local / ".doc.txt.swp"
    with tmp.open("w") as out:
        out.write("version 2, saved atomically")
        out.flush()
        os.fsync(out.fileno())
    tmp.rename(doc)
    w.converge("the atomic save")
    assert (w.remote / "doc.txt").read_text() == "version 2, saved atomically"
    w.stop()
    assert w.display.actions("doc.txt") == ["upload", "upload"]
    assert w.display.actions(".doc.txt.swp") == []


def test_a_burst_of_a_thousand_files(start: Callable[..., Watching]) -> None:
    w = start()
    for i in range(1000):
        folder = w.local / f"d{i % 10}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(f"file {i}\n" * (i % 7))
    w.converge("a burst of 1,000 files", timeout=60)
    result = w.stop()
    assert (result.uploaded, result.failed) == (1000, 0)


def test_a_slowly_written_file_is_uploaded_once_and_whole(start: Callable[..., Watching]) -> None:
    w = start()
    chunks = [bytes([65 + i]) * 10_000 for i in range(8)]
    final = b"".join(chunks)
    seen: set[bytes | None] = set()
    writing_done = threading.Event()

    def watch_remote() -> None:
        """Read the remote copy as often as possible until it is complete (or 30 s pass)."""
        target = w.remote / "slow.bin"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                seen.add(target.read_bytes())
            except FileNotFoundError:
                seen.add(None)
            if writing_done.is_set() and final in seen:
                return

    poller = threading.Thread(target=watch_remote)
    poller.start()
    try:
        # 8 writes 0.25 s apart: longer than the quiet window, and 2 s in all, longer than
        # the longest hold of a path that keeps changing.
        with (w.local / "slow.bin").open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                out.flush()
                threading.Event().wait(0.25)
    finally:
        writing_done.set()
    w.converge("the slow file")
    poller.join(timeout=30)
    w.stop()
    assert seen <= {None, final}, f"partial versions seen: {[len(s or b'') for s in seen]}"
    assert w.display.actions("slow.bin") == ["upload"]


def test_a_change_made_where_events_cannot_see_it_is_found_by_the_rescan(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    # A write through a hard link outside the watched tree raises no event inside it, just
    # as events lost to a queue overflow would be missing.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shared.txt").write_text("v1")
    w = start(rescan_every=0.5)
    os.link(outside / "shared.txt", w.local / "shared.txt")
    w.converge()
    with (outside / "shared.txt").open("a") as out:
        out.write(", changed through the other link")
    w.converge("the periodic rescan")
    w.stop()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_between_batches_the_watch_holds_nothing_open_in_a_local_remote(
    start: Callable[..., Watching],
) -> None:
    # Else a disk it writes to could not be unmounted while the watch runs.
    w = start()
    (w.local / "a.txt").write_text("staged, synced, published")
    w.converge()

    eventually(lambda: held_open(w.remote) == [], "the remote root to be let go")
    w.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_watcher_thread_that_dies_is_revived_and_nothing_is_missed(
    start: Callable[..., Watching],
) -> None:
    w = start()
    raise_in("fsync-watcher", SystemExit)  # as a bug past the watcher's own guard would
    (w.local / "meanwhile.txt").write_text("written while the watcher was down")
    w.converge("the change made while the watcher was down")
    assert any("restarted" in m for m in w.display.warnings), w.display.warnings
    (w.local / "after.txt").write_text("and watched again after")
    w.converge("a change after the restart")
    w.stop()


def test_a_persistent_failure_fires_the_alarm_and_the_watch_goes_on(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    alarm = tmp_path / "alarm.json"
    (tmp_path / "remote" / "blocked.txt" / "inside").mkdir(parents=True)
    w = start(on_error=f"cat > '{alarm}'", retries=2)
    (w.local / "blocked.txt").write_text("cannot land: a folder is in the way")

    def alarmed() -> bool:
        try:
            summary = json.loads(alarm.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return [e["path"] for e in summary["errors"]] == ["blocked.txt"]

    eventually(alarmed, "the --on-error command")
    summary = json.loads(alarm.read_text())
    assert (summary["command"], summary["local"]) == ("watch", str(w.local))
    assert summary["remote"].endswith(str(w.remote))
    (w.local / "fine.txt").write_text("still syncing")
    eventually((w.remote / "fine.txt").exists, "a later change")
    assert w.display.actions("blocked.txt")[:3] == ["upload!", "upload!", "upload!"]
    result = w.stop()
    assert result.failed == 1
    assert [e.path for e in result.errors] == ["blocked.txt"]


def test_a_failure_that_heals_is_retried_until_it_goes_through(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    blocker = tmp_path / "remote" / "later.txt"
    blocker.mkdir(parents=True)
    w = start(retries=100)
    (w.local / "later.txt").write_text("waits for the way to clear")
    eventually(lambda: "upload!" in w.display.actions("later.txt"), "a failed attempt")
    blocker.rmdir()
    w.converge("the retried upload")
    assert w.stop().failed == 0


def test_pull_every_brings_remote_changes_and_does_not_echo_them(
    start: Callable[..., Watching],
) -> None:
    w = start(pull_every=0.3)
    (w.local / "mine.txt").write_text("local")
    w.converge()
    (w.remote / "theirs.txt").write_text("written by another machine")
    eventually((w.local / "theirs.txt").exists, "the pulled file")
    # Another local change goes through after the pulled file's own events: by then an
    # echo of the download would have been planned and reported.
    (w.local / "later.txt").write_text("after the pull")
    w.converge()
    assert w.display.actions("theirs.txt") == ["download"]
    (w.remote / "mine.txt").unlink()
    eventually(lambda: not (w.local / "mine.txt").exists(), "a remote delete applied")
    result = w.stop()
    assert (result.downloaded, result.deleted) == (1, 1)


def test_pull_every_brings_what_changed_there_while_the_watch_was_off(
    start: Callable[..., Watching],
) -> None:
    """The session's first listing (its full sync, a push) sees these changes first; the
    pulls, which look for changes since the last listing, must still apply them."""
    w = start()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (w.local / name).write_text(f"{name}, synced")
    w.converge()
    w.stop()
    (w.remote / "a.txt").write_text("a.txt, rewritten there")
    (w.remote / "new.txt").write_text("made there")
    (w.remote / "c.txt").unlink()
    w2 = start(pull_every=0.2)
    w2.converge("the remote's changes pulled")
    assert (w2.local / "a.txt").read_text() == "a.txt, rewritten there"
    result = w2.stop()
    assert (result.downloaded, result.deleted, result.uploaded) == (2, 1, 0)


def test_pull_every_brings_back_a_file_deleted_here_but_changed_there(
    start: Callable[..., Watching],
) -> None:
    """The push of the delete meets the remote's change: the conflict keeps the remote's
    version, and the next pull brings it here (as `fsync pull` would)."""
    w = start(pull_every=1.0)
    for name in ("doc.txt", "b.txt", "c.txt"):
        (w.local / name).write_text(f"{name}, synced")
    w.converge()
    (w.local / "doc.txt").unlink()
    (w.remote / "doc.txt").write_text("doc.txt, changed there meanwhile")
    eventually(
        lambda: (
            (w.local / "doc.txt").exists()
            and (w.local / "doc.txt").read_text() == "doc.txt, changed there meanwhile"
        ),
        "the remote's version pulled",
    )
    w.converge()
    w.stop()


def test_mirror_deletes_remote_extras_but_never_local_ones(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """`--mirror` is for the pushes: the `--pull-every` pulls must not take it to mean
    "delete local files the remote lacks"."""
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "extra.txt").write_text("only there")
    (tmp_path / "local" / "mine.txt").write_text("only here")
    w = start(mirror=True, pull_every=0.2)
    w.converge()
    assert not (w.remote / "extra.txt").exists()
    (w.local / "new.txt").write_text("sent")
    w.converge()
    time.sleep(0.5)  # pulls ran meanwhile
    assert (w.local / "mine.txt").read_text() == "only here"
    assert w.stop().deleted == 1


def test_mirror_leaves_remote_names_this_disk_cannot_hold_alone(
    tmp_path: Path, memory_root: str
) -> None:
    """A key too long for this disk is no extra of the source's: `--mirror` deleted it,
    though a plain watch left it alone (as `push --mirror` now does)."""
    root = memory_root
    memory = fsspec.filesystem("memory")
    long = "x" * 300
    for key in (long, f"{'y' * 300}/in.txt", "extra.txt"):
        memory.pipe(f"{root}/{key}", b"theirs")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "mine.txt").write_text("only here")
    w = Watching(tmp_path / "local", tmp_path / "unused", url=f"memory://{root}", mirror=True)
    try:
        eventually(lambda: not memory.exists(f"{root}/extra.txt"), "the extra deleted")
        totals = w.stop()
        left = {k.removeprefix(f"{root}/") for k in memory.find(root)}
        assert left == {long, f"{'y' * 300}/in.txt", "mine.txt"}
        assert (totals.deleted, totals.failed) == (1, 0)
    finally:
        w.stop()


def test_backup_dir_keeps_what_the_watch_overwrites_and_deletes(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    (tmp_path / "local" / "a.txt").write_text("v1")
    (tmp_path / "local" / "b.txt").write_text("b")
    kept = tmp_path / "kept"
    w = start(backup_dir=str(kept))
    w.converge()
    (w.local / "a.txt").write_text("v2")
    (w.local / "b.txt").unlink()
    w.converge()
    assert tree(kept) == {"a.txt": b"v1", "b.txt": b"b"}
    w.stop()


def test_a_name_that_is_not_utf8_is_reported_and_the_watch_goes_on(
    start: Callable[..., Watching],
) -> None:
    """Its event reached the outbox, which SQLite cannot store: the watch died (exit 1)."""
    w = start()
    os.close(os.open(os.path.join(os.fsencode(w.local), b"bad-\xff"), os.O_CREAT | os.O_WRONLY))
    eventually(lambda: any("not valid UTF-8" in m for m in w.display.warnings), "the warning")
    (w.local / "after.txt").write_text("sent all the same")
    eventually(lambda: tree(w.remote) == {"after.txt": b"sent all the same"}, "the next file")
    assert w.stop().failed == 0


def test_rules_that_stop_leaving_out_a_remote_inside_the_tree_are_not_taken(
    tmp_path: Path,
) -> None:
    """Allowed at the start because `.fsyncignore` leaves the inner remote out; when that
    line went mid-watch, each push copied the tree into itself one level deeper."""
    local = tmp_path / "local"
    (local / "mirror").mkdir(parents=True)
    (local / "a.txt").write_text("a")
    (local / ".fsyncignore").write_text("mirror/\n")
    w = Watching(local, local / "mirror", **FAST)
    try:
        eventually((local / "mirror" / "a.txt").exists, "the first push")
        (local / ".fsyncignore").write_text("# nothing left out now\n")
        eventually(lambda: any("previous rules" in m for m in w.display.warnings), "refusal")
        (local / "b.txt").write_text("b")
        eventually((local / "mirror" / "b.txt").exists, "the watch going on")
        assert not (local / "mirror" / "mirror").exists()
    finally:
        w.stop()


def test_the_delete_limit_holds_for_a_delete_that_comes_in_slices(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """`rm -rf` of 60 % of the tree, a folder at a time: each slice stayed under a limit
    taken of a base that shrank with every slice, and all 60 files went from the remote."""
    local = tmp_path / "local"
    for d in "abcde":
        for i in range(20):
            (local / d).mkdir(exist_ok=True)
            (local / d / f"f{i}").write_text(f"{d}{i}")
    w = start()
    w.converge()
    for d in "abc":
        shutil.rmtree(local / d)
        time.sleep(0.3)
    eventually(lambda: any("not deleting" in m for m in w.display.warnings), "the refusal")
    time.sleep(1.0)  # anything still to come has come
    assert len(tree(w.remote)) >= 60
    assert {k for k in tree(w.remote) if k[0] in "de"} == {
        f"{d}/f{i}" for d in "de" for i in range(20)
    }
    w.stop()


def test_a_first_watch_deletes_as_a_push_would(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """The limit was a share of the base before the start's sync: 0 files on a first watch
    of a tree, so a limit of 1 for the whole session; the second deletion stayed on the
    remote."""
    for i in range(10):
        (tmp_path / "local" / f"f{i}").write_text(str(i))
    w = start()
    w.converge()
    for i in range(3):
        (w.local / f"f{i}").unlink()
        w.converge(f"deletion {i + 1}")
    assert not any("not deleting" in m for m in w.display.warnings)


def test_files_added_while_watching_raise_the_limit_and_are_guarded_too(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """The limit stayed a share of the files there at the start: 8 deletions among 30 files
    made while watching a 10-file tree were refused, where a push deletes them. Files made
    while watching count in the share as in the deletions: removing all of them at once is
    still refused."""
    local = tmp_path / "local"
    for i in range(10):
        (local / f"old{i}").write_text(str(i))
    w = start()
    w.converge()
    (local / "new").mkdir()
    for i in range(30):
        (local / "new" / f"n{i}").write_text(str(i))
    w.converge("the new files sent")
    for i in range(8):
        (local / "new" / f"n{i}").unlink()
    w.converge("8 of them deleted")
    assert not any("not deleting" in m for m in w.display.warnings)
    shutil.rmtree(local / "new")  # 22 more: 30 of 40, past half
    eventually(lambda: any("not deleting" in m for m in w.display.warnings), "the refusal")
    assert (w.remote / "new" / "n29").exists()
    w.stop()


def test_an_ignore_file_a_pull_brings_applies_at_once(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """fsync wrote it, so the watcher took it for an echo: its rules waited for the hourly
    rescan, and a file they leave out (a secret) was uploaded meanwhile."""
    w = start(pull_every=0.2)
    (w.local / "a.txt").write_text("a")
    w.converge()
    (w.remote / ".fsyncignore").write_text("secret*\n")
    eventually((w.local / ".fsyncignore").exists, "the ignore file pulled")
    time.sleep(0.5)
    (w.local / "secret.txt").write_text("password")
    (w.local / "b.txt").write_text("b")
    eventually((w.remote / "b.txt").exists, "the file after it")
    time.sleep(0.5)
    assert not (w.remote / "secret.txt").exists()
    w.stop()


def test_a_local_root_given_as_a_link_is_watched(tmp_path: Path) -> None:
    """watchdog names events by the real folder: none fell under the link's path, and only
    the hourly rescan sent anything."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "local").symlink_to(real)
    w = Watching(tmp_path / "local", tmp_path / "remote", **FAST)
    try:
        (real / "new.txt").write_text("seen through the link")
        eventually(lambda: tree(w.remote) == {"new.txt": b"seen through the link"}, "the push")
    finally:
        w.stop()


def test_a_dry_run_reports_each_change_and_changes_nothing(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    (local / "there.txt").write_text("before the watch")
    remote.mkdir()
    (remote / "old.txt").write_text("only on the remote")
    w = start(dry_run=True, mirror=True, backup_dir=str(tmp_path / "kept"))
    eventually(lambda: w.display.actions("there.txt") == ["would upload"], "the startup plan")
    assert w.display.actions("old.txt") == ["would delete-remote"]
    (local / "new.txt").write_text("made while watching")
    eventually(lambda: w.display.actions("new.txt") == ["would upload"], "the new file")
    (local / "new.txt").write_text("and changed again")
    eventually(lambda: len(w.display.actions("new.txt")) == 2, "the change reported again")
    result = w.stop()
    assert result.dry_run
    assert (result.uploaded, result.deleted, result.failed) == (3, 1, 0)
    assert tree(remote) == {"old.txt": b"only on the remote"}
    assert not (tmp_path / "kept").exists()
    # Nothing was recorded either: a real watch still has all of it to do.
    w = start(mirror=True)
    w.converge()
    assert w.stop().uploaded == 2


def test_followed_links_are_sent_as_a_push_would_send_them(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    local = tmp_path / "local"
    (local / "real").mkdir()
    (local / "real" / "f.txt").write_text("v1")
    (local / "alias").symlink_to("real")
    w = start(follow_links=True, rescan_every=0.5)
    eventually(
        lambda: tree(w.remote) == {"real/f.txt": b"v1", "alias/f.txt": b"v1"}, "both names sent"
    )
    assert any("--links follow" in m for m in w.display.warnings)
    (local / "real" / "f.txt").write_text("v2")
    eventually(
        lambda: tree(w.remote) == {"real/f.txt": b"v2", "alias/f.txt": b"v2"},
        "the change under both names (the link's at the rescan)",
    )
    w.stop()


def test_ignored_files_do_not_loosen_the_delete_limit(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """They keep their base (to sync again when the rule goes), but a watch deletes
    nothing of them: counted, eight of them let all three files go at once (half of the four
    synced files, the ignore file too, is the limit)."""
    local = tmp_path / "local"
    for name in ["a", "b", "c", *(f"x{i}.log" for i in range(8))]:
        (local / name).write_text(name)
    w = start()
    w.converge()
    w.stop()
    (local / ".fsyncignore").write_text("*.log\n")
    w = start()
    eventually((w.remote / ".fsyncignore").exists, "the ignore file sent")
    for name in "abc":
        (local / name).unlink()
    eventually(lambda: any("not deleting 3 files" in m for m in w.display.warnings), "refusal")
    assert (w.remote / "a").exists()
    w.stop()


def test_force_never_lets_a_pull_empty_this_folder(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """`--force` is for the pushes, as `--mirror` is: an emptied (or unmounted) remote
    deleted every local file through the `--pull-every` pulls."""
    for i in range(6):
        (tmp_path / "local" / f"f{i}").write_text(str(i))
    w = start(pull_every=0.2, force=True)
    w.converge()
    # Emptied at once: files deleted one by one, a pull between two unlinks deleted the first
    # here (1 of 6 is within the delete limit, as it should be), on a loaded machine.
    w.remote.rename(tmp_path / "remote-was")
    w.remote.mkdir()
    eventually(
        lambda: any("run fsync pull --force" in m for m in w.display.warnings), "the refusal"
    )
    assert len(list(w.local.glob("f*"))) == 6
    w.stop()


def test_a_name_no_remote_can_hold_is_said_at_once(start: Callable[..., Watching]) -> None:
    """It was dropped without a word until the hourly rescan; a folder so named is said
    once, not once per file in it."""
    w = start()
    (w.local / "bad\\dir").mkdir()
    for i in range(20):
        (w.local / "bad\\dir" / f"f{i}").write_text("x")
    (w.local / "tab\there").write_text("x")
    (w.local / "fine").write_text("y")
    eventually((w.remote / "fine").exists, "the file with a fine name")
    eventually(
        lambda: any(
            "not sent: 'tab\\there': contains a control character" in m for m in w.display.warnings
        ),
        "the warning",
    )
    bad = [m for m in w.display.warnings if "bad" in m]
    assert bad == ["not sent: 'bad\\\\dir': contains a backslash (a name no remote can hold)"]
    w.stop()


def test_force_lets_a_batch_delete_past_the_limit(start: Callable[..., Watching]) -> None:
    """Without `--force`, a batch deleting more than `--max-delete` deletes nothing."""
    w = start(max_delete="2", force=True)
    for i in range(6):
        (w.local / f"f{i}").write_text(str(i))
    w.converge()
    for i in range(6):
        (w.local / f"f{i}").unlink()
    w.converge("the six deletes, past --max-delete 2")
    assert not any("not deleting" in m for m in w.display.warnings)


def test_a_remote_entry_fsync_refuses_is_not_pulled_as_a_delete(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    w = start(pull_every=0.2)
    (w.local / "doc.txt").write_text("synced")
    (w.local / "marker.txt").write_text("m")
    w.converge()
    (w.remote / "doc.txt").unlink()
    (w.remote / "doc.txt").symlink_to(tmp_path / "elsewhere")  # a link: refused, not gone
    (w.remote / "marker.txt").unlink()  # a real delete, pulled in the same look
    eventually(lambda: not (w.local / "marker.txt").exists(), "the real delete pulled")
    assert (w.local / "doc.txt").read_text() == "synced"
    w.stop()


def test_a_remote_link_is_left_alone_with_a_warning(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    # `d` -> `s` in the remote: a file made here as d/new.txt is not sent through it (it
    # landed in s/), nor is the link replaced or deleted.
    remote = tmp_path / "remote"
    write(remote, {"s/theirs.txt": "t"})
    (remote / "d").symlink_to("s", target_is_directory=True)
    w = start()
    (w.local / "d").mkdir()
    (w.local / "d" / "new.txt").write_text("n")
    (w.local / "later.txt").write_text("l")
    eventually((remote / "later.txt").exists, "the later file pushed")
    w.stop()
    assert sorted(p.name for p in (remote / "s").iterdir()) == ["theirs.txt"]
    assert os.readlink(remote / "d") == "s"
    skip = "skipping d on the remote: it is a symbolic link (fsync neither follows nor replaces it)"
    assert skip in w.display.warnings


def test_a_remote_name_in_another_unicode_form_keeps_the_watch_off_its_twin(
    start: Callable[..., Watching],
) -> None:
    nfc, nfd = (unicodedata.normalize(form, "cafe\u0301.txt") for form in ("NFC", "NFD"))
    w = start(pull_every=0.2)
    (w.local / nfc).write_text("synced")
    (w.local / "marker.txt").write_text("m")
    for n in range(4):  # (keeps two deletes under the safety cap)
        (w.local / f"keep{n}.txt").write_text("k")
    w.converge()
    # The decomposed name first: a pull listing between the two steps the other way round
    # saw the file deleted there, as it then was, and deleted it here (a loaded machine).
    (w.remote / nfd).write_text("theirs, written decomposed")  # refused, and not a delete
    (w.remote / nfc).unlink()
    (w.remote / "marker.txt").unlink()
    eventually(lambda: not (w.local / "marker.txt").exists(), "the real delete pulled")
    assert (w.local / nfc).read_text() == "synced"
    (w.local / nfc).write_text("edited")  # its batch must not send a second name beside it
    (w.local / "later.txt").write_text("l")
    eventually((w.remote / "later.txt").exists, "the later file pushed")
    w.stop()
    w2 = start()  # and neither must the full sync a session starts with
    (w2.local / "last.txt").write_text("z")
    eventually((w2.remote / "last.txt").exists, "the last file pushed")
    w2.stop()
    assert sorted(n for n in os.listdir(w.remote) if not n.startswith(".")) == sorted(
        [nfd, "later.txt", "last.txt", *(f"keep{n}.txt" for n in range(4))]
    )
    assert (w.local / nfc).read_text() == "edited"


def _push(local: Path, remote: Path) -> RunResult:
    """A one-shot `fsync push LOCAL REMOTE`, to hold a watch's outcome up against."""
    return app.run(SyncOptions(str(local), str(remote), Direction.PUSH), NullReporter())


TWIN_ERRORS = sorted(
    f"not sent: caf\u00e9: another name in its folder has the same NFC form (this one is "
    f"written in {this}, the other in {other}); rename one of them"
    for this, other in (("NFD", "NFC"), ("NFC", "NFD"))
)


@pytest.mark.parametrize("file_form", ["NFD", "NFC"])
def test_a_folder_made_beside_a_file_of_its_name_in_another_unicode_form_is_refused(
    tmp_path: Path, start: Callable[..., Watching], file_form: str
) -> None:
    """A synced file `café` and a new folder `café/` spelled in the other Unicode form (Linux
    holds both): one path. The watch found one spelling by the NFC path: the NFC folder
    passed for the file made a folder, and the file's remote copy was deleted while the
    file was still here (the NFC file hid the NFD folder, whose files went unsent without a
    word). Both are withheld, said at once, as a push does; renaming one sends the rest."""
    file_name, folder = (
        unicodedata.normalize(form, "cafe\u0301")
        for form in (file_form, "NFC" if file_form == "NFD" else "NFD")
    )
    write(tmp_path / "local", {file_name: "the file", **{f"keep{n}": "k" for n in range(4)}})
    remote = tmp_path / "remote"
    w = start(url=str(remote))
    eventually(lambda: tree(remote).get("caf\u00e9") == b"the file", "the file pushed")
    (w.local / folder).mkdir()
    (w.local / folder / "x").write_text("in the folder")
    (w.local / "later").write_text("l")  # (in the twins' batch, or after it)
    eventually((remote / "later").exists, "a later file pushed")
    assert tree(remote) == {"caf\u00e9": b"the file", "later": b"l"} | {
        f"keep{n}": b"k" for n in range(4)
    }
    eventually(lambda: set(TWIN_ERRORS) <= set(w.display.warnings), "the twins refused")
    assert sorted(set(w.display.warnings)) == TWIN_ERRORS
    result = w.stop()
    assert (result.deleted, result.failed) == (0, 1)
    again = _push(w.local, remote)  # a push of the same tree: the same, and nothing to do
    assert (again.uploaded, again.deleted, again.failed) == (0, 0, 2)

    w = start(url=str(remote))
    (w.local / file_name).rename(w.local / "moved")
    sent = {"moved": b"the file", "caf\u00e9/x": b"in the folder", "later": b"l"}
    sent |= {f"keep{n}": b"k" for n in range(4)}
    eventually(lambda: tree(remote) == sent, "the rest sent once the file is renamed")
    result = w.stop()
    assert (result.moved, result.uploaded, result.deleted, result.failed) == (1, 1, 0, 0)


KELVIN_TWIN_ERRORS = sorted(
    "not sent: K: another name in its folder has the same NFC form (this one is written "
    f"in {this}, the other in {other}); rename one of them"
    for this, other in (("NFC", "neither NFC nor NFD"), ("neither NFC nor NFD", "NFC"))
)


def test_a_kelvin_sign_beside_a_synced_k_is_refused_as_a_twin(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """`\u212a` (KELVIN SIGN) made beside a synced `K`: one path, K, whose NFC form is
    ASCII. The batch took K the short way for ASCII names and read the plain file, so the
    new one went unsent without a word. Both are withheld and said at once, as a push does."""
    write(tmp_path / "local", {"K": "plain", **{f"keep{n}": "k" for n in range(4)}})
    remote = tmp_path / "remote"
    w = start(url=str(remote))
    eventually(lambda: tree(remote).get("K") == b"plain", "K pushed")
    (w.local / "\u212a").write_text("kelvin")
    (w.local / "later").write_text("l")
    eventually((remote / "later").exists, "a later file pushed")
    eventually(lambda: set(KELVIN_TWIN_ERRORS) <= set(w.display.warnings), "the twins refused")
    result = w.stop()
    assert sorted(set(w.display.warnings)) == KELVIN_TWIN_ERRORS
    assert (result.deleted, result.failed) == (0, 1)
    assert tree(remote) == {"K": b"plain", "later": b"l"} | {f"keep{n}": b"k" for n in range(4)}
    again = _push(w.local, remote)
    assert (again.uploaded, again.deleted, again.failed) == (0, 0, 2)


def test_a_file_renamed_to_a_folders_twin_leaves_the_folders_remote_copies(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """`mv a café` (NFD) beside a synced folder `café/` (NFC): the folder and the file are
    withheld, the folder's remote copies kept; the file's old name is deleted there, as a
    push deletes it (its content is under a name no remote can tell apart now)."""
    nfc, nfd = (unicodedata.normalize(form, "cafe\u0301") for form in ("NFC", "NFD"))
    files = {"a": "renamed", f"{nfc}/x": "in the folder", **{f"keep{n}": "k" for n in range(4)}}
    write(tmp_path / "local", files)
    remote = tmp_path / "remote"
    w = start(url=str(remote))
    w.converge()
    (w.local / "a").rename(w.local / nfd)
    eventually(lambda: set(TWIN_ERRORS) <= set(w.display.warnings), "the twins refused")
    eventually(lambda: not (remote / "a").exists(), "the old name deleted")
    result = w.stop()
    assert tree(remote) == {f"{nfc}/x": b"in the folder"} | {f"keep{n}": b"k" for n in range(4)}
    assert (result.deleted, result.failed) == (1, 1)
    again = _push(w.local, remote)
    assert (again.uploaded, again.deleted, again.failed) == (0, 0, 2)


def test_changes_made_while_not_watching_go_at_the_next_start(
    start: Callable[..., Watching],
) -> None:
    w = start()
    (w.local / "a.txt").write_text("a")
    (w.local / "b.txt").write_text("b")
    w.converge()
    w.stop()
    (w.local / "a.txt").write_text("changed offline")
    (w.local / "c.txt").write_text("new offline")
    w2 = start()
    w2.converge()
    assert w2.stop().uploaded == 2


def test_excluded_paths_are_not_synced(start: Callable[..., Watching]) -> None:
    w = start(excludes=("*.log", "build/"))
    (w.local / "build").mkdir()
    (w.local / "build" / "out.o").write_text("object")
    (w.local / "run.log").write_text("log")
    (w.local / "src.c").write_text("int main;")
    eventually(lambda: tree(w.remote) == {"src.c": b"int main;"}, "the one included file")
    w.stop()
    assert tree(w.remote) == {"src.c": b"int main;"}


def test_folders_kept_by_negated_rules_are_synced_when_moved_renamed_or_deleted(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    # `/*` then `!/docs/`: `docs` is excluded as a file and kept as a folder, and the batch
    # of a folder moved in names the folder alone.
    (tmp_path / "local" / ".fsyncignore").write_text("/*\n!/docs/\n!/notes/\n!/old/\n")
    (tmp_path / "local" / "old").mkdir()
    (tmp_path / "local" / "old" / "b.txt").write_text("b")
    w = start()
    w.converge()
    outside = tmp_path / "outside" / "docs"
    outside.mkdir(parents=True)
    (outside / "a.txt").write_text("a")
    os.rename(outside, w.local / "docs")
    eventually((w.remote / "docs" / "a.txt").exists, "the folder moved in")
    os.rename(w.local / "docs", w.local / "notes")
    shutil.rmtree(w.local / "old")
    w.converge("the folder renamed and the other deleted")
    w.stop()


def test_a_file_kept_open_and_written_all_the_time_is_synced_at_the_settle_limit(
    start: Callable[..., Watching],
) -> None:
    w = start(settle_max=1.0)
    stop = threading.Event()

    def append() -> None:  # a log kept open, a line every 50 ms: never quiet, never closed
        with (w.local / "app.log").open("a") as log:
            while not stop.is_set():
                log.write("line\n")
                log.flush()
                time.sleep(0.05)

    def sent() -> int:
        try:
            return (w.remote / "app.log").stat().st_size
        except FileNotFoundError:
            return 0

    writer = threading.Thread(target=append)
    writer.start()
    try:
        eventually(lambda: sent() > 0, "a snapshot of the open log")
        first = sent()
        # (the batch of each later snapshot found the log held again, and dropped it)
        eventually(lambda: sent() > first, "a later snapshot, while it is still written")
    finally:
        stop.set()
        writer.join()
    w.converge("the log's last version, once closed")
    w.stop()


def test_a_remote_edit_by_someone_else_becomes_a_conflict_copy(
    start: Callable[..., Watching],
) -> None:
    w = start()
    (w.local / "shared.txt").write_text("ours, first")
    w.converge()
    (w.remote / "shared.txt").write_text("theirs, written behind our back")
    (w.local / "shared.txt").write_text("ours, second")
    # The upload is refused (the remote moved since it was seen), the object is looked at
    # again, and the retry keeps their version beside ours (--on-conflict keep-both).
    eventually(
        lambda: (w.remote / "shared.txt").read_text() == "ours, second", "our version on top"
    )
    copies = [p for p in tree(w.remote) if p.startswith("shared.conflict-")]
    assert len(copies) == 1
    assert (w.remote / copies[0]).read_text() == "theirs, written behind our back"
    result = w.stop()
    assert (result.conflicts, result.failed) == (1, 0)


def test_a_settled_edit_after_a_burst_of_conflicts_is_sent_without_backing_off(
    start: Callable[..., Watching],
) -> None:
    """Six rounds of "someone else replaces the remote file, we edit ours", 0.3 s apart:
    each round's upload found the remote changed since it was listed, counted as a failure
    of the remote, so the path's retry delay doubled each round (32 s after six, 300 s at
    most), and the last edit waited that long once all was quiet, shown as failing."""
    w = start(retry_delay=1.0, retry_max_delay=300.0)
    (w.local / "f").write_text("ours 0")
    w.converge()
    for r in range(1, 7):
        (w.remote / "f.tmp").write_text(f"theirs {r}")
        os.replace(w.remote / "f.tmp", w.remote / "f")
        time.sleep(0.05)
        (w.local / "f").write_text(f"ours {r}")
        time.sleep(0.3)
    eventually(lambda: (w.remote / "f").read_text() == "ours 6", "the last edit")
    copies = {v for k, v in tree(w.remote).items() if k.startswith("f.conflict-")}
    assert b"theirs 6" in copies  # the version our last edit replaced, kept beside it
    assert w.display.failing_seen == {}
    assert not any("left as is for the next run" in m for m in w.display.warnings)
    assert w.stop().failed == 0


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_path_deleted_and_made_again_soon_after_is_sent_again(
    start: Callable[..., Watching], what: str
) -> None:
    """`rm -rf proj; cp -r backup proj` (or a file deleted, then saved anew) 0.3 s later: the
    deletion's batch waits for more to join it, the second batch named only paths it already
    held, and was dropped, so the batch was planned from its first scan: the remote copies
    deleted, the new files never sent (until the hourly rescan)."""
    w = start()
    names = [f"proj/f{i}" for i in range(5)] if what == "folder" else ["k1"]
    write(w.local, {name: f"first {name}" for name in names} | {"keep.txt": "x"})
    w.converge()
    if what == "folder":
        shutil.rmtree(w.local / "proj")
    else:
        (w.local / "k1").unlink()
    time.sleep(0.3)
    write(w.local, {name: f"again {name}" for name in names})
    w.converge("the paths made again")
    w.stop()


def test_steady_writes_after_a_deletion_do_not_hold_other_changes_back(
    start: Callable[..., Watching],
) -> None:
    """A deletion's batch waits for more batches to join it, but not for ever: with a
    program writing a file every 0.3 s after one deletion, a file saved meanwhile reached the
    remote only once the writes stopped (25 s after 24 s of them)."""
    w = start()
    write(w.local, {f"f{i}": f"file {i}" for i in range(4)})
    w.converge()
    stop = threading.Event()

    def log_steadily() -> None:
        for i in range(40):
            if stop.wait(0.3):
                return
            (w.local / f"log{i}").write_text("n")

    (w.local / "f0").unlink()
    time.sleep(0.2)
    (w.local / "important.txt").write_text("work")
    writer = threading.Thread(target=log_steadily)
    writer.start()
    try:
        eventually((w.remote / "important.txt").exists, "the saved file, while logs go on", 5)
        assert not (w.remote / "f0").exists()
    finally:
        stop.set()
        writer.join()
    w.converge()
    w.stop()


def test_a_file_the_pull_deleted_and_made_again_here_is_sent(
    start: Callable[..., Watching],
) -> None:
    """Deleted on the remote, so deleted here by a `--pull-every` pull, then saved here anew
    0.3 s later: the new file must reach the remote."""
    w = start(pull_every=0.3)
    write(w.local, {"k1": "first", "keep.txt": "x", "other.txt": "y"})
    w.converge()
    (w.remote / "k1").unlink()
    eventually(lambda: not (w.local / "k1").exists(), "the pull to delete k1 here")
    time.sleep(0.3)
    (w.local / "k1").write_text("made again")
    w.converge("the file made again here")
    w.stop()


def test_a_deletion_slower_than_the_settle_cap_is_judged_whole(
    start: Callable[..., Watching],
) -> None:
    """An `rm -rf` that takes longer than `DELETE_SETTLE_MAX` (a big tree, a slow disk): cut
    off at the cap, its first slice fell under the delete limit and went through (87 of 200
    remote copies deleted); the deletion is judged whole while it goes on."""
    w = start()
    names = [f"f{i:03}" for i in range(120)]
    write(w.local, dict.fromkeys(names, "x") | {"keep.txt": "k"})
    w.converge()
    for name in names:
        (w.local / name).unlink()
        time.sleep(0.025)  # 3 s in all: a 1 s slice is under the limit of 60
    eventually(lambda: any("not deleting" in m for m in w.display.warnings), "the refusal")
    assert sorted(tree(w.remote)) == sorted([*names, "keep.txt"])
    w.stop()


def test_files_made_while_watching_and_deleted_slice_by_slice_are_held_back(
    start: Callable[..., Watching],
) -> None:
    """40 files made while watching a tree that had none, then deleted 4 at a time, a batch
    each: counted only in their own batch, against a tree shrinking with each, 36 of 40
    remote copies went (a first watch of a tree is all such files until its next full scan,
    an hour later by default). What the tree lost since its largest is judged as a whole."""
    w = start()
    names = [f"f{i:02}" for i in range(40)]
    write(w.local, dict.fromkeys(names, "x"))
    w.converge()

    def refused() -> bool:
        return any("not deleting" in m for m in w.display.warnings)

    for i in range(0, 40, 4):
        for name in names[i : i + 4]:
            (w.local / name).unlink()
        eventually(lambda: refused() or tree(w.remote) == tree(w.local), f"slice {i // 4}")
        if refused():
            break
    assert refused()
    assert len(tree(w.remote)) >= 20
    w.stop()


@pytest.mark.parametrize("rescan_every", [3600.0, 0.5])
def test_a_build_that_replaces_its_output_round_after_round_deletes_it_each_time(
    start: Callable[..., Watching], rescan_every: float
) -> None:
    """A build deletes its 4 hashed output files and writes 4 new ones, round after round,
    in a tree of 10: each round deletes 40 %, which one push allows. Every deletion since the
    last full scan counted, of the files made since then too: from the second round on none
    went through, and the rescan judged all that was left as one push, past the limit too.
    (The tree of the last full scan stays guarded as a whole: the slow `rm -rf` above.)"""
    w = start(rescan_every=rescan_every)
    write(w.local, {f"src{i}": f"source {i}" for i in range(6)})
    write(w.local, {f"dist/r0.{i}.js": f"output 0.{i}" for i in range(4)})
    w.converge()
    for r in range(1, 6):
        shutil.rmtree(w.local / "dist")
        write(w.local, {f"dist/r{r}.{i}.js": f"output {r}.{i}" for i in range(4)})
        w.converge(f"round {r}")
    assert not any("not deleting" in m for m in w.display.warnings), w.display.warnings
    result = w.stop()
    assert (result.deleted, result.held_back) == (20, 0)


def test_a_stop_with_deletions_held_back_says_so(start: Callable[..., Watching]) -> None:
    """The summary said "0 failing" and nothing else while the remote kept the files."""
    w = start(max_delete="1")
    write(w.local, {"a": "a", "b": "b", "c": "c"})
    w.converge()
    (w.local / "a").unlink()
    (w.local / "b").unlink()
    eventually(lambda: any("not deleting 2" in m for m in w.display.warnings), "the refusal")
    result = w.stop()
    assert (result.held_back, result.failed) == (2, 0)
    assert result.as_json()["held_back"] == 2
    assert w.display.warnings[-1].startswith("stopped with 2 deletions held back")


@pytest.mark.parametrize("change", ["file to folder", "folder to file"])
def test_a_held_back_delete_keeps_what_it_made_room_for_unsent(
    tmp_path: Path, memory_root: str, change: str
) -> None:
    """A file `d` become a folder `d/` (or back) in a change the delete limit held back:
    the delete of the old name stayed undone, but the upload of the new one went out, and
    the store held a file `d` beside `d/x`, a pair no disk can hold, that no pull could
    bring back. Now the new name waits for the delete, reported as what it waits for."""
    root = memory_root
    memory = fsspec.filesystem("memory")
    local = tmp_path / "local"
    old, new = ("d", "d/x") if change == "file to folder" else ("d/x", "d")
    write(local, {"keep.txt": "k", old: "old"})
    w = Watching(local, tmp_path / "unused", url=f"memory://{root}", max_delete="0", **FAST)
    try:
        eventually(lambda: memory.exists(f"{root}/{old}"), "the first sync")
        if change == "file to folder":
            (local / "d").unlink()
            write(local, {"d/x": "new"})
        else:
            shutil.rmtree(local / "d")
            (local / "d").write_text("new")
        eventually(lambda: any("not deleting" in m for m in w.display.warnings), "the refusal")
        eventually(lambda: new in w.display.failing_seen, "the new name reported")
        (local / "later.txt").write_text("a later change")
        eventually(lambda: memory.exists(f"{root}/later.txt"), "the later change")
        time.sleep(0.5)  # retries come and go
        left = {k.removeprefix(f"{root}/") for k in memory.find(root)}
        assert left == {"keep.txt", "later.txt", old}
        assert w.display.failing_seen[new].endswith(
            f"waits for the delete of {old}, which the delete limit holds back"
        )
    finally:
        w.stop()


def test_a_held_back_delete_is_warned_about_once_and_stays_held(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """A file `d` become a folder in a batch of deletes past `--max-delete 2`: all four held
    back, `d/x` refused. Its retries planned `d` again, which warned again at each one (16
    times in 3 s), and, alone under the limit, deleted it a second after the warning said
    it would not."""
    local = tmp_path / "local"
    write(local, {n: n for n in ("a", "b", "c", "d", "k1", "k2", "k3", "k4", "k5", "k6")})
    w = start(max_delete="2")
    w.converge()
    for n in ("a", "b", "c", "d"):
        (local / n).unlink()
    write(local, {"d/x": "new"})
    eventually(lambda: "d/x" in w.display.failing_seen, "d/x reported")
    time.sleep(2)  # retries come and go
    assert {"a", "b", "c", "d"} <= set(tree(w.remote))
    assert "d/x" not in tree(w.remote)
    warned = [m for m in w.display.warnings if "not deleting" in m]
    assert len(warned) == 1, warned
    (local / "e").write_text("a later delete, under the limit alone")
    eventually(lambda: "e" in tree(w.remote), "e sent")
    (local / "e").unlink()
    eventually(lambda: len([m for m in w.display.warnings if "not deleting" in m]) == 2, "held")
    assert "e" in tree(w.remote)
    assert "4 held back already" in w.display.warnings[-1]


def test_a_held_back_delete_stays_held_through_a_rescan(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """8 of 20 files deleted (sent), then 6 more (past the 50 % limit: held back). The next
    full scan (periodic, or brought by an edit of `.fsyncignore`, as here) starts the
    limit's window again from a base the first 8 had shrunk: 6 of 12 were under it, and
    went through a few seconds after the warning said they would not (ignore tester)."""
    local = tmp_path / "local"
    write(local, {f"f{i:02}": str(i) for i in range(20)})
    w = start()
    w.converge()
    for i in range(8):
        (local / f"f{i:02}").unlink()
    w.converge("the first deletions")
    for i in range(8, 14):
        (local / f"f{i:02}").unlink()
    eventually(lambda: any("not deleting 6" in m for m in w.display.warnings), "held back")
    (local / ".fsyncignore").write_text("*.tmp\n")
    eventually(lambda: ".fsyncignore" in tree(w.remote), "the new rules sent")
    time.sleep(1.0)  # anything still to come has come
    assert {f"f{i:02}" for i in range(8, 20)} <= set(tree(w.remote))
    assert w.stop().held_back == 6


def test_rules_saved_by_an_editor_that_moves_the_old_file_away_hold_throughout(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """An editor's save that renames `.fsyncignore` away and writes it anew most of a second
    later: the watch dropped the rules meanwhile, sent what they leave out and, with
    `--mirror`, deleted what they leave out on the remote (ignore tester). Rules gone for
    good are dropped after `IGNORE_GONE_SETTLE`."""
    rules = "build/\n"
    write(tmp_path / "local", {".fsyncignore": rules, "a.txt": "a", "build/local.o": "mine"})
    write(tmp_path / "remote", {"build/remote.o": "theirs"})
    w = start(mirror=True)
    eventually(lambda: "a.txt" in tree(w.remote), "the first push")
    ignore = w.local / ".fsyncignore"
    ignore.rename(w.local / ".fsyncignore~")
    time.sleep(0.9)
    ignore.write_text(rules)
    (w.local / ".fsyncignore~").unlink()
    time.sleep(IGNORE_GONE_SETTLE + 1.0)
    assert tree(w.remote)["build/remote.o"] == b"theirs"
    assert "build/local.o" not in tree(w.remote)
    ignore.unlink()
    eventually(lambda: "build/local.o" in tree(w.remote), "the rules dropped")
    assert "build/remote.o" not in tree(w.remote)  # (a mirror, with no rules)


def test_rules_back_as_they_were_cost_no_full_scan(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """An editor's save of `.fsyncignore` (moved away, written anew) left a full scan and
    listing due when its rules came back unchanged (review): a cost each save, on a large
    tree. A file put on the remote meanwhile is what a full scan would report."""
    write(tmp_path / "local", {".fsyncignore": "build/\n", "a.txt": "a"})
    w = start()
    w.converge()
    write(w.remote, {"theirs.txt": "seen by a full scan only"})
    ignore = w.local / ".fsyncignore"
    ignore.rename(w.local / ".fsyncignore~")
    time.sleep(0.6)
    ignore.write_text("build/\n")
    (w.local / ".fsyncignore~").unlink()
    time.sleep(IGNORE_GONE_SETTLE + 1.0)
    assert "theirs.txt" not in [n.path for n in w.stop().notices]


def test_a_pull_plans_a_type_change_whole(tmp_path: Path, start: Callable[..., Watching]) -> None:
    """On the remote, the file `d` became a folder `d/x`, the local delete of `d` held back
    by the limit: the retries of `d/x` (planned without `d`) tried to write it under the
    file `d` and failed with "file exists"; it waits for that delete now, and says so."""
    write(tmp_path / "local", {"keep.txt": "k", "d": "old"})
    w = start(max_delete="0", pull_every=0.2)
    w.converge()
    (w.remote / "d").unlink()
    write(w.remote, {"d/x": "theirs"})
    eventually(lambda: "d/x" in w.display.failing_seen, "d/x reported")
    time.sleep(1)  # its retries come and go
    assert w.display.failing_seen["d/x"] == (
        "waits for the delete of d, which the delete limit holds back"
    )
    assert (w.local / "d").read_text() == "old"


def test_a_pull_does_not_fetch_a_file_over_a_folder_of_files_here(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """Someone else's file `d` on the remote, a folder `d/` of files here: the pull looked
    at `d` alone and failed in the engine, saying the folder held "only what fsync leaves
    out"; it sees the files below now, and refuses with what is in the way."""
    write(tmp_path / "local", {"keep.txt": "k"})
    w = start(pull_every=0.2)
    w.converge()
    write(w.remote, {"d": "theirs"})
    write(w.local, {"d/x": "mine"})
    refusal = "not fetched: the local folder keeps files under d/ (d/x), so it cannot hold"

    def refused() -> bool:
        return any(p == "d" and (e or "").startswith(refusal) for p, _, e in w.display.done)

    eventually(refused, "the pull's refusal")
    assert not any(p == "d" and e and not e.startswith(refusal) for p, _, e in w.display.done)
    assert (w.remote / "d").read_text() == "theirs"
    assert (w.local / "d" / "x").read_text() == "mine"


def test_a_held_back_delete_gone_on_both_sides_is_held_no_more(
    tmp_path: Path, start: Callable[..., Watching]
) -> None:
    """Three deletes past `--max-delete 2` held back, then made on the remote too (another
    machine, brought by `--pull-every`): nothing was left to delete, but they still counted,
    and a lone delete after them was refused as "3 held back already"."""
    local = tmp_path / "local"
    write(local, {n: n for n in ("a", "b", "c", "k1", "k2", "k3", "k4", "k5", "k6", "k7")})
    w = start(max_delete="2", pull_every=0.3)
    w.converge()
    for n in ("a", "b", "c"):
        (local / n).unlink()
    eventually(lambda: any("not deleting" in m for m in w.display.warnings), "held back")
    for n in ("a", "b", "c"):
        (w.remote / n).unlink()
    time.sleep(1.5)  # pulls see them gone on both sides
    (local / "k1").unlink()  # one delete alone, under the limit of 2
    w.converge("the lone delete")
    assert len([m for m in w.display.warnings if "not deleting" in m]) == 1


def test_a_root_deleted_and_made_again_leaves_no_stale_failures(
    start: Callable[..., Watching],
) -> None:
    """The root deleted (its files' deletion held back by the limit) and made again with a
    new file: the batches met while it was gone failed ("local root ... does not exist"),
    and, their retries backed off, the stop still named those files as failing, with that
    error, beside the same files held back. The full rescan the root's return brings
    judges them: held back, not failing."""
    w = start(retry_delay=30.0, retry_max_delay=60.0)
    write(w.local, {name: name for name in ("a", "b", "c", "d")})
    w.converge()
    shutil.rmtree(w.local)
    eventually(lambda: w.display.warnings, "the root's absence said")
    time.sleep(1.0)  # (batches of the deletions meet no root)
    write(w.local, {"fresh.txt": "new"})
    eventually((w.remote / "fresh.txt").exists, "the new file sent")
    totals = w.stop()
    assert (totals.failed, totals.errors, totals.held_back) == (0, [], 4)
