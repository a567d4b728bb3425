"""Every `--on-conflict` policy, end to end through `app.run`, for push, pull and sync, on
every backend (a folder, memory://, S3 on moto and on Ceph RGW).

One scenario per case: `doc.txt` is synced, then the local copy becomes `mine` and a second
writer makes the remote one `theirs`, with modification times that make one side newer. The
run must leave exactly the trees the policy promises, count one conflict, and exit with the
status DESIGN.md gives; with `--backup-dir`, no version may be lost whatever the policy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.manifest.journal import TransferJournal
from fsync.model import ConflictPolicy, Direction, RelPath, RunResult
from fsync.progress import NullReporter
from fsync.remote import open_remote
from fsynctest.remotes import RemoteTree
from fsynctest.trees import listing, write

KB, NEWER, LOCAL, REMOTE, SKIP = (
    ConflictPolicy.KEEP_BOTH,
    ConflictPolicy.NEWER,
    ConflictPolicy.LOCAL,
    ConflictPolicy.REMOTE,
    ConflictPolicy.SKIP,
)
PUSH, PULL, SYNC = Direction.PUSH, Direction.PULL, Direction.SYNC
MINE, THEIRS = b"mine, edited here", b"theirs, edited there"
HOUR = 3600 * 10**9


def run(local: Path, tree: RemoteTree, direction: Direction, **knobs: object) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=tree.url,
        direction=direction,
        storage_options=tree.storage_options,
        **knobs,  # type: ignore[arg-type]
    )
    return app.run(opts, NullReporter())


def conflicted(local: Path, tree: RemoteTree, newer: str) -> None:
    """Sync `doc.txt`, then change it on both sides; `newer` names the side written last."""
    write(local, {"doc.txt": "the synced version", "other.txt": "untouched"})
    assert run(local, tree, PUSH).uploaded == 2
    now = time.time_ns()
    local_t, remote_t = (
        (now + HOUR, now - HOUR) if newer == "local" else (now - 2 * HOUR, now + HOUR)
    )
    write(local, {"doc.txt": MINE})
    os.utime(local / "doc.txt", ns=(local_t, local_t))
    tree.write("doc.txt", THEIRS, mtime_ns=remote_t)


@dataclass(frozen=True)
class Final:
    """What each side holds afterwards: `doc.txt`, and the conflict copy (None: there is none)."""

    local: bytes
    remote: bytes
    local_copy: bytes | None = None
    remote_copy: bytes | None = None
    status: int = 0


def expected(direction: Direction, policy: ConflictPolicy, newer: str) -> Final:
    """DESIGN.md's conflict rules for this scenario."""
    if policy is SKIP:
        return Final(MINE, THEIRS, status=3)
    if direction is PUSH:
        if policy is KB:
            return Final(MINE, MINE, remote_copy=THEIRS)
        wins = policy is LOCAL or (policy is NEWER and newer == "local")
        return Final(MINE, MINE if wins else THEIRS)
    if direction is PULL:
        if policy is KB:
            return Final(THEIRS, THEIRS, local_copy=MINE)
        wins = policy is REMOTE or (policy is NEWER and newer == "remote")
        return Final(THEIRS if wins else MINE, THEIRS)
    winner = {LOCAL: "local", REMOTE: "remote"}.get(policy, newer)
    content, loser = (MINE, THEIRS) if winner == "local" else (THEIRS, MINE)
    if policy is KB:
        return Final(content, content, loser, loser)
    return Final(content, content)


def _cases(policies: tuple[ConflictPolicy, ...] = tuple(ConflictPolicy)) -> list[object]:
    cases = []
    for direction in (PUSH, PULL, SYNC):
        for policy in policies:
            by_time = policy is NEWER or (policy is KB and direction is SYNC)
            for newer in ("local", "remote") if by_time else ("local",):
                name = f"{direction.value}-{policy.value}" + (f"-{newer}-newer" if by_time else "")
                cases.append(pytest.param(direction, policy, newer, id=name))
    return cases


