"""Local file moves that never replace a file: the one primitive behind renames and copies.

Below both the remote adapters and the transfer engine, which both need it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil

from fsync.durability import fsync_file, fsync_folder
from fsync.paths import TEMP_PREFIX, TEMP_SUFFIX

_ATTEMPTS = 3
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
"""A concurrent delete may prune the folder a file is going into; make it again this often."""


def makedirs(folder: str) -> None:
    """`os.makedirs(folder, exist_ok=True)`, safe against a concurrent prune of its folders.

    A delete in the same run may remove an empty folder while `os.makedirs` works: a parent
    it just made vanishes before the child is made (`FileNotFoundError`), or the folder
    exists when it tries to make it and is gone when it checks (`FileExistsError`). Either
    way the folders are made again. A file in the way still raises `FileExistsError`.
    """
    for _ in range(_ATTEMPTS):
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            if os.path.lexists(folder):
                raise
        except FileNotFoundError:
            pass
        else:
            return
    os.makedirs(folder, exist_ok=True)


def create_exclusive(path: str) -> int:
    """Open a new file at `path` for writing, owner-only, making its folder as needed.

    `FileExistsError` if something is at `path`; a folder pruned meanwhile is made again.
    """
    for _ in range(_ATTEMPTS - 1):
        makedirs(os.path.dirname(path))
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
    makedirs(os.path.dirname(path))
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)


def place_new(src: str, dst: str) -> None:
    """Rename the file `src` to `dst`, creating `dst`'s folder; never replace a file there.

    A hard link then an unlink, so an existing `dst` fails the link (`FileExistsError`)
    instead of being overwritten; where the filesystem has no hard links, an existence check
    and a rename; across filesystems, a copy. Raises `FileNotFoundError` if `src` is gone.
    """
    for _ in range(_ATTEMPTS):
        makedirs(os.path.dirname(dst))
        try:
            os.link(src, dst)
        except FileNotFoundError:
            if not os.path.lexists(src):
                raise
            continue  # the folder was pruned between makedirs and link
        except FileExistsError:
            raise
        except OSError as err:
            if err.errno == errno.EXDEV:
                _copy_across(src, dst)
                return
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "file exists", dst) from err
            os.rename(src, dst)
            return
        os.unlink(src)
        return
    raise FileNotFoundError(errno.ENOENT, "folder keeps vanishing", os.path.dirname(dst))


def _copy_across(src: str, dst: str) -> None:
    """`place_new` between filesystems: copy into a temp file beside `dst`, place, unlink.

    The copy and its name are on disk before the original goes: else a crash could keep
    the unlink and lose the copy, and with it the file."""
    tmp = _temp_beside(dst)
    try:
        shutil.copy2(src, tmp)
        fsync_file(tmp)
        os.link(tmp, dst)
    finally:
        _unlink_quietly(tmp)
    fsync_folder(os.path.dirname(dst))
    os.unlink(src)


def _temp_beside(dst: str) -> str:
    return os.path.join(os.path.dirname(dst), f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
