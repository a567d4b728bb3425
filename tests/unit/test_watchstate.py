"""`KnownState`: the in-memory base and remote listing a watch plans batches against."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fsync.model import BaseEntry, Digest, RelPath, RemoteEntry
from fsync.transfer.outcome import Outcome
from fsync.watchstate import SHARED_CONTENT, KnownState


def rem(n: int) -> RemoteEntry:
    return RemoteEntry(n, f"fp{n}")


def bas(n: int) -> BaseEntry:
    return BaseEntry(n, Digest(f"d{n}"), f"fp{n}", 0)


def paths(*names: str) -> set[RelPath]:
    return {RelPath(n) for n in names}


def test_scope_finds_a_file_and_everything_below_a_folder() -> None:
    state = KnownState(
        base={RelPath("a/x"): bas(1), RelPath("a/y/z"): bas(2), RelPath("ab"): bas(3)},
        remote={RelPath("a/only-remote"): rem(4), RelPath("b"): rem(5)},
    )
    assert state.scope(paths("a")) == paths("a/x", "a/y/z", "a/only-remote")
    assert state.scope(paths("ab", "b")) == paths("ab", "b")
    assert state.scope(paths("missing", "a/y")) == paths("a/y/z")


def test_new_folders_are_those_nothing_known_is_at_or_below() -> None:
    state = KnownState(base={RelPath("a/x"): bas(1)}, remote={RelPath("b/y"): rem(2)})
    state.set_remote(RelPath("c/z"), rem(3))  # (a path new to the index)
    state.set_remote(RelPath("f"), rem(4))
    new = state.new_folders(paths("a/n", "b/q/n", "c/n", "d/e/n", "d/n", "ab/n", "f/n", "top"))
    assert new == paths("b/q", "d", "d/e", "ab")


def test_outcomes_update_base_remote_and_the_index() -> None:
    state = KnownState(base={RelPath("old/f"): bas(1)}, remote={RelPath("old/f"): rem(1)})
    state.apply(
        [
            Outcome(RelPath("new/f"), bas(1), remote=rem(1), moved_from=RelPath("old/f")),
            Outcome(RelPath("up"), bas(2), remote=rem(2)),
        ]
    )
    assert state.scope(paths("old")) == set()
    assert state.scope(paths("new")) == paths("new/f")
    assert state.remote == {RelPath("new/f"): rem(1), RelPath("up"): rem(2)}
    state.apply([Outcome(RelPath("up"), None, forget_base=True, remote_deleted=True)])
    assert RelPath("up") not in state.base
    assert RelPath("up") not in state.remote
    assert state.scope(paths("up")) == set()


def test_a_download_keeps_the_remote_entry() -> None:
    state = KnownState(remote={RelPath("f"): rem(1)})
    state.apply([Outcome(RelPath("f"), bas(1))])  # no `remote`: the remote did not change
    assert state.remote == {RelPath("f"): rem(1)}
    assert state.base == {RelPath("f"): bas(1)}


names = st.lists(
    st.sampled_from(["a", "b", "a/b", "a/c", "a/b/c", "ab", "a-b", "b/a"]), max_size=30
)


@given(
    st.lists(
        st.tuples(
            st.booleans(), st.sampled_from(["a", "b", "a/b", "a/c", "a/b/c", "ab", "a-b", "b/a"])
        ),
        max_size=60,
    ),
    names,
)
def test_scope_always_equals_a_linear_scan(ops: list[tuple[bool, str]], query: list[str]) -> None:
    """Whatever sequence of additions and removals, the index answers like a full scan."""
    state = KnownState()
    for add, name in ops:
        path = RelPath(name)
        if add:
            state.apply([Outcome(path, bas(1), remote=rem(1))])
        else:
            state.apply([Outcome(path, None, forget_base=True, remote_deleted=True)])
    known = state.base.keys() | state.remote.keys()
    expected = {k for k in known for q in query if k == q or k.startswith(q + "/")}
    assert state.scope(RelPath(q) for q in query) == expected


def test_many_new_paths_are_merged_into_the_index() -> None:
    state = KnownState()
    for i in range(3000):
        state.apply([Outcome(RelPath(f"d{i % 3}/f{i}"), bas(i), remote=rem(i))])
    assert len(state.scope(paths("d1"))) == 1000


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "forget", "move"]),
            st.sampled_from(["a", "b", "a/b", "c"]),
            st.integers(1, 3),
        ),
        max_size=60,
    )
)
def test_with_content_always_equals_a_linear_scan(ops: list[tuple[str, str, int]]) -> None:
    """Whatever sequence of uploads (new content at a path), deletions and moves, the paths
    of a content are those a scan of the base finds."""
    state = KnownState(base={RelPath("m"): bas(1)})
    for op, name, n in ops:
        path = RelPath(name)
        if op == "add":
            state.apply([Outcome(path, bas(n), remote=rem(n))])
        elif op == "forget":
            state.apply([Outcome(path, None, forget_base=True, remote_deleted=True)])
        elif path in state.base:
            moved = RelPath(f"{name}-moved")
            state.apply([Outcome(moved, state.base[path], remote=rem(1), moved_from=path)])
    for n in (1, 2, 3):
        expected = {p for p, e in state.base.items() if e.digest == bas(n).digest}
        assert state.with_content(bas(n).digest) == expected


def test_a_content_many_paths_share_is_not_looked_up() -> None:
    state = KnownState(base={RelPath(f"copy{i}"): bas(1) for i in range(SHARED_CONTENT + 1)})
    assert state.with_content(bas(1).digest) == set()
    # Its paths are not kept (copies of one file cost no memory): it stays unlooked-up
    # until a full sync indexes the base again.
    state.apply([Outcome(RelPath("copy0"), None, forget_base=True, remote_deleted=True)])
    assert state.with_content(bas(1).digest) == set()
    fewer = {RelPath(f"copy{i}"): bas(1) for i in range(1, SHARED_CONTENT + 1)}
    state.reset(fewer, {})
    assert state.with_content(bas(1).digest) == set(fewer)


def test_empty_files_are_not_indexed() -> None:
    empty = BaseEntry(0, Digest("e"), "fp", 0)
    state = KnownState(base={RelPath("a"): empty})
    state.apply([Outcome(RelPath("b"), empty)])
    assert state.with_content(Digest("e")) == set()
