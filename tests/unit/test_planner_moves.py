"""`planner.detect_moves`: a delete and an upload of the same content become one MOVE.

Plans are built with the real planner from small snapshots (digests are short fake strings:
the planner only compares them), then post-processed, so each case reads as "this rename,
seen by a push, becomes this plan".
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
from fsync.planner import detect_moves, plan

K = ActionKind
PUSH = SyncPolicy(Direction.PUSH, force=True)


def loc(d: str) -> LocalEntry:
    return LocalEntry(size=len(d), mtime_ns=100, digest=Digest(d))


def rem(d: str, *, moved: bool = False) -> RemoteEntry:
    return RemoteEntry(len(d), f"etag-{d}" + ("-x" if moved else ""), None, 100)


def bas(d: str) -> BaseEntry:
    return BaseEntry(size=len(d), digest=Digest(d), fingerprint=f"etag-{d}", mtime_ns=100)


def synced(**files: str) -> tuple[dict[RelPath, RemoteEntry], dict[RelPath, BaseEntry]]:
    """Remote and base snapshots of files both sides agree on (path=content)."""
    paths = {RelPath(k.replace("__", "/")): v for k, v in files.items()}
    return {p: rem(d) for p, d in paths.items()}, {p: bas(d) for p, d in paths.items()}


def kinds(p: Plan) -> list[tuple[str, ActionKind, str | None]]:
    return [
        (a.path, a.kind, a.moved_from.path if a.moved_from is not None else None) for a in p.actions
    ]


def test_a_renamed_file_becomes_one_move() -> None:
    remote, base = synced(old="hello", other="x")
    local = {RelPath("new"): loc("hello"), RelPath("other"): loc("x")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert kinds(moved) == [("new", K.MOVE, "old")]
    action = moved.actions[0]
    assert action.moved_from is not None
    assert action.moved_from.kind is K.DELETE_REMOTE
    assert action.moved_from.remote == rem("hello")
    assert action.local == loc("hello")
    assert moved.unchanged == 1


def test_a_folder_rename_pairs_every_file_by_name_first() -> None:
    # Two files with the same content: each must move to the file of its own name.
    remote, base = synced(a__one="same", a__two="same", a__three="3")
    local = {
        RelPath("b/one"): loc("same"),
        RelPath("b/two"): loc("same"),
        RelPath("b/three"): loc("3"),
    }
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert kinds(moved) == [
        ("b/one", K.MOVE, "a/one"),
        ("b/three", K.MOVE, "a/three"),
        ("b/two", K.MOVE, "a/two"),
    ]


def test_changed_content_is_not_a_move() -> None:
    remote, base = synced(old="hello")
    local = {RelPath("new"): loc("hello, edited")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert kinds(moved) == [("new", K.UPLOAD, None), ("old", K.DELETE_REMOTE, None)]


def test_a_remote_that_changed_since_the_base_is_not_copied() -> None:
    # The old remote object no longer holds the base's content: copying it would publish
    # whatever it holds now under the new name.
    remote, base = synced(old="hello")
    remote[RelPath("old")] = rem("hello", moved=True)
    local = {RelPath("new"): loc("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PUSH, force=True))
    moved = detect_moves(p)
    assert K.MOVE not in [a.kind for a in moved.actions]


def test_an_upload_over_an_existing_remote_object_is_not_a_move() -> None:
    remote, base = synced(old="hello")
    remote[RelPath("new")] = rem("other")  # on the remote only, never synced: a conflict
    local = {RelPath("new"): loc("hello")}
    policy = SyncPolicy(Direction.PUSH, on_conflict=ConflictPolicy.LOCAL, force=True)
    moved = detect_moves(plan(local, remote, base, policy))
    assert K.MOVE not in [a.kind for a in moved.actions]


def test_each_delete_feeds_at_most_one_move() -> None:
    # A copy, not a rename: one upload pairs with the delete, the other is sent.
    remote, base = synced(old="hello")
    local = {RelPath("copy1"): loc("hello"), RelPath("copy2"): loc("hello")}
    moved = detect_moves(plan(local, remote, base, PUSH))
    assert kinds(moved) == [("copy1", K.MOVE, "old"), ("copy2", K.UPLOAD, None)]


def test_a_plan_without_pairs_is_returned_unchanged() -> None:
    remote, base = synced(a="1")
    local = {RelPath("a"): loc("2"), RelPath("b"): loc("3")}
    p = plan(local, remote, base, PUSH)
    assert detect_moves(p) is p


def test_pull_plans_are_left_alone() -> None:
    # A remote rename seen by a pull: DELETE_LOCAL + DOWNLOAD, which this pass never pairs.
    remote = {RelPath("new"): rem("hello")}
    _, base = synced(old="hello")
    local = {RelPath("old"): loc("hello")}
    p = plan(local, remote, base, SyncPolicy(Direction.PULL, force=True))
    assert detect_moves(p) is p


names = st.sampled_from(["a", "b", "c", "d/e", "d/f"])
contents = st.sampled_from(["1", "2", "3"])


@given(
    st.dictionaries(names, contents, max_size=5),
    st.dictionaries(names, contents, max_size=5),
)
def test_moves_change_nothing_but_how_bytes_get_there(
    before: dict[str, str], after: dict[str, str]
) -> None:
    """Applying the moved plan leaves the remote exactly as applying the plain plan would.

    The remote starts equal to `before` (all synced); the local tree is `after`.
    """
    remote = {RelPath(p): rem(d) for p, d in before.items()}
    base = {RelPath(p): bas(d) for p, d in before.items()}
    local = {RelPath(p): loc(d) for p, d in after.items()}
    plain = plan(local, remote, base, PUSH)
    moved = detect_moves(plain)
    assert _apply(plain, before) == _apply(moved, before) == after
    paths = [a.path for a in moved.actions]
    assert paths == sorted(paths)
    sources = [a.moved_from.path for a in moved.actions if a.moved_from is not None]
    assert len(sources) == len(set(sources))
    assert moved.count(K.UPLOAD) + moved.count(K.MOVE) == plain.count(K.UPLOAD)


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
