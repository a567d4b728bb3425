"""Properties of the planner over random small worlds (DESIGN.md, "Planner properties").

A world is three snapshots over four paths and three contents. The remote side is kept as
the truth (every digest known) plus a set of paths whose digest the listing does not show,
as on a backend without stored digests. `simulate` applies a plan to copies of the world
exactly as the engine would, so properties can speak about the trees after a run.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from fsync.errors import SafetyAbort
from fsync.model import (
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
from fsync.planner import plan
from fsynctest.entries import conflict_copy, fingerprint, snapshots

K = ActionKind
CHANGING = {K.UPLOAD, K.DOWNLOAD, K.DELETE_REMOTE, K.DELETE_LOCAL, K.RECORD, K.FORGET}
SWAP = {
    K.UPLOAD: K.DOWNLOAD,
    K.DOWNLOAD: K.UPLOAD,
    K.DELETE_REMOTE: K.DELETE_LOCAL,
    K.DELETE_LOCAL: K.DELETE_REMOTE,
}
SIDE_SWAP = {
    ConflictPolicy.LOCAL: ConflictPolicy.REMOTE,
    ConflictPolicy.REMOTE: ConflictPolicy.LOCAL,
}


Digests = dict[RelPath, Digest | None]
Entry = TypeVar("Entry", LocalEntry, RemoteEntry)
Value = TypeVar("Value")


@dataclass
class World:
    """Both trees, the base, and the paths whose remote digest a listing does not show."""

    local: dict[RelPath, LocalEntry]
    remote: dict[RelPath, RemoteEntry]
    base: dict[RelPath, BaseEntry]
    hidden: frozenset[RelPath] = frozenset()
    backups: list[tuple[RelPath, Digest]] = field(default_factory=list)

    def listing(self) -> dict[RelPath, RemoteEntry]:
        """The remote snapshot the planner gets: digests of `hidden` paths are unknown."""
        return {
            p: dataclasses.replace(e, digest=None) if p in self.hidden else e
            for p, e in self.remote.items()
        }

    def plan(self, policy: SyncPolicy) -> Plan:
        return plan(self.local, self.listing(), self.base, policy)

    def digests(self, side: str) -> Digests:
        """Path to content on `side` ("local", "remote" or "base")."""
        entries: dict[RelPath, LocalEntry | RemoteEntry | BaseEntry] = getattr(self, side)
        return {p: e.digest for p, e in entries.items()}


@st.composite
def worlds(draw: st.DrawFn, *, realistic: bool | None = None, plain: bool = False) -> World:
    """A random world.

    `realistic` hides a remote digest only where the fingerprint still matches the base (the
    app fetches digests elsewhere); None draws it. `plain` means no rewritten fingerprints,
    no hidden digests and known remote mtimes, so the two sides are interchangeable.
    """
    if realistic is None:
        realistic = draw(st.booleans())
    local, remote, base = draw(snapshots(plain=plain))
    hidden: set[RelPath] = set()
    for p, r in remote.items():
        unseen = p in base and r.fingerprint == base[p].fingerprint
        if not plain and (unseen or not realistic) and draw(st.booleans()):
            hidden.add(p)
    return World(local, remote, base, frozenset(hidden))


policies = st.builds(
    SyncPolicy,
    direction=st.sampled_from([Direction.PUSH, Direction.PULL]),
    on_conflict=st.sampled_from(ConflictPolicy),
    mirror=st.booleans(),
    max_delete=st.none() | st.integers(0, 3),
    max_delete_ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    force=st.booleans(),
)


def forced(policy: SyncPolicy) -> SyncPolicy:
    return dataclasses.replace(policy, force=True)


def simulate(result: Plan, world: World, *, backup: bool = False) -> World:
    """Apply `result` to a copy of `world` as the engine would, and return the new world.

    Overwritten or deleted destination versions go to `backups` when `backup` is set
    (`--backup-dir`); keep-both first copies the destination version to `conflict_copy`.
    """
    after = World(dict(world.local), dict(world.remote), dict(world.base), world.hidden)
    after.backups = list(world.backups)
    backups = after.backups if backup else None
    for a in result.actions:
        if a.kind in (K.UPLOAD, K.DELETE_REMOTE):
            _set_aside(after.remote, a.path, a.keep_copy, backups)
        if a.kind in (K.DOWNLOAD, K.DELETE_LOCAL):
            _set_aside(after.local, a.path, a.keep_copy, backups)
        _apply(a.kind, a.path, after)
    return after


def _set_aside(
    tree: dict[RelPath, Entry],
    path: RelPath,
    keep_copy: bool,
    backups: list[tuple[RelPath, Digest]] | None,
) -> None:
    """Keep the version about to be overwritten or deleted: as a conflict copy, or backed up."""
    old = tree.get(path)
    if old is None or old.digest is None:
        return
    if keep_copy:
        tree[conflict_copy(path)] = old
    elif backups is not None:
        backups.append((path, old.digest))


def _apply(kind: ActionKind, path: RelPath, w: World) -> None:
    if kind is K.UPLOAD:
        src = w.local[path]
        w.remote[path] = RemoteEntry(src.size, fingerprint(src.digest), src.digest, src.mtime_ns)
        w.base[path] = BaseEntry(src.size, src.digest, w.remote[path].fingerprint, src.mtime_ns)
    elif kind is K.DOWNLOAD:
        got = w.remote[path]  # the truth: the engine hashes what it downloads
        assert got.digest is not None
        w.local[path] = LocalEntry(got.size, got.mtime_ns or 1, got.digest)
        w.base[path] = BaseEntry(got.size, got.digest, got.fingerprint, got.mtime_ns or 1)
    elif kind is K.RECORD:
        assert w.local[path].digest == w.remote[path].digest, "RECORD of different content"
        e = w.local[path]
        w.base[path] = BaseEntry(e.size, e.digest, w.remote[path].fingerprint, e.mtime_ns)
    elif kind is K.DELETE_REMOTE:
        del w.remote[path]
        w.base.pop(path, None)
    elif kind is K.DELETE_LOCAL:
        del w.local[path]
        w.base.pop(path, None)
    elif kind is K.FORGET:
        del w.base[path]


def oriented(w: World, direction: Direction) -> tuple[Digests, Digests]:
    """(source, destination) digests for a direction."""
    src, dst = w.digests("local"), w.digests("remote")
    return (src, dst) if direction is Direction.PUSH else (dst, src)


def everywhere(w: World, path: RelPath) -> set[Digest | None]:
    """Every content the world keeps for `path`: on either side, in a conflict copy, backed up."""
    kept = {w.local.get(path), w.remote.get(path)}
    kept |= {w.local.get(conflict_copy(path)), w.remote.get(conflict_copy(path))}
    found = {e.digest for e in kept if e is not None}
    return found | {d for p, d in w.backups if p == path}


# -- properties -----------------------------------------------------------------------------

MANY = settings(max_examples=250)
"""Planning a four-path world takes microseconds, so each property can afford many worlds."""


@MANY
@given(worlds(), policies)
def test_convergence(world: World, policy: SyncPolicy) -> None:
    """After applying a plan, planning again changes nothing (only KEEP/CONFLICT repeat)."""
    policy = forced(policy)
    after = simulate(world.plan(policy), world)
    again = after.plan(policy)
    assert not [a for a in again.actions if a.kind in CHANGING]


@MANY
@given(worlds(realistic=True), policies)
def test_the_base_learns_every_agreement(world: World, policy: SyncPolicy) -> None:
    """After a run, wherever both sides hold the same content the base records it, with the
    remote's current fingerprint, so the next run needs no digest to see it unchanged."""
    after = simulate(world.plan(forced(policy)), world)
    for path, entry in after.local.items():
        theirs = after.remote.get(path)
        if theirs is not None and theirs.digest == entry.digest:
            recorded = after.base.get(path)
            assert recorded is not None, path
            assert (recorded.digest, recorded.fingerprint) == (entry.digest, theirs.fingerprint)


