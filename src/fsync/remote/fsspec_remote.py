"""A remote over any fsspec filesystem: memory://, and for now s3:// and the rest.

This module never imports fsspec itself: it receives a constructed filesystem (see
`fsync.remote.open_remote`), so importing it costs nothing at start-up. fsspec's info dicts
differ per backend (memory gives `created`, S3 `ETag` and `LastModified`, sftp `mtime`); the
helpers below turn any of them into a `RemoteEntry` whose fingerprint is the same whether it
came from a listing or from `info`, because the planner compares the two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn
from urllib.parse import quote, unquote_to_bytes

from fsync.errors import (
    ConfigError,
    PermanentError,
    RemoteChanged,
    RemoteUnavailable,
    TransientError,
    UnsafePathError,
    one_line,
    unusable_root,
)
from fsync.model import Digest, RelPath, RemoteEntry
from fsync.paths import join, temp_name
from fsync.remote.base import (
    IN_USE_SECONDS,
    Capabilities,
    Listing,
    ObjectMeta,
    is_temp_name,
    relpath_from_key,
    same_version,
    served_entry,
)
from fsync.remote.retry import RetryPolicy, retry_after, retrying

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Mapping

    from fsspec import AbstractFileSystem

CHUNK_SIZE = 1 << 20
"""Bytes read from a source per write: memory per upload stays at one chunk."""

_CREATE_ATTEMPTS = 3
"""A concurrent delete may prune the folder a write just created; re-create it this often."""

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

_MTIME_KEYS = (
    "mtime",
    "LastModified",
    "Last-Modified",
    "last_modified",
    "updated",
    "modified",
    "created",
)
"""Info-dict keys that carry a modification time, most specific first (memory has `created`,
http the `Last-Modified` header as its HTTP date)."""

LOOKERS = 8
"""Files looked up side by side where a listing gives no size (one HEAD each on http)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _raise_translated(err: OSError, doing: str) -> NoReturn:
    """Re-raise `err` in the contract's terms: builtin not-found/permission, else fsync's."""
    if isinstance(err, FileNotFoundError | PermissionError):
        raise err
    if err.errno in _NO_SPACE:
        raise PermanentError(f"no space left on {doing}") from err
    raise PermanentError(f"{doing}: {err.strerror or err}") from err


