"""Background retries and the `--on-error` alarm of `fsync watch`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from fsync.model import Digest, RelPath
from fsync.watchretry import RACES_AT_ONCE, Alarm, Retries

P, Q = RelPath("p"), RelPath("q")


def test_delays_double_up_to_the_longest() -> None:
    r = Retries(retries=10, delay=1.0, max_delay=5.0)
    now = 0.0
    gaps = []
    for _ in range(5):
        r.failed(P, "boom", now)
        due_at = r.next_due()
        assert due_at is not None
        gaps.append(due_at - now)
        assert r.due(due_at - 0.01) == set()
        assert r.due(due_at) == {P}
        assert r.due(due_at) == set()  # handed out once per failure
        now = due_at
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_alarm_fires_once_when_the_retries_are_spent() -> None:
    r = Retries(retries=2, delay=1.0, max_delay=1.0)
    fired = [r.failed(P, f"error {i}", float(i)) for i in range(6)]
    assert fired == [False, False, True, False, False, False]
    assert r.failing() == {P: "error 5"}
    r.succeeded([P])
    assert r.failing() == {}
    assert [r.failed(P, "again", 10.0 + i) for i in range(3)] == [False, False, True]


def test_success_clears_only_the_named_paths() -> None:
    r = Retries(retries=1, delay=1.0, max_delay=1.0)
    r.failed(P, "p broke", 0.0)
    r.failed(Q, "q broke", 0.0)
    r.succeeded([P, RelPath("other")])
    assert r.failing() == {Q: "q broke"}
    assert len(r) == 1


def test_a_path_whose_remote_changed_is_tried_again_after_the_first_delay_not_failing() -> None:
    """Counted as failures, races in a row doubled the delay up to the longest, and the path
    showed as failing; they keep a real failure streak as it is. Past a few in a row (a file
    someone rewrites all the time) they are failures: planned again every second, each made
    a request and a conflict copy, for as long as the watch ran, and --on-error never fired."""
    r = Retries(retries=1, delay=1.0, max_delay=300.0)
    for i in range(RACES_AT_ONCE):
        assert not r.raced(P, "changed since it was listed", float(i))
    assert r.next_due() == RACES_AT_ONCE
    assert (r.failing(), len(r)) == ({}, 1)
    now = float(RACES_AT_ONCE)
    assert not r.raced(P, "changed since it was listed", now)  # failure 1 of 1 + 1
    assert r.next_due() == now + 1.0
    assert r.raced(P, "changed since it was listed", now + 1.0)  # retries spent: alarm
    assert r.next_due() == now + 1.0 + 2.0
    assert r.failing() == {P: "changed since it was listed"}
    assert not r.raced(P, "changed since it was listed", now + 3.0, Digest("ab" * 32))
    assert r.next_due() == now + 3.0 + 1.0  # a new version of ours: a new count
    r.succeeded([P])
    r.failed(Q, "boom", 0.0)
    r.failed(Q, "boom", 1.0)
    r.raced(Q, "changed since it was listed", 2.0)
    assert r.failing() == {Q: "changed since it was listed"}
    r.failed(Q, "boom", 3.0)
    assert r.due(3.0 + 4.0) == {Q}  # the third failure's delay: the streak was kept


def test_the_alarm_runs_the_command_with_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    warnings: list[str] = []
    alarm = Alarm(f"cat > {out}", warnings.append)
    alarm.fire({"failed": 1, "errors": [{"path": "p", "error": "boom"}]})
    alarm.wait()
    assert json.loads(out.read_text()) == {"failed": 1, "errors": [{"path": "p", "error": "boom"}]}
    assert warnings == []
    assert threading.active_count() == 1 or all(
        t.name != "fsync-alarm" for t in threading.enumerate()
    )


def test_a_failing_alarm_is_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    alarm = Alarm("exit 7", warnings.append)
    alarm.fire({"failed": 1})
    alarm.wait()
    assert len(warnings) == 1
    assert "7" in warnings[0]


def test_no_command_no_alarm() -> None:
    warnings: list[str] = []
    before = set(threading.enumerate())
    for command in (None, ""):
        alarm = Alarm(command, warnings.append)
        alarm.fire({"failed": 1})
        assert set(threading.enumerate()) == before  # no command started, not even a shell
        alarm.wait()
    assert warnings == []
