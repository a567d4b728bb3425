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
import posixpath
import re
import shutil
import socket
import stat
import time
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from fsync.durability import Durability
from fsync.errors import (
    ConfigError,
    FsyncError,
    PermanentError,
    RemoteChanged,
    UnsafePathError,
    unusable_root,
)
from fsync.fileops import (
    folders_up,
    makedirs,
    place_new,
    rename_exchange,
    rename_noreplace,
    temp_beside,
)
from fsync.model import Digest, RelPath, RemoteEntry, remote_entry
from fsync.paths import conflict_name, temp_name
from fsync.remote.base import (
    IN_USE_SECONDS,
    Capabilities,
    Listing,
    ObjectMeta,
    Staged,
    is_temp_name,
    relpath_from_key,
    same_version,
)

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

CHUNK_SIZE = 1 << 20
"""Bytes read from a source per write: memory per upload stays at one chunk."""

_CREATE_ATTEMPTS = 3
"""A concurrent delete may prune the folder a write just created; re-create it this often."""

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_OPEN_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
"""How `list` opens a folder to list it by descriptor."""

_SYMLINK = "a symbolic link"
_NOT_A_FILE = "a special file"
"""What `Listing.skipped` says is at a path that is neither a file nor a folder."""


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


def _file_on_path(path: str) -> str:
    """The nearest of `path` and the folders above it that exists and is not a folder
    (`path` itself if none is found: it changed meanwhile)."""
    return next((p for p in folders_up(path) if os.path.lexists(p) and not os.path.isdir(p)), path)


def _entry(st: os.stat_result, inodes: bool) -> RemoteEntry:
    """The entry for a regular file's stat: size, exact mtime and, where `inodes` (the
    filesystem keeps inode numbers), the inode and change time make the fingerprint.

    Size and mtime alone (rsync's quick check) missed a file replaced by one of the same
    size with the same mtime: another fsync pushing into the same folder (it sets the mtime
    from its own copy), or `rsync -a`, `exiftool -P`; the next push then overwrote that
    version with no conflict. Each of those writes a new file and renames it over the old,
    so the inode tells. A file rewritten in place keeping its size and mtime (`rsync
    --inplace -t`, `touch -r`, a coarse-timestamp tool) keeps its inode too: only the change
    time, which every write moves and no caller can set, tells that one. (A base recorded
    without the inode reads as moved once: the file is hashed, found the same, and recorded
    again; one recorded without the change time is taken as is: `older_token`.)
    """
    size, mtime_ns = st.st_size, st.st_mtime_ns
    token = f"{size}:{mtime_ns}"
    if inodes:
        token = f"{token}:{st.st_ino}:{st.st_ctime_ns}"
    return remote_entry(size, token, None, mtime_ns, stat.S_IMODE(st.st_mode))


def _renamed_entry(full: str, written: RemoteEntry, inodes: bool) -> RemoteEntry:
    """The entry of the file fsync just renamed to `full`, written as `written`.

    A rename (or a link and an unlink) moves the inode's change time, part of the
    fingerprint where `inodes`: the entry of the temp file would read as changed by someone
    else at the next listing, and cost a read of the file. So it is looked at again; one
    that is no longer that file (size, mtime or inode moved: another writer in between)
    keeps the temp's entry, which the next run then finds changed and looks at. A writer
    that rewrites the file in place in the microseconds between the rename and this look,
    keeping its size and mtime, is taken for fsync's own write: the same gap as between the
    swap that publishes and the check of the version it displaced (`_swapped_in`), which
    sees no in-place rewrite either.
    """
    if not inodes:
        return written
    try:
        now = _entry(os.lstat(full), inodes)
    except OSError:
        return written
    if now.size != written.size or _split_token(now)[0] != _split_token(written)[0]:
        return written
    return now


def _across(src_full: str, dst_full: str) -> bool:
    """Whether a move from `src_full` to `dst_full` crossed filesystems (`place_new` then
    copies: a new inode). Only asked of a move whose inode moved; a folder gone since reads
    as not crossing."""
    folder = os.path.dirname(src_full)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)  # pruned since
    try:
        return os.lstat(folder).st_dev != os.lstat(dst_full).st_dev
    except OSError:
        return False


