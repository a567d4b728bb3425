"""The planner's rules, one case per row of DESIGN.md's three-way table, for push and pull.

Every case plans one path, `f.txt`, next to a filler path that is identical everywhere, so
the safety stops (an emptied source, the delete cap) stay out of the way unless a test is
about them. Entries come from fsynctest.entries: digests are short fake strings, which is
all the planner needs, as it only compares them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from fsync.errors import SafetyAbort
from fsync.model import (
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    Direction,
    LocalEntry,
    Plan,
    RelPath,
    RemoteEntry,
    SyncPolicy,
)
from fsync.planner import Hidden, delete_limit, plan, refuse_hidden, without_deletes
from fsynctest.entries import P, Snapshots, bas, loc, one_path, rem, synced, tree

PUSH, PULL = Direction.PUSH, Direction.PULL
K = ActionKind


def run(
    direction: Direction,
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    **policy: object,
) -> Plan:
    """Plan `f.txt` with the given entries, beside a filler that is in sync."""
    return plan(*one_path(local, remote, base), SyncPolicy(direction, **policy))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Expect:
    """What should happen to `f.txt`: an action kind (or none), and whether it is noticed."""

    kind: ActionKind | None = None
    notice: bool = False
    conflict: bool = False
    keep_copy: bool = False


NOTHING = Expect()
NOTICE = Expect(notice=True)


def check(result: Plan, want: Expect) -> None:
    """Assert that `result` does exactly `want` to `f.txt` and nothing to the filler."""
    kinds = [(a.path, a.kind, a.conflict, a.keep_copy) for a in result.actions]
    expected_actions = [(P, want.kind, want.conflict, want.keep_copy)] if want.kind else []
    assert kinds == expected_actions
    assert [n.path for n in result.notices] == ([P] if want.notice else [])
    assert result.unchanged == (2 if want == NOTHING else 1)


D0, D1, D2 = "d0", "d1", "d2"
UP, DOWN, REC = Expect(K.UPLOAD), Expect(K.DOWNLOAD), Expect(K.RECORD)
DEL_R, DEL_L, FORGET = Expect(K.DELETE_REMOTE), Expect(K.DELETE_LOCAL), Expect(K.FORGET)
UP_KB = Expect(K.UPLOAD, conflict=True, keep_copy=True)
DOWN_KB = Expect(K.DOWNLOAD, conflict=True, keep_copy=True)
KEPT = Expect(K.FORGET, notice=True, conflict=True)
"""A delete-vs-change conflict resolved by keeping the changed side."""

# (id, local, remote, base, push, pull): DESIGN.md's table plus the fingerprint subtleties.
TABLE = [
    ("unchanged-unchanged", loc(D0), rem(D0), bas(D0), NOTHING, NOTHING),
    ("changed-unchanged", loc(D1), rem(D0), bas(D0), UP, NOTICE),
    ("new-absent", loc(D1), None, None, UP, NOTICE),
    ("unchanged-changed", loc(D0), rem(D1), bas(D0), NOTICE, DOWN),
    ("absent-new", None, rem(D1), None, NOTICE, DOWN),
    ("deleted-unchanged", None, rem(D0), bas(D0), DEL_R, NOTICE),
    ("unchanged-deleted", loc(D0), None, bas(D0), NOTICE, DEL_L),
    ("changed-changed-same", loc(D1), rem(D1, moved=True), bas(D0), REC, REC),
    ("changed-changed-differ", loc(D1), rem(D2), bas(D0), UP_KB, DOWN_KB),
    ("deleted-changed", None, rem(D1), bas(D0), KEPT, DOWN),
    ("changed-deleted", loc(D1), None, bas(D0), UP, KEPT),
    ("deleted-deleted", None, None, bas(D0), FORGET, FORGET),
    ("nobase-same", loc(D1), rem(D1), None, REC, REC),
    ("nobase-differ", loc(D1), rem(D2), None, UP_KB, DOWN_KB),
    ("nobase-remote-digest-unknown", loc(D1), rem(D1, known=False), None, UP_KB, DOWN_KB),
    ("rewritten-same-content", loc(D0), rem(D0, moved=True), bas(D0), REC, REC),
    ("rewritten-digest-unknown", loc(D0), rem(D0, moved=True, known=False), bas(D0), NOTICE, DOWN),
    ("digest-unknown-fingerprint-same", loc(D0), rem(D0, known=False), bas(D0), NOTHING, NOTHING),
    ("changed-digest-unknown-unchanged", loc(D1), rem(D0, known=False), bas(D0), UP, NOTICE),
    ("changed-rewritten-same", loc(D1), rem(D0, moved=True), bas(D0), UP, NOTICE),
    ("deleted-rewritten-same", None, rem(D0, moved=True), bas(D0), DEL_R, NOTICE),
    ("deleted-rewritten-unknown", None, rem(D0, moved=True, known=False), bas(D0), KEPT, DOWN),
]


def _cases() -> list[object]:
    cases = []
    for name, local, remote, base, push, pull in TABLE:
        cases.append(pytest.param(PUSH, local, remote, base, push, id=f"push-{name}"))
        cases.append(pytest.param(PULL, local, remote, base, pull, id=f"pull-{name}"))
    return cases


@pytest.mark.parametrize(("direction", "local", "remote", "base", "want"), _cases())
def test_table_row(
    direction: Direction,
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    want: Expect,
) -> None:
    check(run(direction, local, remote, base), want)


@pytest.mark.parametrize(("direction", "local", "remote", "base", "want"), _cases())
def test_action_carries_what_was_seen(
    direction: Direction,
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    want: Expect,
) -> None:
    """Every action holds the three entries as planned, for the engine's check-before-act."""
    for action in run(direction, local, remote, base).actions:
        assert (action.local, action.remote, action.base) == (local, remote, base)
        assert action.reason


