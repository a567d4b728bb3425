"""Local file moves that never replace a file: the one primitive behind renames and copies.

Below both the remote adapters and the transfer engine, which both need it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
from typing import Any

from fsync.paths import temp_name

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

    One rename that refuses to replace (`rename_noreplace`); where the platform has none, a
    hard link then an unlink, so an existing `dst` fails the link (`FileExistsError`)
    instead of being overwritten; where the filesystem has no hard links, an existence check
    and a rename; across filesystems, a copy. Raises `FileNotFoundError` if `src` is gone.
    """
    for _ in range(_ATTEMPTS):
        makedirs(os.path.dirname(dst))
        try:
            if rename_noreplace(src, dst):
                return
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
    tmp = temp_beside(dst)
    try:
        shutil.copy2(src, tmp)
        fsync_file(tmp)
        os.link(tmp, dst)
    finally:
        unlink_quietly(tmp)
    fsync_folder(os.path.dirname(dst))
    os.unlink(src)


def temp_beside(dst: str) -> str:
    """A fresh temporary path in `dst`'s folder, to write it under before the rename."""
    return os.path.join(os.path.dirname(dst), temp_name())


def unlink_quietly(path: str) -> None:
    """Remove `path` if it is there: already gone is fine, any other error is raised."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def libc_function(name: str) -> Any | None:
    """The C library's function `name`; None where there is no such function or no libc.

    Looked up among the symbols the process already has (libc is one of them on Linux and
    macOS): `ctypes.util.find_library` alone costs 12 ms to import.
    """
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except Exception:  # no libc (Windows: CDLL(None) is a TypeError), or no such function
        return None


def fsync_file(path: str) -> None:
    """fsync a file by name; one already gone (a staged file discarded) needs nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str) -> None:
    """fsync a folder (a rename in it), where the platform lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno == errno.EIO:
            raise  # the disk lost a write: the manifest must not record it
        # Other refusals mean this platform or filesystem cannot sync a folder at all.
    finally:
        os.close(fd)


RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _load_renameat2() -> Any | None:
    fn = libc_function("renameat2")  # Linux (glibc 2.28+, musl 1.2.3+)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()


def rename_noreplace(src: str, dst: str) -> bool:
    """Rename `src` to `dst` in one atomic step that fails if anything is at `dst`.

    Raises `FileExistsError` then, so a file another writer creates at `dst` meanwhile is
    never replaced (a check followed by a rename leaves that window open), and other errors
    as `os.rename` would. False where the platform or the filesystem cannot do it (no
    `renameat2`, or a filesystem without `RENAME_NOREPLACE`): nothing was done.
    """
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), src, None, dst)
