"""Renames: turn a delete plus a create of the same content into one move (pure).

A rename on one side reaches the planner as two unrelated paths: the old one deleted, the new
one created. Where the other side still holds the old path's base version, that version can be
moved instead of sending the same bytes again: server-side on the remote for a local rename
(push, `MOVE`), by a local rename for a remote one (pull, `MOVE_LOCAL`). Both passes read and
write plain `Plan`s, so they apply to push, pull and two-way plans alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from fsync.model import Action, ActionKind, Digest, Plan, RelPath, digest_equal


@dataclass(frozen=True, slots=True)
class _Pairing:
    """Which actions one direction pairs, and how it tells that a pair is safe."""

    delete: ActionKind
    create: ActionKind
    move: ActionKind
    holds_base: Callable[[Action], bool]
    """The delete's side still holds the base version (so moving it moves that content)."""
    brings: Callable[[Action], Digest | None]
    """The content the create would put at the new path (None: unknown, never paired)."""
    lands_on_nothing: Callable[[Action], bool]
    """The create's destination path is empty, so the move overwrites nothing."""


def _remote_holds_base(action: Action) -> bool:
    rem, bas = action.remote, action.base
    if rem is None or bas is None:
        return False
    return rem.fingerprint == bas.fingerprint or digest_equal(rem.digest, bas.digest)


def _local_holds_base(action: Action) -> bool:
    loc, bas = action.local, action.base
    return loc is not None and bas is not None and loc.digest == bas.digest


_PUSH = _Pairing(
    ActionKind.DELETE_REMOTE,
    ActionKind.UPLOAD,
    ActionKind.MOVE,
    holds_base=_remote_holds_base,
    brings=lambda a: a.local.digest if a.local is not None else None,
    lands_on_nothing=lambda a: a.remote is None,
)
_PULL = _Pairing(
    ActionKind.DELETE_LOCAL,
    ActionKind.DOWNLOAD,
    ActionKind.MOVE_LOCAL,
    holds_base=_local_holds_base,
    brings=lambda a: a.remote.digest if a.remote is not None else None,
    lands_on_nothing=lambda a: a.local is None,
)


def detect_moves(plan: Plan) -> Plan:
    """Turn each delete-plus-upload of the same content in `plan` into one MOVE.

    A push plan sees a local rename as a DELETE_REMOTE of the old path and an UPLOAD of the
    new one; when the remote still holds the old path's base version (its fingerprint has not
    moved) and that version's digest equals the new file's, the remote can copy the object
    server-side instead of receiving the bytes again. Only plain uploads to a path that is
    absent on the remote are paired, never conflicts, so a MOVE never overwrites anything;
    nor a path and one under it (`n` to `n/x`), which no rename can do in place.
    Among several deletes of the same content, one with the same file name is preferred (a
    folder rename), then the first by path, so the result is deterministic. Actions stay
    ordered by path, a MOVE at its new path; a plan with nothing to pair is returned as is.
    """
    return _pair(plan, _PUSH)


def detect_pull_moves(plan: Plan) -> Plan:
    """Turn each delete-local-plus-download of the same content into one MOVE_LOCAL.

    The mirror of `detect_moves`: a remote rename reaches a pull as a DELETE_LOCAL of the old
    path (whose local file still holds the base version) and a DOWNLOAD of the new one. When
    the new object's digest is known (stored metadata, or learned for the plan) and equals
    the old path's base digest, the local file is renamed instead of fetched. Only plain
    downloads to a path absent locally are paired; the same tie-breaks and ordering apply.
    """
    return _pair(plan, _PULL)


def _pair(plan: Plan, how: _Pairing) -> Plan:
    deletes: dict[Digest, list[Action]] = {}
    for action in plan.actions:
        if action.kind is how.delete and not action.conflict and how.holds_base(action):
            assert action.base is not None
            deletes.setdefault(action.base.digest, []).append(action)
    if not deletes:
        return plan
    used: set[RelPath] = set()
    actions: list[Action] = []
    for action in plan.actions:
        source = _source(action, how, deletes, used)
        if source is None:
            actions.append(action)
            continue
        used.add(source.path)
        actions.append(
            Action(
                how.move,
                action.path,
                action.local,
                action.remote,
                action.base,
                f"renamed from {source.path}",
                moved_from=source,
            )
        )
    if not used:
        return plan
    kept = tuple(a for a in actions if not (a.kind is how.delete and a.path in used))
    return replace(plan, actions=kept)


def _source(
    action: Action, how: _Pairing, deletes: dict[Digest, list[Action]], used: set[RelPath]
) -> Action | None:
    """The delete that `action` (a create) can be moved from, or None."""
    if action.kind is not how.create or action.conflict or action.keep_copy:
        return None
    content = how.brings(action)
    if content is None or not how.lands_on_nothing(action):
        return None
    candidates = [
        d
        for d in deletes.get(content, ())
        if d.path not in used and not _nested(d.path, action.path)
    ]
    if not candidates:
        return None
    name = action.path.rpartition("/")[2]
    for candidate in candidates:
        if candidate.path.rpartition("/")[2] == name:
            return candidate
    return candidates[0]


def _nested(a: RelPath, b: RelPath) -> bool:
    """One path is a folder above the other (`n` and `n/x`).

    No rename can take a file into a folder of its own name, or out of it to that name: the
    file is in the way of the folder (or the folder's other files of the file). Such a pair
    stays a delete and a create, which the engine runs in that order.
    """
    return b.startswith(a + "/") or a.startswith(b + "/")
