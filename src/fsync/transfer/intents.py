"""Settle the publish intents a killed run left: was the transfer it was about to publish
on the destination, unrecorded?

A transfer takes its name on the destination (a rename, a PutObject, a
CompleteMultipartUpload) before the batch holding its outcome is recorded, after a sync of
the disk. A run killed in between left fsync's own transfer looking like the user's edit to
the next run: with the other side edited again, "both changed" became a conflict in which
`--on-conflict` could put the stale version back over the new one. So the worker journals an
intent before each publish (`PublishIntent`, `TransferJournal.intend`), the batch's record
drops it, and the next run, before it plans, takes each one left over here: where the
destination holds exactly the content the intent names, the base becomes that version (what
the killed run would have recorded); otherwise the publish never happened, or the file
changed since, and the intent is only dropped.

Content alone missed a download edited before the next run (the user editing the file
fsync had just fetched): the intent was dropped, the base stayed the version before, and the
next run met "both changed", where `--on-conflict remote` overwrote an edit made on top of
fsync's own version. So a download is also proven by the file itself: a rename keeps the
inode, and a local file still being the temp fsync renamed (its device and inode) was
published, whatever it holds now; its base is the version fetched, and this run sees the
edit as one. An inode proves nothing once freed, so a download not published loses its
intent before its temp is removed (`Worker.unintend`), a run settles before it sweeps the
temps killed runs left, and `fsync cleanup` of a synced root forgets the identities before
it removes them: an intent with an identity thus names a temp that either still holds that
inode (no other file can have it) or became the local file. A file replaced since (an
editor's save by rename: a new inode) falls back to the content.

Uploads are proven by content alone. A folder remote's inode would prove a staged upload
published, but its temps are removed by `fsync cleanup REMOTE`, which cannot reach the
intents (they are in the local root's journal): a freed inode taken by another writer's
file at that path would pass for the upload, and the user's unsent version be overwritten by
the next pull under the default policy. Without the proof, an upload published and then
edited there is a conflict, which keep-both keeps both sides of.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from fsync.errors import FsyncError
from fsync.fileops import file_identity
from fsync.hashing import hash_stream
from fsync.model import BaseEntry, LocalEntry, PublishIntent, RelPath, RemoteEntry
from fsync.remote.base import Remote

_log = logging.getLogger("fsync.transfer")


SETTLERS = 8
"""Intents looked at side by side (each may cost a request, or a read of the file)."""


class IntentJournal(Protocol):
    """Where workers journal what they are about to publish (`TransferJournal`)."""

    def intend(self, source: str, intents: list[PublishIntent]) -> None:
        """Record `intents` against the remote whose key is `source`, durably, at once."""
        ...

    def unintend(self, source: str, paths: list[RelPath]) -> None:
        """Drop the intents of `paths`, not to be published, before their temps go."""
        ...


def settle(
    intents: Iterable[PublishIntent],
    remote: Remote,
    root: str,
    local: Mapping[RelPath, LocalEntry],
    listed: Mapping[RelPath, RemoteEntry],
) -> tuple[dict[RelPath, BaseEntry], list[RelPath]]:
    """Decide the leftover `intents` against this run's scan (`local`, of the local `root`)
    and listing (`listed`): the base entries of the transfers that landed, and every intent
    decided (those to drop, the landed ones included).

    An upload whose listed version is not the one expected is looked at (a HEAD where the
    store keeps the digest, else its content is read and hashed): a few files at most, after
    a kill. One that cannot be looked at now (the remote failing) stays undecided, kept for
    a later run; this one plans it by the usual rules.
    """
    todo = list(intents)

    def decide(intent: PublishIntent) -> tuple[bool, BaseEntry | None]:
        if not intent.upload:
            return True, _downloaded(intent, root, local.get(intent.path))
        try:
            return True, _uploaded(intent, remote, listed.get(intent.path))
        except (OSError, FsyncError) as exc:
            _log.debug("%s: not settled this run (%s)", intent.path, exc)
            return False, None

    # The uploads' looks (a HEAD, a read) side by side, as `planning` learns digests: one
    # after another, the 209 a killed push left took 10.8 s at 40 ms a request (a review).
    with ThreadPoolExecutor(max_workers=SETTLERS, thread_name_prefix="fsync-settle") as pool:
        outcomes = list(pool.map(decide, todo))
    bases: dict[RelPath, BaseEntry] = {}
    decided: list[RelPath] = []
    for intent, (done, base) in zip(todo, outcomes, strict=True):
        if base is not None:
            bases[intent.path] = base
        if done:
            decided.append(intent.path)
    return bases, decided


def _downloaded(intent: PublishIntent, root: str, here: LocalEntry | None) -> BaseEntry | None:
    """The base of a download that landed: the local file holds the content fetched, or is
    the temp file that was renamed into place (edited since: the scan's digest, not the
    base's, then says it changed here)."""
    if here is None:
        return None
    same = (here.size, here.digest) == (intent.size, intent.digest)
    if not (same or (intent.ino == here.ino != 0 and _moved_in(intent, root))):
        return None
    return BaseEntry(intent.size, intent.digest, intent.fingerprint, here.mtime_ns)


def _moved_in(intent: PublishIntent, root: str) -> bool:
    """Whether the local file at the intent's path is its temp file (device and inode: the
    scan keeps no device, and two filesystems may number inodes alike)."""
    return file_identity(os.path.join(root, intent.path)) == (intent.dev, intent.ino)


def _uploaded(intent: PublishIntent, remote: Remote, there: RemoteEntry | None) -> BaseEntry | None:
    """The base of an upload that landed: the remote object holds the content sent."""
    if there is None or there.size != intent.size or intent.mtime_ns is None:
        return None
    if not (intent.fingerprint and there.fingerprint == intent.fingerprint):
        digest = there.digest
        if digest is None:
            seen = remote.stat(intent.path)
            if seen is None or seen.fingerprint != there.fingerprint:
                return None
            digest = seen.digest
        if digest is None:  # a store without metadata (a folder): its content tells
            digest = _content_digest(remote, intent.path, there)
        if digest != intent.digest:
            return None
    return BaseEntry(intent.size, intent.digest, there.fingerprint, intent.mtime_ns)


def _content_digest(remote: Remote, path: RelPath, there: RemoteEntry) -> str:
    """The blake3 of the remote object `there` at `path`, read whole."""
    with remote.open_read(path, expect=there) as src:
        return hash_stream(src)
