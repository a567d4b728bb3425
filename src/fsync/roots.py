"""Whether a local root and a remote may be paired: not one folder, not one inside the other.

A push between such a pair copies the tree into itself at every run, and with `--mirror`
deletes the files it is reading; a verify of a folder against itself says "OK" for a remote
that was mistyped. Every command taking both roots asks here first.
"""

from __future__ import annotations

import os

from fsync import scanner
from fsync.config import SyncOptions, VerifyOptions
from fsync.errors import ConfigError
from fsync.model import RelPath
from fsync.remote import local_path


def check_local_remote(root: str, opts: SyncOptions | VerifyOptions) -> None:
    """Raise `ConfigError` if the remote is a local path that is a file, or if the local root
    and the remote are one folder or one holds the other: a push would copy the tree into
    itself at every run, and with `--mirror` delete the files it is reading (their remote
    copies are the local files themselves). Folders are told apart by what they are, not how
    they are named (`_below`): a bind mount is one more name for a folder."""
    remote = local_path(opts.remote_url)
    if remote is None:
        return
    if os.path.lexists(remote) and not os.path.isdir(remote):
        raise ConfigError(f"remote {opts.remote_url} is not a folder (give a folder)")
    here, there = os.path.realpath(root), os.path.realpath(remote)
    if (inner := _below(there, here)) is not None:
        why = "overlap: the remote is inside the local folder" if inner else "are the same folder"
    elif (inner := _below(here, there)) is not None:
        why = "overlap: the local folder is inside the remote"
    else:
        return
    # Left out by the ignore rules (which filter both sides), the inner tree is never listed
    # by the outer one: a mirror kept inside the tree it copies, for instance.
    if inner and scanner.read_ignore(root, opts.excludes).ignores(RelPath(inner), True):
        return
    raise ConfigError(
        f"local root {opts.local_root} and remote {opts.remote_url} {why} "
        "(give two separate folders, or exclude the inner one)"
    )


def _below(path: str, folder: str) -> str | None:
    """The part of `path` below `folder` ("/"-separated; "" if they are one folder), or None
    if `path` is neither `folder` nor inside it. Both are resolved (`os.path.realpath`).

    `path` and each of its parent folders are compared with `folder` by (st_dev, st_ino)
    where both exist, by name otherwise: names alone missed a bind mount of the local folder
    (`mount --bind L M`, then a push of L to M/sub), so each push copied the tree into
    itself, one level deeper.
    """
    want = _identity(folder)
    names: list[str] = []
    current = path
    while current != folder and (want is None or _identity(current) != want):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        names.append(os.path.basename(current))
        current = parent
    return "/".join(reversed(names))


def _identity(path: str) -> tuple[int, int] | None:
    """What `path` is, whatever it is called: its (st_dev, st_ino); None if it cannot be
    stat'ed (it does not exist yet, or a folder above it cannot be searched)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