# -- conflicts: every policy, both kinds, both directions ------------------------------------

KB, LOC, REM, NEW, SKIP = (
    ConflictPolicy.KEEP_BOTH,
    ConflictPolicy.LOCAL,
    ConflictPolicy.REMOTE,
    ConflictPolicy.NEWER,
    ConflictPolicy.SKIP,
)
KEEP_C = Expect(K.KEEP, notice=True, conflict=True)
SKIP_C = Expect(K.CONFLICT, notice=True, conflict=True)


@pytest.mark.parametrize(
    ("direction", "policy", "mtimes", "want"),
    [
        (PUSH, KB, (1, 2), Expect(K.UPLOAD, conflict=True, keep_copy=True)),
        (PUSH, LOC, (1, 2), Expect(K.UPLOAD, conflict=True)),
        (PUSH, REM, (2, 1), KEEP_C),
        (PUSH, NEW, (2, 1), Expect(K.UPLOAD, conflict=True)),
        (PUSH, NEW, (1, 2), KEEP_C),
        (PUSH, NEW, (2, 2), KEEP_C),
        (PUSH, NEW, (2, None), KEEP_C),
        (PUSH, SKIP, (1, 2), SKIP_C),
        (PULL, KB, (1, 2), Expect(K.DOWNLOAD, conflict=True, keep_copy=True)),
        (PULL, REM, (2, 1), Expect(K.DOWNLOAD, conflict=True)),
        (PULL, LOC, (1, 2), KEEP_C),
        (PULL, NEW, (1, 2), Expect(K.DOWNLOAD, conflict=True)),
        (PULL, NEW, (2, 1), KEEP_C),
        (PULL, NEW, (2, 2), KEEP_C),
        (PULL, NEW, (1, None), KEEP_C),
        (PULL, SKIP, (1, 2), SKIP_C),
    ],
)
@pytest.mark.parametrize("with_base", [True, False], ids=["changed-both", "no-base"])
def test_content_conflict(
    direction: Direction,
    policy: ConflictPolicy,
    mtimes: tuple[int, int | None],
    want: Expect,
    with_base: bool,
) -> None:
    """Both sides hold different content; `mtimes` are (local, remote)."""
    local, remote = loc(D1, mtime=mtimes[0]), rem(D2, mtime=mtimes[1])
    result = run(direction, local, remote, bas(D0) if with_base else None, on_conflict=policy)
    check(result, want)
    assert result.actions[0].reason.startswith("conflict")


