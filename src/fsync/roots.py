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
from fsync.fileops import path_below
from fsync.model import RelPath
from fsync.remote import local_path


def check_local_remote(root: str, opts: SyncOptions | VerifyOptions) -> None:
    """Raise `ConfigError` if the remote is a local path that is a file, or if the local root
    and the remote are one folder or one holds the other: a push would copy the tree into
    itself at every run, and with `--mirror` delete the files it is reading (their remote
    copies are the local files themselves). Folders are told apart by what they are, not how
    they are named (`path_below`): a bind mount is one more name for a folder."""
    remote = local_path(opts.remote_url)
    if remote is None:
        return
    if os.path.lexists(remote) and not os.path.isdir(remote):
        raise ConfigError(f"remote {opts.remote_url} is not a folder (give a folder)")
    here, there = os.path.realpath(root), os.path.realpath(remote)
    if (inner := path_below(there, here)) is not None:
        why = "overlap: the remote is inside the local folder" if inner else "are the same folder"
    elif (inner := path_below(here, there)) is not None:
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
