"""`planner_sync.plan_sync`, the two-way planner: its rules row by row, and its properties.

Rows plan one path, `f.txt`, beside a filler that is in sync (as in test_planner_table.py),
with entries from fsynctest.entries.
The properties run random small worlds through `simulate`, which applies a two-way plan as
the engine does, keep-both copies on both sides included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsync.errors import SafetyAbort
from fsync.model import (
    Action,
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    Digest,
    Direction,
    LocalEntry,
    Plan,
    RelPath,
    RemoteEntry,
    SyncPolicy,
)
from fsync.planner_sync import plan_sync
from fsynctest.entries import (
    P,
    bas,
    conflict_copy,
    fingerprint,
    loc,
    one_path,
    rem,
    snapshots,
    tree,
)

K = ActionKind
KB, NEWER, LOCAL, REMOTE, SKIP = (
    ConflictPolicy.KEEP_BOTH,
    ConflictPolicy.NEWER,
    ConflictPolicy.LOCAL,
    ConflictPolicy.REMOTE,
    ConflictPolicy.SKIP,
)


def run(
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    **policy: object,
) -> Plan:
    return plan_sync(*one_path(local, remote, base), SyncPolicy(Direction.SYNC, **policy))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Expect:
    kind: ActionKind | None = None
    conflict: bool = False
    keep_copy: bool = False
    notice: bool = False


def check(result: Plan, want: Expect) -> None:
    got = [(a.path, a.kind, a.conflict, a.keep_copy, a.share_copy) for a in result.actions]
    wanted = [(P, want.kind, want.conflict, want.keep_copy, want.keep_copy)] if want.kind else []
    assert got == wanted
    assert [n.path for n in result.notices] == ([P] if want.notice else [])
    quiet = want.kind is None and not want.notice
    assert result.unchanged == (2 if quiet else 1)


D0, D1, D2 = "d0", "d1", "d2"
NOTHING = Expect()
UP, DOWN, REC = Expect(K.UPLOAD), Expect(K.DOWNLOAD), Expect(K.RECORD)
UP_C, DOWN_C = Expect(K.UPLOAD, conflict=True), Expect(K.DOWNLOAD, conflict=True)
UP_KB = Expect(K.UPLOAD, conflict=True, keep_copy=True)
DOWN_KB = Expect(K.DOWNLOAD, conflict=True, keep_copy=True)
SKIPPED = Expect(K.CONFLICT, conflict=True, notice=True)

ROWS = [
    ("unchanged-unchanged", loc(D0), rem(D0), bas(D0), NOTHING),
    ("changed-unchanged", loc(D1), rem(D0), bas(D0), UP),
    ("new-absent", loc(D1), None, None, UP),
    ("unchanged-changed", loc(D0), rem(D1), bas(D0), DOWN),
    ("absent-new", None, rem(D1), None, DOWN),
    ("deleted-unchanged", None, rem(D0), bas(D0), Expect(K.DELETE_REMOTE)),
    ("unchanged-deleted", loc(D0), None, bas(D0), Expect(K.DELETE_LOCAL)),
    ("deleted-deleted", None, None, bas(D0), Expect(K.FORGET)),
    ("changed-changed-same", loc(D1), rem(D1, moved=True), bas(D0), REC),
    ("changed-changed-differ", loc(D1), rem(D2), bas(D0), UP_KB),
    ("changed-changed-remote-newer", loc(D1, mtime=1), rem(D2, mtime=2), bas(D0), DOWN_KB),
    ("deleted-changed", None, rem(D1), bas(D0), DOWN_C),
    ("changed-deleted", loc(D1), None, bas(D0), UP_C),
    ("nobase-same", loc(D1), rem(D1), None, REC),
    ("nobase-differ", loc(D1), rem(D2), None, UP_KB),
    ("nobase-digest-unknown", loc(D1), rem(D1, known=False), None, UP_KB),
    ("rewritten-same-content", loc(D0), rem(D0, moved=True), bas(D0), REC),
    ("rewritten-digest-unknown", loc(D0), rem(D0, moved=True, known=False), bas(D0), DOWN),
    ("deleted-rewritten-same", None, rem(D0, moved=True), bas(D0), Expect(K.DELETE_REMOTE)),
    ("digest-unknown-unchanged", loc(D0), rem(D0, known=False), bas(D0), NOTHING),
]


@pytest.mark.parametrize(
    ("local", "remote", "base", "want"), [pytest.param(*row[1:], id=row[0]) for row in ROWS]
)
def test_row(
    local: LocalEntry | None, remote: RemoteEntry | None, base: BaseEntry | None, want: Expect
) -> None:
    result = run(local, remote, base)
    check(result, want)
    for action in result.actions:
        assert (action.local, action.remote, action.base) == (local, remote, base)


@pytest.mark.parametrize(
    ("policy", "mtimes", "want"),
    [
        (KB, (2, 1), UP_KB),
        (KB, (1, 2), DOWN_KB),
        (KB, (1, None), UP_KB),
        (NEWER, (2, 1), UP_C),
        (NEWER, (1, 2), DOWN_C),
        (NEWER, (2, 2), UP_KB),  # a tie cannot pick a winner: both are kept
        (NEWER, (2, None), UP_KB),
        (LOCAL, (1, 2), UP_C),
        (REMOTE, (2, 1), DOWN_C),
        (SKIP, (1, 2), SKIPPED),
    ],
)
@pytest.mark.parametrize("with_base", [True, False], ids=["changed-both", "no-base"])
def test_content_conflict(
    policy: ConflictPolicy, mtimes: tuple[int, int | None], want: Expect, with_base: bool
) -> None:
    local, remote = loc(D1, mtime=mtimes[0]), rem(D2, mtime=mtimes[1])
    result = run(local, remote, bas(D0) if with_base else None, on_conflict=policy)
    check(result, want)
    assert result.actions[0].reason.startswith("conflict")


@pytest.mark.parametrize(
    ("policy", "deleted_here", "want"),
    [
        (KB, True, DOWN_C),
        (NEWER, True, DOWN_C),
        (REMOTE, True, DOWN_C),
        (LOCAL, True, Expect(K.DELETE_REMOTE, conflict=True)),
        (SKIP, True, SKIPPED),
        (KB, False, UP_C),
        (NEWER, False, UP_C),
        (LOCAL, False, UP_C),
        (REMOTE, False, Expect(K.DELETE_LOCAL, conflict=True)),
        (SKIP, False, SKIPPED),
    ],
)
def test_delete_vs_change(policy: ConflictPolicy, deleted_here: bool, want: Expect) -> None:
    """One side deleted what the other changed: the change survives unless the deleting side
    is the chosen one."""
    local, remote = (None, rem(D1)) if deleted_here else (loc(D1), None)
    check(run(local, remote, bas(D0), on_conflict=policy), want)


def test_a_first_run_never_deletes() -> None:
    local = {RelPath("a"): loc(D1), RelPath("b"): loc(D1)}
    remote = {RelPath("b"): rem(D1), RelPath("c"): rem(D2)}
    result = plan_sync(local, remote, {}, SyncPolicy(Direction.SYNC))
    assert [(a.path, a.kind) for a in result.actions] == [
        ("a", K.UPLOAD),
        ("b", K.RECORD),
        ("c", K.DOWNLOAD),
    ]


@pytest.mark.parametrize("side", ["local", "remote"])
def test_an_emptied_side_stops_unless_forced(side: str) -> None:
    names = [RelPath(n) for n in "abc"]
    local = {} if side == "local" else {n: loc(D0) for n in names}
    remote = {} if side == "remote" else {n: rem(D0) for n in names}
    base = {n: bas(D0) for n in names}
    with pytest.raises(SafetyAbort, match=f"the {side} side is empty but 3 files"):
        plan_sync(local, remote, base, SyncPolicy(Direction.SYNC))
    forced = plan_sync(local, remote, base, SyncPolicy(Direction.SYNC, force=True))
    assert forced.count(K.DELETE_LOCAL, K.DELETE_REMOTE) == 3


@pytest.mark.parametrize(
    ("local", "remote", "base", "actions", "refused"),
    [
        # A type change here while the remote edited the old name: the edit is kept, so it
        # stays in the way of the new name, and the new name in the way of fetching it.
        ({"x/y": "new"}, {"x": "edited"}, {"x": "old"}, [], ["download x", "upload x/y"]),
        ({"d": "new"}, {"d/f": "edited"}, {"d/f": "old"}, [], ["upload d", "download d/f"]),
        ({"x": "edited"}, {"x/y": "new"}, {"x": "old"}, [], ["upload x", "download x/y"]),
        # A first run meeting a file on one side and files under its name on the other.
        ({"d": "mine"}, {"d/x": "theirs"}, {}, [], ["upload d", "download d/x"]),
        # With the other side unchanged, the type change goes through.
        ({"x/y": "new"}, {"x": "old"}, {"x": "old"}, ["delete-remote x", "upload x/y"], []),
        ({"d/f": "old"}, {"d": "new"}, {"d/f": "old"}, ["download d", "delete-local d/f"], []),
    ],
)
def test_no_side_gets_a_file_and_a_folder_of_one_name(
    local: dict[str, str],
    remote: dict[str, str],
    base: dict[str, str],
    actions: list[str],
    refused: list[str],
) -> None:
    """README: where a folder took a changed file's name on the other side, "each run
    reports the two paths, changes neither, and exits 1" (the refused are failures)."""
    result = plan_sync(
        tree(local, loc), tree(remote, rem), tree(base, bas), SyncPolicy(Direction.SYNC)
    )
    assert [f"{a.kind.value} {a.path}" for a in result.actions] == actions
    assert [f"{a.kind.value} {a.path}" for a in result.refused] == refused