@pytest.mark.parametrize(
    ("direction", "written", "want"),
    [
        (PUSH, 1, Expect(K.UPLOAD, conflict=True)),
        (PUSH, 3, KEEP_C),
        (PULL, 3, Expect(K.DOWNLOAD, conflict=True)),
        (PULL, 1, KEEP_C),
    ],
)
def test_newer_goes_by_when_the_store_wrote_a_version_without_an_mtime(
    direction: Direction, written: int, want: Expect
) -> None:
    """An object another tool wrote has no `mtime` metadata: taken for a tie, a push kept
    the remote and a pull the local version, and neither change ever crossed."""
    local = loc(D1, mtime=2)
    remote = replace(rem(D2, mtime=None), written_ns=written)
    check(run(direction, local, remote, bas(D0), on_conflict=NEW), want)


@pytest.mark.parametrize(
    ("direction", "policy", "want"),
    [
        (PUSH, KB, Expect(K.FORGET, notice=True, conflict=True)),
        (PUSH, REM, Expect(K.FORGET, notice=True, conflict=True)),
        (PUSH, NEW, Expect(K.FORGET, notice=True, conflict=True)),
        (PUSH, LOC, Expect(K.DELETE_REMOTE, conflict=True)),
        (PUSH, SKIP, SKIP_C),
        (PULL, KB, Expect(K.FORGET, notice=True, conflict=True)),
        (PULL, LOC, Expect(K.FORGET, notice=True, conflict=True)),
        (PULL, NEW, Expect(K.FORGET, notice=True, conflict=True)),
        (PULL, REM, Expect(K.DELETE_LOCAL, conflict=True)),
        (PULL, SKIP, SKIP_C),
    ],
)
def test_delete_vs_change_conflict(
    direction: Direction, policy: ConflictPolicy, want: Expect
) -> None:
    """The source deleted what the destination changed: the change survives by default."""
    if direction is PUSH:
        local, remote = None, rem(D1)
    else:
        local, remote = loc(D1), None
    check(run(direction, local, remote, bas(D0), on_conflict=policy), want)


@pytest.mark.parametrize("policy", list(ConflictPolicy))
@pytest.mark.parametrize("direction", [PUSH, PULL])
def test_change_over_delete_is_no_conflict(direction: Direction, policy: ConflictPolicy) -> None:
    """The source changed what the destination deleted: the change is sent, whatever the policy."""
    if direction is PUSH:
        check(run(PUSH, loc(D1), None, bas(D0), on_conflict=policy), UP)
    else:
        check(run(PULL, None, rem(D1), bas(D0), on_conflict=policy), DOWN)


# -- notices and counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "local", "remote", "base", "text"),
    [
        (PUSH, loc(D0), rem(D1), bas(D0), "remote change (pull to fetch it)"),
        (PULL, loc(D1), rem(D0), bas(D0), "local change (push to send it)"),
        (PUSH, None, rem(D1), None, "only on remote (pull to fetch it)"),
        (PULL, loc(D1), None, None, "only on local (push to send it)"),
        (PUSH, loc(D0), None, bas(D0), "deleted on remote (pull to apply it)"),
        (PULL, None, rem(D0), bas(D0), "deleted on local (push to apply it)"),
    ],
)
def test_notice_reason(
    direction: Direction,
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    text: str,
) -> None:
    result = run(direction, local, remote, base)
    assert [(n.path, n.reason) for n in result.notices] == [(P, text)]
    assert [n.deleted for n in result.notices] == [text.startswith("deleted on")]


