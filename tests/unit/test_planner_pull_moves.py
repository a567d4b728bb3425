"""`planner.detect_pull_moves`: a remote rename becomes a local rename (MOVE_LOCAL).

The mirror of test_planner_moves.py: pull plans built with the real planner from small
snapshots (fsynctest.entries), then post-processed. A remote rename reaches a pull as
DELETE_LOCAL of the old path and DOWNLOAD of the new one; where the new object's digest is
known and equals the old path's base, the local file is renamed instead of fetched.
"""

from __future__ import annotations

from hypothesis import given

from fsync.model import ActionKind, ConflictPolicy, Direction, Plan, RelPath, SyncPolicy
from fsync.planner import detect_moves, detect_pull_moves, plan
from fsync.planner_sync import plan_sync
from fsynctest.entries import bas, check_moves, loc, moves, rem, small_trees, synced, tree

K = ActionKind
PULL = SyncPolicy(Direction.PULL, force=True)


def test_a_remote_rename_becomes_one_local_move() -> None:
    local, _, base = synced({"old": "hello", "other": "x"})
    remote = {RelPath("new"): rem("hello"), RelPath("other"): rem("x")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert moves(moved) == [("new", K.MOVE_LOCAL, "old")]
    action = moved.actions[0]
    assert action.moved_from is not None
    assert action.moved_from.kind is K.DELETE_LOCAL
    assert action.moved_from.local == loc("hello")
    assert action.remote == rem("hello")
    assert moved.unchanged == 1


def test_a_remote_folder_rename_pairs_by_name_first() -> None:
    local, _, base = synced({"a/one": "same", "a/two": "same", "a/three": "3"})
    remote = {
        RelPath("b/one"): rem("same"),
        RelPath("b/two"): rem("same"),
        RelPath("b/three"): rem("3"),
    }
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert moves(moved) == [
        ("b/one", K.MOVE_LOCAL, "a/one"),
        ("b/three", K.MOVE_LOCAL, "a/three"),
        ("b/two", K.MOVE_LOCAL, "a/two"),
    ]


def test_an_unknown_digest_is_never_paired() -> None:
    """Without the new object's digest nothing proves it holds the old content."""
    local, _, base = synced({"old": "hello"})
    remote = {RelPath("new"): rem("hello", known=False)}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert moves(moved) == [("new", K.DOWNLOAD, None), ("old", K.DELETE_LOCAL, None)]


def test_other_content_is_not_a_move() -> None:
    local, _, base = synced({"old": "hello"})
    remote = {RelPath("new"): rem("hello, edited")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert moves(moved) == [("new", K.DOWNLOAD, None), ("old", K.DELETE_LOCAL, None)]


def test_a_local_file_in_the_way_is_not_a_move_target() -> None:
    local, _, base = synced({"old": "hello"})
    local[RelPath("new")] = loc("mine")  # never synced: a conflict, resolved by the policy
    remote = {RelPath("new"): rem("hello")}
    policy = SyncPolicy(Direction.PULL, on_conflict=ConflictPolicy.REMOTE, force=True)
    moved = detect_pull_moves(plan(local, remote, base, policy))
    assert K.MOVE_LOCAL not in [a.kind for a in moved.actions]


def test_each_local_delete_feeds_at_most_one_move() -> None:
    local, _, base = synced({"old": "hello"})
    remote = {RelPath("copy1"): rem("hello"), RelPath("copy2"): rem("hello")}
    moved = detect_pull_moves(plan(local, remote, base, PULL))
    assert moves(moved) == [("copy1", K.MOVE_LOCAL, "old"), ("copy2", K.DOWNLOAD, None)]


def test_push_plans_are_left_alone() -> None:
    local = {RelPath("new"): loc("hello")}
    base = tree({"old": "hello"}, bas)
    remote = {RelPath("old"): rem("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PUSH, force=True))
    assert detect_pull_moves(p) is p


def test_a_two_way_plan_moves_renames_from_both_sides() -> None:
    """A local rename (a→b) and a remote one (c→d) in one sync: two moves, no transfer."""
    local, _, base = synced({"a": "alpha", "c": "charlie"})
    local[RelPath("b")] = local.pop(RelPath("a"))
    remote = {RelPath("a"): rem("alpha"), RelPath("d"): rem("charlie")}
    two_way = plan_sync(local, remote, base, SyncPolicy(Direction.SYNC, force=True))
    moved = detect_pull_moves(detect_moves(two_way))
    assert moves(moved) == [("b", K.MOVE, "a"), ("d", K.MOVE_LOCAL, "c")]


@given(small_trees, small_trees)
def test_moves_change_nothing_but_how_bytes_get_there(
    before: dict[str, str], after: dict[str, str]
) -> None:
    """Applying the moved plan leaves the local tree exactly as the plain plan would.

    The local tree starts equal to `before` (all synced); the remote is now `after`.
    """
    local, _, base = synced(before)
    remote = tree(after, rem)
    plain = plan(local, remote, base, PULL)
    moved = detect_pull_moves(plain)
    assert _apply(plain, before) == _apply(moved, before) == after
    check_moves(plain, moved, create=K.DOWNLOAD, move=K.MOVE_LOCAL)


def _apply(p: Plan, files: dict[str, str]) -> dict[str, str]:
    """The local tree (path → content) after running `p` on `files`."""
    out = dict(files)
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
            out[a.path] = out.pop(a.moved_from.path, files[a.moved_from.path])
    return out
