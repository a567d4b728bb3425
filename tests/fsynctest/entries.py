"""Planner inputs for tests, built from short fake contents; and plans read back.

A content string stands for a file's bytes: it is the entry's digest (the planner only
compares digests) and its length the size. A remote names content `d` by the fingerprint
`fingerprint(d)` and the base records that fingerprint, as after a sync through `rem(d)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from hypothesis import strategies as st

from fsync.model import ActionKind, BaseEntry, Digest, LocalEntry, Plan, RelPath, RemoteEntry

P = RelPath("f.txt")
"""The one path a table row plans."""
FILLER = RelPath("keep.txt")
"""A path in sync everywhere beside `P`, so an emptied side never trips the safety stop."""

PATHS = [RelPath(p) for p in ("a", "b", "c", "d/e")]
"""The paths of a random world (`snapshots`)."""
DIGESTS = [Digest(d) for d in ("d0", "d1", "d2")]
"""The contents of a random world (`snapshots`)."""

Snapshots = tuple[dict[RelPath, LocalEntry], dict[RelPath, RemoteEntry], dict[RelPath, BaseEntry]]
"""Local, remote and base snapshots, in the order the planners take them."""
Entry = TypeVar("Entry", LocalEntry, RemoteEntry, BaseEntry)


def fingerprint(content: str, moved: bool = False) -> str:
    """The remote's change marker for `content`; `moved` is a rewrite the base never saw."""
    return f"etag-{content}" + ("-rewritten" if moved else "")


def conflict_copy(path: RelPath) -> RelPath:
    """Where a simulated engine keeps a conflict's losing version."""
    return RelPath(f"{path}.conflict")


def loc(content: str, mtime: int = 100) -> LocalEntry:
    """A local file holding `content`."""
    return LocalEntry(size=len(content), mtime_ns=mtime, digest=Digest(content))


def rem(
    content: str, *, moved: bool = False, known: bool = True, mtime: int | None = 100
) -> RemoteEntry:
    """A remote object holding `content`; `known` says whether the listing shows its digest."""
    digest = Digest(content) if known else None
    return RemoteEntry(len(content), fingerprint(content, moved), digest, mtime)


def bas(content: str) -> BaseEntry:
    """The base entry for `content`, as recorded after a sync through `rem(content)`."""
    return BaseEntry(
        size=len(content), digest=Digest(content), fingerprint=fingerprint(content), mtime_ns=100
    )


def tree(files: Mapping[str, str], entry: Callable[[str], Entry]) -> dict[RelPath, Entry]:
    """One snapshot: every path of `files` (path → content) with `entry(content)`."""
    return {RelPath(path): entry(content) for path, content in files.items()}


def synced(files: Mapping[str, str], *, known: bool = True) -> Snapshots:
    """All three snapshots of `files` (path → content), in sync; `known` as for `rem`."""
    return tree(files, loc), tree(files, lambda d: rem(d, known=known)), tree(files, bas)


def one_path(
    local: LocalEntry | None, remote: RemoteEntry | None, base: BaseEntry | None
) -> Snapshots:
    """Snapshots holding `P` with the given entries (None: absent) beside `FILLER`."""
    return (
        {FILLER: loc("k")} | ({P: local} if local is not None else {}),
        {FILLER: rem("k")} | ({P: remote} if remote is not None else {}),
        {FILLER: bas("k")} | ({P: base} if base is not None else {}),
    )


small_trees = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d/e", "d/f"]), st.sampled_from(["1", "2", "3"]), max_size=5
)
"""Random trees (path → content) for renames: few names and contents, so many coincide."""


@st.composite
def snapshots(draw: st.DrawFn, *, plain: bool = False) -> Snapshots:
    """Random snapshots over `PATHS` and `DIGESTS`, every remote digest known.

    Remote fingerprints may be rewritten (`moved`) and remote mtimes unknown, unless `plain`,
    which keeps the two sides interchangeable.
    """
    maybe = st.sampled_from([None, *DIGESTS])
    local, remote, base = {}, {}, {}
    for p in PATHS:
        b, here, there = draw(maybe), draw(maybe), draw(maybe)
        if b is not None:
            base[p] = BaseEntry(len(b), b, fingerprint(b), 1)
        if here is not None:
            local[p] = LocalEntry(len(here), draw(st.integers(1, 3)), here)
        if there is not None:
            moved = not plain and draw(st.booleans())
            mtime = draw(st.integers(1, 3) if plain else st.none() | st.integers(1, 3))
            remote[p] = RemoteEntry(len(there), fingerprint(there, moved), there, mtime)
    return local, remote, base


def check_moves(plain: Plan, moved: Plan, *, create: ActionKind, move: ActionKind) -> None:
    """Assert that `moved`, `plain` after a moves pass, is well formed.

    Its actions stay ordered by path, no delete feeds two moves, and each `create` of `plain`
    is either still there or became one `move`.
    """
    # fsynctest is not a test module: pytest does not rewrite these asserts, so they say why.
    paths = [a.path for a in moved.actions]
    assert paths == sorted(paths), f"actions out of order: {paths}"
    sources = [a.moved_from.path for a in moved.actions if a.moved_from is not None]
    assert len(sources) == len(set(sources)), f"a delete feeds two moves: {sources}"
    kept, paired, before = moved.count(create), moved.count(move), plain.count(create)
    assert kept + paired == before, f"{kept} {create.name} + {paired} {move.name} != {before}"


def moves(plan: Plan) -> list[tuple[RelPath, ActionKind, RelPath | None]]:
    """(path, kind, the path it was moved from or None) of every action of `plan`."""
    return [
        (a.path, a.kind, a.moved_from.path if a.moved_from is not None else None)
        for a in plan.actions
    ]