def test_conflict_kept_remote_is_noticed() -> None:
    result = run(PUSH, loc(D1), rem(D2), bas(D0), on_conflict=REM)
    assert [n.reason for n in result.notices] == ["conflict: both changed; kept remote"]


def test_actions_are_ordered_by_path_whatever_the_input_order() -> None:
    names = [RelPath(n) for n in ("z", "b/c", "a", "b", "m/n/o")]
    local = {n: loc(D1) for n in reversed(names)}
    result = plan(local, {}, {}, SyncPolicy(PUSH))
    assert [a.path for a in result.actions] == sorted(names)
    assert result.count(K.UPLOAD) == 5
    assert result.unchanged == 0


def test_unchanged_counts_only_quiet_paths() -> None:
    local = {RelPath(n): loc(D0) for n in "abc"} | {RelPath("d"): loc(D1)}
    remote = {RelPath(n): rem(D0) for n in "abcd"} | {RelPath("e"): rem(D2)}
    base = {RelPath(n): bas(D0) for n in "abcd"}
    result = plan(local, remote, base, SyncPolicy(PUSH))
    assert result.unchanged == 3  # a, b, c; d is uploaded, e is noticed
    assert [a.path for a in result.actions] == ["d"]
    assert [n.path for n in result.notices] == ["e"]


# -- mirror ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "remote", "base", "push", "pull"),
    [
        (loc(D1), rem(D0), bas(D0), UP, DOWN),
        (loc(D0), rem(D1), bas(D0), UP, DOWN),
        (loc(D1), rem(D2), bas(D0), UP, DOWN),
        (loc(D1), rem(D2), None, UP, DOWN),
        (loc(D1), rem(D1, known=False), None, UP, DOWN),
        (loc(D1), None, None, UP, DEL_L),
        (None, rem(D1), None, DEL_R, DOWN),
        (None, rem(D1), bas(D0), DEL_R, DOWN),
        (loc(D1), None, bas(D0), UP, DEL_L),
        (loc(D1), rem(D1), None, REC, REC),
        (loc(D1), rem(D1, moved=True), bas(D0), REC, REC),
        (loc(D0), rem(D0, moved=True), bas(D0), REC, REC),
        (loc(D0), rem(D0), bas(D0), NOTHING, NOTHING),
        (loc(D0), rem(D0, known=False), bas(D0), NOTHING, NOTHING),
        (None, None, bas(D0), FORGET, FORGET),
    ],
)
def test_mirror(
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    base: BaseEntry | None,
    push: Expect,
    pull: Expect,
) -> None:
    """The destination becomes the source: overwrite or delete what differs, no conflicts."""
    for policy in ConflictPolicy:
        check(run(PUSH, local, remote, base, mirror=True, on_conflict=policy), push)
        check(run(PULL, local, remote, base, mirror=True, on_conflict=policy), pull)


# -- safety ---------------------------------------------------------------------------------

NAMES = [RelPath(f"f{i:02}") for i in range(10)]


def in_sync(n: int) -> Snapshots:
    """`n` files in sync on both sides."""
    return synced(dict.fromkeys(NAMES[:n], D0))


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("direction", [PUSH, PULL])
def test_emptied_source_stops_the_run(direction: Direction, mirror: bool) -> None:
    local, remote, base = in_sync(3)
    if direction is PUSH:
        local = {}
    else:
        remote = {}
    policy = SyncPolicy(direction, mirror=mirror)
    side = "local" if direction is PUSH else "remote"
    with pytest.raises(SafetyAbort, match=f"the {side} side is empty but 3 files .*--force"):
        plan(local, remote, base, policy)
    forced = plan(local, remote, base, SyncPolicy(direction, mirror=mirror, force=True))
    assert forced.count(K.DELETE_REMOTE, K.DELETE_LOCAL) == 3


