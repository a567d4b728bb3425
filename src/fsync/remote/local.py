"""A local folder as a remote (`file://` or a plain path), driven by `os` directly.

fsspec's LocalFileSystem reports mtimes as float seconds (losing nanoseconds, so a pushed
mtime would not round-trip) and lists through one `info` call per entry; a local remote is too
common for either. This adapter meets the same contract with `os.scandir`, `os.replace` and
`os.utime`: one walk per listing, exact `mtime_ns`, temp-then-rename writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from fsync.errors import PermanentError, RemoteChanged, UnsafePathError
from fsync.fileops import makedirs, place_new
from fsync.model import Digest, RelPath, RemoteEntry
from fsync.remote.base import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    Capabilities,
    Listing,
    ObjectMeta,
    is_temp_name,
    relpath_from_key,
    same_version,
)

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK_SIZE = 1 << 20
"""Bytes read from a source per write: memory per upload stays at one chunk."""

_CREATE_ATTEMPTS = 3
"""A concurrent delete may prune the folder a write just created; re-create it this often."""

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_OPEN_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _raise_translated(err: OSError, doing: str) -> NoReturn:
    """Re-raise `err` in the remote contract's terms (builtin not-found/permission, else fsync's).

    Disk full and quota exceeded become a `PermanentError` saying so; any other OS failure
    (read-only filesystem, name too long, a file where a folder should be) is permanent too.
    """
    if isinstance(err, FileNotFoundError | PermissionError):
        raise err
    if err.errno in _NO_SPACE:
        raise PermanentError(f"no space left on device {doing}") from err
    raise PermanentError(f"{doing}: {err.strerror or err}") from err


def _entry(st: os.stat_result) -> RemoteEntry:
    """The entry for a regular file's stat: size and exact mtime make the fingerprint."""
    return RemoteEntry(
        size=st.st_size,
        fingerprint=f"{st.st_size}:{st.st_mtime_ns}",
        mtime_ns=st.st_mtime_ns,
        mode=stat.S_IMODE(st.st_mode),
    )


