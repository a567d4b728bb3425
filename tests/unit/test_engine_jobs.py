"""How the engine cuts a plan into jobs for its worker threads (`engine._jobs`)."""

from __future__ import annotations

from fsync.model import Action, ActionKind, Digest, LocalEntry, RelPath
from fsync.transfer.engine import JOB_BYTES, _jobs


def upload(name: str, size: int) -> Action:
    entry = LocalEntry(size, 1, Digest("0" * 64))
    return Action(ActionKind.UPLOAD, RelPath(name), entry, None, None, "new")


def sizes(jobs: list[list[Action]]) -> list[list[int]]:
    return [[a.local.size for a in job if a.local is not None] for job in jobs]


def test_one_action_per_job_unless_grouping_is_asked_for() -> None:
    actions = tuple(upload(f"f{i}", 10) for i in range(3))
    assert sizes(list(_jobs(actions, 1))) == [[10], [10], [10]]


def test_jobs_keep_order_and_stop_at_the_count_or_the_bytes() -> None:
    small = [upload(f"s{i}", 1000) for i in range(5)]
    big = upload("big", JOB_BYTES * 3)
    half = upload("half", JOB_BYTES // 2)
    actions = (*small, big, half, half, half)
    jobs = list(_jobs(actions, 3))
    assert [a for job in jobs for a in job] == list(actions)
    assert sizes(jobs) == [
        [1000] * 3,
        [1000] * 2,
        [JOB_BYTES * 3],  # larger than a job: alone
        [JOB_BYTES // 2] * 2,
        [JOB_BYTES // 2],
    ]


def test_no_actions_no_jobs() -> None:
    assert list(_jobs((), 64)) == []
