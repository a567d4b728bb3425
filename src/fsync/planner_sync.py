"""Plan a two-way run (`fsync sync`): changes on either side flow to the other (pure).

The same three snapshots and the same per-side classification as the one-way planner
(`planner.sides`), but neither side is the source: whatever changed since the base on one
side is applied to the other, and where both changed `--on-conflict` decides. Like the
one-way planner it deletes only against a base, so a first run (empty base) deletes nothing,
adopts identical files and treats differing ones as conflicts; no separate resync step.

Action kinds keep their meaning (UPLOAD goes to the remote, DOWNLOAD to the local tree), so
the engine, the move passes and the counts need nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsync.errors import SafetyAbort
from fsync.model import (
    Action,
    ActionKind,
    BaseSnapshot,
    ConflictPolicy,
    Direction,
    Notice,
    Plan,
    RemoteSnapshot,
    Snapshot,
    SyncPolicy,
    digest_equal,
    mapping_paths,
)
from fsync.planner import (
    STATE_CLASS,
    Sides,
    State,
    delete_limit,
    refuse_clashes,
    share,
    sides,
)

K = ActionKind


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What to do with one path; `kind` None means nothing."""

    kind: ActionKind | None
    reason: str = ""
    conflict: bool = False
    keep_copy: bool = False
    notice: bool = False


def plan_sync(
    local: Snapshot, remote: RemoteSnapshot, base: BaseSnapshot, policy: SyncPolicy
) -> Plan:
    """Plan a two-way run from the three snapshots; `policy.direction` is ignored.

    Actions and notices come ordered by path. Under keep-both a content conflict is one
    UPLOAD or DOWNLOAD with `keep_copy` and `share_copy`: the newer version (by mtime, where
    both are known; else the local one) takes the name on both sides, and the other is kept
    on both sides under the conflict name. Notices name unresolved conflicts (`skip`);
    `refused` the transfers that would put a file and a folder at one name
    (`planner.refuse_clashes`).

    Raises `SafetyAbort` (unless `policy.force`) as `check_safety` says.
    """
    actions: list[Action] = []
    notices: list[Notice] = []
    unchanged = 0
    paths = mapping_paths(local, remote, base)
    for path in paths:
        loc, rem, bas = local.get(path), remote.get(path), base.get(path)
        out = _rule(sides(Direction.PUSH, loc, rem, bas), policy.on_conflict)
        if out.kind is not None:
            actions.append(
                Action(
                    out.kind,
                    path,
                    loc,
                    rem,
                    bas,
                    out.reason,
                    out.conflict,
                    out.keep_copy,
                    share_copy=out.keep_copy,
                )
            )
        if out.notice:
            notices.append(Notice(path, out.reason))
        unchanged += int(out.kind is None and not out.notice)
    actions, refused = refuse_clashes(actions, paths, local, remote)
    result = Plan(tuple(actions), tuple(notices), unchanged, refused)
    check_safety(result, local, remote, base, policy)
    return result


def check_safety(
    plan: Plan,
    local: Snapshot,
    remote: RemoteSnapshot,
    base: BaseSnapshot,
    policy: SyncPolicy,
) -> None:
    """Raise `SafetyAbort` for a dangerous two-way plan, unless `policy.force`.

    Dangerous is either side empty while the base is not (a wrong path, an unmounted disk: a
    sync would delete everything on the other side), or more deletions, on both sides
    together, than `delete_limit` allows for the base's size. Moves are not deletions.
    """
    if policy.force:
        return
    for side, entries in (("local", local), ("remote", remote)):
        if base and not entries:
            raise SafetyAbort(
                f"the {side} side is empty but {len(base)} files were synced before (a wrong "
                "path or an unmounted disk?); use --force to delete them on the other side too"
            )
    deletes = plan.count(K.DELETE_LOCAL, K.DELETE_REMOTE)
    limit = delete_limit(policy, len(base))
    if deletes > limit:
        why = f"{share(policy.max_delete_ratio)} of {len(base)} synced files"
        if policy.max_delete is not None:
            why = f"--max-delete {policy.max_delete}"
        raise SafetyAbort(
            f"the plan deletes {deletes} files, more than the limit of {limit} ({why}); "
            "check the paths, then raise --max-delete or use --force"
        )


