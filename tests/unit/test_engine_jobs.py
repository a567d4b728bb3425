"""How the engine cuts a plan into jobs for its worker threads (`engine._jobs`)."""

from __future__ import annotations

from fsync.model import Action, ActionKind, Digest, LocalEntry, RelPath
from fsync.transfer.engine import JOB_BYTES, _jobs
from fsync.transfer.worker import STAGED_MAX


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
    staged = [upload(f"m{i}", STAGED_MAX) for i in range(6)]
    actions = (*small, *staged)
    jobs = list(_jobs(actions, 3))
    assert [a for job in jobs for a in job] == list(actions)
    assert sizes(jobs) == [
        [1000] * 3,
        [1000, 1000, STAGED_MAX],
        [STAGED_MAX] * 3,
        [STAGED_MAX] * 2,
    ]
    assert sizes(list(_jobs(tuple(staged), 64))) == [[STAGED_MAX] * 4, [STAGED_MAX] * 2]
    assert JOB_BYTES == 4 * STAGED_MAX


def test_an_action_too_large_to_stage_is_a_job_alone() -> None:
    big = upload("big", STAGED_MAX + 1)
    actions = (upload("a", 10), big, upload("b", 10), upload("c", 10), big)
    assert sizes(list(_jobs(actions, 64))) == [[10], [STAGED_MAX + 1], [10, 10], [STAGED_MAX + 1]]


def test_no_actions_no_jobs() -> None:
    assert list(_jobs((), 64)) == []
