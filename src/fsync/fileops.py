"""Local file moves that never replace a file: the one primitive behind renames and copies.

Below both the remote adapters and the transfer engine, which both need it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from typing import Any

from fsync.paths import temp_name

_ATTEMPTS = 3
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
"""A concurrent delete may prune the folder a file is going into; make it again this often."""


NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""The errnos of a full disk (or quota)."""


def makedirs(folder: str) -> None:
    """`os.makedirs(folder, exist_ok=True)`, safe against a concurrent prune of its folders.

    A delete in the same run may remove an empty folder while `os.makedirs` works: a parent
    it just made vanishes before the child is made (`FileNotFoundError`), or the folder
    exists when it tries to make it and is gone when it checks (`FileExistsError`). Either
    way the folders are made again. A file in the way still raises `FileExistsError`.
    """
    for _ in range(_ATTEMPTS):
        try:
            _make_folders(folder)
        except FileExistsError:
            if os.path.lexists(folder):
                raise
        except FileNotFoundError:
            pass
        else:
            return
    _make_folders(folder)


def _make_folders(folder: str) -> None:
    """`os.makedirs(folder, exist_ok=True)` without recursion: it calls itself once per
    missing parent, and a tree 1,000 folders deep (a legal 2,000-character path) ended the
    whole run with "maximum recursion depth exceeded"."""
    missing = []
    head = folder
    while head and not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise


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


def file_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the file at `path` (a link itself, not followed), or None if
    there is none: what a rename keeps, so a file still having them is the one renamed."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def opened_path(fd: int) -> str | None:
    """The path the open file `fd` has now, links resolved (Linux's `/proc/self/fd`), or
    None where that cannot be told: what was opened, not what a name leads to since."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def folders_up(path: str) -> Iterator[str]:
    """`path`, then each folder above it, up to the top of its filesystem tree."""
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def path_below(path: str, folder: str) -> str | None:
    """The part of `path` below `folder` ("/"-separated; "" if they are one folder), or None
    if `path` is neither `folder` nor inside it. Both are resolved (`os.path.realpath`).

    `path` and each of its parent folders are compared with `folder` by (st_dev, st_ino)
    where both exist, by name otherwise: names alone missed a bind mount of the local folder
    (`mount --bind L M`, then a push of L to M/sub), so each push copied the tree into
    itself, one level deeper.
    """
    want = _followed_identity(folder)
    names: list[str] = []
    current = path
    while current != folder and (want is None or _followed_identity(current) != want):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        names.append(os.path.basename(current))
        current = parent
    return "/".join(reversed(names))


def _followed_identity(path: str) -> tuple[int, int] | None:
    """What `path` is, whatever it is called (links followed): its (st_dev, st_ino); None
    if it cannot be stat'ed (it does not exist yet, or a folder above it cannot be
    searched)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
RENAME_EXCHANGE = 2
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
    return _renameat2(src, dst, RENAME_NOREPLACE)


def rename_exchange(src: str, dst: str) -> bool:
    """Swap the files named `src` and `dst` in one atomic step: each name then holds what the
    other held, and neither is ever missing or replaced.

    Replacing a file by `os.replace` after checking it leaves a window in which an edit of
    it is lost with it; swapped instead, the replaced version stays at `src`, to be checked
    after the fact and kept if it changed. Raises `FileNotFoundError` when either is
    missing, and other errors as `os.rename` would. False where the platform or the
    filesystem cannot do it: nothing was done.
    """
    return _renameat2(src, dst, RENAME_EXCHANGE)


def swap_into_place(src: str, dst: str) -> os.stat_result | None:
    """Rename the file `src` to `dst`; return the stat of the file it displaced, which is
    then at `src` for the caller to check and delete or keep, or None if there was none.

    A check of `dst` followed by a rename over it leaves a window in which an edit or an
    editor's save of `dst` is replaced unseen; swapped (`rename_exchange`), the displaced
    version is checked after the fact. Where nothing is at `dst`, the rename refuses to
    replace a file that appears meanwhile (`FileExistsError`). A folder at `dst` is left
    there (`IsADirectoryError`). Where the platform can do neither, `os.replace`.
    """
    try:
        swapped = rename_exchange(src, dst)
    except FileNotFoundError:
        if not os.path.lexists(src):
            raise
        if rename_noreplace(src, dst):
            return None
        swapped = False
    if not swapped:
        os.replace(src, dst)
        return None
    displaced = os.lstat(src)
    if stat.S_ISDIR(displaced.st_mode):
        rename_exchange(src, dst)  # give the folder its name back
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way", dst)
    return displaced


def _renameat2(src: str, dst: str, flags: int) -> bool:
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), src, None, dst)
