"""`planner.detect_moves`: a delete and an upload of the same content become one MOVE.

Plans are built with the real planner from small snapshots (fsynctest.entries: digests are
short fake strings, the planner only compares them), then post-processed, so each case reads
as "this rename, seen by a push, becomes this plan". Remote digests are unknown, as in a plain
S3 listing: only the fingerprint tells whether the remote still holds the base version.
"""

from __future__ import annotations

from hypothesis import given

from fsync.model import ActionKind, ConflictPolicy, Direction, Plan, RelPath, SyncPolicy
from fsync.planner import detect_moves, plan
from fsynctest.entries import bas, check_moves, loc, moves, rem, small_trees, synced, tree

K = ActionKind
PUSH = SyncPolicy(Direction.PUSH, force=True)


def test_a_renamed_file_becomes_one_move() -> None:
    _, remote, base = synced({"old": "hello", "other": "x"}, known=False)
    local = {RelPath("new"): loc("hello"), RelPath("other"): loc("x")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert moves(moved) == [("new", K.MOVE, "old")]
    action = moved.actions[0]
    assert action.moved_from is not None
    assert action.moved_from.kind is K.DELETE_REMOTE
    assert action.moved_from.remote == rem("hello", known=False)
    assert action.local == loc("hello")
    assert moved.unchanged == 1


def test_a_folder_rename_pairs_every_file_by_name_first() -> None:
    # Two files with the same content: each must move to the file of its own name.
    _, remote, base = synced({"a/one": "same", "a/two": "same", "a/three": "3"}, known=False)
    local = {
        RelPath("b/one"): loc("same"),
        RelPath("b/two"): loc("same"),
        RelPath("b/three"): loc("3"),
    }
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert moves(moved) == [
        ("b/one", K.MOVE, "a/one"),
        ("b/three", K.MOVE, "a/three"),
        ("b/two", K.MOVE, "a/two"),
    ]


def test_changed_content_is_not_a_move() -> None:
    _, remote, base = synced({"old": "hello"}, known=False)
    local = {RelPath("new"): loc("hello, edited")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert moves(moved) == [("new", K.UPLOAD, None), ("old", K.DELETE_REMOTE, None)]


def test_a_remote_that_changed_since_the_base_is_not_copied() -> None:
    # The old remote object no longer holds the base's content: copying it would publish
    # whatever it holds now under the new name.
    _, remote, base = synced({"old": "hello"}, known=False)
    remote[RelPath("old")] = rem("hello", moved=True, known=False)
    local = {RelPath("new"): loc("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PUSH, force=True))
    moved = detect_moves(p)
    assert K.MOVE not in [a.kind for a in moved.actions]


def test_an_upload_over_an_existing_remote_object_is_not_a_move() -> None:
    _, remote, base = synced({"old": "hello"}, known=False)
    # On the remote only, never synced: a conflict.
    remote[RelPath("new")] = rem("other", known=False)
    local = {RelPath("new"): loc("hello")}
    policy = SyncPolicy(Direction.PUSH, on_conflict=ConflictPolicy.LOCAL, force=True)
    moved = detect_moves(plan(local, remote, base, policy))
    assert K.MOVE not in [a.kind for a in moved.actions]


def test_each_delete_feeds_at_most_one_move() -> None:
    # A copy, not a rename: one upload pairs with the delete, the other is sent.
    _, remote, base = synced({"old": "hello"}, known=False)
    local = {RelPath("copy1"): loc("hello"), RelPath("copy2"): loc("hello")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert moves(moved) == [("copy1", K.MOVE, "old"), ("copy2", K.UPLOAD, None)]


def test_a_file_moved_into_or_out_of_a_folder_of_its_name_is_not_a_move() -> None:
    # `n` -> `n/x`: no rename can do it, the file is in the way of its own new folder.
    for old, new in (("n", "n/x"), ("n/x", "n")):
        _, remote, base = synced({old: "hello"}, known=False)
        moved = detect_moves(plan({RelPath(new): loc("hello")}, remote, base, PUSH))
        assert {a.kind for a in moved.actions} == {K.UPLOAD, K.DELETE_REMOTE}


def test_a_plan_without_pairs_is_returned_unchanged() -> None:
    _, remote, base = synced({"a": "1"}, known=False)
    local = {RelPath("a"): loc("2"), RelPath("b"): loc("3")}
    p = plan(local, remote, base, PUSH)
    assert detect_moves(p) is p


def test_pull_plans_are_left_alone() -> None:
    # A remote rename seen by a pull: DELETE_LOCAL + DOWNLOAD, which this pass never pairs.
    remote = {RelPath("new"): rem("hello", known=False)}
    base = tree({"old": "hello"}, bas)
    local = {RelPath("old"): loc("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PULL, force=True))
    assert detect_moves(p) is p


@given(small_trees, small_trees)
def test_moves_change_nothing_but_how_bytes_get_there(
    before: dict[str, str], after: dict[str, str]
) -> None:
    """Applying the moved plan leaves the remote exactly as applying the plain plan would.

    The remote starts equal to `before` (all synced); the local tree is `after`.
    """
    _, remote, base = synced(before, known=False)
    local = tree(after, loc)
    plain = plan(local, remote, base, PUSH)
    moved = detect_moves(plain)
    assert _apply(plain, before) == _apply(moved, before) == after
    check_moves(plain, moved, create=K.UPLOAD, move=K.MOVE)


def _apply(p: Plan, remote: dict[str, str]) -> dict[str, str]:
    """The remote tree (path → content) after running `p` on `remote`."""
    out = dict(remote)
    for a in p.actions:
        if a.kind is K.UPLOAD:
            assert a.local is not None
            out[a.path] = a.local.digest
        elif a.kind is K.DELETE_REMOTE:
            out.pop(a.path, None)
    for a in p.actions:  # copies read the old objects before any delete of this plan
        if a.kind is K.MOVE:
            assert a.moved_from is not None
            out[a.path] = remote[a.moved_from.path]
    for a in p.actions:
        if a.kind is K.MOVE:
            assert a.moved_from is not None
            out.pop(a.moved_from.path, None)
    return out