def test_empty_source_without_base_is_fine() -> None:
    result = plan({}, {RelPath("a"): rem(D1)}, {}, SyncPolicy(PUSH))
    assert [n.path for n in result.notices] == ["a"]
    assert result.actions == ()


@pytest.mark.parametrize("cap", [None, 100])
@pytest.mark.parametrize("direction", [PUSH, PULL])
def test_a_mirror_from_an_empty_source_without_base_stops(
    direction: Direction, cap: int | None
) -> None:
    """The base lives in the local folder (an unmounted disk's mount point has none) and is
    kept per remote (a mistyped prefix has none): a mirror from such an empty source deleted
    every file the limit let through, the one file of a one-file tree, or all with a high
    `--max-delete`. Only `--force` deletes them."""
    one = {RelPath("a"): (loc(D1), rem(D1))}
    local = {} if direction is PUSH else {p: lo for p, (lo, _) in one.items()}
    remote = {p: r for p, (_, r) in one.items()} if direction is PUSH else {}
    policy = SyncPolicy(direction, mirror=True, max_delete=cap)
    side = "local" if direction is PUSH else "remote"
    with pytest.raises(SafetyAbort, match=f"the {side} side is empty and the plan deletes 1 "):
        plan(local, remote, {}, policy)
    forced = plan(local, remote, {}, SyncPolicy(direction, mirror=True, force=True))
    assert forced.count(K.DELETE_REMOTE, K.DELETE_LOCAL) == 1


def _delete_from_local(n: int, total: int = 10, **policy: object) -> Plan:
    local, remote, base = in_sync(total)
    for p in NAMES[:n]:
        del local[p]
    return plan(local, remote, base, SyncPolicy(PUSH, **policy))  # type: ignore[arg-type]


def test_ratio_allows_half_of_the_base() -> None:
    assert _delete_from_local(5).count(K.DELETE_REMOTE) == 5


def test_ratio_refuses_more_than_half() -> None:
    with pytest.raises(SafetyAbort, match=r"deletes 6 files, more than the limit of 5 .*--force"):
        _delete_from_local(6)


def test_force_overrides_the_ratio() -> None:
    assert _delete_from_local(9, force=True).count(K.DELETE_REMOTE) == 9


@pytest.mark.parametrize(
    ("cap", "n", "ok"), [(2, 2, True), (2, 3, False), (0, 1, False), (9, 9, True)]
)
def test_max_delete_count(cap: int, n: int, ok: bool) -> None:
    if ok:
        assert _delete_from_local(n, max_delete=cap).count(K.DELETE_REMOTE) == n
    else:
        with pytest.raises(SafetyAbort, match=f"--max-delete {cap}"):
            _delete_from_local(n, max_delete=cap)


def test_max_delete_count_overrides_the_ratio() -> None:
    assert _delete_from_local(8, max_delete=8).count(K.DELETE_REMOTE) == 8


def test_ratio_limit_is_at_least_one() -> None:
    """Deleting one of two files at a 25 % ratio (floor 0.5 = 0) is still allowed."""
    assert _delete_from_local(1, total=2, max_delete_ratio=0.25).count(K.DELETE_REMOTE) == 1
    with pytest.raises(SafetyAbort):
        _delete_from_local(1, total=2, max_delete_ratio=0.0)


def test_conflict_deletes_count_against_the_cap() -> None:
    local, remote, base = in_sync(4)
    for p in NAMES[:3]:
        del local[p]
        remote[p] = rem(D1)
    policy = SyncPolicy(PUSH, on_conflict=LOC)
    with pytest.raises(SafetyAbort, match="deletes 3 files"):
        plan(local, remote, base, policy)


