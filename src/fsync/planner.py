"""Decide what a one-shot push or pull does to each path: DESIGN.md's three-way rules.

The planner is pure: three frozen snapshots and a policy go in, a `Plan` comes out, and no
file, clock or remote is touched, so every rule is a unit test on plain values. The rules are
written once, in push's terms: a *source* (local for push, remote for pull) and a
*destination*. Pull swaps the roles of the inputs and the kinds of the outputs, which is what
keeps the two directions exact mirrors.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field, replace

from fsync.errors import SafetyAbort
from fsync.model import (
    Action,
    ActionKind,
    BaseEntry,
    BaseSnapshot,
    ConflictPolicy,
    Digest,
    Direction,
    LocalEntry,
    Notice,
    Plan,
    RelPath,
    RemoteEntry,
    RemoteSnapshot,
    Snapshot,
    SyncPolicy,
    digest_equal,
)
from fsync.paths import ancestors
from fsync.planner_moves import detect_moves as detect_moves  # noqa: PLC0414 (re-exported)
from fsync.planner_moves import detect_pull_moves as detect_pull_moves  # noqa: PLC0414


class State(enum.Enum):
    """One side of one path compared with the base (shared with `planner_sync`)."""

    ABSENT = "absent"  # no file and no base
    UNCHANGED = "unchanged"
    SAME_CONTENT = "same content"  # remote fingerprint moved, digest equals the base's
    CHANGED = "changed"
    NEW = "new"
    DELETED = "deleted"


STATE_CLASS = {
    State.ABSENT: State.UNCHANGED,
    State.UNCHANGED: State.UNCHANGED,
    State.SAME_CONTENT: State.UNCHANGED,
    State.CHANGED: State.CHANGED,
    State.NEW: State.CHANGED,
    State.DELETED: State.DELETED,
}
"""The table's three classes: NEW counts as changed, ABSENT and SAME_CONTENT as unchanged."""

_PULL_KIND = {
    ActionKind.UPLOAD: ActionKind.DOWNLOAD,
    ActionKind.DELETE_REMOTE: ActionKind.DELETE_LOCAL,
}
"""Outcomes are in push terms (UPLOAD = to the destination); pull renames these kinds."""

_PULL_POLICY = {
    ConflictPolicy.LOCAL: ConflictPolicy.REMOTE,
    ConflictPolicy.REMOTE: ConflictPolicy.LOCAL,
}
"""`--on-conflict` in push terms too: LOCAL means the source wins, REMOTE the destination."""


@dataclass(frozen=True, slots=True)
class Sides:
    """One path oriented as source and destination, each side classified against the base."""

    direction: Direction
    src_state: State
    dst_state: State
    src_digest: Digest | None
    dst_digest: Digest | None
    src_mtime: int | None
    dst_mtime: int | None
    src: str = "local"  # the sides' names, for reasons
    dst: str = "remote"
    applies: bool = True
    """The other direction can apply what the destination changed (not to a read-only
    remote): a reason names the command that does."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What to do with one path, in push terms; `kind` None means no action."""

    kind: ActionKind | None
    reason: str = ""
    conflict: bool = False
    keep_copy: bool = False
    notice: bool = False
    """Also report the path: a change was seen that this run leaves unapplied."""
    deleted: bool = False
    """The notice is of a file deleted on the destination (`Notice.deleted`)."""


