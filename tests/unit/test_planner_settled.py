"""planner.settled: the no-op fast path counts exactly the paths the rules leave alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fsync.model import (
    BaseEntry,
    ConflictPolicy,
    Digest,
    Direction,
    LocalEntry,
    RelPath,
    RemoteEntry,
    SyncPolicy,
    mapping_paths,
)
from fsync.planner import _mirror_rule, _rule, plan, settled, sides

PATHS = [RelPath(p) for p in ("a", "b", "d/c", "d/e", "z")]
DIGESTS = [Digest(c * 64) for c in "123"]
FINGERPRINTS = ["f1", "f2", "f3"]

local_entries = st.dictionaries(
    st.sampled_from(PATHS),
    st.builds(LocalEntry, st.integers(0, 2), st.integers(0, 2), st.sampled_from(DIGESTS)),
)
remote_entries = st.dictionaries(
    st.sampled_from(PATHS),
    st.builds(
        RemoteEntry,
        st.integers(0, 2),
        st.sampled_from(FINGERPRINTS),
        st.none() | st.sampled_from(DIGESTS),
        st.none() | st.integers(0, 2),
    ),
)
base_entries = st.dictionaries(
    st.sampled_from(PATHS),
    st.builds(
        BaseEntry,
        st.integers(0, 2),
        st.sampled_from(DIGESTS),
        st.sampled_from(FINGERPRINTS),
        st.integers(0, 2),
    ),
)


def _agrees(
    path: RelPath,
    local: dict[RelPath, LocalEntry],
    remote: dict[RelPath, RemoteEntry],
    base: dict[RelPath, BaseEntry],
) -> bool:
    loc, rem, bas = local.get(path), remote.get(path), base.get(path)
    return (
        loc is not None
        and rem is not None
        and bas is not None
        and loc.digest == bas.digest
        and rem.fingerprint == bas.fingerprint
    )


@given(local_entries, remote_entries, base_entries)
def test_settled_splits_the_paths_of_the_three_snapshots(
    local: dict[RelPath, LocalEntry],
    remote: dict[RelPath, RemoteEntry],
    base: dict[RelPath, BaseEntry],
) -> None:
    count, rest = settled(local, remote, base)

    every = mapping_paths(local, remote, base)
    assert rest == [p for p in every if not _agrees(p, local, remote, base)]
    assert count == sum(_agrees(p, local, remote, base) for p in every)


@given(local_entries, remote_entries, base_entries, st.sampled_from(list(ConflictPolicy)))
def test_every_rule_leaves_a_settled_path_alone(
    local: dict[RelPath, LocalEntry],
    remote: dict[RelPath, RemoteEntry],
    base: dict[RelPath, BaseEntry],
    on_conflict: ConflictPolicy,
) -> None:
    # The fast path is only right while the rules themselves say "no action, no notice".
    for path in mapping_paths(local, remote, base):
        if not _agrees(path, local, remote, base):
            continue
        for direction in (Direction.PUSH, Direction.PULL):
            seen = sides(direction, local.get(path), remote.get(path), base.get(path))
            for out in (_rule(seen, on_conflict), _mirror_rule(seen)):
                assert out.kind is None
                assert not out.notice


@given(local_entries, remote_entries, base_entries, st.booleans())
def test_plan_counts_settled_paths_as_unchanged(
    local: dict[RelPath, LocalEntry],
    remote: dict[RelPath, RemoteEntry],
    base: dict[RelPath, BaseEntry],
    mirror: bool,
) -> None:
    for direction in (Direction.PUSH, Direction.PULL):
        policy = SyncPolicy(direction, mirror=mirror, force=True)
        result = plan(local, remote, base, policy)
        touched = {a.path for a in result.actions} | {n.path for n in result.notices}
        settled_paths = {
            p for p in mapping_paths(local, remote, base) if _agrees(p, local, remote, base)
        }
        assert not touched & settled_paths
        assert result.unchanged >= len(settled_paths)


def test_a_tree_where_nothing_changed_plans_nothing() -> None:
    digest, fp = DIGESTS[0], "7:9"
    paths = [RelPath(f"d{i % 7}/f{i}") for i in range(500)]
    local = {p: LocalEntry(7, 9, digest) for p in paths}
    remote = {p: RemoteEntry(7, fp, None, 9) for p in paths}
    base = {p: BaseEntry(7, digest, fp, 9) for p in paths}

    for direction in (Direction.PUSH, Direction.PULL):
        for mirror in (False, True):
            result = plan(local, remote, base, SyncPolicy(direction, mirror=mirror))
            assert result.actions == ()
            assert result.notices == ()
            assert result.unchanged == len(paths)