def test_mirror_without_base_caps_by_destination_count() -> None:
    """With no base, the cap is a share of the destination's files."""
    local = {RelPath("x"): loc(D1)}
    remote = {RelPath(n): rem(D1) for n in ("a", "b", "x")}
    with pytest.raises(SafetyAbort, match=r"limit of 1 \(50% of 3 files on the remote side\)"):
        plan(local, remote, {}, SyncPolicy(PUSH, mirror=True))
    del remote[RelPath("b")]
    assert plan(local, remote, {}, SyncPolicy(PUSH, mirror=True)).count(K.DELETE_REMOTE) == 1


@pytest.mark.parametrize(
    ("ratio", "cap", "denominator", "limit"),
    [
        (0.5, None, 10, 5),
        (0.5, None, 11, 5),
        (0.5, None, 1, 1),
        (0.25, None, 3, 1),
        (0.29, None, 100, 29),
        (1.0, None, 7, 7),
        (0.0, None, 7, 0),
        (0.5, 0, 10, 0),
        (0.5, 20, 10, 20),
    ],
)
def test_delete_limit(ratio: float, cap: int | None, denominator: int, limit: int) -> None:
    policy = SyncPolicy(PUSH, max_delete=cap, max_delete_ratio=ratio)
    assert delete_limit(policy, denominator) == limit


def _steps(p: Plan) -> tuple[list[str], list[str]]:
    """The plan's actions and its refused ones, as `kind path`."""
    return [f"{a.kind.value} {a.path}" for a in p.actions], [
        f"{a.kind.value} {a.path}" for a in p.refused
    ]


WAS, EDITED, NOW = "old", "edited", "new"
"""Contents of the file-and-folder rows."""


M = "mirror"
"""A row's flag: plan with --mirror."""


@pytest.mark.parametrize(
    ("direction", "sides", "flags", "want"),
    [
        # A file where the destination keeps files under its name, and the mirror image.
        (PUSH, ({"d": NOW}, {"d/x": WAS}, {}), "", ([], ["upload d"])),
        (PULL, ({"d/x": WAS}, {"d": NOW}, {}), "", ([], ["download d"])),
        # --mirror deletes what is in the way first.
        (PUSH, ({"d": NOW}, {"d/x": WAS}, {}), M, (["upload d", "delete-remote d/x"], [])),
        # A file in the destination's way of a new file's folder.
        (PUSH, ({"x/y": NOW}, {"x": WAS}, {}), "", ([], ["upload x/y"])),
        # A type change on the source with the destination unchanged: the old name goes.
        (PUSH, ({"x/y": NOW}, {"x": WAS}, {"x": WAS}), "", (["delete-remote x", "upload x/y"], [])),
        (
            PUSH,
            ({"d": NOW}, {"d/f": WAS}, {"d/f": WAS}),
            "",
            (["upload d", "delete-remote d/f"], []),
        ),
        (
            PULL,
            ({"x": WAS}, {"x/y": NOW}, {"x": WAS}),
            "",
            (["delete-local x", "download x/y"], []),
        ),
        # ... and with the destination's edit of the old name, which is kept: in the way.
        (PUSH, ({"x/y": NOW}, {"x": EDITED}, {"x": WAS}), "", (["forget x"], ["upload x/y"])),
        (PUSH, ({"d": NOW}, {"d/f": EDITED}, {"d/f": WAS}), "", (["forget d/f"], ["upload d"])),
        (PULL, ({"x": EDITED}, {"x/y": NOW}, {"x": WAS}), "", (["forget x"], ["download x/y"])),
        # A change of a file the store already holds beside a folder of its name is no new
        # clash: the pull refuses the pair, and the push changes what it holds.
        (PUSH, ({"d": NOW}, {"d": WAS, "d/x": WAS}, {"d": WAS}), "", (["upload d"], [])),
    ],
)
def test_a_plan_never_puts_a_file_and_a_folder_at_one_name(
    direction: Direction,
    sides: tuple[dict[str, str], dict[str, str], dict[str, str]],
    flags: str,
    want: tuple[list[str], list[str]],
) -> None:
    """A disk holds a file `d` or a folder `d/`; an object store holds both, and then no
    pull or sync can bring them back to a disk. A transfer that would make such a pair on
    its destination, next to what the plan leaves there, is refused (a failure, with what
    is in the way); one whose way the plan clears goes ahead."""
    local, remote, base = sides
    snapshots = tree(local, loc), tree(remote, rem), tree(base, bas)
    result = plan(*snapshots, SyncPolicy(direction, mirror=flags == M, force=True))
    assert _steps(result) == want
    for a in result.refused:
        assert "then run again" in a.reason