def _split_token(entry: RemoteEntry) -> tuple[str, int | None]:
    """`entry`'s fingerprint as fsync recorded it before it took the change time in
    (`size:mtime:inode`), and that change time; the fingerprint whole and None where it has
    none (a filesystem without stable inodes)."""
    head, sep, changed = entry.fingerprint.rpartition(":")
    if sep and head.count(":") == 2:
        return head, int(changed)
    return entry.fingerprint, None


def _same_file(st: os.stat_result, entry: RemoteEntry, inodes: bool) -> bool:
    """True if `st` is a regular file that is the version `entry` names, by what a rename
    keeps: size, mtime and (where `inodes`) inode. The change time, which a rename moves,
    is left out: a file just renamed aside is still the version it was."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.size
        and _split_token(_entry(st, inodes))[0] == _split_token(entry)[0]
    )


def _unlink_if(path: str, entry: RemoteEntry, inodes: bool) -> None:
    """Remove the temp file `path` if it still holds the version `entry` names: a failed
    publish may have left another writer's version there (`LocalRemote._give_back`), which
    must never go with fsync's own."""
    with contextlib.suppress(OSError):
        if _same_file(os.lstat(path), entry, inodes):
            os.unlink(path)


STABLE_INODES = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "tmpfs",
        "zfs",
        "f2fs",
        "jfs",
        "bcachefs",
        "nfs",
        "nfs4",
        "overlay",
    }
)
"""Filesystems whose inode numbers last as long as the file (NFS: the server's file ids;
overlay: the upper layer's, which a file gets when first written, as it changes anyway)."""


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem that holds `path` (or would: the mount of its nearest
    existing folder), from `mountinfo` (default: /proc/self/mountinfo); None if unknown."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    real = os.path.realpath(path)
    best, kind = -1, None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if not sep or len(fields) < 5 or not after:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the last of two mounts on one point is on top
            best, kind = len(point), after[0]
    return kind


_OCTAL = re.compile(r"\\([0-7]{3})")
"""mountinfo's escapes (`\\040` for a space in a mount point)."""


def _plain(name: str) -> bool:
    """True for printable ASCII without a backslash: a name `to_relpath` takes as it is.

    A listed name is never empty, "." or "..", nor holds a "/", so a key made of plain
    names only is a valid `RelPath`, NFC already; only other keys need the full checks.
    """
    return name.isascii() and name.isprintable() and "\\" not in name


def _listed_path(key: str, plain: bool) -> RelPath:
    """`key` as a `RelPath` (`plain`: known to be one); `UnsafePathError` if it cannot be."""
    return RelPath(key) if plain else relpath_from_key(key)


def _placed_new(temp: str, full: str) -> bool:
    """Rename `temp` to `full` if nothing is there, in one atomic step: a file another
    writer creates meanwhile is never replaced. False if it was not done: something is there
    (the caller's check says what), or the platform cannot (the caller checks, then renames).
    """
    try:
        return rename_noreplace(temp, full)
    except FileExistsError:
        return False


_Left = tuple[
    list[tuple[str, str]], list[tuple[RelPath, str]], list[tuple[RelPath, str]], list[RelPath]
]
"""What a listing leaves out of its entries: the keys refused, and the paths skipped and
incomplete, each with why, and the temp files (`Listing`)."""