def plan(local: Snapshot, remote: RemoteSnapshot, base: BaseSnapshot, policy: SyncPolicy) -> Plan:
    """Plan a push or pull (per `policy.direction`) from the three snapshots.

    Actions and notices come ordered by path, whatever the order of the input mappings. A
    notice names a path whose change this run sees but leaves unapplied (a conflict that keeps
    the destination included); `unchanged` counts paths with neither action nor notice.
    `refused` holds the transfers that would put a file and a folder at one name
    (`refuse_clashes`).

    Raises `SafetyAbort` (unless `policy.force`) when the source is empty while the base is
    not, or when the plan deletes more than `delete_limit` allows; `ValueError` for a
    two-way policy (`Direction.SYNC` is `planner_sync.plan_sync`'s).
    """
    if policy.direction is Direction.SYNC:
        raise ValueError("a two-way plan is made by planner_sync.plan_sync")
    actions: list[Action] = []
    notices: list[Notice] = []
    pull = policy.direction is Direction.PULL
    on_conflict = policy.on_conflict
    if pull:
        on_conflict = _PULL_POLICY.get(on_conflict, on_conflict)
    unchanged, paths = settled(local, remote, base)
    for path in paths:
        loc, rem, bas = local.get(path), remote.get(path), base.get(path)
        seen = sides(policy.direction, loc, rem, bas)
        if policy.read_only:
            seen = replace(seen, applies=False)
        out = _mirror_rule(seen) if policy.mirror else _rule(seen, on_conflict)
        if out.kind is not None:
            kind = _PULL_KIND.get(out.kind, out.kind) if pull else out.kind
            actions.append(
                Action(kind, path, loc, rem, bas, out.reason, out.conflict, out.keep_copy)
            )
        if out.notice:
            notices.append(Notice(path, out.reason, out.deleted))
        unchanged += int(out.kind is None and not out.notice)
    actions, refused = refuse_clashes(actions, paths, local, remote)
    _check_safety(actions, local, remote, base, policy)
    return Plan(tuple(actions), tuple(notices), unchanged, refused)


def settled(
    local: Snapshot, remote: RemoteSnapshot, base: BaseSnapshot
) -> tuple[int, list[RelPath]]:
    """How many paths are settled, and every other path of the three snapshots, sorted.

    A path is settled when both sides still hold its base version: the local digest is the
    base's and the remote fingerprint has not moved. Every rule of `plan` (mirror or not,
    either direction) leaves such a path alone with no notice, so it is counted without
    being classified: on a run where little changed, that is almost every path, and the
    sort and the rules then cost only what changed (`mapping_paths` minus the settled).
    """
    rest: list[RelPath] = []
    count = in_remote = in_base = 0
    remote_get, base_get = remote.get, base.get
    for path, loc in local.items():
        bas, rem = base_get(path), remote_get(path)
        if bas is not None:
            in_base += 1
            if rem is not None:
                in_remote += 1
                if loc.digest == bas.digest and rem.fingerprint == bas.fingerprint:
                    count += 1
                    continue
        elif rem is not None:
            in_remote += 1
        rest.append(path)
    # The other two sides' paths that are not local ones; no set is built when none are.
    if in_remote < len(remote):
        rest.extend(remote.keys() - local.keys())
    if in_base < len(base):
        rest.extend(base.keys() - local.keys() - remote.keys())
    rest.sort()
    return count, rest


def refuse_clashes(
    actions: list[Action], paths: Iterable[RelPath], local: Snapshot, remote: RemoteSnapshot
) -> tuple[list[Action], tuple[Action, ...]]:
    """`actions` without the creates that would put a file and a folder at one name on a
    side, and those, each with what is in the way and what to do as its `reason`.

    A disk holds a file `d` or a folder `d/`, never both; an object store holds keys `d` and
    `d/x` side by side, which no later pull or sync can bring to a disk. So an UPLOAD of a
    path the remote lacks is refused where the remote keeps, after this plan, a file at a
    folder above it or keys below it; a DOWNLOAD likewise against the local tree. A type
    change on one side (a file become a folder, or back) passes: the plan deletes the old
    name on the other side, unless that side changed it, and then what it changed stays in
    the way (README: "each run reports the two paths, changes neither, and exits 1").

    `paths` are the paths the plan looked at. A path settled on both sides never blocks:
    its name holds a file on both, so neither can create a folder there, nor a file above
    its own. Two creates never block each other: their source would hold a file and a
    folder of one name, which a disk cannot, and a pull leaves such remote pairs out
    (`names.unmappable`). Actions are otherwise kept as they are, in order.
    """
    refused: dict[RelPath, Action] = {}  # (a plan holds one action per path)
    for create, delete, entries in (
        (ActionKind.UPLOAD, ActionKind.DELETE_REMOTE, remote),
        (ActionKind.DOWNLOAD, ActionKind.DELETE_LOCAL, local),
    ):
        new = [a for a in actions if a.kind is create and _lacks(a, create)]
        if not new:
            continue
        gone = {a.path for a in actions if a.kind is delete}
        stays = {p for p in paths if p in entries and p not in gone}
        below = first_below(stays)
        for a in new:
            why = in_the_way(a.path, stays, below, up=create is ActionKind.UPLOAD)
            if why is not None:
                refused[a.path] = _refusal(a, why)
    if not refused:
        return actions, ()
    kept = [a for a in actions if a.path not in refused]
    return kept, tuple(sorted(refused.values(), key=lambda a: a.path))