def split(files: dict[str, bytes]) -> tuple[bytes | None, bytes | None, set[str]]:
    """(doc.txt, its one conflict copy, the other names) of a tree listing."""
    copies = [name for name in files if name.startswith("doc.conflict-")]
    assert len(copies) <= 1, copies
    for name in copies:
        assert name.endswith(".txt")
    rest = set(files) - {"doc.txt", *copies}
    return files.get("doc.txt"), files[copies[0]] if copies else None, rest


@pytest.mark.parametrize(("direction", "policy", "newer"), _cases())
def test_policy(
    direction: Direction,
    policy: ConflictPolicy,
    newer: str,
    remote_tree: RemoteTree,
    tmp_path: Path,
) -> None:
    local = tmp_path / "local"
    conflicted(local, remote_tree, newer)
    result = run(local, remote_tree, direction, on_conflict=policy)
    want = expected(direction, policy, newer)
    assert (result.conflicts, result.failed) == (1, 0), result.errors
    assert result.unchanged == 1  # other.txt; doc.txt is the conflict, whichever side won
    assert int(app.exit_status(result)) == want.status
    here = split({k: v for k, v in listing(local).items() if isinstance(v, bytes)})
    there = split(remote_tree.tree())
    assert (here[0], there[0]) == (want.local, want.remote)
    assert (here[1], there[1]) == (want.local_copy, want.remote_copy)
    assert here[2] == there[2] == {"other.txt"}


@pytest.mark.parametrize(("direction", "policy", "newer"), _cases((NEWER, LOCAL, REMOTE)))
def test_policy_with_backup_dir_loses_nothing(
    direction: Direction,
    policy: ConflictPolicy,
    newer: str,
    remote_tree: RemoteTree,
    tmp_path: Path,
) -> None:
    """The policies that let one version overwrite the other (keep-both and skip never do):
    push and sync keep versions beside the remote, pull in a local folder; either way the
    overwritten version is there, under its own path."""
    local = tmp_path / "local"
    conflicted(local, remote_tree, newer)
    beside = remote_tree.sibling("backup")
    backup_url = str(tmp_path / "backup") if direction is PULL else beside.url
    result = run(local, remote_tree, direction, on_conflict=policy, backup_dir=backup_url)
    assert (result.conflicts, result.failed) == (1, 0), result.errors
    kept = listing(tmp_path / "backup") if direction is PULL else beside.tree()
    everything = [*listing(local).values(), *remote_tree.tree().values(), *kept.values()]
    assert MINE in everything
    assert THEIRS in everything
    assert set(kept) <= {"doc.txt"}


def test_a_journaled_copy_edited_since_is_not_taken_for_the_version(
    remote_tree: RemoteTree, tmp_path: Path
) -> None:
    """A keep-both run journals the name of its copy of the remote version before making it,
    and a run that meets the conflict again keeps that copy rather than making a second. A
    file at that name with the version's size but edited since (another mtime) is no copy of
    it: taken for one, the version was overwritten and kept nowhere."""
    if remote_tree.name == "memory":
        pytest.skip("memory:// keeps no mtime, and lives in one process: no run comes back")
    local = tmp_path / "local"
    conflicted(local, remote_tree, newer="local")
    remote = open_remote(remote_tree.url, storage_options=remote_tree.storage_options)
    try:
        listed = remote.list().entries[RelPath("doc.txt")]
        key = remote.key
    finally:
        remote.close()
    fake = "doc.conflict-20260101-000000-elsewhere.txt"
    remote_tree.write(fake, b"x" * len(THEIRS), mtime_ns=time.time_ns() - 3 * HOUR)
    with TransferJournal.open(str(local)) as journal:
        journal.copying(key, RelPath("doc.txt"), listed.fingerprint, RelPath(fake))

    result = run(local, remote_tree, SYNC, on_conflict=KB)

    assert result.conflicts == 1
    remote_files = remote_tree.tree()
    assert remote_files[fake] == b"x" * len(THEIRS)
    assert THEIRS in [data for name, data in remote_files.items() if name != fake]
    assert THEIRS in [data for name, data in listing(local).items() if name != fake]