def _rule(s: Sides, on_conflict: ConflictPolicy) -> _Outcome:
    """One path; `s` has the local side as `src` and the remote side as `dst`."""
    here, there = STATE_CLASS[s.src_state], STATE_CLASS[s.dst_state]
    if here is State.UNCHANGED and there is State.UNCHANGED:
        if State.SAME_CONTENT in (s.src_state, s.dst_state):
            return _Outcome(K.RECORD, "remote rewritten with the same content")
        return _Outcome(None)
    if here is State.UNCHANGED:
        if there is State.CHANGED:
            return _Outcome(K.DOWNLOAD, f"{s.dst_state.value} on remote")
        return _Outcome(K.DELETE_LOCAL, "deleted on remote")
    if there is State.UNCHANGED:
        if here is State.CHANGED:
            return _Outcome(K.UPLOAD, f"{s.src_state.value} on local")
        return _Outcome(K.DELETE_REMOTE, "deleted on local")
    if here is State.DELETED and there is State.DELETED:
        return _Outcome(K.FORGET, "deleted on both sides")
    if here is State.DELETED:
        return _deleted_vs_changed("local", "remote", on_conflict)
    if there is State.DELETED:
        return _deleted_vs_changed("remote", "local", on_conflict)
    if digest_equal(s.src_digest, s.dst_digest):
        return _Outcome(K.RECORD, "same content on both sides")
    return _content_conflict(s, on_conflict)


_FETCH = {"local": K.UPLOAD, "remote": K.DOWNLOAD}
"""The action that brings the named side's version to the other side."""
_DELETE = {"local": K.DELETE_REMOTE, "remote": K.DELETE_LOCAL}
"""The action that applies the named side's deletion to the other side."""


def _deleted_vs_changed(gone: str, changed: str, on_conflict: ConflictPolicy) -> _Outcome:
    """One side deleted what the other changed: the change survives unless the deleting
    side was chosen (`--on-conflict local|remote`), or is left as is under `skip`."""
    what = f"conflict: deleted on {gone}, changed on {changed}"
    if on_conflict is ConflictPolicy.SKIP:
        return _Outcome(K.CONFLICT, f"{what}; left as is", conflict=True, notice=True)
    if on_conflict.value == gone:
        return _Outcome(_DELETE[gone], f"{what}; {gone} wins", conflict=True)
    return _Outcome(_FETCH[changed], f"{what}; the change is kept", conflict=True)


def _content_conflict(s: Sides, on_conflict: ConflictPolicy) -> _Outcome:
    """Both sides hold different content: resolve per `--on-conflict`.

    `newer` with times unknown or equal cannot pick a winner, so it keeps both rather than
    drop a version on a guess.
    """
    what = "conflict: both changed"
    newer = _newer(s)
    if on_conflict is ConflictPolicy.NEWER:
        if newer is None:
            on_conflict = ConflictPolicy.KEEP_BOTH
            what += ", times unknown or equal"
        else:
            on_conflict = ConflictPolicy(newer)
            what += f", {newer} newer"
    if on_conflict is ConflictPolicy.KEEP_BOTH:
        winner = newer or "local"
        loser = "remote" if winner == "local" else "local"
        reason = f"{what}; {loser} version kept on both sides as a conflict copy"
        return _Outcome(_FETCH[winner], reason, conflict=True, keep_copy=True)
    if on_conflict is ConflictPolicy.SKIP:
        return _Outcome(K.CONFLICT, f"{what}; left as is", conflict=True, notice=True)
    winner = on_conflict.value
    return _Outcome(_FETCH[winner], f"{what}; {winner} wins", conflict=True)


def _newer(s: Sides) -> str | None:
    """The side (`local` or `remote`) whose mtime is known and later; None otherwise."""
    if s.src_mtime is None or s.dst_mtime is None or s.src_mtime == s.dst_mtime:
        return None
    return "local" if s.src_mtime > s.dst_mtime else "remote"