def _unreadable(key: str, err: OSError, left: _Left) -> None:
    """Note the folder `key` (below the root) that could not be read: `Listing.incomplete`,
    with the system's words for why; refused if its name is no `RelPath` (what it holds
    could never be synced anyway)."""
    refused, _, incomplete, _ = left
    try:
        incomplete.append((_listed_path(key, _plain(key)), str(err.strerror or err)))
    except UnsafePathError as bad:
        refused.append((key, str(bad)))


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (a single `write` may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quietly(path: str) -> None:
    """Remove a temporary file if it is still there; cleanup never masks the real error."""
    with contextlib.suppress(OSError):
        os.unlink(path)


class LocalRemote:
    """A remote tree rooted at a local folder.

    The fingerprint is `"{size}:{mtime_ns}:{inode}:{ctime_ns}"` (size and mtime alone where
    the filesystem renumbers files: `inodes`); writes set the mtime and permission bits from
    `ObjectMeta`, so a push then a pull round-trips them. Symbolic links are never followed:
    listings report them (and special files) as skipped, and a path with a link among its
    parent folders raises `UnsafePathError`.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.inodes = filesystem_type(self.root) in STABLE_INODES
        """Whether the inode is part of the fingerprint: only where the filesystem keeps
        inode numbers. FAT, exFAT, most FUSE mounts (sshfs, rclone mount) and CIFS with
        `noserverino` number files anew after a remount or a cache drop: there every
        fingerprint would move, and every run would re-read the whole remote."""
        self.url = "file://" + self.root
        self.capabilities = Capabilities(
            stores_digest=False, sets_mtime=True, server_side_copy=True
        )
        self._durable = Durability(self.root)
        self._inside: set[str] = set()
        """Existing folders already resolved inside the root (see `_checked`)."""

    # -- reading -------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The URL: it names the tree on its own (see `Remote.key`)."""
        return self.url

    def list(self) -> Listing:
        """Walk the root once (no symlinks followed); temp files are left out (and named in
        `Listing.temps`), `.fsync/` too, links and special files are `Listing.skipped`,
        folders that cannot be read (access denied, a path too long to open)
        `Listing.incomplete`.

        Raises for a root that cannot be read (see `_root_error`): `ConfigError` if it is
        not a folder, `RemoteAccessDenied` if access is denied.
        """
        entries: dict[RelPath, RemoteEntry] = {}
        left: _Left = ([], [], [], [])
        stack: list[tuple[str, str]] = [("", self.root)]
        while stack:
            prefix, folder = stack.pop()
            # What one folder holds is kept only once it has been read to its end: a folder
            # that fails midway (a file it holds cannot be stat'ed) is unknown as a whole.
            found: dict[RelPath, RemoteEntry] = {}
            inner: _Left = ([], [], [], [])
            folders: list[tuple[str, str]] = []
            try:
                fd = os.open(folder, _DIR_FLAGS)
                try:
                    with os.scandir(fd) as scan:
                        for item in scan:
                            where = (prefix, folder, _plain(prefix))
                            self._visit(item, where, folders, found, inner)
                finally:
                    os.close(fd)
            except FileNotFoundError:
                continue  # the root is missing (lists as empty) or a folder vanished mid-walk
            except OSError as err:
                if not prefix:
                    raise self._root_error(err) from err
                if not isinstance(err, NotADirectoryError):  # (replaced by a file mid-walk)
                    _unreadable(prefix[:-1], err, left)
                continue
            entries.update(found)
            stack += folders
            for kept, more in zip(left, inner, strict=True):
                kept.extend(more)
        refused, skipped, incomplete, temps = left
        return Listing(
            entries,
            tuple(sorted(refused)),
            tuple(sorted(skipped)),
            tuple(sorted(incomplete)),
            tuple(sorted(temps)),
        )

    def _visit(
        self,
        item: os.DirEntry[str],
        where: tuple[str, str, bool],
        stack: list[tuple[str, str]],
        entries: dict[RelPath, RemoteEntry],
        left: _Left,
    ) -> None:
        """Sort one entry into the listing, the folders to visit, or `left`: the keys
        refused (no `RelPath`) and the paths skipped (a link, a special file), with why, and
        the temp files.

        `where` is the entry's folder: its key prefix, its path and whether the prefix is
        plain (`_plain`). `item` comes from a listing by descriptor: its `stat` resolves one
        name, not the whole path again (15 % of a listing's time), and its `path` is the
        bare name.
        """
        prefix, folder, plain = where
        refused, skipped, _, temps = left
        name = item.name
        key = prefix + name
        other: str | None = None
        if not item.is_file(follow_symlinks=False):
            if item.is_symlink():
                other = _SYMLINK
            elif item.is_dir(follow_symlinks=False):
                if key != ".fsync":
                    stack.append((key + "/", os.path.join(folder, name)))
                return
            else:
                other = _NOT_A_FILE
        if is_temp_name(name) and other != _SYMLINK:
            if other is None:  # a file (a temp name is plain: only the folder may be refused)
                with contextlib.suppress(UnsafePathError):  # unaddressable: left alone
                    temps.append(_listed_path(key, plain))
            return
        try:
            rel = _listed_path(key, plain and _plain(name))
            if other is not None:
                skipped.append((rel, other))
                return
            st = item.stat(follow_symlinks=False)
        except UnsafePathError as err:
            refused.append((key, str(err)))
        except FileNotFoundError:
            pass  # deleted between readdir and stat: it is gone, as the listing says
        else:
            entries[rel] = _entry(st, self.inodes)

    def root_exists(self) -> bool:
        """True if the root is an existing folder.

        Raises for a root whose path cannot be searched or runs through a file (see
        `_root_error`): `isdir` said False, and a pull from a folder it was not allowed to
        see was told the folder did not exist.
        """
        try:
            return stat.S_ISDIR(os.stat(self.root).st_mode)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise self._root_error(err) from err

    def _root_error(self, err: OSError) -> FsyncError:
        """What to raise when `err` kept the root from being opened: access denied is
        `RemoteAccessDenied`; a root that is no folder (a file, a looping link) or lies
        below a file a `ConfigError` naming that file (see `errors.unusable_root`)."""
        if isinstance(err, NotADirectoryError) or err.errno == errno.ELOOP:
            blocker = _file_on_path(self.root)
            if blocker == self.root:  # (a file, or a link that leads nowhere)
                return ConfigError(f"remote {self.root} is not a folder (give a folder)")
            if isinstance(err, NotADirectoryError):
                return ConfigError(f"remote {self.root} is below a file, {blocker} (give a folder)")
        return unusable_root(self.root, err)

    def stat(self, path: RelPath) -> RemoteEntry | None:
        """The entry for `path`, or None if it is absent or not a regular file."""
        full = self._checked(path)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            _raise_translated(err, f"reading {full}")
        return _entry(st, self.inodes) if stat.S_ISREG(st.st_mode) else None

    def read_digest(self, path: RelPath) -> Digest | None:
        """Always None: plain files carry no stored digest."""
        return None

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """A buffered reader of the file from `offset`; `FileNotFoundError` if absent,
        `RemoteChanged` if it is not the version `expect` names. Links are not followed."""
        full = self._checked(path)
        try:
            fd = os.open(full, _OPEN_READ_FLAGS)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise PermanentError(
                    f"{full}: is a symbolic link; fsync does not follow it"
                ) from err
            _raise_translated(err, f"reading {full}")
        try:
            if expect is not None and not same_version(_entry(os.fstat(fd), self.inodes), expect):
                raise RemoteChanged(f"{full}: changed since it was listed")
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def older_token(self, entry: RemoteEntry, recorded_ns: int) -> str | None:
        """The fingerprint an older fsync recorded for `entry`'s version (`TokenHistory`):
        without the change time, which fingerprints hold since schema 0012; None for a file
        changed after `recorded_ns` (an in-place rewrite keeping size, mtime and inode since
        then is just what the change time is there to catch). Without this every file of a
        folder remote synced before would read as moved once, and be read whole to learn it
        was not."""
        older, changed = _split_token(entry)
        return older if changed is not None and changed <= recorded_ns else None

    # -- writing -------------------------------------------------------------------------

    def put(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        *,
        expect: RemoteEntry | None,
        before_publish: Callable[[], None],
        on_held: Callable[[int], None] | None = None,
        halted: threading.Event | None = None,
        stopping: Callable[[], bool] | None = None,
        on_sent: Callable[[int], None] | None = None,  # (never called: no `reports_sent`)
    ) -> RemoteEntry:
        """Write `source` to a temp file beside `path`, then rename it into place.

        The temp file takes `meta`'s mode and mtime and is on disk before `before_publish()`
        runs; the destination is then checked against `expect` (`RemoteChanged` if it moved,
        before or during the swap that replaces it: `_swapped_in`) and replaced atomically;
        `flush` makes the rename durable. Any failure removes the
        temp file. Raises `PermanentError` for a full disk, `PermissionError` for access
        denied, `UnsafePathError` when a parent folder is a link leading outside the root.
        Only reading `source` waits, so it is what stops a halted run (`halted` and `stopping`
        are unused: a graceful stop lets the file finish).
        """
        full = self._checked(path)
        temp, written = self._stage(full, source, meta, sync=True)
        try:
            before_publish()
            return self._publish(temp, full, expect, written)
        except BaseException:
            _unlink_if(temp, written, self.inodes)
            raise

    @property
    def staging(self) -> bool:
        """True where one `syncfs` makes a batch of staged files durable (`Durability`)."""
        return self._durable.batches()

    def stage(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        *,
        before_publish: Callable[[], None],
    ) -> Staged:
        """`put` in two steps (see `base.Stager`): the temp file is written, not synced
        (unless its mode keeps its owner from reading it, which a later sync by path needs).

        Errors are `put`'s.
        """
        full = self._checked(path)
        with self._durable.changing() as held:
            if not held:
                makedirs(self.root)  # a first push: the root must be open before the first byte
                self._durable.hold()
            temp, written = self._stage(full, source, meta, sync=False)
        try:
            before_publish()
        except BaseException:
            _unlink_quietly(temp)
            raise
        return _StagedFile(temp, full, written, self._publish, self.inodes)

    def _stage(
        self, full: str, source: BinaryIO, meta: ObjectMeta, *, sync: bool
    ) -> tuple[str, RemoteEntry]:
        """Copy `source` into a new temp file in `full`'s folder; its path and entry.

        It takes `meta`'s mode and mtime. With `sync` it is on disk when this returns; else
        it is noted as staged, for the next `flush` to sync.
        """
        folder = os.path.dirname(full)
        temp = os.path.join(folder, temp_name())
        try:
            fd = self._create(folder, temp)
        except OSError as err:
            _raise_translated(err, f"writing {full}")
        try:
            # The descriptor itself, not a file object: `open` would add an fstat, an ioctl
            # and an lseek to every file (a tenth of the system calls of a small-file push).
            try:
                while chunk := source.read(CHUNK_SIZE):
                    _write_all(fd, chunk)
                # Never setuid/setgid: the bits were the source machine's owner's to grant.
                mode = meta.mode & 0o1777
                os.fchmod(fd, mode)
                mtime = meta.mtime_ns
                os.utime(fd, ns=(mtime, mtime))
                # A staged file is synced by path later, so its owner must be able to open it.
                if sync or not mode & stat.S_IRUSR:
                    os.fsync(fd)  # on disk before the rename publishes it
                else:
                    self._durable.staged(temp)
                written = _entry(os.fstat(fd), self.inodes)
            finally:
                os.close(fd)
        except BaseException as err:
            _unlink_quietly(temp)
            if isinstance(err, OSError):
                _raise_translated(err, f"writing {full}")
            raise
        return temp, written

    def _create(self, folder: str, temp: str) -> int:
        """Open `temp` exclusively (owner-only until chmod), creating `folder` if it is
        missing: the open is tried first, as the folder almost always exists (a makedirs
        first costs a stat and a failing mkdir per file)."""
        for _ in range(_CREATE_ATTEMPTS - 1):
            with contextlib.suppress(FileNotFoundError):
                return os.open(temp, _CREATE_FLAGS, 0o600)
            makedirs(folder)
        return os.open(temp, _CREATE_FLAGS, 0o600)

    def _publish(
        self, temp: str, full: str, expect: RemoteEntry | None, written: RemoteEntry
    ) -> RemoteEntry:
        """Rename `temp` (whose entry is `written`) over `full` if `full` is still the
        version `expect` describes; the entry `full` then has. The next `flush` makes the
        rename durable.

        A file is replaced by a swap whose displaced version is checked after the fact
        (`_swapped_in`); only where the filesystem cannot swap, by `os.replace` after the
        check, which loses a version another writer renames there in between.
        """
        with self._durable.changing():  # a flush since the write may have let the root go
            try:
                if expect is not None or not _placed_new(temp, full):
                    current = self._current(full)
                    if not same_version(current, expect):
                        raise RemoteChanged(f"{full}: changed since it was listed")
                    if current is None or not self._swapped_in(temp, full, current, written):
                        os.replace(temp, full)
            except OSError as err:
                _raise_translated(err, f"writing {full}")
            self._durable.renamed(os.path.dirname(full))
        return _renamed_entry(full, written, self.inodes)

    def _swapped_in(self, temp: str, full: str, expect: RemoteEntry, written: RemoteEntry) -> bool:
        """Put `temp` (fsync's version, `written`) at `full` by exchanging the two, then
        check the version displaced, now at `temp`, is still `expect` and remove it; False
        where the platform or filesystem cannot exchange (NFS, SMB: nothing was done).

        A check of `full` followed by `os.replace` leaves a window (microseconds locally,
        milliseconds on a network share) in which another writer's version, renamed there by
        a second fsync sharing this folder, is replaced unseen and lost on both sides. A
        version displaced that is not `expect` is put back (`_give_back`) and the publish
        refused: `RemoteChanged`, which the engine takes as a conflict raced.
        """
        try:
            if not rename_exchange(temp, full):
                return False
        except FileNotFoundError:
            if not os.path.lexists(temp):
                raise
            raise RemoteChanged(f"{full}: deleted since it was listed") from None
        self._durable.renamed(os.path.dirname(full))
        try:
            displaced = os.lstat(temp)
        except FileNotFoundError:
            return True  # removed meanwhile: nothing is left to keep
        if _same_file(displaced, expect, self.inodes):
            os.unlink(temp)
            return True
        kept = self._give_back(temp, full, written)
        where = "" if kept is None else f"; it is kept as {kept}"
        raise RemoteChanged(f"{full}: another writer replaced it meanwhile{where}")

    def _give_back(self, temp: str, full: str, written: RemoteEntry) -> str | None:
        """Give `full` back the version `_swapped_in` displaced to `temp`, which is not the
        one fsync meant to replace; None if it is back, else the name it is kept under.

        Exchanged back, `temp` then holds fsync's version, removed; or, if a third writer
        replaced it at `full` meanwhile, that version, kept as a conflict copy. Where `full`
        is gone meanwhile, the version goes back without replacing what may appear there
        (`rename_noreplace`), or is kept as a conflict copy.
        """
        folder = os.path.dirname(full)
        try:
            rename_exchange(temp, full)
        except FileNotFoundError:
            try:
                place_new(temp, full)
            except FileExistsError:
                return self._keep_aside(temp, full)
            self._durable.renamed(folder)
            return None
        self._durable.renamed(folder)
        try:
            back = os.lstat(temp)
        except FileNotFoundError:
            return None
        if _same_file(back, written, self.inodes):
            os.unlink(temp)
            return None
        return self._keep_aside(temp, full)

    def _keep_aside(self, temp: str, full: str) -> str:
        """Rename another writer's version at `temp` beside `full` under a conflict copy's
        name, never replacing a file; the name. A temp name would be removed by a later
        `cleanup` and never listed, so the version would be lost out of sight. Where it cannot
        be renamed, it stays at `temp`, and that name is returned."""
        folder, name = os.path.split(full)
        stamp, host = time.strftime("%Y%m%d-%H%M%S"), socket.gethostname()
        for n in range(1, 100):
            aside = os.path.join(
                folder, conflict_name(RelPath(name), stamp, host if n == 1 else f"{host}-{n}")
            )
            try:
                place_new(temp, aside)
            except FileExistsError:
                continue
            except OSError:
                break
            self._durable.renamed(folder)
            return aside
        return temp

    def _current(self, full: str) -> RemoteEntry | None:
        """What is at `full` now; `PermanentError` if a folder, link or device is in the way."""
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISREG(st.st_mode):
            return _entry(st, self.inodes)
        raise PermanentError(
            f"{full}: a folder, link or special file is in the way; fsync does not replace it"
        )

    def _entry_after_write(self, full: str) -> RemoteEntry:
        """The entry of a file this remote just wrote."""
        try:
            return _entry(os.lstat(full), self.inodes)
        except OSError as err:
            _raise_translated(err, f"reading {full}")

    def delete(self, path: RelPath, *, expect: RemoteEntry | None) -> None:
        """Delete `path` if it still matches `expect`; absent is not an error.

        Folders left empty are removed up to (not including) the root. Raises `RemoteChanged`
        if the file changed since `expect` was seen, also in the moment between that check and
        the removal (`_remove`).
        """
        full = self._checked(path)
        with self._durable.changing():
            try:
                current = self._current(full)
                if current is None:
                    return
                if not same_version(current, expect):
                    raise RemoteChanged(f"{full}: changed since it was listed")
                self._remove(full, current)
            except FileNotFoundError:
                return
            except OSError as err:
                _raise_translated(err, f"deleting {full}")
            self._durable.renamed(os.path.dirname(full))
            self._prune(os.path.dirname(full))

    def _remove(self, full: str, expect: RemoteEntry) -> None:
        """Delete `full` if it is the version `expect` names: renamed aside to a temp name
        (which listings skip) in one step, checked there, then removed.

        A check followed by an unlink leaves a window in which another writer's version,
        renamed there by a second fsync sharing this folder, is deleted unseen: that fsync
        then takes the file for deleted here, and deletes its own copy. A version aside that
        is not `expect` goes back without replacing what appeared meanwhile, or is kept as a
        conflict copy; then `RemoteChanged`. `FileNotFoundError` if `full` is gone.
        """
        folder = os.path.dirname(full)
        aside = temp_beside(full)
        os.rename(full, aside)
        self._durable.renamed(folder)
        try:
            displaced = os.lstat(aside)
        except FileNotFoundError:
            return
        if _same_file(displaced, expect, self.inodes):
            os.unlink(aside)
            return
        try:
            place_new(aside, full)
        except OSError:  # (something took the name meanwhile, or the disk refuses)
            kept = f"; it is kept as {self._keep_aside(aside, full)}"
        else:
            self._durable.renamed(folder)
            kept = ""
        raise RemoteChanged(f"{full}: another writer replaced it meanwhile{kept}")

    def _prune(self, folder: str) -> None:
        """Remove `folder` and its parents while empty, stopping below the root."""
        while len(folder) > len(self.root) and folder.startswith(self.root):
            try:
                os.rmdir(folder)
            except OSError:
                return
            self._inside.discard(folder)
            folder = os.path.dirname(folder)
            self._durable.renamed(folder)  # its entry for the removed folder changed

    def copy(self, src: RelPath, dst: RelPath) -> RemoteEntry:
        """Copy `src` to `dst` (content, mode, mtime) through a temp file and a rename.

        Raises `FileNotFoundError` if `src` is absent or not a regular file.
        """
        src_full = self._checked(src)
        dst_full = self._checked(dst)
        if self.stat(src) is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", src_full)
        folder = os.path.dirname(dst_full)
        temp = os.path.join(folder, temp_name())
        with self._durable.changing():
            try:
                os.close(self._create(folder, temp))
                shutil.copy2(src_full, temp, follow_symlinks=False)
                fd = os.open(temp, _OPEN_READ_FLAGS)
                try:
                    os.fsync(fd)  # a backup must be on disk before what replaces it
                finally:
                    os.close(fd)
                os.replace(temp, dst_full)
            except BaseException as err:
                _unlink_quietly(temp)
                if isinstance(err, OSError):
                    _raise_translated(err, f"copying {src_full} to {dst_full}")
                raise
            self._durable.renamed(folder)
        return self._entry_after_write(dst_full)

    def move(
        self, src: RelPath, dst: RelPath, *, expect: RemoteEntry | None, prune: bool = False
    ) -> RemoteEntry:
        """Rename `src` to `dst` if `src` is still `expect` (see `base.Mover`); `flush` makes
        the rename durable.

        Never replaces a file at `dst` (`FileExistsError`); across filesystems the file is
        copied, then removed. Folders left empty are pruned only with `prune`: the root this
        remote addresses may hold a sync root that must stay. Raises `RemoteChanged` when
        what the rename carried is not `expect` (`_moved_entry`): the file is at `dst`, as
        another writer left it, and the next run sees it changed there.
        """
        src_full, dst_full = self._checked(src), self._checked(dst)
        with self._durable.changing():
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
            self._durable.renamed(os.path.dirname(src_full))
            self._durable.renamed(os.path.dirname(dst_full))
            if prune:
                self._prune(os.path.dirname(src_full))
        return self._moved_entry(src_full, dst_full, expect)

    def _moved_entry(self, src_full: str, dst_full: str, expect: RemoteEntry | None) -> RemoteEntry:
        """The entry of the file just moved to `dst_full`; `RemoteChanged` if it is not the
        version `expect` names.

        The check of `src_full` and the rename are two steps: another writer replacing the
        file in between (its temp file renamed over it) had its version carried to `dst_full`
        and recorded with this side's digest, so no run saw the difference again and the
        next edit here overwrote it. The rename moves the change time, so what it keeps is
        compared: size, mtime and inode (only size and mtime where it was copied between
        filesystems, or the remote keeps no inodes), as `_renamed_entry` does for a write.
        """
        moved = self._entry_after_write(dst_full)
        if expect is None:
            return moved
        kept, listed = _split_token(moved)[0], _split_token(expect)[0]
        if kept != listed and self.inodes and _across(src_full, dst_full):
            kept, listed = kept.rsplit(":", 1)[0], listed.rsplit(":", 1)[0]
        if kept != listed:
            raise RemoteChanged(
                f"{src_full}: changed since it was listed (moved to {dst_full} as found)"
            )
        return moved

    def make_root(self) -> None:
        """Make the root where missing (see `base.RootMaker`)."""
        try:
            makedirs(self.root)
        except FileExistsError as err:  # (a file, or a link that leads nowhere)
            raise ConfigError(f"remote {self.root} is not a folder (give a folder)") from err
        except NotADirectoryError as err:
            raise self._root_error(err) from err
        except OSError as err:
            raise unusable_root(self.root, err, "make") from err

    def remove_temp(self, path: RelPath) -> bool:
        """Remove the temp file at `path` (see `base.TempRemover`); True if it was removed.

        The name is checked again, and the file must be a regular one still: a listing is a
        moment ago, and nothing but fsync's own temp files may ever go this way. Nothing is
        made durable: a removal a crash undoes is done again by the next run.
        """
        if not is_temp_name(posixpath.basename(path)):
            raise ValueError(f"{path!r}: not an fsync temp file")
        try:
            full = self._checked(path)
            if not stat.S_ISREG(os.lstat(full).st_mode):
                return False
            os.unlink(full)
        except (OSError, UnsafePathError):
            return False
        return True

    def abort_stale_uploads(self, older_than: float | None = None) -> int:
        """Remove fsync temporary files under the root last changed at least `older_than`
        seconds ago: the unfinished writes a killed run leaves behind.

        With None, all but those changed in the last `IN_USE_SECONDS`, which a running fsync
        may still be writing (removing one failed that run's file). Raises `ConfigError` if
        the root is not a folder.
        """
        if not os.path.isdir(self.root):
            raise ConfigError(f"remote {self.url} is not an existing folder (check the path)")
        cutoff = time.time() - (IN_USE_SECONDS if older_than is None else older_than)
        removed = 0
        for folder, dirs, files in os.walk(self.root):
            if folder == self.root and ".fsync" in dirs:
                dirs.remove(".fsync")
            for name in files:
                full = os.path.join(folder, name)
                if not is_temp_name(name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    # ctime: a temp file's mtime is its source's, set before it is published.
                    if os.lstat(full).st_ctime <= cutoff:
                        os.unlink(full)
                        removed += 1
        return removed

    def flush(self) -> None:
        """Make every write so far durable (renames included): one filesystem sync.

        Also forgets which folders resolved inside the root: a long `fsync watch` session
        checks them again after every batch, not once per process.
        """
        self._inside.clear()
        self._durable.flush()

    def close(self) -> None:
        """Release the root's descriptor that syncs staged files; every call opens and closes
        its own files."""
        self._durable.close()

    # -- paths ---------------------------------------------------------------------------

    def _checked(self, path: RelPath) -> str:
        """The absolute name of `path`, refusing a symbolic link among its parent folders.

        `RelPath` already excludes `..`; this catches a link among the parent folders (the
        file itself is handled by lstat and O_NOFOLLOW). One leading inside the root is
        refused too: listings do not follow links, so a file written through one was never
        seen again there (and its path was taken for deleted).
        """
        parts = path.split("/")
        full = os.path.join(self.root, *parts)
        folder = os.path.dirname(full)
        if folder in self._inside:
            return full
        real_root = os.path.realpath(self.root)
        real_parent = os.path.realpath(folder)
        if os.path.commonpath([real_root, real_parent]) != real_root:
            raise UnsafePathError(
                f"{path!r}: a parent folder is a link leading outside {self.root}"
            )
        if real_parent != os.path.join(real_root, *parts[:-1]):
            raise UnsafePathError(
                f"{path!r}: a parent folder is a symbolic link; fsync does not follow it"
            )
        if os.path.isdir(folder):
            # Resolving a folder costs a stat per level, per file; one that resolved inside
            # the root is not resolved again (a link swapped in later is the same race as one
            # swapped in between this check and the write).
            self._inside.add(folder)
        return full


class _StagedFile:
    """A temp file `LocalRemote.stage` wrote: renamed over its path by `publish`."""

    def __init__(
        self,
        temp: str,
        full: str,
        entry: RemoteEntry,
        rename: Callable[[str, str, RemoteEntry | None, RemoteEntry], RemoteEntry],
        inodes: bool,
    ) -> None:
        self.entry = entry
        self._inodes = inodes
        self._temp: str | None = temp
        self._full = full
        self._rename = rename

    def publish(self, expect: RemoteEntry | None) -> RemoteEntry:
        """Rename the file into place if `full` is still `expect` (see `LocalRemote.put`)."""
        temp = self._temp
        if temp is None:
            raise RuntimeError(f"{self._full}: staged bytes already published or discarded")
        self._temp = None
        written = self.entry
        try:
            self.entry = self._rename(temp, self._full, expect, written)
        except BaseException:
            _unlink_if(temp, written, self._inodes)
            raise
        return self.entry

    def discard(self) -> None:
        """Remove the temp file unless it was published."""
        if self._temp is not None:
            _unlink_quietly(self._temp)
            self._temp = None
