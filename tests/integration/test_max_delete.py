"""`--max-delete` for push, pull and sync on every backend: a plan that deletes more than the
cap deletes nothing at all and stops with `SafetyAbort` (exit status 2) saying how many and
why; a cap that allows it, or `--force`, lets it through."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.errors import ExitCode, SafetyAbort, exit_code_for
from fsync.model import Direction, RunResult
from fsync.progress import NullReporter
from fsynctest.remotes import RemoteTree
from fsynctest.trees import listing, write

NAMES = [f"f{i}.txt" for i in range(10)]
GONE = NAMES[:6]


def run(local: Path, tree: RemoteTree, direction: Direction, **knobs: object) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=tree.url,
        direction=direction,
        storage_options=tree.storage_options,
        **knobs,  # type: ignore[arg-type]
    )
    return app.run(opts, NullReporter())


@pytest.mark.parametrize("direction", [Direction.PUSH, Direction.PULL, Direction.SYNC])
@pytest.mark.parametrize(
    ("knobs", "why"),
    [
        ({}, r"limit of 5 \(50% of 10 synced files\)"),
        ({"max_delete": "5"}, r"limit of 5 \(--max-delete 5\)"),
        ({"max_delete": "60%"}, None),
        ({"max_delete": "59.9%"}, r"limit of 5 \(59.9% of 10 synced files\)"),
        ({"force": True}, None),
    ],
    ids=["default", "count", "percent-allows", "percent-exact", "force"],
)
def test_max_delete(
    direction: Direction,
    knobs: dict[str, object],
    why: str | None,
    remote_tree: RemoteTree,
    tmp_path: Path,
) -> None:
    local = tmp_path / "local"
    write(local, {name: name for name in NAMES})
    assert run(local, remote_tree, Direction.PUSH).uploaded == 10
    for name in GONE:
        if direction is Direction.PULL:
            remote_tree.delete(name)
        else:
            (local / name).unlink()
    destination = (
        (lambda: set(listing(local)))
        if direction is Direction.PULL
        else (lambda: set(remote_tree.tree()))
    )
    if why is not None:
        with pytest.raises(
            SafetyAbort, match=f"the plan deletes 6 files, more than the {why}"
        ) as e:
            run(local, remote_tree, direction, **knobs)
        assert exit_code_for(e.value) is ExitCode.USAGE
        assert destination() == set(NAMES)
        return
    result = run(local, remote_tree, direction, **knobs)
    assert (result.deleted, result.failed) == (6, 0)
    assert destination() == set(NAMES[6:])