def _to_ns(value: object) -> int | None:
    """Nanoseconds since the epoch from a datetime, epoch seconds or an ISO string.

    Float seconds are rounded to the microsecond, so a listing's float and an `info` call's
    datetime for the same object (memory:// gives one of each) agree exactly.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // timedelta(microseconds=1) * 1000
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1_000_000) * 1000
    if isinstance(value, str):
        try:
            return _to_ns(datetime.fromisoformat(value))
        except ValueError:
            pass
        try:  # an HTTP date (`Last-Modified: Fri, 27 Nov 2026 22:53:37 GMT`)
            return _to_ns(parsedate_to_datetime(value))
        except (TypeError, ValueError):
            return None
    return None


def _missing(err: FileNotFoundError) -> bool:
    """Whether `err` says the thing is not there: fsspec's http raises every failure, a
    refused connection or a 500 too, as FileNotFoundError from the real one, which only a
    404 or 410 answer makes an absence."""
    cause = err.__cause__
    if cause is None or isinstance(cause, FileNotFoundError):
        return True
    return getattr(cause, "status", None) in (404, 410)


def entry_from_info(info: Mapping[str, Any]) -> RemoteEntry:
    """A `RemoteEntry` from an fsspec info dict (listing or `info`).

    The fingerprint is the ETag without quotes where the backend gives one, else
    `"{size}:{mtime_ns}"` from the first time the dict carries (`":{mtime_ns}"` where the
    size is None: an http server that gave no `Content-Length`; the entry is then not
    `sized`).
    """
    sized = info.get("size") is not None
    size = int(info.get("size") or 0)
    mtime_ns = next((ns for key in _MTIME_KEYS if (ns := _to_ns(info.get(key))) is not None), None)
    etag = info.get("ETag") or info.get("etag")
    fingerprint = str(etag).strip('"') if etag else None
    if fingerprint is None:  # (no size known: the time alone)
        fingerprint = f"{size if sized else ''}:{'' if mtime_ns is None else mtime_ns}"
    return RemoteEntry(size=size, fingerprint=fingerprint, mtime_ns=mtime_ns, sized=sized)


class FsspecRemote:
    """A remote tree under `root` of an fsspec filesystem.

    `object_store` says the backend has no real folders (S3, GCS, Azure): no folders are made
    or pruned, and the root always exists. `walks` says `fs.find` is fsspec's own walk, which
    takes any folder it cannot list, the root too, for an empty one (see `_walk`): this
    adapter then walks the tree itself. Writes go to a temp name in the destination
    folder and are published with `fs.mv` after `before_publish()` and the `expect` check.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        url: str,
        *,
        capabilities: Capabilities | None = None,
        object_store: bool = False,
        walks: bool = False,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.capabilities = capabilities or Capabilities(
            stores_digest=False, sets_mtime=False, server_side_copy=True
        )
        self.object_store = object_store
        self.walks = walks
        # Snapshots must come from the backend, never from fsspec's listing cache.
        dircache = getattr(fs, "dircache", None)
        if dircache is not None:
            dircache.use_listings_cache = False
            dircache.clear()

    # -- reading -------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The URL: it names the tree on its own (see `Remote.key`)."""
        return self.url

    def list(self) -> Listing:
        """One recursive listing under the root (`fs.find`, or `_walk` where that is
        fsspec's own walk); temp names and `.fsync/` are skipped, folders below the root
        that cannot be listed are `Listing.incomplete`, and so are the files whose version
        cannot be asked (see `_sized`; these are `Listing.unread_files` too).

        A missing root lists as empty; a root that is a file, or whose path runs through
        one, is a `ConfigError`; any other failure to list it raises as
        `errors.unusable_root` says (`RemoteAccessDenied`, else `RemoteUnavailable`).
        """
        unread: list[tuple[str, str]] = []
        try:
            if self.walks:
                found = self._walk(unread)
            else:
                found = self.fs.find(self.root, detail=True, withdirs=False)
        except FileNotFoundError:
            return Listing({})
        except OSError as err:
            raise unusable_root(self.url, err) from err
        unread_files: list[tuple[str, str]] = []
        self._sized(found, unread_files)
        entries: dict[RelPath, RemoteEntry] = {}
        refused: list[tuple[str, str]] = []
        incomplete, files = self._unread(unread, unread_files, refused)
        for name, info in found.items():
            key = self._relative(name)
            if key is None and name.rstrip("/") == self.root:
                raise ConfigError(f"remote {self.url} is not a folder (give a folder)")
            if key is None:
                refused.append((name, "not under the root (is the root a file?)"))
            elif self._skipped(key, info):
                continue
            else:
                try:
                    entries[self._path_of(key)] = entry_from_info(info)
                except UnsafePathError as err:
                    refused.append((key, str(err)))
        return Listing(
            entries,
            tuple(sorted(refused)),
            incomplete=tuple(sorted(incomplete)),
            unread_files=frozenset(files),
        )

    def _unread(
        self,
        folders: list[tuple[str, str]],
        files: list[tuple[str, str]],
        refused: list[tuple[str, str]],
    ) -> tuple[list[tuple[RelPath, str]], set[RelPath]]:
        """`Listing.incomplete` and `Listing.unread_files` from the full names of the
        `folders` and `files` that could not be read, with why; a name that maps to no path
        goes to `refused` instead."""
        incomplete: list[tuple[RelPath, str]] = []
        paths: set[RelPath] = set()
        for batch, are_files in ((folders, False), (files, True)):
            for name, why in batch:
                key = self._relative(name) or name
                try:
                    path = self._path_of(key)
                except UnsafePathError as err:
                    refused.append((key, str(err)))
                    continue
                incomplete.append((path, why))
                if are_files:
                    paths.add(path)
        return incomplete, paths

    def _walk(self, unread: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Every file under the root by full name (as `fs.find` gives them), one `ls` per
        folder; the folders below the root that could not be listed go to `unread`, with why.

        fsspec's own walk leaves such a folder out silently (it passes `on_error` to the
        root's listing only), so the files in it looked deleted, and a pull deleted their
        local copies. Raises what listing the root raised.
        """
        found: dict[str, dict[str, Any]] = {}
        stack = [self.root]
        seen = {self.root}
        while stack:
            folder = stack.pop()
            try:
                listed = self.fs.ls(folder, detail=True)
            except OSError as err:
                if folder == self.root:
                    raise
                if not isinstance(err, FileNotFoundError):  # (else: gone mid-walk)
                    unread.append((folder, err.strerror or one_line(err)))
                continue
            for info in listed:
                name = self._linked(str(info["name"]).rstrip("/"))
                if name is None:
                    continue
                if info.get("type") != "directory":
                    found[name] = {**info, "name": name}
                elif name not in seen and self._relative(name) != ".fsync":
                    seen.add(name)
                    stack.append(name)
        return found

    def _sized(self, found: dict[str, dict[str, Any]], unread: list[tuple[str, str]]) -> None:
        """Complete in place the files of `found` whose listing gave no size, with one `info`
        each, `LOOKERS` at a time; drop those gone meanwhile, and those that cannot be looked
        at go to `unread`, with why (left alone, as an unreadable folder is).

        An http index page lists names only: every file listed as size 0 with no time, which
        no read matched (each download was taken for a changed file, a conflict), and no edit
        on the server moved (the next pull saw nothing). Its HEAD gives the size, the ETag and
        the `Last-Modified` time that make the version `entry_from_info` fingerprints.
        """
        todo = [
            name
            for name, info in found.items()
            if info.get("size") is None
            and (key := self._relative(name)) is not None
            and not self._skipped(key, info)
            and self._mappable(key)
        ]
        if not todo:
            return

        def look(name: str) -> tuple[Mapping[str, Any] | None, str | None]:
            try:
                return self._info(name), None
            except FileNotFoundError as err:
                cause = err.__cause__
                return None, None if _missing(err) else one_line(cause or err)
            except OSError as err:
                return None, err.strerror or one_line(err)
            except TransientError as err:  # (asked again as often as the remote allows)
                return None, str(err)

        with ThreadPoolExecutor(max_workers=LOOKERS, thread_name_prefix="fsync-info") as pool:
            looks = list(pool.map(look, todo))
        for name, (info, why) in zip(todo, looks, strict=True):
            if info is not None and info.get("type", "file") == "file":
                found[name] = {**found[name], **info, "name": name}
                continue
            del found[name]
            if why is not None:
                unread.append((name, why))

    def _info(self, name: str) -> Mapping[str, Any]:
        """`fs.info(name)`: one file's version (see `HttpRemote._info`, which asks again)."""
        return self.fs.info(name)

    def _linked(self, name: str) -> str | None:
        """The name `_walk` files a listed `name` under, or None to leave it out: itself here
        (see `HttpRemote`, whose index pages link other things than files)."""
        return name

    def _path_of(self, key: str) -> RelPath:
        """The `RelPath` a listed key (relative to the root) names; `UnsafePathError` if none."""
        return relpath_from_key(key)

    def _mappable(self, key: str) -> bool:
        """Whether `key` names a path here: a name `list` refuses is not asked about."""
        try:
            self._path_of(key)
        except UnsafePathError:
            return False
        return True

    def _relative(self, name: str) -> str | None:
        """`name` relative to the root, or None if the backend listed something outside it."""
        if not self.root:
            return name.lstrip("/")
        prefix = self.root + "/"
        return name[len(prefix) :] if name.startswith(prefix) else None

    @staticmethod
    def _skipped(key: str, info: Mapping[str, Any]) -> bool:
        """True for keys that are not synced files: temp names, `.fsync/`, folder markers."""
        if info.get("type", "file") != "file" or key.endswith("/"):
            return True
        return key.startswith(".fsync/") or is_temp_name(key.rpartition("/")[2])

    def root_exists(self) -> bool:
        """True if the root folder exists; always True on object stores and at the top."""
        if self.object_store or not self.root:
            return True
        # Not `fs.exists`: it takes any failure for absence, so a server that could not be
        # reached was reported as a root that does not exist.
        try:
            self.fs.info(self.root)
        except FileNotFoundError as err:
            if _missing(err):
                return False
            cause = err.__cause__  # (not found missing: it could not be asked)
            why = unusable_root(self.url, cause, "reach") if isinstance(cause, OSError) else None
            raise why or RemoteUnavailable(
                f"cannot reach remote {self.url} ({one_line(cause)})"
            ) from cause
        except OSError as err:
            raise unusable_root(self.url, err, "reach") from err
        except Exception as err:  # a backend's own types (aiohttp's) stop here
            raise RemoteUnavailable(f"cannot reach remote {self.url} ({one_line(err)})") from err
        return True

    def stat(self, path: RelPath) -> RemoteEntry | None:
        """The entry for `path` from a fresh `info` call, or None if absent or a folder."""
        try:
            info = self._info(self._full(path))
        except FileNotFoundError as err:
            if _missing(err):
                return None
            raise self._unasked(path, err) from err
        except OSError as err:
            _raise_translated(err, f"reading {self._url(path)}")
        if info.get("type", "file") != "file":
            return None
        return entry_from_info(info)

    def read_digest(self, path: RelPath) -> Digest | None:
        """Always None: this adapter writes no metadata, so there is no stored digest."""
        return None

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """A streaming reader of the object from `offset`; `FileNotFoundError` if absent,
        `RemoteChanged` if it is not the version `expect` names (checked just before opening:
        a generic filesystem offers no conditional read)."""
        self._check_version(path, expect)
        try:
            reader: BinaryIO = self.fs.open(self._full(path), "rb")
            if offset:
                try:
                    reader.seek(offset)
                except BaseException:
                    reader.close()
                    raise
        except FileNotFoundError:
            raise
        except OSError as err:
            _raise_translated(err, f"reading {self._url(path)}")
        return reader

    def _unasked(self, path: RelPath, err: FileNotFoundError) -> PermanentError:
        """The error for `path` when fsspec's http said "not found" of a server it could not
        ask (see `_missing`): not a file found deleted."""
        return PermanentError(f"reading {self._url(path)}: {one_line(err.__cause__ or err)}")

    def _check_version(self, path: RelPath, expect: RemoteEntry | None) -> None:
        if expect is None:
            return
        current = self.stat(path)
        if current is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._url(path))
        if not same_version(current, expect):
            raise RemoteChanged(f"{self._url(path)}: changed since it was listed")

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
        """Stream `source` to a temp name beside `path`, then move it into place.

        `before_publish()` runs once every byte is staged; the destination is then checked
        against `expect` from a fresh `info` (`RemoteChanged` if it moved). Any failure
        removes the temp name. `meta` is not stored: this adapter keeps no metadata. Only
        reading `source` waits, so it is what stops a halted run (`halted` and `stopping`
        are unused: a graceful stop lets the file finish).
        """
        full = self._full(path)
        folder = full.rpartition("/")[0]
        name = temp_name()
        temp = f"{folder}/{name}" if folder else name
        doing = f"writing {self._url(path)}"
        with self._discarding(temp, doing), self._create(folder, temp) as out:
            while chunk := source.read(CHUNK_SIZE):
                out.write(chunk)
        try:
            before_publish()
        except BaseException:
            self._discard(temp)
            raise
        with self._discarding(temp, doing):
            if not same_version(self.stat(path), expect):
                raise RemoteChanged(f"{self._url(path)}: changed since it was listed")
            self.fs.mv(temp, full)
        entry = self.stat(path)
        if entry is None:
            raise RemoteChanged(f"{self._url(path)}: vanished right after it was written")
        return entry

    @contextlib.contextmanager
    def _discarding(self, temp: str, doing: str) -> Iterator[None]:
        """On any failure in the block, remove `temp` (best effort) and translate OS errors."""
        try:
            yield
        except BaseException as err:
            self._discard(temp)
            if isinstance(err, OSError):
                _raise_translated(err, doing)
            raise

    def _discard(self, temp: str) -> None:
        """Remove a temp name if it is still there; cleanup never masks the real error."""
        with contextlib.suppress(Exception):
            self.fs.rm_file(temp)

    def _create(self, folder: str, temp: str) -> Any:
        """Open `temp` for writing, making its folder first where the backend has folders."""
        for _ in range(_CREATE_ATTEMPTS - 1):
            self._makedirs(folder)
            with contextlib.suppress(FileNotFoundError):
                return self.fs.open(temp, "wb")
        self._makedirs(folder)
        return self.fs.open(temp, "wb")

    def _makedirs(self, folder: str) -> None:
        if folder and not self.object_store:
            self.fs.makedirs(folder, exist_ok=True)

    def delete(self, path: RelPath, *, expect: RemoteEntry | None) -> None:
        """Delete `path` if it still matches `expect`; absent is not an error.

        Raises `RemoteChanged` if the object changed since `expect` was seen. On filesystems,
        folders left empty are removed up to (not including) the root.
        """
        current = self.stat(path)
        if current is None:
            return
        if not same_version(current, expect):
            raise RemoteChanged(f"{self._url(path)}: changed since it was listed")
        full = self._full(path)
        try:
            self.fs.rm_file(full)
        except FileNotFoundError:
            return
        except OSError as err:
            _raise_translated(err, f"deleting {self._url(path)}")
        if not self.object_store:
            self._prune(full.rpartition("/")[0])

    def _prune(self, folder: str) -> None:
        """Remove `folder` and its parents while empty, stopping below the root."""
        while len(folder) > len(self.root) and folder.startswith(self.root):
            try:
                self.fs.rmdir(folder)
            except OSError:
                return
            folder = folder.rpartition("/")[0]

    def copy(self, src: RelPath, dst: RelPath) -> RemoteEntry:
        """Copy `src` to `dst` with the backend's copy; `FileNotFoundError` if `src` is absent."""
        if self.stat(src) is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._url(src))
        dst_full = self._full(dst)
        try:
            self._makedirs(dst_full.rpartition("/")[0])
            self.fs.copy(self._full(src), dst_full)
        except OSError as err:
            _raise_translated(err, f"copying {self._url(src)} to {self._url(dst)}")
        entry = self.stat(dst)
        if entry is None:
            raise RemoteChanged(f"{self._url(dst)}: vanished right after it was copied")
        return entry

    def abort_stale_uploads(self, older_than: float | None = None) -> int:
        """Remove fsync temporary objects under the root written at least `older_than`
        seconds ago; with None, all but those written in the last `IN_USE_SECONDS`, which a
        running fsync may own. Where the backend keeps no time, all of them.

        Raises `ConfigError` if the root of a filesystem (not an object store) is missing.
        """
        try:
            found = self.fs.find(self.root, detail=True, withdirs=False)
        except FileNotFoundError:
            found = {}
        if not found and not self.root_exists():
            raise ConfigError(f"remote {self.url} does not exist (check the path)")
        now = datetime.now(UTC)
        window = timedelta(seconds=IN_USE_SECONDS if older_than is None else older_than)
        removed = 0
        for key, info in found.items():
            if not is_temp_name(key.rpartition("/")[2]):
                continue
            # `created` first: a local temp file's mtime is its source's (see LocalRemote).
            when = info.get("created") or info.get("mtime") or info.get("LastModified")
            if isinstance(when, (int, float)):
                when = datetime.fromtimestamp(when, UTC)
            if isinstance(when, datetime):
                age = now - (when if when.tzinfo else when.replace(tzinfo=UTC))
                if age < window:
                    continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(key)
                removed += 1
        return removed

    def flush(self) -> None:
        """Nothing to do: a write through fsspec is as durable as it gets once it returns."""

    def close(self) -> None:
        """Drop the listing cache; fsspec filesystems hold nothing else we can release."""
        dircache = getattr(self.fs, "dircache", None)
        if dircache is not None:
            dircache.clear()

    # -- paths ---------------------------------------------------------------------------

    def _full(self, path: RelPath) -> str:
        return join(self.root, path)

    def _url(self, path: RelPath) -> str:
        """`path` as the user would write it, for messages."""
        return self.url + path if self.url.endswith("://") else join(self.url, path)