def test_deletes_on_both_sides_count_against_one_cap() -> None:
    names = [RelPath(f"f{i}") for i in range(10)]
    local = {n: loc(D0) for n in names[3:]}
    remote = {n: rem(D0) for n in names if n != names[9]}
    base = {n: bas(D0) for n in names}
    with pytest.raises(SafetyAbort, match=r"deletes 4 files, more than the limit of 3"):
        plan_sync(local, remote, base, SyncPolicy(Direction.SYNC, max_delete=3))
    result = plan_sync(local, remote, base, SyncPolicy(Direction.SYNC, max_delete=4))
    assert (result.count(K.DELETE_REMOTE), result.count(K.DELETE_LOCAL)) == (3, 1)


# -- properties ------------------------------------------------------------------------------


@dataclass
class World:
    local: dict[RelPath, LocalEntry]
    remote: dict[RelPath, RemoteEntry]
    base: dict[RelPath, BaseEntry]
    backups: list[Digest] = field(default_factory=list)

    def plan(self, policy: SyncPolicy) -> Plan:
        return plan_sync(self.local, self.remote, self.base, policy)

    def versions(self) -> set[Digest]:
        found = {e.digest for e in self.local.values()}
        found |= {e.digest for e in self.remote.values() if e.digest is not None}
        return found | set(self.backups)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Random three snapshots; every remote digest known (the app learns those it needs)."""
    return World(*draw(snapshots()))


def simulate(result: Plan, w: World) -> World:
    """Apply a two-way plan as the engine does; overwritten or deleted versions not kept as
    conflict copies go to `backups` (`--backup-dir`)."""
    out = World(dict(w.local), dict(w.remote), dict(w.base), list(w.backups))
    for a in result.actions:
        _apply(a, out)
    return out


def _both_sides(w: World, path: RelPath, size: int, digest: Digest) -> None:
    """A conflict copy, on both sides and recorded as synced (as the engine does)."""
    w.local[path] = LocalEntry(size, 1, digest)
    w.remote[path] = RemoteEntry(size, fingerprint(digest), digest, 1)
    w.base[path] = BaseEntry(size, digest, fingerprint(digest), 1)


def _apply(a: Action, w: World) -> None:
    p = a.path
    if a.kind in (K.UPLOAD, K.DELETE_REMOTE) and p in w.remote:
        old = w.remote[p]
        assert old.digest is not None
        if a.keep_copy:
            _both_sides(w, conflict_copy(p), old.size, old.digest)
        else:
            w.backups.append(old.digest)
    if a.kind in (K.DOWNLOAD, K.DELETE_LOCAL) and p in w.local:
        mine = w.local[p]
        if a.keep_copy:
            _both_sides(w, conflict_copy(p), mine.size, mine.digest)
        else:
            w.backups.append(mine.digest)
    if a.kind is K.UPLOAD:
        src = w.local[p]
        w.remote[p] = RemoteEntry(src.size, fingerprint(src.digest), src.digest, src.mtime_ns)
        w.base[p] = BaseEntry(src.size, src.digest, fingerprint(src.digest), src.mtime_ns)
    elif a.kind is K.DOWNLOAD:
        got = w.remote[p]
        assert got.digest is not None
        w.local[p] = LocalEntry(got.size, got.mtime_ns or 1, got.digest)
        w.base[p] = BaseEntry(got.size, got.digest, got.fingerprint, got.mtime_ns or 1)
    elif a.kind is K.RECORD:
        assert w.local[p].digest == w.remote[p].digest
        w.base[p] = BaseEntry(w.local[p].size, w.local[p].digest, w.remote[p].fingerprint, 1)
    elif a.kind is K.DELETE_REMOTE:
        del w.remote[p]
        w.base.pop(p, None)
    elif a.kind is K.DELETE_LOCAL:
        del w.local[p]
        w.base.pop(p, None)
    elif a.kind is K.FORGET:
        del w.base[p]


def digests(entries: dict[RelPath, LocalEntry] | dict[RelPath, RemoteEntry]) -> dict[str, object]:
    return {p: e.digest for p, e in entries.items()}


MANY = settings(max_examples=300)
policies = st.sampled_from([KB, NEWER, LOCAL, REMOTE])


@MANY
@given(worlds(), policies)
def test_one_run_makes_both_sides_equal_and_the_next_plans_nothing(
    world: World, on_conflict: ConflictPolicy
) -> None:
    policy = SyncPolicy(Direction.SYNC, on_conflict=on_conflict, force=True)
    after = simulate(world.plan(policy), world)
    assert digests(after.local) == digests(after.remote)
    assert after.plan(policy).actions == ()


@MANY
@given(worlds(), policies)
def test_with_a_backup_dir_no_version_is_lost(world: World, on_conflict: ConflictPolicy) -> None:
    policy = SyncPolicy(Direction.SYNC, on_conflict=on_conflict, force=True)
    after = simulate(world.plan(policy), world)
    assert world.versions() <= after.versions()


@MANY
@given(worlds())
def test_keep_both_loses_no_version_the_base_does_not_hold(world: World) -> None:
    """Without a backup dir, only versions already synced (the base's) may go: a deletion or
    an edit on one side replacing them on the other, as the user asked."""
    after = simulate(world.plan(SyncPolicy(Direction.SYNC, force=True)), world)
    after.backups = []
    synced = {b.digest for b in world.base.values()}
    for side in (world.local, world.remote):
        for path, entry in side.items():
            base = world.base.get(path)
            if base is None or entry.digest != base.digest:
                assert entry.digest in after.versions(), (path, entry)
    assert world.versions() - after.versions() <= synced


@MANY
@given(worlds(), st.sampled_from(list(ConflictPolicy)))
def test_an_empty_base_never_deletes(world: World, on_conflict: ConflictPolicy) -> None:
    world.base = {}
    result = world.plan(SyncPolicy(Direction.SYNC, on_conflict=on_conflict))
    assert result.count(K.DELETE_LOCAL, K.DELETE_REMOTE) == 0


@MANY
@given(worlds(), st.sampled_from(list(ConflictPolicy)))
def test_deterministic_and_ordered(world: World, on_conflict: ConflictPolicy) -> None:
    policy = SyncPolicy(Direction.SYNC, on_conflict=on_conflict, force=True)
    first = world.plan(policy)
    shuffled = World(
        dict(reversed(list(world.local.items()))),
        dict(reversed(list(world.remote.items()))),
        dict(reversed(list(world.base.items()))),
    )
    assert shuffled.plan(policy) == first
    paths = [a.path for a in first.actions]
    assert paths == sorted(set(paths))
    total = set(world.local) | set(world.remote) | set(world.base)
    assert first.unchanged + len(set(paths) | {n.path for n in first.notices}) == len(total)


def test_policy_is_read_as_is() -> None:
    """`direction` in the policy is ignored: a PUSH-labelled policy still plans both ways."""
    local = {RelPath("a"): loc(D1)}
    remote = {RelPath("b"): rem(D2)}
    for direction in Direction:
        result = plan_sync(local, remote, {}, SyncPolicy(direction))
        assert [a.kind for a in result.actions] == [K.UPLOAD, K.DOWNLOAD]
