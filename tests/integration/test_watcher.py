"""The `Watcher` alone on a real folder: what batches the real watchdog observer produces."""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsync.model import RelPath
from fsync.watcher import OVERFLOW_FIX, Watcher
from fsynctest.watching import raise_in

pytestmark = pytest.mark.watch

Batch = tuple[set[RelPath], bool]


class Probe:
    """A running watcher whose batches and warnings are collected."""

    def __init__(self, root: Path, **options: object) -> None:
        self.batches: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self.warnings: list[str] = []
        self.watcher = Watcher(
            str(root),
            lambda paths, full: self.batches.put((paths, full)),
            on_warning=self.warnings.append,
            **options,  # type: ignore[arg-type]
        )
        self.watcher.start()

    def next(self, timeout: float = 10.0) -> Batch:
        return self.batches.get(timeout=timeout)

    def paths_until(self, wanted: set[str], timeout: float = 10.0) -> set[RelPath]:
        """Union of batches until it covers `wanted`; fails after `timeout`."""
        seen: set[RelPath] = set()
        while not wanted <= seen:
            seen |= self.next(timeout)[0]
        return seen


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    before = set(threading.enumerate())
    p = Probe(tmp_path)
    yield p
    p.watcher.stop()
    assert [t.name for t in threading.enumerate() if t not in before] == []


def test_a_file_rename_is_one_batch_with_both_ends(tmp_path: Path, probe: Probe) -> None:
    (tmp_path / "a.txt").write_text("a")
    assert probe.next() == ({RelPath("a.txt")}, False)
    (tmp_path / "a.txt").rename(tmp_path / "b.txt")
    assert probe.next() == ({RelPath("a.txt"), RelPath("b.txt")}, False)


def test_a_folder_move_is_one_batch_naming_the_folders(tmp_path: Path, probe: Probe) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    for i in range(50):
        (tmp_path / "d" / "e" / f"f{i}").write_text(str(i))
    assert probe.paths_until({"d"}) == {RelPath("d")}
    (tmp_path / "d").rename(tmp_path / "moved")
    assert probe.next() == ({RelPath("d"), RelPath("moved")}, False)


def test_fsync_state_and_temp_files_are_never_reported(tmp_path: Path, probe: Probe) -> None:
    (tmp_path / ".fsync").mkdir()
    (tmp_path / ".fsync" / "state.db").write_text("db")
    (tmp_path / ".fsync-0123456789abcdef.tmp").write_text("partial")
    (tmp_path / "marker").write_text("m")  # comes after the others
    assert probe.paths_until({"marker"}) == {RelPath("marker")}


def test_reading_a_file_raises_no_event(tmp_path: Path, probe: Probe) -> None:
    (tmp_path / "a.txt").write_text("a")
    assert probe.next() == ({RelPath("a.txt")}, False)
    (tmp_path / "a.txt").read_bytes()  # what an upload does
    (tmp_path / "marker").write_text("m")
    assert probe.next() == ({RelPath("marker")}, False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify only")
def test_a_queue_overflow_warns_with_the_fix_and_rescans(tmp_path: Path, probe: Probe) -> None:
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    # The kernel's overflow record, as the inotify reader receives it (wd -1, IN_Q_OVERFLOW).
    reader = probe.watcher._observer._inotify_fd  # type: ignore[union-attr]
    reader.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
    assert probe.next() == (set(), True)
    assert probe.warnings == [OVERFLOW_FIX]
    assert "sysctl -w fs.inotify.max_queued_events" in OVERFLOW_FIX


def test_the_periodic_rescan_comes_on_its_own(tmp_path: Path) -> None:
    p = Probe(tmp_path, rescan_every=0.3)
    try:
        assert p.next(timeout=5) == (set(), True)
        assert p.next(timeout=5) == (set(), True)
    finally:
        p.watcher.stop()


def test_a_root_that_vanishes_is_reported_and_watched_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    p = Probe(root)
    try:
        os.rename(root, tmp_path / "elsewhere")
        root.mkdir()
        # The watches followed the old folder: the watcher notices, starts again on the new
        # one, and asks for a full rescan (which finds whatever was written meanwhile).
        while p.next(timeout=10) != (set(), True):
            pass
        assert any("restarted" in w for w in p.warnings), p.warnings
        (root / "new.txt").write_text("seen by the new watches")
        assert p.paths_until({"new.txt"}) == {RelPath("new.txt")}
    finally:
        p.watcher.stop()


def test_a_file_fsync_wrote_itself_is_not_reported(tmp_path: Path, probe: Probe) -> None:
    # What a download does: a temp name, the remote's mtime, a rename into place.
    mtime = 1_700_000_000_123_456_789
    probe.watcher.suppress(RelPath("pulled.txt"), mtime)
    temp = tmp_path / ".fsync-00112233aabbccdd.tmp"
    temp.write_text("from the remote")
    os.utime(temp, ns=(mtime, mtime))
    temp.rename(tmp_path / "pulled.txt")
    (tmp_path / "marker").write_text("m")  # comes after: by then the pull was judged
    assert probe.paths_until({"marker"}) == {RelPath("marker")}
    (tmp_path / "pulled.txt").write_text("then edited by the user")
    assert probe.next() == ({RelPath("pulled.txt")}, False)


def test_a_failure_in_the_watchers_thread_is_reported_and_survived(
    tmp_path: Path, probe: Probe
) -> None:
    # Whatever a tick raises (a bug here or in watchdog), the thread goes on: dead, it would
    # leave every later change unsynced without a word.
    raise_in("fsync-watcher", RuntimeError)
    assert probe.next() == (set(), True)  # events may have been lost meanwhile
    assert any("the file watcher failed (RuntimeError" in w for w in probe.warnings)
    (tmp_path / "after.txt").write_text("still watched")
    assert probe.paths_until({"after.txt"}) == {RelPath("after.txt")}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_observer_thread_is_restarted(tmp_path: Path, probe: Probe) -> None:
    observer = probe.watcher._observer
    assert observer is not None
    raise_in(observer, RuntimeError)
    (tmp_path / "wake.txt").write_text("an event for the observer's thread to dispatch")
    # Raised outside the handler, it ends the thread: the health check restarts the observer.
    # Raised inside, the event is lost: the handler says so. Either way, a full rescan.
    while probe.next() != (set(), True):
        pass
    assert any("restarted" in w or "event was lost" in w for w in probe.warnings)
    (tmp_path / "after.txt").write_text("still watched")
    assert probe.paths_until({"after.txt"}) >= {RelPath("after.txt")}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_watcher_whose_thread_died_can_be_revived(tmp_path: Path, probe: Probe) -> None:
    raise_in("fsync-watcher", SystemExit)  # past the tick's guard: the thread ends
    (tmp_path / "meanwhile.txt").write_text("written while nobody watched")
    deadline = 50
    while probe.watcher.alive() and deadline:
        deadline -= 1
        threading.Event().wait(0.1)
    assert not probe.watcher.alive()
    probe.watcher.revive()
    while probe.next() != (set(), True):  # the rescan finds what was written meanwhile
        pass
    assert any("restarted" in w for w in probe.warnings), probe.warnings
    (tmp_path / "after.txt").write_text("seen by the new thread")
    assert probe.paths_until({"after.txt"}) >= {RelPath("after.txt")}