@MANY
@given(worlds(realistic=True), policies)
def test_a_run_applies_every_source_change_and_nothing_else(
    world: World, policy: SyncPolicy
) -> None:
    """Away from conflicts, the destination takes each source change and keeps the rest.

    Precisely, for every path without a conflict action: where the source differs from the
    base (changed, new or deleted) the destination now holds the source's content (or lacks
    the path); where the source equals the base the destination holds what it held. The
    source tree is never touched. With `--mirror` the destination equals the source exactly.
    """
    policy = forced(policy)
    result = world.plan(policy)
    after = simulate(result, world)
    src, dst = oriented(world, policy.direction)
    src_after, dst_after = oriented(after, policy.direction)
    base = world.digests("base")
    assert src_after == src
    if policy.mirror:
        assert dst_after == src
        return
    conflicts = {a.path for a in result.conflicts}
    for path in (set(src) | set(dst) | set(base)) - conflicts:
        if src.get(path) != base.get(path):
            assert dst_after.get(path) == src.get(path), path
        else:
            assert dst_after.get(path) == dst.get(path), path


@MANY
@given(worlds(realistic=True), policies)
def test_conflicts_arise_only_over_an_unsynced_destination_version(
    world: World, policy: SyncPolicy
) -> None:
    """A conflict needs a destination version that is not in the base and not the source's."""
    result = world.plan(forced(policy))
    src, dst = oriented(world, policy.direction)
    base = world.digests("base")
    for action in result.conflicts:
        theirs = dst.get(action.path)
        assert theirs is not None, action
        assert theirs not in (base.get(action.path), src.get(action.path)), action


