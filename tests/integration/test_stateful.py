"""Random edits on both sides interleaved with push, pull and sync: no version is ever lost.

A hypothesis state machine owns a local folder and a remote (memory://, or a prefix of a
bucket on the moto S3 server). Its rules edit, create, delete and rename files on either
side (the remote through a second client, never through fsync) and run `fsync push`, `pull`
or `sync` with a random `--on-conflict` policy, with or without `--backup-dir`. Every write
makes content no other write made, so a version is its bytes. After every run:

- with `--backup-dir`, every version that existed when the run started is still somewhere:
  at a path of either side (its own, a conflict copy, a rename) or in the backup dir;
- without it (keep-both or skip), the only versions that may be gone are ones someone
  replaced or deleted on one side (fsync carries that change to the other side);
- nothing failed, and a safety stop changed nothing.

And at any point, once no one edits: one sync makes both sides equal, and the next sync
plans nothing at all.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from fsync import app
from fsync.config import SyncOptions
from fsync.errors import ConfigError, SafetyAbort
from fsync.model import ActionRecord, ConflictPolicy, Direction, RunResult
from fsync.progress import NullReporter
from fsynctest.remotes import MemoryTree, RemoteTree, S3Tree, empty_bucket, new_bucket
from fsynctest.trees import listing

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt", "g.bin", "moved/h.txt"]
SIDES = st.sampled_from(["local", "remote"])
COMMANDS = st.sampled_from([Direction.PUSH, Direction.PULL, Direction.SYNC])
SAFE = [ConflictPolicy.KEEP_BOTH, ConflictPolicy.SKIP]
"""Policies that keep an unsynced version without a backup dir."""


class SyncMachine(RuleBasedStateMachine):
    """One local folder and one remote, edited at random and synced at random."""

    make_remote: Callable[[], tuple[RemoteTree, str, Callable[[], dict[str, bytes]]]]
    """Set per backend: (the remote, the backup dir URL, a reader of the backup dir)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="fsync-stateful-"))
        self.local = self.tmp / "local"
        self.local.mkdir()
        self.remote, self.backup_url, self.backed_up = type(self).make_remote()
        self.written = 0
        self.dropped: set[bytes] = set()
        """Versions someone replaced or deleted on one side: a run may carry that over."""

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(self.remote, MemoryTree):
            self.remote.remove()

    # -- the two trees -------------------------------------------------------------------

    def files(self, side: str) -> dict[str, bytes]:
        if side == "remote":
            return self.remote.tree()
        return {k: v for k, v in listing(self.local).items() if isinstance(v, bytes)}

    def versions(self) -> set[bytes]:
        return {*self.files("local").values(), *self.files("remote").values()} | set(
            self.backed_up().values()
        )

    def fresh(self, size: int) -> bytes:
        self.written += 1
        return (f"version {self.written} ".encode() * size)[: max(size, 12)]

    # -- edits by people -----------------------------------------------------------------

    @rule(side=SIDES, name=st.sampled_from(NAMES), size=st.integers(1, 64))
    def write(self, side: str, name: str, size: int) -> None:
        old = self.files(side).get(name)
        if old is not None:
            self.dropped.add(old)
        data = self.fresh(size)
        if side == "remote":
            self.remote.write(name, data)
        else:
            (self.local / name).parent.mkdir(parents=True, exist_ok=True)
            (self.local / name).write_bytes(data)

    @rule(side=SIDES, data=st.data())
    def delete(self, side: str, data: st.DataObject) -> None:
        present = sorted(self.files(side))
        if not present:
            return
        name = data.draw(st.sampled_from(present), label="delete")
        self.dropped.add(self.files(side)[name])
        if side == "remote":
            self.remote.delete(name)
        else:
            (self.local / name).unlink()

    @rule(side=SIDES, data=st.data())
    def rename(self, side: str, data: st.DataObject) -> None:
        present = self.files(side)
        free = [n for n in NAMES if n not in present]
        if not present or not free:
            return
        src = data.draw(st.sampled_from(sorted(present)), label="from")
        dst = data.draw(st.sampled_from(free), label="to")
        if side == "remote":
            self.remote.rename(src, dst)
        else:
            (self.local / dst).parent.mkdir(parents=True, exist_ok=True)
            (self.local / src).rename(self.local / dst)

    # -- runs ----------------------------------------------------------------------------

    def run_fsync(self, direction: Direction, **knobs: Any) -> RunResult:
        opts = SyncOptions(
            local_root=str(self.local),
            remote_url=self.remote.url,
            direction=direction,
            storage_options=self.remote.storage_options,
            **knobs,
        )
        return app.run(opts, NullReporter())

    @rule(
        direction=COMMANDS,
        policy=st.sampled_from(list(ConflictPolicy)),
        backup=st.booleans(),
        force=st.booleans(),
    )
    def run(self, direction: Direction, policy: ConflictPolicy, backup: bool, force: bool) -> None:
        if not backup and policy not in SAFE:
            policy = ConflictPolicy.KEEP_BOTH
        before = self.versions()
        trees = (self.files("local"), self.files("remote"))
        knobs: dict[str, Any] = {"on_conflict": policy, "force": force}
        if backup:
            knobs["backup_dir"] = self.backup_url
        try:
            result = self.run_fsync(direction, **knobs)
        except SafetyAbort:
            assert (self.files("local"), self.files("remote")) == trees
            return
        except ConfigError:
            # A pull from a remote root that is not there (yet, or any more: memory:// has
            # no empty folders) is refused before anything is done.
            assert direction is Direction.PULL
            assert not trees[1]
            assert (self.files("local"), self.files("remote")) == trees
            return
        assert result.failed == 0, result.errors
        lost = before - self.versions()
        assert not (lost if backup else lost - self.dropped), lost

    @rule()
    def settle(self) -> None:
        """No one edits: one sync makes both sides equal; the next plans nothing."""
        before = self.versions()
        result = self.run_fsync(Direction.SYNC, force=True, backup_dir=self.backup_url)
        assert (result.failed, result.unresolved) == (0, 0), result
        assert self.files("local") == self.files("remote")
        assert before <= self.versions()
        records: list[ActionRecord] = []
        opts = SyncOptions(
            local_root=str(self.local),
            remote_url=self.remote.url,
            direction=Direction.SYNC,
            storage_options=self.remote.storage_options,
            dry_run=True,
        )
        app.run(opts, NullReporter(), on_action=records.append)
        assert records == [], (records, self.files("local"), self.files("remote"))