def _refusal(action: Action, why: str) -> Action:
    """`action` refused (`Plan.refused`) for `why`: no longer a conflict's, nor keeping a
    copy, since nothing of it is done."""
    return replace(action, reason=why, conflict=False, keep_copy=False, share_copy=False)


def _lacks(action: Action, create: ActionKind) -> bool:
    """The side `action` writes holds nothing at its path (a change of a file there keeps
    its type, and a clash the store already held is not this plan's to refuse)."""
    return (action.remote if create is ActionKind.UPLOAD else action.local) is None


def first_below(stays: Iterable[RelPath]) -> dict[RelPath, RelPath]:
    """Each folder above a path of `stays`, with the first of them under it (`in_the_way`)."""
    below: dict[RelPath, RelPath] = {}
    for path in sorted(stays):
        for folder in ancestors(path):
            below.setdefault(folder, path)
    return below


def in_the_way(
    path: RelPath, stays: Collection[RelPath], below: Mapping[RelPath, RelPath], *, up: bool
) -> str | None:
    """Why a file cannot be created at `path` on the side where `stays` remain (None if it
    can): a file at a folder above it, or paths below it (`below`, from `first_below`).
    `up`: the side is the remote (an upload). Also the engine's word for a create whose
    delete was refused at run time (`transfer.engine`): one message for one clash."""
    verb, side, there, other = ("not sent", "the remote", "on the remote", "here")
    if not up:
        verb, side, there, other = ("not fetched", "the local folder", "here", "on the remote")
    for folder in ancestors(path):
        if folder in stays:
            return (
                f"{verb}: {side} keeps a file {folder}, so it cannot hold the folder "
                f"{folder}/ this file is in; rename {folder} {there} or {folder}/ {other}, "
                "then run again"
            )
    inside = below.get(path)
    if inside is not None:
        return (
            f"{verb}: {side} keeps files under {path}/ ({inside}), so it cannot hold a file "
            f"{path}; rename {path}/ {there} or {path} {other}, then run again"
        )
    return None


@dataclass(frozen=True, slots=True)
class Hidden:
    """The remote's paths the ignore rules (and `--exclude`) leave out of a run: never
    planned, yet in the way of a file created at the name of a folder they are in."""

    paths: frozenset[RelPath] = frozenset()
    below: Mapping[RelPath, RelPath] = field(default_factory=dict)
    """`first_below` of `paths`, made once per listing: a watch plans many batches on one."""

    @classmethod
    def of(cls, paths: Iterable[RelPath]) -> Hidden:
        kept = frozenset(paths)
        return cls(kept, first_below(kept))


def refuse_hidden(plan: Plan, hidden: Hidden) -> Plan:
    """`plan` with the uploads `refuse_clashes` would refuse if the remote's `hidden` paths
    were planned: on a store, a file `d` sent beside the keys `d/x` the rules leave out made a
    pair no disk can hold, and a folder remote failed the upload a dry run had shown as fine.
    """
    if not hidden.paths:
        return plan
    refused: dict[RelPath, Action] = {}
    for a in plan.actions:
        if a.kind is ActionKind.UPLOAD and _lacks(a, ActionKind.UPLOAD):
            why = in_the_way(a.path, hidden.paths, hidden.below, up=True)
            if why is not None:
                why += " (what is in the way is left out of this run by the ignore rules)"
                refused[a.path] = _refusal(a, why)
    if not refused:
        return plan
    return replace(
        plan,
        actions=tuple(a for a in plan.actions if a.path not in refused),
        refused=tuple(sorted([*plan.refused, *refused.values()], key=lambda a: a.path)),
    )