class MemoryRemote(FsspecRemote):
    """memory:// with readers that do not share a position.

    fsspec's memory filesystem hands every `open(..., "rb")` the stored BytesIO itself, so two
    readers of one object (a download and a verify) would move each other's position. The
    bytes are in memory already, so a private copy costs no I/O.
    """

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """An independent reader of the object from `offset`; `FileNotFoundError` if absent,
        `RemoteChanged` if it is not the version `expect` names."""
        self._check_version(path, expect)
        reader = io.BytesIO(self.fs.cat_file(self._full(path)))
        reader.seek(offset)
        return reader


class HttpRemote(FsspecRemote):
    """http:// and https://, read-only: a tree of index pages (`python -m http.server`,
    nginx's autoindex) that a pull reads.

    The listing has names only, so `FsspecRemote._sized` asks each file's HEAD for its
    version. A read is one streaming GET whose answer is checked against that version (its
    `Content-Length`, `ETag` and `Last-Modified`), which costs no HEAD and leaves no gap
    between the check and the bytes: the file changed in that gap was written as the new
    version under the old one's fingerprint. fsspec's own reader asks a HEAD and then one
    ranged GET per 5 MiB block: a file changed meanwhile could come in pieces of two versions.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        url: str,
        *,
        walks: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            fs,
            root,
            url,
            capabilities=Capabilities(
                stores_digest=False, sets_mtime=False, server_side_copy=False, writable=False
            ),
            walks=walks,
        )
        self.retry = retry or RetryPolicy()

    def _info(self, name: str) -> Mapping[str, Any]:
        """`fs.info(name)` (a HEAD, a GET where that fails), asked again while the server
        answers as `_transient` says a busy or restarting one does, as `retry` allows; then
        the last `TransientError`. It failed the file at once before."""

        def ask() -> Mapping[str, Any]:
            try:
                return self.fs.info(name)
            except FileNotFoundError as err:
                again = _transient(err.__cause__)
                if again is None:
                    raise
                raise again from err

        return retrying(ask, self.retry, what=f"reading {name}")

    def _linked(self, name: str) -> str | None:
        """`name` without `.` segments (`./a.txt` is `a.txt`); None for a link with a query or
        a fragment (Apache's `?C=N;O=D` sort links, `#top`, `a.txt?v=1`): not a file of the
        tree, and fetched as one it was saved under a name no server has."""
        key = self._relative(name)
        if key is None:
            return name
        if "?" in key or "#" in key:
            return None
        kept = "/".join(part for part in key.split("/") if part not in ("", "."))
        return f"{self.root}/{kept}" if kept else self.root

    def _path_of(self, key: str) -> RelPath:
        """The path an index page's link names: each segment percent-decoded
        (`b%20c.txt` is `b c.txt`); `UnsafePathError` for a name whose bytes are not UTF-8,
        or that decodes to a `/` (`a%2Fb`: one name on the server, never a folder here)."""
        names = []
        for part in key.split("/"):
            name = unquote_to_bytes(part).decode("utf-8", "surrogateescape")
            if "/" in name:
                raise UnsafePathError(f"{name!r}: a name with a slash in it")
            names.append(name)
        return relpath_from_key("/".join(names))

    def _full(self, path: RelPath) -> str:
        """The URL of `path`: each name percent-encoded again."""
        return join(self.root, quote(path, safe="/"))

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """A streaming reader of the file from `offset`, its `entry` the version the answer
        names; `FileNotFoundError` if absent, `RemoteChanged` if that is not the version
        `expect` names. A connection that drops is opened again where it ended (as
        `retry` allows; then `TransientError`)."""
        what = f"reading {self._url(path)}"
        reader = retrying(lambda: self._get(path, offset, expect), self.retry, what=what)
        return _Resuming(self, path, offset, reader)  # type: ignore[return-value]

    def _get(self, path: RelPath, offset: int, expect: RemoteEntry | None) -> Any:
        """One GET of `path` from `offset`, checked against `expect` (see `open_read`)."""
        # identity: the bytes are the file's, and Content-Length is their count
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            # `size` spares fsspec's HEAD; block_size=0 is its one-GET streaming reader
            reader: Any = self.fs.open(
                self._full(path),
                "rb",
                block_size=0,
                size=expect.size if expect else None,
                headers=headers,
            )
        except FileNotFoundError as err:
            if _missing(err):
                raise
            again = _transient(err.__cause__)
            if again is not None:
                raise again from err
            raise self._unasked(path, err) from err
        except OSError as err:
            _raise_translated(err, f"reading {self._url(path)}")
        except Exception as err:  # aiohttp's own types (a 500, a 403) stop here
            again = _transient(err)
            if again is not None:
                raise again from err
            raise PermanentError(f"reading {self._url(path)}: {one_line(err)}") from err
        try:
            known = expect.size if expect is not None and expect.sized else None
            reader.entry = self._answered(path, reader.r, known)
            if expect is not None and not same_version(served_entry(reader), expect):
                raise RemoteChanged(f"{self._url(path)}: changed since it was listed")
            if offset and reader.r.status != 206:  # (the whole file came: skip to `offset`)
                _skip(reader, offset)
        except BaseException as err:
            reader.close()
            again = _transient(err)
            if again is not None:  # (cut in the skip: it went up raw, the whole run's error)
                raise again from err
            raise
        return reader

    def _answered(self, path: RelPath, response: Any, size: int | None) -> RemoteEntry:
        """The version a GET's answer names, as `info` (a HEAD) would have given it; `size`
        where the answer gives none (a chunked one, or one compressed despite the `identity`
        asked for, whose `Content-Length` counts other bytes than aiohttp hands on: the bytes
        received are counted later)."""
        info: dict[str, Any] = {"name": self._full(path), "size": size}
        for header in ("ETag", "Last-Modified"):
            if header in response.headers:
                info[header] = response.headers[header]
        ranged = response.headers.get("Content-Range", "")
        plain = response.headers.get("Content-Encoding", "identity") in ("identity", "")
        if response.status == 206 and ranged.rpartition("/")[2].isdigit():
            info["size"] = int(ranged.rpartition("/")[2])
        elif "Content-Length" in response.headers and response.status != 206 and plain:
            info["size"] = int(response.headers["Content-Length"])
        return entry_from_info(info)


class _Resuming(io.RawIOBase):
    """A reader from `HttpRemote.open_read` that, where the connection drops mid-file
    (aiohttp's `ContentLengthError`, a reset), GETs the rest of the same version, as often as
    the remote's retry policy allows for the whole file; then `TransientError`, the file
    failed alone."""

    def __init__(self, remote: HttpRemote, path: RelPath, offset: int, reader: Any) -> None:
        super().__init__()
        self._remote, self._path, self._at = remote, path, offset
        self._reader: Any = reader
        self._left = remote.retry.retries  # (for the whole file, not each read)
        self.entry: RemoteEntry = reader.entry

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        def attempt() -> bytes:
            if self._reader is None:
                self._reader = self._remote._get(self._path, self._at, self.entry)
            try:
                return bytes(self._reader.read(-1 if size is None else size))
            except Exception as err:
                if not _dropped(err):
                    raise
                self._drop()
                raise TransientError(f"{self._remote._url(self._path)}: {_said(err)}") from err

        def spent(_n: int, _err: BaseException, _delay: float) -> None:
            self._left -= 1

        what = f"reading {self._remote._url(self._path)}"
        policy = dataclasses.replace(self._remote.retry, retries=self._left)
        data = retrying(attempt, policy, what=what, on_retry=spent)
        self._at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _drop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()

    def close(self) -> None:
        self._drop()
        super().close()


def _dropped(err: BaseException | None) -> bool:
    """Whether `err` is a connection that failed or ended early (worth asking again), in
    aiohttp's types or the builtin ones, as fsspec passes them on."""
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    kind = type(err)
    names = {klass.__name__ for klass in kind.__mro__}
    return kind.__module__.startswith("aiohttp") and bool(
        names & {"ClientPayloadError", "ClientConnectionError", "ServerDisconnectedError"}
    )


def _said(err: BaseException) -> str:
    """What a dropped connection's error says, without the repr of aiohttp's own error that
    its message ends with (`Response payload is not completed: <ContentLengthError: ...>`)."""
    return re.sub(r":\s*<.*>$", "", one_line(err))


def _transient(err: BaseException | None) -> TransientError | None:
    """`err` as a `TransientError` (its message the status, `503 Service Unavailable`, or the
    connection's failure) where asking again may well succeed: a dropped connection, a 5xx
    answer but 501 (not implemented: it stays so) or a 429, as DESIGN.md and the S3 adapter
    retry them; a 500 too, which AWS's SDKs retry (a server restarting, a backend timing
    out), and a file whose 500 lasts costs a few seconds of backoff. None for any other."""
    if _dropped(err):
        return TransientError(_said(err))
    status = getattr(err, "status", None)
    if not isinstance(status, int) or not (status == 429 or (status >= 500 and status != 501)):
        return None
    headers = getattr(err, "headers", None) or {}
    message = str(getattr(err, "message", "") or "")
    return TransientError(f"{status} {message}".strip(), retry_after=retry_after(headers))


def _skip(reader: BinaryIO, count: int) -> None:
    """Read and drop `count` bytes of `reader` (a server that ignored a Range header)."""
    while count > 0:
        chunk = reader.read(min(count, CHUNK_SIZE))
        if not chunk:
            raise PermanentError("the file ended before the offset to resume from")
        count -= len(chunk)
