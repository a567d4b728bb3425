"""Plan a run from the three snapshots, learning what the listing alone cannot tell.

The planners are pure; this is the one step of planning that does I/O: a few remote reads
(a HEAD where the store keeps metadata, else reading the content) where a digest or an mtime
decides the plan, then the planner for the run's direction, the rename passes and the safety
checks. The app and `fsync watch` both plan through `plan_sync`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fsync import etags, planner, planner_sync
from fsync.errors import FsyncError, SafetyAbort
from fsync.hashing import hash_stream
from fsync.model import (
    BaseEntry,
    Digest,
    Direction,
    LocalEntry,
    Plan,
    RelPath,
    RemoteEntry,
    SyncPolicy,
)
from fsync.remote.base import Remote, TokenHistory


def plan_sync(
    remote: Remote,
    local: Mapping[RelPath, LocalEntry],
    entries: dict[RelPath, RemoteEntry],
    base: Mapping[RelPath, BaseEntry],
    policy: SyncPolicy,
    *,
    local_root: str | None = None,
    recorded_ns: int | None = None,
    hidden: planner.Hidden | None = None,
) -> Plan:
    """Plan the three snapshots (the whole tree, or any subset of its paths).

    `policy.direction` picks the planner: one-way (`planner.plan`) or two-way
    (`planner_sync.plan_sync`). Remote digests are learned first where they decide the plan,
    and renames become moves: a local rename a server-side MOVE where the remote copies
    server-side, a remote rename a local MOVE_LOCAL. Raises `SafetyAbort` as the planner
    does, with a move counted as no deletion. With `local_root`, a remote object that
    carries no digest but an MD5 ETag is compared with the local file of its path by MD5.
    `recorded_ns` is a time by which every base in an older form of a fingerprint
    (`TokenHistory`) was recorded (`Manifest.legacy_tokens_until_ns`): such a base is taken
    for the version it names if the file is unchanged since. `hidden`: the remote's paths the
    ignore rules leave out, refused as in the way of an upload (`planner.refuse_hidden`).
    """
    two_way = policy.direction is Direction.SYNC
    fetches = policy.direction is not Direction.PUSH
    entries = _fill_digests(
        remote,
        entries,
        local,
        base,
        renames=fetches,
        local_root=local_root,
        recorded_ns=recorded_ns,
    )
    loose = replace(policy, force=True, read_only=not remote.capabilities.writable)
    if two_way:
        plan = planner_sync.plan_sync(local, entries, base, loose)
    else:
        plan = planner.plan(local, entries, base, loose)
    if hidden is not None:
        plan = planner.refuse_hidden(plan, hidden)
    if policy.direction is not Direction.PULL and remote.capabilities.server_side_copy:
        plan = planner.detect_moves(plan)
    if fetches:
        plan = planner.detect_pull_moves(plan)
    stop = safety_stop(plan, local, entries, base, policy)
    if stop is not None:
        raise SafetyAbort(stop)
    return plan


def safety_stop(
    plan: Plan,
    local: Mapping[RelPath, LocalEntry],
    entries: Mapping[RelPath, RemoteEntry],
    base: Mapping[RelPath, BaseEntry],
    policy: SyncPolicy,
) -> str | None:
    """Why `plan` (made with `force`) is too dangerous to run under `policy` (the message of
    its direction's planner's `SafetyAbort`, a move counted as no deletion), or None; always
    None with `policy.force`. A dry run plans with `force` and asks this after, to show the
    plan the real run would refuse."""
    check = (
        planner_sync.check_safety if policy.direction is Direction.SYNC else planner.check_safety
    )
    try:
        check(plan, local, entries, base, policy)
    except SafetyAbort as exc:
        return str(exc)
    return None


def _fill_digests(
    remote: Remote,
    entries: dict[RelPath, RemoteEntry],
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
    *,
    renames: bool = False,
    local_root: str | None = None,
    recorded_ns: int | None = None,
) -> dict[RelPath, RemoteEntry]:
    """Learn the content digest of remote entries where it decides the plan.

    That is where a path has no base but exists on both sides, or where its fingerprint
    moved while its size did not (only the content can tell an identical rewrite from a
    change), or moved to the size of a local change (the same change on both sides: a record,
    not a conflict). Any other size proves a change from both, so it costs nothing. With
    `renames` (a run that fetches), also where a new remote path has the size of a synced
    path gone from the remote: a rename, if the content matches, costs a local rename
    instead of a download.
    Where the backend stores no digest, the content is read and hashed; that happens only in
    those cases. Where it stores metadata (one HEAD each), paths changed on both sides are
    looked at too, for the mtime a conflict may be decided by; an object with no stored
    digest (written by another tool) is matched with the local file by MD5 where its ETag
    is one (DESIGN.md: "size+MD5 ETag"), so identical files are adopted, not re-sent.
    """
    stores = remote.capabilities.stores_digest
    gone = {b.size for p, b in base.items() if p not in entries and p in local} if renames else ()

    def wanted(path: RelPath, e: RemoteEntry) -> bool:
        if e.digest is None and _needs_digest(path, e, local, base):
            return True
        if e.digest is None and e.size in gone and path not in base and path not in local:
            return True
        return stores and e.mtime_ns is None and _both_changed(path, e, local, base)

    base_get = base.get
    older = _older_tokens(remote, recorded_ns)
    todo = []
    upgraded: dict[RelPath, RemoteEntry] = {}
    for path, e in entries.items():
        b = base_get(path)
        if b is not None and e.fingerprint == b.fingerprint:
            continue  # unmoved since the base: no question above can be true (the common case)
        if b is not None and older is not None and older(e) == b.fingerprint:
            # The base's version under the token an older fsync recorded: the same content,
            # recorded again under the new token (a RECORD), never read to learn that.
            upgraded[path] = replace(e, digest=b.digest)
        elif wanted(path, e):
            todo.append(path)
    if not todo:
        return {**entries, **upgraded} if upgraded else entries

    def learn(path: RelPath) -> RemoteEntry | None:
        return _learn(
            remote, path, entries[path], here=local.get(path), b=base_get(path), root=local_root
        )

    out = {**entries, **upgraded}
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync-digest") as pool:
        for path, learned in zip(todo, pool.map(learn, todo), strict=True):
            if learned is not None:
                out[path] = learned
    return out


def _older_tokens(
    remote: Remote, recorded_ns: int | None
) -> Callable[[RemoteEntry], str | None] | None:
    """The older token of an entry (`TokenHistory`) for bases recorded by `recorded_ns`;
    None where `remote` has no older tokens, or no run of it ever ended."""
    if recorded_ns is None or not isinstance(remote, TokenHistory):
        return None
    return functools.partial(remote.older_token, recorded_ns=recorded_ns)


def _learn(
    remote: Remote,
    path: RelPath,
    listed: RemoteEntry,
    *,
    here: LocalEntry | None,
    b: BaseEntry | None,
    root: str | None,
) -> RemoteEntry | None:
    """`listed` with what one look at the object tells (None: nothing, or it changed)."""
    try:
        if remote.capabilities.stores_digest:
            seen = remote.stat(path)
            if seen is None or seen.fingerprint != listed.fingerprint:
                return None  # changed since the listing: the plan works from the listing
            digest = _proven_digest(remote, path, seen, here=here, b=b, root=root)
            seen = replace(seen, digest=digest)
            return replace(
                listed,
                digest=listed.digest or seen.digest,
                mtime_ns=listed.mtime_ns if listed.mtime_ns is not None else seen.mtime_ns,
                mode=listed.mode if listed.mode is not None else seen.mode,
                written_ns=listed.written_ns or seen.written_ns,
            )
        digest = remote.read_digest(path)
        if digest is None:
            with remote.open_read(path) as src:
                digest = hash_stream(src)
    except (OSError, FsyncError):
        return None
    return replace(listed, digest=Digest(digest))


def _proven_digest(
    remote: Remote,
    path: RelPath,
    seen: RemoteEntry,
    *,
    here: LocalEntry | None,
    b: BaseEntry | None,
    root: str | None,
) -> Digest | None:
    """The object's content digest as far as the evidence goes: its stored `blake3`, unless
    the store's own MD5s (plain ETags) contradict it.

    A `blake3` written by another tool, or left by one that rewrote the object and kept its
    metadata, is wrong. Believed, a rewrite kept the digest of the base (taken for an
    identical one, then overwritten by the next push), and a wrong value made each sync a
    conflict copy of identical content. So: an ETag that moved from the base's plain MD5 to
    another plain MD5 is other bytes, whatever the metadata says (the content is read and
    hashed; on a KMS bucket, whose ETags are no MD5, this costs a read of an identical
    rewrite); and a stored digest that differs from a local change of the same size is
    checked against the local file's MD5, which proves it equal, or leaves it unknown.
    """
    digest = seen.digest
    plain = etags.is_plain_md5(seen.fingerprint)
    if digest is not None and b is not None and digest == b.digest:
        if plain and etags.is_plain_md5(b.fingerprint) and seen.fingerprint != b.fingerprint:
            with remote.open_read(path, expect=seen) as src:
                return Digest(hash_stream(src))
        return digest
    if root is None or here is None or here.size != seen.size:
        return digest
    if digest is not None and (digest == here.digest or not plain):
        return digest
    if digest is not None and b is not None and here.digest == b.digest:
        return digest  # no local change: its equality with the remote is not the question
    same = _md5_matches(root, path, seen, here)
    if same is None:
        return digest  # the local file could not be read: the stored one stands
    if not same and digest is None and not plain and (b is None or here.digest != b.digest):
        # A multipart ETag made with a part size none of the tried ones (`fsync.etags`)
        # tells nothing: unknown, taken for a difference, an identical file became a
        # conflict copy (re-sent, and kept twice). The content is read to tell, where the
        # answer decides an adoption or a conflict (not for a remote edit alone, every run).
        with remote.open_read(path, expect=seen) as src:
            return Digest(hash_stream(src))
    return here.digest if same else None


def _md5_matches(root: str, path: RelPath, entry: RemoteEntry, here: LocalEntry) -> bool | None:
    """Whether the local file holds the content the object's ETag (plain or multipart MD5)
    was made from (`fsync.etags`); None where that cannot be told (no such ETag, or the
    file unreadable: gone since the scan, or named in another Unicode form on disk)."""
    if not etags.is_md5_etag(entry.fingerprint):
        return None
    full = os.path.join(root, *path.split("/"))
    try:
        return etags.matches(full, here.size, entry.fingerprint)
    except OSError:
        return None


def _both_changed(
    path: RelPath,
    entry: RemoteEntry,
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
) -> bool:
    """True where both sides hold a version the base does not: a possible conflict."""
    here, b = local.get(path), base.get(path)
    if here is None:
        return False
    return b is None or (here.digest != b.digest and entry.fingerprint != b.fingerprint)


def _needs_digest(
    path: RelPath,
    entry: RemoteEntry,
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
) -> bool:
    """True where only the content tells the plan apart: an identical rewrite of the base
    (same size), or the same change as the local one (the local size, where both changed;
    a new size proves a change from the base, not one from the local side)."""
    b, here = base.get(path), local.get(path)
    if b is not None:
        if entry.fingerprint == b.fingerprint:
            return False
        if entry.size == b.size:
            return True
        return here is not None and here.digest != b.digest and here.size == entry.size
    return here is not None and here.size == entry.size
