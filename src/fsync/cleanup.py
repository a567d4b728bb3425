"""`fsync cleanup REMOTE`: discard the unfinished writes that killed runs left behind.

On S3 these are multipart uploads (which the store bills for until they are aborted); on
filesystem remotes, fsync's temporary files. Each adapter knows its own kind through
`Remote.abort_stale_uploads`; this module parses the age, opens the remote, and makes the
transfer journals that named what was discarded forget it, so `fsync status` does not go on
listing it. It takes the lock of each local root it touches, as a run does: a running fsync
holding one is using that root's temp files and uploads, however old they are.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping

from fsync.errors import ConfigError
from fsync.fileops import folders_up
from fsync.ignore import STATE_DIR
from fsync.manifest.db import DB_NAME
from fsync.manifest.journal import TransferJournal
from fsync.manifest.lock import RootLock
from fsync.remote import local_path, open_remote
from fsync.transfer.download import drop_missing_partials

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `30s`, `15m`, `2h`, `7d`, `1w`; raises `ConfigError` otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if m is None:
        raise ConfigError(f"invalid duration {text!r} (expected e.g. 90, 30s, 15m, 2h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def is_synced_root(folder: str) -> bool:
    """True if fsync has synced `folder` (it holds a state database)."""
    return os.path.isfile(os.path.join(folder, STATE_DIR, DB_NAME))


def cleanup(
    url: str,
    *,
    older_than: float | None = None,
    storage_options: Mapping[str, object] | None = None,
    endpoint_url: str | None = None,
    local_root: str | None = None,
) -> int:
    """Abort unfinished writes under `url` at least `older_than` seconds old (all with None).

    Returns how many were discarded. Finished files are never touched. The transfer journal
    of `local_root` (a folder fsync has synced) forgets the multipart uploads aborted; when
    `url` is such a folder, or a folder inside one, that root's journal forgets the partial
    downloads whose temporary files are gone, and the identities of its publish intents.
    Raises `ConfigError` when `local_root` has never been synced, and `LockHeld` before
    discarding anything when another fsync is working on `local_root` or on the root `url`
    is or lies in: its temp files and uploads are in use, whatever their age.

    The roots stay locked until the end, so no run of any starts meanwhile and goes on with
    an upload or a partial file this cleanup is discarding.
    """
    if local_root is not None and not is_synced_root(local_root):
        raise ConfigError(
            f"{local_root} has never been synced (no {STATE_DIR}/{DB_NAME}; "
            "give the local folder that pushes to this remote with --local)"
        )
    folder = local_path(url)
    # A folder inside synced roots holds their temps and partial downloads too.
    holding = _synced_roots_holding(folder) if folder is not None else []
    with contextlib.ExitStack() as stack:
        for root in _synced_roots(local_root, *holding):
            stack.enter_context(RootLock(root))
        journal = None
        if local_root is not None:
            journal = stack.enter_context(TransferJournal.open(local_root))
        remote = open_remote(
            url, storage_options=storage_options, endpoint_url=endpoint_url, journal=journal
        )
        stack.callback(remote.close)
        journals = [(root, stack.enter_context(TransferJournal.open(root))) for root in holding]
        for root, own in journals:
            own.forget_unplaced_identities(root)  # before the temps go (`transfer.intents`)
        removed = remote.abort_stale_uploads(older_than)
        for root, own in journals:
            drop_missing_partials(own, root)
    return removed


def _synced_roots_holding(folder: str) -> list[str]:
    """The synced roots that `folder` is or lies in, innermost first, then those inside it:
    `fsync cleanup ROOT/sub` removed ROOT's temp files holding no lock of ROOT (a run of it
    may be writing them) and leaving the intents that name their inodes
    (`fsync.transfer.intents`); `fsync cleanup PARENT` did the same to a pull running into
    PARENT/ROOT, which then failed, and ROOT's status went on listing the partial download."""
    above = [here for here in folders_up(os.path.abspath(folder)) if is_synced_root(here)]
    return above + _synced_roots_below(os.path.abspath(folder))


def _synced_roots_below(folder: str) -> list[str]:
    """The synced roots strictly inside `folder` (links not followed)."""
    found: list[str] = []
    for here, dirs, _ in os.walk(folder):
        if here != folder and STATE_DIR in dirs and is_synced_root(here):
            found.append(here)
        dirs[:] = [d for d in dirs if d != STATE_DIR]
    return found


def _synced_roots(*folders: str | None) -> list[str]:
    """The distinct folders among `folders` that fsync has synced (each locked once: a
    second lock of a root in one process would find the first one held)."""
    roots: dict[str, str] = {}
    for folder in folders:
        if folder is not None and is_synced_root(folder):
            roots.setdefault(os.path.realpath(folder), os.path.abspath(folder))
    return list(roots.values())
