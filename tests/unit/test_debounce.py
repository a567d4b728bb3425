"""The debouncer's rules on plain numbers: a fake clock (`now` arguments) and a fake stat."""

from __future__ import annotations

import pytest

from fsync.debounce import FOLDER_SIG, Debouncer, Sig
from fsync.model import RelPath

QUIET, HOLD, SETTLE, TICK = 0.15, 1.0, 5.0, 0.025


class Disk:
    """What `stat` sees: path → (size, mtime_ns)."""

    def __init__(self) -> None:
        self.files: dict[str, Sig] = {}
        self.stats = 0

    def stat(self, path: RelPath) -> Sig:
        self.stats += 1
        return self.files.get(path)


@pytest.fixture
def disk() -> Disk:
    return Disk()


@pytest.fixture
def deb(disk: Disk) -> Debouncer:
    return Debouncer(disk.stat, quiet=QUIET, max_hold=HOLD, settle_max=SETTLE, tick=TICK)


def run_until(deb: Debouncer, start: float, end: float) -> list[tuple[float, set[RelPath]]]:
    """Tick from `start` to `end`; every non-empty batch with its time."""
    out = []
    for i in range(round((end - start) / TICK) + 1):
        t = round(start + i * TICK, 6)
        ready = deb.take_ready(t)
        if ready:
            out.append((t, ready))
    return out


def released(batches: list[tuple[float, set[RelPath]]], after: float) -> set[RelPath]:
    """The paths of the one batch in `batches`, checked to come one quiet window after `after`.

    Ticks are discrete, so the batch comes on the first tick at least `QUIET` after `after`.
    """
    assert len(batches) == 1, batches
    when, paths = batches[0]
    assert after + QUIET - 1e-6 <= when <= after + QUIET + TICK + 1e-6, (when, after)
    return paths


P = RelPath("a.txt")