@pytest.mark.parametrize(
    ("direction", "sides", "want"),
    [
        # A type change whose delete is held back: the new name waits for it.
        (PUSH, ({"x/y": NOW}, {"x": WAS}, {"x": WAS}), ([], ["upload x/y"])),
        (PUSH, ({"d": NOW}, {"d/f": WAS}, {"d/f": WAS}), ([], ["upload d"])),
        (PULL, ({"x": WAS}, {"x/y": NOW}, {"x": WAS}), ([], ["download x/y"])),
        (PULL, ({"d/f": WAS}, {"d": NOW}, {"d/f": WAS}), ([], ["download d"])),
        # Creates beside a held-back delete, not at its name, go ahead.
        (PUSH, ({"x2/y": NOW}, {"x": WAS}, {"x": WAS}), (["upload x2/y"], [])),
        (PUSH, ({"d/g": NOW}, {"d/f": WAS}, {"d/f": WAS}), (["upload d/g"], [])),
        # A change of a file that stays is no create.
        (
            PUSH,
            ({"d/f": NOW}, {"d/f": WAS, "d/g": WAS}, {"d/f": WAS, "d/g": WAS}),
            (["upload d/f"], []),
        ),
    ],
)
def test_holding_back_deletes_holds_back_the_creates_they_make_room_for(
    direction: Direction,
    sides: tuple[dict[str, str], dict[str, str], dict[str, str]],
    want: tuple[list[str], list[str]],
) -> None:
    """A watch past its delete limit holds deletes back; a file become a folder (or back)
    then sent its new name beside the old one, which the store kept (a pair no disk holds)."""
    local, remote, base = sides
    snapshots = tree(local, loc), tree(remote, rem), tree(base, bas)
    result = without_deletes(plan(*snapshots, SyncPolicy(direction, force=True)))
    assert _steps(result) == want
    for a in result.refused:
        assert a.reason.endswith("which the delete limit holds back")


@pytest.mark.parametrize(
    ("local", "hidden", "want"),
    [
        # A file at the name of a folder the rules hide on the remote, or below a hidden file.
        ({"d": NOW, "k": NOW}, ["d/x"], (["upload k"], ["upload d"])),
        ({"a/b": NOW}, ["a"], ([], ["upload a/b"])),
        # Beside hidden paths, or a change of a file the remote holds: no clash.
        ({"d2": NOW, "d/y": NOW}, ["d/x"], (["upload d/y", "upload d2"], [])),
    ],
)
def test_what_the_rules_hide_on_the_remote_is_in_the_way(
    local: dict[str, str], hidden: list[str], want: tuple[list[str], list[str]]
) -> None:
    """The remote's paths the ignore rules leave out are not planned, yet a file sent at a
    folder of theirs made a pair no disk holds; such uploads are refused with the reason."""
    result = plan(tree(local, loc), tree({}, rem), tree({}, bas), SyncPolicy(PUSH, force=True))
    result = refuse_hidden(result, Hidden.of(RelPath(p) for p in hidden))
    assert _steps(result) == want
    for a in result.refused:
        assert a.reason.endswith("left out of this run by the ignore rules)")