def without_deletes(plan: Plan, only: Container[RelPath] | None = None) -> Plan:
    """`plan` with its deletes (those of the paths in `only`, when given) held back (a watch
    past its delete limit), and with them the creates they made room for, refused
    (`Plan.refused`) until the deletes go through.

    A file `d` become a folder `d/` (or back) is one change of two actions: the delete of
    the old name and the create of the new. Sent alone, the create put a key `d/x` beside the
    file `d` the store still held, a pair no disk can hold and no pull brings back.
    """
    held = {
        a.path: a.kind for a in plan.actions if a.kind.deletes and (only is None or a.path in only)
    }
    if not held:
        return plan
    below: dict[tuple[RelPath, ActionKind], RelPath] = {}  # the first held-back path under
    for path in sorted(held):
        for folder in ancestors(path):
            below.setdefault((folder, held[path]), path)
    kept: list[Action] = []
    refused = list(plan.refused)
    for a in plan.actions:
        if a.path in held:
            continue
        delete, create = _CREATES.get(a.kind, (None, a.kind))
        in_way = None
        if delete is not None and _lacks(a, create):
            above = (f for f in ancestors(a.path) if held.get(f) is delete)
            in_way = next(above, None) or below.get((a.path, delete))
        if in_way is None:
            kept.append(a)
            continue
        why = f"waits for the delete of {in_way}, which the delete limit holds back"
        refused.append(_refusal(a, why))
    by_path = sorted(refused, key=lambda a: a.path)
    return replace(plan, actions=tuple(kept), refused=tuple(by_path))


_CREATES = {
    ActionKind.UPLOAD: (ActionKind.DELETE_REMOTE, ActionKind.UPLOAD),
    ActionKind.MOVE: (ActionKind.DELETE_REMOTE, ActionKind.UPLOAD),
    ActionKind.DOWNLOAD: (ActionKind.DELETE_LOCAL, ActionKind.DOWNLOAD),
    ActionKind.MOVE_LOCAL: (ActionKind.DELETE_LOCAL, ActionKind.DOWNLOAD),
}
"""The actions that make a name on a side: the delete that empties that side, and the
transfer whose side `_lacks` looks at."""


def _presence(entry: object, base: BaseEntry | None) -> State:
    """ABSENT, DELETED or NEW: the state of a path that lacks its entry, its base or both."""
    if entry is None:
        return State.ABSENT if base is None else State.DELETED
    return State.NEW


def _local_state(entry: LocalEntry | None, base: BaseEntry | None) -> State:
    if entry is None or base is None:
        return _presence(entry, base)
    return State.UNCHANGED if entry.digest == base.digest else State.CHANGED


def _remote_state(entry: RemoteEntry | None, base: BaseEntry | None) -> State:
    if entry is None or base is None:
        return _presence(entry, base)
    if entry.fingerprint == base.fingerprint:
        return State.UNCHANGED
    if entry.digest is not None and entry.digest == base.digest:
        return State.SAME_CONTENT
    return State.CHANGED  # an unknown digest behind a moved fingerprint counts as changed


def sides(
    direction: Direction, loc: LocalEntry | None, rem: RemoteEntry | None, bas: BaseEntry | None
) -> Sides:
    """Classify both sides of a path and orient them as source and destination.

    PUSH orients local as the source, any other direction remote; `planner_sync` uses the
    PUSH orientation to read local as `src` and remote as `dst`.
    """
    lstate, rstate = _local_state(loc, bas), _remote_state(rem, bas)
    ldigest = loc.digest if loc is not None else None
    rdigest = rem.digest if rem is not None else None
    if rstate is State.UNCHANGED and bas is not None:
        rdigest = bas.digest  # an unmoved fingerprint: the remote still holds the base's content
    lmtime = loc.mtime_ns if loc is not None else None
    rmtime = None if rem is None else rem.mtime_ns if rem.mtime_ns is not None else rem.written_ns
    if direction is Direction.PUSH:
        return Sides(direction, lstate, rstate, ldigest, rdigest, lmtime, rmtime)
    return Sides(direction, rstate, lstate, rdigest, ldigest, rmtime, lmtime, "remote", "local")


