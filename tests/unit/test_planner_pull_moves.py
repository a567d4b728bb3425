"""`planner.detect_pull_moves`: a remote rename becomes a local rename (MOVE_LOCAL).

The mirror of test_planner_moves.py: pull plans built with the real planner from small
snapshots, then post-processed. A remote rename reaches a pull as DELETE_LOCAL of the old
path and DOWNLOAD of the new one; where the new object's digest is known and equals the old
path's base, the local file is renamed instead of fetched.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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
from fsync.planner import detect_moves, detect_pull_moves, plan
from fsync.planner_sync import plan_sync

K = ActionKind
PULL = SyncPolicy(Direction.PULL, force=True)


def loc(d: str) -> LocalEntry:
    return LocalEntry(size=len(d), mtime_ns=100, digest=Digest(d))


def rem(d: str, *, known: bool = True) -> RemoteEntry:
    """A remote object with content `d` (its digest known, as from metadata, or not)."""
    return RemoteEntry(len(d), f"etag-{d}", Digest(d) if known else None, 100)


def bas(d: str) -> BaseEntry:
    return BaseEntry(size=len(d), digest=Digest(d), fingerprint=f"etag-{d}", mtime_ns=100)


def synced(**files: str) -> tuple[dict[RelPath, LocalEntry], dict[RelPath, BaseEntry]]:
    """Local and base snapshots of files both sides agree on (path=content)."""
    paths = {RelPath(k.replace("__", "/")): v for k, v in files.items()}
    return {p: loc(d) for p, d in paths.items()}, {p: bas(d) for p, d in paths.items()}


def kinds(p: Plan) -> list[tuple[str, ActionKind, str | None]]:
    return [
        (a.path, a.kind, a.moved_from.path if a.moved_from is not None else None) for a in p.actions
    ]


def test_a_remote_rename_becomes_one_local_move() -> None:
    local, base = synced(old="hello", other="x")
    remote = {RelPath("new"): rem("hello"), RelPath("other"): rem("x")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert kinds(moved) == [("new", K.MOVE_LOCAL, "old")]
    action = moved.actions[0]
    assert action.moved_from is not None
    assert action.moved_from.kind is K.DELETE_LOCAL
    assert action.moved_from.local == loc("hello")
    assert action.remote == rem("hello")
    assert moved.unchanged == 1


def test_a_remote_folder_rename_pairs_by_name_first() -> None:
    local, base = synced(a__one="same", a__two="same", a__three="3")
    remote = {
        RelPath("b/one"): rem("same"),
        RelPath("b/two"): rem("same"),
        RelPath("b/three"): rem("3"),
    }
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert kinds(moved) == [
        ("b/one", K.MOVE_LOCAL, "a/one"),
        ("b/three", K.MOVE_LOCAL, "a/three"),
        ("b/two", K.MOVE_LOCAL, "a/two"),
    ]


def test_an_unknown_digest_is_never_paired() -> None:
    """Without the new object's digest nothing proves it holds the old content."""
    local, base = synced(old="hello")
    remote = {RelPath("new"): rem("hello", known=False)}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert kinds(moved) == [("new", K.DOWNLOAD, None), ("old", K.DELETE_LOCAL, None)]


def test_other_content_is_not_a_move() -> None:
    local, base = synced(old="hello")
    remote = {RelPath("new"): rem("hello, edited")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert kinds(moved) == [("new", K.DOWNLOAD, None), ("old", K.DELETE_LOCAL, None)]


def test_a_local_file_in_the_way_is_not_a_move_target() -> None:
    local, base = synced(old="hello")
    local[RelPath("new")] = loc("mine")  # never synced: a conflict, resolved by the policy
    remote = {RelPath("new"): rem("hello")}
    policy = SyncPolicy(Direction.PULL, on_conflict=ConflictPolicy.REMOTE, force=True)
    moved = detect_pull_moves(plan(local, remote, base, policy))
    assert K.MOVE_LOCAL not in [a.kind for a in moved.actions]


def test_each_local_delete_feeds_at_most_one_move() -> None:
    local, base = synced(old="hello")
    remote = {RelPath("copy1"): rem("hello"), RelPath("copy2"): rem("hello")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert kinds(moved) == [("copy1", K.MOVE_LOCAL, "old"), ("copy2", K.DOWNLOAD, None)]


def test_push_plans_are_left_alone() -> None:
    local = {RelPath("new"): loc("hello")}
    _, base = synced(old="hello")
    remote = {RelPath("old"): rem("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PUSH, force=True))
    assert detect_pull_moves(p) is p


def test_a_two_way_plan_moves_renames_from_both_sides() -> None:
    """A local rename (a→b) and a remote one (c→d) in one sync: two moves, no transfer."""
    local, base = synced(a="alpha", c="charlie")
    local[RelPath("b")] = local.pop(RelPath("a"))
    remote = {RelPath("a"): rem("alpha"), RelPath("d"): rem("charlie")}
    two_way = plan_sync(local, remote, base, SyncPolicy(Direction.SYNC, force=True))
    moved = detect_pull_moves(detect_moves(two_way))
    assert kinds(moved) == [("b", K.MOVE, "a"), ("d", K.MOVE_LOCAL, "c")]


names = st.sampled_from(["a", "b", "c", "d/e", "d/f"])
contents = st.sampled_from(["1", "2", "3"])


@given(
    st.dictionaries(names, contents, max_size=5),
    st.dictionaries(names, contents, max_size=5),
)
def test_moves_change_nothing_but_how_bytes_get_there(
    before: dict[str, str], after: dict[str, str]
) -> None:
    """Applying the moved plan leaves the local tree exactly as the plain plan would.

    The local tree starts equal to `before` (all synced); the remote is now `after`.
    """
    local = {RelPath(p): loc(d) for p, d in before.items()}
    base = {RelPath(p): bas(d) for p, d in before.items()}
    remote = {RelPath(p): rem(d) for p, d in after.items()}
    plain = plan(local, remote, base, PULL)
    moved = detect_pull_moves(plain)
    assert _apply(plain, before) == _apply(moved, before) == after
    paths = [a.path for a in moved.actions]
    assert paths == sorted(paths)
    sources = [a.moved_from.path for a in moved.actions if a.moved_from is not None]
    assert len(sources) == len(set(sources))
    assert moved.count(K.DOWNLOAD) + moved.count(K.MOVE_LOCAL) == plain.count(K.DOWNLOAD)


def _apply(p: Plan, tree: dict[str, str]) -> dict[str, str]:
    """The local tree (path → content) after running `p` on `tree`."""
    out = dict(tree)
    for a in p.actions:
        if a.kind is K.DOWNLOAD:
            assert a.remote is not None
            assert a.remote.digest is not None
            out[a.path] = a.remote.digest
        elif a.kind is K.DELETE_LOCAL:
            out.pop(a.path, None)
    for a in p.actions:  # renames take the old files, which no delete of this plan touches
        if a.kind is K.MOVE_LOCAL:
            assert a.moved_from is not None
            out[a.path] = out.pop(a.moved_from.path, tree[a.moved_from.path])
    return out