def _unlink_quietly(path: str) -> None:
    """Remove a temporary file if it is still there; cleanup never masks the real error."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync_dir(folder: str) -> None:
    """Make a rename in `folder` durable, where the platform lets a folder be fsynced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalRemote:
    """A remote tree rooted at a local folder.

    The fingerprint is `"{size}:{mtime_ns}"`; writes set the mtime and permission bits from
    `ObjectMeta`, so a push then a pull round-trips them. Symbolic links are never followed:
    listings report them as refused, and a path whose parent folder resolves outside the root
    raises `UnsafePathError`.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self.capabilities = Capabilities(
            stores_digest=False, sets_mtime=True, server_side_copy=True
        )

    # -- reading -------------------------------------------------------------------------

    def list(self) -> Listing:
        """Walk the root once (no symlinks followed); temp files and `.fsync/` are skipped."""
        entries: dict[RelPath, RemoteEntry] = {}
        refused: list[tuple[str, str]] = []
        stack: list[tuple[str, str]] = [("", self.root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                scan = os.scandir(folder)
            except FileNotFoundError:
                continue  # the root is missing (lists as empty) or a folder vanished mid-walk
            except NotADirectoryError as err:
                if not prefix:
                    raise PermanentError(f"{self.root}: is not a folder") from err
                continue
            except OSError as err:
                _raise_translated(err, f"listing {folder}")
            with scan:
                for item in scan:
                    self._visit(item, prefix, stack, entries, refused)
        return Listing(entries, tuple(sorted(refused)))

    def _visit(
        self,
        item: os.DirEntry[str],
        prefix: str,
        stack: list[tuple[str, str]],
        entries: dict[RelPath, RemoteEntry],
        refused: list[tuple[str, str]],
    ) -> None:
        """Sort one directory entry into the listing, the folders to visit, or `refused`."""
        key = prefix + item.name
        if item.is_symlink():
            refused.append((key, "a symbolic link (not followed)"))
        elif item.is_dir(follow_symlinks=False):
            if key != ".fsync":
                stack.append((key + "/", item.path))
        elif is_temp_name(item.name):
            pass
        elif not item.is_file(follow_symlinks=False):
            refused.append((key, "not a regular file"))
        else:
            try:
                rel = relpath_from_key(key)
                st = item.stat(follow_symlinks=False)
            except UnsafePathError as err:
                refused.append((key, str(err)))
            except FileNotFoundError:
                pass  # deleted between readdir and stat: it is gone, as the listing says
            else:
                entries[rel] = _entry(st)

    def root_exists(self) -> bool:
        """True if the root is an existing folder."""
        return os.path.isdir(self.root)

    def stat(self, path: RelPath) -> RemoteEntry | None:
        """The entry for `path`, or None if it is absent or not a regular file."""
        full = self._checked(path)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            _raise_translated(err, f"reading {full}")
        return _entry(st) if stat.S_ISREG(st.st_mode) else None

    def read_digest(self, path: RelPath) -> Digest | None:
        """Always None: plain files carry no stored digest."""
        return None

    def open_read(self, path: RelPath) -> BinaryIO:
        """A buffered reader of the file; `FileNotFoundError` if absent. Links are not followed."""
        full = self._checked(path)
        try:
            fd = os.open(full, _OPEN_READ_FLAGS)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise PermanentError(
                    f"{full}: is a symbolic link; fsync does not follow it"
                ) from err
            _raise_translated(err, f"reading {full}")
        return os.fdopen(fd, "rb")

    # -- writing -------------------------------------------------------------------------

    def put(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        *,
        expect: RemoteEntry | None,
        before_publish: Callable[[], None],
    ) -> RemoteEntry:
        """Write `source` to a temp file beside `path`, then rename it into place.

        The temp file is fsynced and takes `meta`'s mode and mtime before `before_publish()`
        runs; the destination is then checked against `expect` (`RemoteChanged` if it moved)
        and replaced atomically. Any failure removes the temp file. Raises `PermanentError`
        for a full disk, `PermissionError` for access denied, `UnsafePathError` when a parent
        folder is a link leading outside the root.
        """
        full = self._checked(path)
        temp = self._stage(full, source, meta)
        try:
            before_publish()
            self._publish(temp, full, expect)
        except BaseException:
            _unlink_quietly(temp)
            raise
        _fsync_dir(os.path.dirname(full))
        return self._entry_after_write(full)

    def _stage(self, full: str, source: BinaryIO, meta: ObjectMeta) -> str:
        """Copy `source` into a new temp file in `full`'s folder; return the temp's path."""
        folder = os.path.dirname(full)
        temp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            fd = self._create(folder, temp)
        except OSError as err:
            _raise_translated(err, f"writing {full}")
        try:
            with open(fd, "wb", closefd=True) as out:
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                out.flush()
                # Never setuid/setgid: the bits were the source machine's owner's to grant.
                os.fchmod(out.fileno(), meta.mode & 0o1777)
                mtime = meta.mtime_ns
                os.utime(out.fileno(), ns=(mtime, mtime))
                os.fsync(out.fileno())
        except BaseException as err:
            _unlink_quietly(temp)
            if isinstance(err, OSError):
                _raise_translated(err, f"writing {full}")
            raise
        return temp

    def _create(self, folder: str, temp: str) -> int:
        """Create `folder` as needed and open `temp` exclusively (owner-only until chmod)."""
        for _ in range(_CREATE_ATTEMPTS - 1):
            makedirs(folder)
            with contextlib.suppress(FileNotFoundError):
                return os.open(temp, _CREATE_FLAGS, 0o600)
        makedirs(folder)
        return os.open(temp, _CREATE_FLAGS, 0o600)

    def _publish(self, temp: str, full: str, expect: RemoteEntry | None) -> None:
        """Rename `temp` over `full` if `full` is still the version `expect` describes."""
        try:
            current = self._current(full)
            if not same_version(current, expect):
                raise RemoteChanged(f"{full}: changed since it was listed")
            os.replace(temp, full)
        except OSError as err:
            _raise_translated(err, f"writing {full}")

    def _current(self, full: str) -> RemoteEntry | None:
        """What is at `full` now; `PermanentError` if a folder, link or device is in the way."""
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISREG(st.st_mode):
            return _entry(st)
        raise PermanentError(
            f"{full}: a folder, link or special file is in the way; fsync does not replace it"
        )

    def _entry_after_write(self, full: str) -> RemoteEntry:
        """The entry of a file this remote just wrote."""
        try:
            return _entry(os.lstat(full))
        except OSError as err:
            _raise_translated(err, f"reading {full}")

    def delete(self, path: RelPath, *, expect: RemoteEntry | None) -> None:
        """Delete `path` if it still matches `expect`; absent is not an error.

        Folders left empty are removed up to (not including) the root. Raises `RemoteChanged`
        if the file changed since `expect` was seen.
        """
        full = self._checked(path)
        try:
            current = self._current(full)
            if current is None:
                return
            if not same_version(current, expect):
                raise RemoteChanged(f"{full}: changed since it was listed")
            os.unlink(full)
        except FileNotFoundError:
            return
        except OSError as err:
            _raise_translated(err, f"deleting {full}")
        self._prune(os.path.dirname(full))

    def _prune(self, folder: str) -> None:
        """Remove `folder` and its parents while empty, stopping below the root."""
        while len(folder) > len(self.root) and folder.startswith(self.root):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def copy(self, src: RelPath, dst: RelPath) -> RemoteEntry:
        """Copy `src` to `dst` (content, mode, mtime) through a temp file and a rename.

        Raises `FileNotFoundError` if `src` is absent or not a regular file.
        """
        src_full = self._checked(src)
        dst_full = self._checked(dst)
        if self.stat(src) is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", src_full)
        folder = os.path.dirname(dst_full)
        temp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            os.close(self._create(folder, temp))
            shutil.copy2(src_full, temp, follow_symlinks=False)
            os.replace(temp, dst_full)
        except BaseException as err:
            _unlink_quietly(temp)
            if isinstance(err, OSError):
                _raise_translated(err, f"copying {src_full} to {dst_full}")
            raise
        return self._entry_after_write(dst_full)

    def move(self, src: RelPath, dst: RelPath, *, expect: RemoteEntry | None) -> RemoteEntry:
        """Rename `src` to `dst` if `src` is still `expect` (see `base.Mover`).

        Never replaces a file at `dst` (`FileExistsError`); across filesystems the file is
        copied, then removed. Folders left empty are not pruned: the root this remote
        addresses may hold a sync root that must stay.
        """
        src_full, dst_full = self._checked(src), self._checked(dst)
        try:
            current = self._current(src_full)
            if current is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", src_full)
            if not same_version(current, expect):
                raise RemoteChanged(f"{src_full}: changed since it was listed")
            place_new(src_full, dst_full)
        except (FileNotFoundError, FileExistsError):
            raise
        except OSError as err:
            _raise_translated(err, f"moving {src_full} to {dst_full}")
        return self._entry_after_write(dst_full)

    def abort_stale_uploads(self, older_than: float | None = None) -> int:
        """Remove fsync temporary files under the root last written at least `older_than`
        seconds ago (all with None): the unfinished writes a killed run leaves behind."""
        cutoff = None if older_than is None else time.time() - older_than
        removed = 0
        for folder, dirs, files in os.walk(self.root):
            if folder == self.root and ".fsync" in dirs:
                dirs.remove(".fsync")
            for name in files:
                full = os.path.join(folder, name)
                if not is_temp_name(name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if cutoff is None or os.lstat(full).st_mtime <= cutoff:
                        os.unlink(full)
                        removed += 1
        return removed

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    # -- paths ---------------------------------------------------------------------------

    def _checked(self, path: RelPath) -> str:
        """The absolute name of `path`, refusing a parent folder that resolves outside the root.

        `RelPath` already excludes `..`; this catches a symbolic link among the parent folders
        (the file itself is handled by lstat and O_NOFOLLOW).
        """
        full = os.path.join(self.root, *path.split("/"))
        real_root = os.path.realpath(self.root)
        real_parent = os.path.realpath(os.path.dirname(full))
        if os.path.commonpath([real_root, real_parent]) != real_root:
            raise UnsafePathError(
                f"{path!r}: a parent folder is a link leading outside {self.root}"
            )
        return full