def _rule(s: Sides, on_conflict: ConflictPolicy) -> _Outcome:
    """DESIGN.md's table for one path; `on_conflict` is in push terms (LOCAL = source)."""
    src, dst = STATE_CLASS[s.src_state], STATE_CLASS[s.dst_state]
    if src is State.UNCHANGED:
        return _source_unchanged(s)
    if dst is State.UNCHANGED:
        if src is State.CHANGED:
            return _Outcome(ActionKind.UPLOAD, f"{s.src_state.value} on {s.src}")
        return _Outcome(ActionKind.DELETE_REMOTE, f"deleted on {s.src}")
    if src is State.DELETED:
        if dst is State.DELETED:
            return _Outcome(ActionKind.FORGET, "deleted on both sides")
        return _delete_conflict(s, on_conflict)
    if dst is State.DELETED:
        return _Outcome(ActionKind.UPLOAD, f"changed on {s.src}, deleted on {s.dst}")
    if digest_equal(s.src_digest, s.dst_digest):
        return _Outcome(ActionKind.RECORD, "same content on both sides")
    return _content_conflict(s, on_conflict)


def _source_unchanged(s: Sides) -> _Outcome:
    """The source has nothing new: report a destination change, or record a rewrite."""
    cmd, verb = ("pull", "fetch") if s.direction is Direction.PUSH else ("push", "send")
    send, apply = f"{cmd} to {verb} it", f"{cmd} to apply it"
    if not s.applies:
        send = apply = "kept: the remote is read-only"
    if s.src_state is State.ABSENT:
        return _Outcome(None, f"only on {s.dst} ({send})", notice=True)
    if s.dst_state is State.DELETED:
        return _Outcome(None, f"deleted on {s.dst} ({apply})", notice=True, deleted=True)
    if STATE_CLASS[s.dst_state] is State.CHANGED:
        return _Outcome(None, f"{s.dst} change ({send})", notice=True)
    if State.SAME_CONTENT in (s.src_state, s.dst_state):
        return _Outcome(ActionKind.RECORD, "remote rewritten with the same content")
    return _Outcome(None)


def _content_conflict(s: Sides, on_conflict: ConflictPolicy) -> _Outcome:
    """Both sides changed to different content: resolve per `--on-conflict` (push terms)."""
    what = "conflict: both changed"
    if on_conflict is ConflictPolicy.NEWER:
        # An unknown mtime is a tie, and a tie keeps the destination: overwrite only on proof.
        newer = s.src_mtime is not None and s.dst_mtime is not None and s.src_mtime > s.dst_mtime
        on_conflict = ConflictPolicy.LOCAL if newer else ConflictPolicy.REMOTE
        what += f", {s.src} newer" if newer else f", {s.dst} as new or newer"
    if on_conflict is ConflictPolicy.KEEP_BOTH:
        reason = f"{what}; {s.dst} version kept as a conflict copy"
        return _Outcome(ActionKind.UPLOAD, reason, conflict=True, keep_copy=True)
    if on_conflict is ConflictPolicy.LOCAL:
        return _Outcome(ActionKind.UPLOAD, f"{what}; {s.src} wins", conflict=True)
    if on_conflict is ConflictPolicy.REMOTE:
        return _Outcome(ActionKind.KEEP, f"{what}; kept {s.dst}", conflict=True, notice=True)
    return _Outcome(ActionKind.CONFLICT, f"{what}; left as is", conflict=True, notice=True)


def _delete_conflict(s: Sides, on_conflict: ConflictPolicy) -> _Outcome:
    """Deleted on the source, changed on the destination: the change survives unless the
    source's side was chosen; FORGET drops the base so the next run sees it as new."""
    what = f"conflict: deleted on {s.src}, changed on {s.dst}"
    if on_conflict is ConflictPolicy.LOCAL:
        return _Outcome(ActionKind.DELETE_REMOTE, f"{what}; {s.src} wins", conflict=True)
    if on_conflict is ConflictPolicy.SKIP:
        return _Outcome(ActionKind.CONFLICT, f"{what}; left as is", conflict=True, notice=True)
    return _Outcome(ActionKind.FORGET, f"{what}; kept {s.dst}", conflict=True, notice=True)