@MANY
@given(worlds(), policies, st.sampled_from([ConflictPolicy.KEEP_BOTH, ConflictPolicy.SKIP]))
def test_no_unsynced_version_is_lost(
    world: World, policy: SyncPolicy, on_conflict: ConflictPolicy
) -> None:
    """Under keep-both and skip, every version not in the base survives the run."""
    policy = dataclasses.replace(policy, on_conflict=on_conflict, mirror=False, force=True)
    after = simulate(world.plan(policy), world)
    base = world.digests("base")
    for side in ("local", "remote"):
        for path, digest in world.digests(side).items():
            if digest != base.get(path):
                assert digest in everywhere(after, path), (side, path, digest)


@MANY
@given(worlds(), policies)
def test_with_a_backup_dir_no_version_is_lost(world: World, policy: SyncPolicy) -> None:
    """With `--backup-dir`, every version on either side survives, whatever the policy."""
    after = simulate(world.plan(forced(policy)), world, backup=True)
    for side in ("local", "remote"):
        for path, digest in world.digests(side).items():
            assert digest in everywhere(after, path), (side, path, digest)


@MANY
@given(worlds(), policies, st.randoms(use_true_random=False))
def test_deterministic(world: World, policy: SyncPolicy, rnd: random.Random) -> None:
    """The input mappings' order does not matter; output is ordered and accounts every path."""
    policy = forced(policy)

    def shuffled(d: dict[RelPath, Value]) -> dict[RelPath, Value]:
        items = list(d.items())
        rnd.shuffle(items)
        return dict(items)

    first = world.plan(policy)
    second = plan(shuffled(world.local), shuffled(world.listing()), shuffled(world.base), policy)
    assert first == second
    paths = [a.path for a in first.actions]
    assert paths == sorted(set(paths))
    noticed = [n.path for n in first.notices]
    assert noticed == sorted(set(noticed))
    total = set(world.local) | set(world.remote) | set(world.base)
    assert first.unchanged + len(set(paths) | set(noticed)) == len(total)


def swapped(world: World) -> World:
    """The same world with the local and remote trees exchanged (needs a `plain` world)."""
    local = {
        p: LocalEntry(e.size, e.mtime_ns or 0, e.digest or Digest("?"))
        for p, e in world.remote.items()
    }
    remote = {
        p: RemoteEntry(e.size, fingerprint(e.digest), e.digest, e.mtime_ns)
        for p, e in world.local.items()
    }
    return World(local, remote, dict(world.base))


def _outline(result: Plan | SafetyAbort, swap: bool) -> object:
    if isinstance(result, SafetyAbort):
        return "abort"
    actions = [
        (a.path, SWAP.get(a.kind, a.kind) if swap else a.kind, a.conflict, a.keep_copy)
        for a in result.actions
    ]
    return actions, [n.path for n in result.notices], result.unchanged


def _plan_or_abort(world: World, policy: SyncPolicy) -> Plan | SafetyAbort:
    try:
        return world.plan(policy)
    except SafetyAbort as exc:
        return exc


@MANY
@given(worlds(plain=True), policies)
def test_pull_is_the_mirror_of_push(world: World, policy: SyncPolicy) -> None:
    """Planning one direction equals planning the other with the trees exchanged."""
    other = dataclasses.replace(
        policy,
        direction=Direction.PULL if policy.direction is Direction.PUSH else Direction.PUSH,
        on_conflict=SIDE_SWAP.get(policy.on_conflict, policy.on_conflict),
    )
    mine = _plan_or_abort(world, policy)
    theirs = _plan_or_abort(swapped(world), other)
    assert _outline(mine, swap=False) == _outline(theirs, swap=True)


@MANY
@given(worlds(), policies)
def test_empty_base_never_deletes(world: World, policy: SyncPolicy) -> None:
    """Without a base (and without `--mirror`) no plan deletes anything, nor aborts."""
    world.base = {}
    result = world.plan(dataclasses.replace(policy, mirror=False, force=False))
    assert result.count(K.DELETE_LOCAL, K.DELETE_REMOTE) == 0


@MANY
@given(worlds(), policies)
def test_safety_stops_exactly_the_dangerous_plans(world: World, policy: SyncPolicy) -> None:
    """Without `--force` a plan aborts iff the source emptied or deletes pass the limit."""
    policy = dataclasses.replace(policy, force=False)
    loose = world.plan(forced(policy))
    deletes = loose.count(K.DELETE_LOCAL, K.DELETE_REMOTE)
    push = policy.direction is Direction.PUSH
    source, dest = (world.local, world.remote) if push else (world.remote, world.local)
    if policy.max_delete is not None:
        limit = policy.max_delete
    elif policy.max_delete_ratio == 0:
        limit = 0
    else:
        limit = max(1, math.floor(policy.max_delete_ratio * len(world.base or dest)))
    dangerous = (bool(world.base) and not source) or deletes > limit
    outcome = _plan_or_abort(world, policy)
    if dangerous:
        assert isinstance(outcome, SafetyAbort)
        assert "--force" in str(outcome)
    else:
        assert outcome == loose