def machine_for(
    make_remote: Callable[[], tuple[RemoteTree, str, Callable[[], dict[str, bytes]]]],
) -> type[SyncMachine]:
    return type("Machine", (SyncMachine,), {"make_remote": staticmethod(make_remote)})


def test_memory(tmp_path: Path) -> None:
    backups = tmp_path / "kept"

    def make() -> tuple[RemoteTree, str, Callable[[], dict[str, bytes]]]:
        shutil.rmtree(backups, ignore_errors=True)
        tree = MemoryTree(f"fsync-stateful-{uuid.uuid4().hex}")

        def kept() -> dict[str, bytes]:
            return {k: v for k, v in listing(backups).items() if isinstance(v, bytes)}

        return tree, str(backups), kept

    run_state_machine_as_test(
        machine_for(make),
        settings=settings(
            max_examples=120,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.s3
def test_s3_on_moto(moto_server: Any) -> None:
    client = moto_server.boto3_client()
    bucket = new_bucket(client)

    # One aiobotocore session (s3fs's `session` option) for all the runs: a fresh one per
    # run loaded botocore's S3 model again, 0.3 s of each run's 0.4 s. Each run still builds
    # its own client, with its own connections, on it.
    session = AioSession()

    def make() -> tuple[RemoteTree, str, Callable[[], dict[str, bytes]]]:
        tree = S3Tree(moto_server, bucket, f"t{uuid.uuid4().hex[:12]}", client)
        tree.storage_options["session"] = session
        beside = tree.sibling("backup")
        return tree, beside.url, beside.tree

    try:
        run_state_machine_as_test(
            machine_for(make),
            settings=settings(
                max_examples=8,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        empty_bucket(client, bucket)
        client.close()