def _mirror_rule(s: Sides) -> _Outcome:
    """`--mirror`: make the destination equal the source, whatever the base says."""
    src_present = s.src_state not in (State.ABSENT, State.DELETED)
    dst_present = s.dst_state not in (State.ABSENT, State.DELETED)
    if not src_present:
        if dst_present:
            return _Outcome(ActionKind.DELETE_REMOTE, f"not on {s.src} (mirror)")
        return _Outcome(ActionKind.FORGET, "deleted on both sides")
    if dst_present and digest_equal(s.src_digest, s.dst_digest):
        if s.src_state is State.UNCHANGED and s.dst_state is State.UNCHANGED:
            return _Outcome(None)
        return _Outcome(ActionKind.RECORD, "same content on both sides")
    return _Outcome(ActionKind.UPLOAD, f"differs on {s.dst} (mirror)")


def delete_limit(policy: SyncPolicy, denominator: int) -> int:
    """The most deletions one plan may hold: `policy.max_delete`, or a share of `denominator`.

    `denominator` is the base's size, or the destination's file count when there is no base.
    The share (`max_delete_ratio`) is rounded down, with a hair of slack for float error, but
    is at least 1 when the ratio is positive: deleting the one file of a one-file tree (or
    one of three, at 50 %) must not need `--force`. An explicit `max_delete` of 0 forbids all.
    """
    if policy.max_delete is not None:
        return policy.max_delete
    if policy.max_delete_ratio <= 0:
        return 0
    return max(1, math.floor(policy.max_delete_ratio * denominator + 1e-9))


def share(ratio: float) -> str:
    """`ratio` as the percentage a user wrote (`--max-delete 59.9%`): `{:.0%}` showed 60 %,
    which did not add up with the limit beside it."""
    return f"{ratio * 100:.4g}%"


def check_safety(
    plan: Plan,
    local: Snapshot,
    remote: RemoteSnapshot,
    base: BaseSnapshot,
    policy: SyncPolicy,
) -> None:
    """Raise `SafetyAbort` for `plan` as `plan()` itself would, unless `policy.force`.

    For plans made with `force` and then post-processed (`detect_moves`): a MOVE is not a
    deletion, so a renamed folder does not trip the delete cap.
    """
    _check_safety(list(plan.actions), local, remote, base, policy)


def _check_safety(
    actions: list[Action],
    local: Snapshot,
    remote: RemoteSnapshot,
    base: BaseSnapshot,
    policy: SyncPolicy,
) -> None:
    """Raise `SafetyAbort` for an emptied source or too many deletions, unless forced."""
    if policy.force:
        return
    push = policy.direction is Direction.PUSH
    src, dst = ("local", "remote") if push else ("remote", "local")
    deletes = sum(1 for a in actions if a.kind.deletes)
    if base and not (local if push else remote):
        raise SafetyAbort(
            f"the {src} side is empty but {len(base)} files were synced before (a wrong path "
            "or an unmounted disk?); use --force to delete them all"
        )
    if deletes and not (local if push else remote):
        # No base to tell: the base lives in the local folder (an unmounted disk's mount
        # point has none) and is kept per remote (a mistyped prefix has none), so a
        # `--mirror` from an empty source deleted every file within the limit.
        raise SafetyAbort(
            f"the {src} side is empty and the plan deletes {deletes} files on the {dst} "
            "side (a wrong path or an unmounted disk?); use --force to delete them all"
        )
    denominator = len(base) if base else len(remote if push else local)
    limit = delete_limit(policy, denominator)
    if deletes > limit:
        why = f"{share(policy.max_delete_ratio)} of {denominator} "
        why += "synced files" if base else f"files on the {dst} side"
        if policy.max_delete is not None:
            why = f"--max-delete {policy.max_delete}"
        raise SafetyAbort(
            f"the plan deletes {deletes} files, more than the limit of {limit} ({why}); "
            "check the paths, then raise --max-delete or use --force"
        )