def test_a_quiet_stable_file_is_released_after_the_quiet_window(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (5, 1)
    assert deb.record(P, 0.0) is True
    assert deb.record(P, 0.01) is False  # already held: no need to wake the taker again
    batches = run_until(deb, 0.0, 1.0)
    assert released(batches, after=0.01) == {P}
    assert len(deb) == 0


def test_continuous_events_are_released_at_the_longest_hold(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (5, 1)
    t = 0.0
    released = []
    while t < 2.0:
        deb.record(P, t)  # a file rewritten (and closed) every 50 ms
        if deb.take_ready(t):
            released.append(round(t, 2))
        t += 0.05
    assert released
    assert released[0] == pytest.approx(HOLD, abs=0.06)


def test_a_file_appended_and_closed_every_100_ms_is_released_at_the_longest_hold(
    deb: Debouncer, disk: Disk
) -> None:
    """As inotify reports a log appended to by `echo >>`: each close restarted the hold, so
    the file was not sent for as long as the appends went on."""
    t, size, released = 0.0, 0, []
    while t < 3.0:
        size += 10
        disk.files["a.txt"] = (size, int(t * 1e9))
        deb.record(P, t, writing=True)
        deb.record(P, t + 0.001, writing=False)
        released += [round(t, 2) for _ in range(len(deb.take_ready(t + 0.002)))]
        t += 0.1
    assert released
    assert released[0] == pytest.approx(HOLD, abs=0.11)


def test_a_file_being_written_is_held_until_it_is_closed(deb: Debouncer, disk: Disk) -> None:
    # Written every 400 ms (longer than the quiet window) for 3 s, then closed.
    t = 0.0
    size = 0
    deb.record(P, t, writing=True)
    batches = []
    while t < 3.0:
        size += 100
        disk.files["a.txt"] = (size, int(t * 1e9))
        deb.record(P, t, writing=True)
        batches += run_until(deb, t, t + 0.4 - TICK)
        t += 0.4
    assert batches == []
    deb.record(P, t, writing=False)
    assert released(run_until(deb, t, t + 0.5), after=t) == {P}


def test_a_file_left_open_is_released_at_the_settle_limit(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (1, 1)
    deb.record(P, 0.0, writing=True)
    batches = run_until(deb, 0.0, SETTLE + 0.5)
    assert len(batches) == 1
    assert batches[0][0] == pytest.approx(SETTLE, abs=TICK)


def test_a_file_kept_open_and_written_all_the_time_is_released_at_the_settle_limit(
    deb: Debouncer, disk: Disk
) -> None:
    # A log appended every 50 ms, never closed: the quiet window never comes, yet it must be
    # synced (a snapshot) at the settle limit, and again after each further limit.
    times = []
    for i in range(round(2.5 * SETTLE / 0.05)):
        t = round(i * 0.05, 6)
        disk.files["app.log"] = (i, i)
        deb.record(RelPath("app.log"), t, writing=True)
        if deb.take_ready(round(t + TICK, 6)):
            times.append(t + TICK)
    assert len(times) == 2, times
    assert times[0] == pytest.approx(SETTLE, abs=0.1)
    assert times[1] == pytest.approx(2 * SETTLE, abs=0.2)


def test_a_snapshot_taken_at_the_settle_limit_is_not_held_back_by_the_next_write(
    deb: Debouncer, disk: Disk
) -> None:
    """The batch of a snapshot asks what is held before it scans; a log written every 50 ms
    was held again by then, and the batch dropped it, every time: never sent. Such a file
    is not held while its writer goes on; once it is closed, holds are as before."""
    log = RelPath("app.log")
    t = 0.0
    while not deb.take_ready(t):
        deb.record(log, t, writing=True)
        t = round(t + 0.05, 6)
    deb.record(log, t, writing=True)  # the next line, before the batch looks
    assert log not in deb.held()
    deb.record(log, t, writing=False)
    deb.record(log, t + 0.05, writing=True)
    assert log in deb.held()


def test_a_size_change_without_events_restarts_the_quiet_window(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (1, 1)
    deb.record(P, 0.0)
    assert run_until(deb, 0.0, 0.1) == []
    disk.files["a.txt"] = (2, 2)  # e.g. a writer on another machine (no local event)
    batches = run_until(deb, 0.125, 1.0)
    assert len(batches) == 1
    assert batches[0][0] >= 0.15 + QUIET - TICK  # a full window after the change was seen


def test_a_deleted_file_is_released(deb: Debouncer) -> None:
    deb.record(P, 0.0)
    assert released(run_until(deb, 0.0, 0.5), after=0.0) == {P}


def test_events_below_a_folder_ride_with_it(deb: Debouncer, disk: Disk) -> None:
    disk.files["d/x"] = (1, 1)
    deb.record(RelPath("d/x"), 0.0)  # held before the folder's event (rm -rf order)
    deb.record(RelPath("d"), 0.01, tree=True)
    for i in range(10):
        deb.record(RelPath(f"d/e/{i}"), 0.02 + i * 0.01)
    assert deb.held() == {RelPath("d")}
    assert released(run_until(deb, 0.0, 1.0), after=0.11) == {RelPath("d")}


def test_a_folder_with_a_file_being_written_inside_waits_for_it(deb: Debouncer, disk: Disk) -> None:
    deb.record(RelPath("d"), 0.0, tree=True)
    deb.record(RelPath("d/big"), 0.01, writing=True)
    assert run_until(deb, 0.0, 2.0) == []
    deb.record(RelPath("d/big"), 2.0, writing=False)
    assert released(run_until(deb, 2.0, 2.5), after=2.0) == {RelPath("d")}


def test_both_ends_of_a_rename_come_in_one_batch(deb: Debouncer, disk: Disk) -> None:
    disk.files["new"] = (3, 3)
    deb.record(RelPath("old"), 0.0, partner=RelPath("new"))
    deb.record(RelPath("new"), 0.0, partner=RelPath("old"))
    deb.record(RelPath("new"), 0.05)  # touched again: its own hold would end later
    # The delete is released when it settles, and takes its partner along.
    assert released(run_until(deb, 0.0, 1.0), after=0.0) == {RelPath("old"), RelPath("new")}


def test_a_rename_partner_still_being_written_waits(deb: Debouncer, disk: Disk) -> None:
    disk.files["new"] = (3, 3)
    deb.record(RelPath("old"), 0.0, partner=RelPath("new"))
    deb.record(RelPath("new"), 0.0, partner=RelPath("old"))
    deb.record(RelPath("new"), 0.05, writing=True)
    assert released(run_until(deb, 0.0, 0.3), after=0.0) == {RelPath("old")}
    deb.record(RelPath("new"), 0.4, writing=False)
    assert released(run_until(deb, 0.4, 1.0), after=0.4) == {RelPath("new")}


def test_a_file_fsync_wrote_itself_is_not_reported(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (5, 42)
    deb.suppress(P, 42, now=0.0)
    deb.record(P, 0.0)
    assert run_until(deb, 0.0, 0.5) == []
    assert len(deb) == 0
    disk.files["a.txt"] = (6, 43)  # then the user edits it
    deb.record(P, 1.0)
    assert released(run_until(deb, 1.0, 1.5), after=1.0) == {P}


def test_suppression_expires(deb: Debouncer, disk: Disk) -> None:
    disk.files["a.txt"] = (5, 42)
    deb.suppress(P, 42, now=0.0)
    deb.take_ready(100.0)
    deb.record(P, 100.0)
    assert released(run_until(deb, 100.0, 100.5), after=100.0) == {P}


def test_folders_are_not_statted(deb: Debouncer, disk: Disk) -> None:
    disk.files["d"] = FOLDER_SIG
    deb.record(RelPath("d"), 0.0, tree=True)
    run_until(deb, 0.0, 0.5)
    assert disk.stats == 0


def test_twenty_thousand_events_on_few_paths_hold_few_entries(deb: Debouncer, disk: Disk) -> None:
    for i in range(20_000):
        path = RelPath(f"f{i % 50}")
        disk.files[path] = (i, i)
        deb.record(path, i * 0.0001)
    assert len(deb) == 50
    assert len(run_until(deb, 2.0, 2.2)[0][1]) == 50
