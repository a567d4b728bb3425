"""The contract every remote adapter meets, and the flags that say what it can do.

The engine and the app depend on this module only, never on an adapter's class: they branch
on `Remote.capabilities`. Adapters raise builtin `FileNotFoundError`/`PermissionError`, or
`fsync.errors.TransientError`/`PermanentError`/`RemoteChanged`; foreign exception types
(botocore, aiohttp, fsspec) never leave the adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from fsync.errors import UnsafePathError
from fsync.model import Digest, PendingUpload, RelPath, RemoteEntry
from fsync.paths import is_temp_name as is_temp_name
from fsync.paths import to_relpath

IN_USE_SECONDS = 120.0
"""A temp file changed this recently may belong to a running fsync, so `cleanup` without
`--older-than` leaves it: a writer changes its file with every chunk, and publishes a staged
one within its batch (seconds)."""


def relpath_from_key(name: str) -> RelPath:
    """Map one listed name (relative to the root) to a `RelPath`; raise `UnsafePathError` if not.

    Beyond `paths.to_relpath`'s checks, the name must be valid UTF-8 and already NFC: adapters
    address objects by `RelPath`, so a name that normalises to a different string could be
    listed but never read, replaced or deleted again (and two such names could collide).
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError(f"{name!r}: is not valid UTF-8") from None
    rel = to_relpath(name)
    if rel != name:
        raise UnsafePathError(f"{name!r}: is not NFC-normalised Unicode")
    return rel


def nfc_twin(key: str) -> tuple[RelPath, RelPath] | None:
    """For a key refused only for its Unicode form: the `RelPath` it names once
    NFC-normalised, and that path down to the first name the key spells otherwise (a folder,
    or the file itself). None for any other key.

    Another tool may hold files under names that differ from paths fsync syncs only in
    Unicode form (macOS writes names decomposed): to a user, and to macOS, the same names.
    fsync cannot address such a key, so what lies at and below that first name is left alone
    on both sides while the key exists: not fetched, not taken for deleted, and not sent
    beside it under a second spelling of the name.
    """
    try:
        key.encode("utf-8")
        rel = to_relpath(key)
    except (UnicodeEncodeError, UnsafePathError):
        return None
    if rel == key:
        return None
    names = rel.split("/")
    depth = next(i for i, name in enumerate(key.split("/")) if name != names[i])
    return rel, RelPath("/".join(names[: depth + 1]))


def served_entry(reader: object) -> RemoteEntry | None:
    """The entry a reader from `Remote.open_read` learnt while serving the bytes, if any.

    A backend whose reads return metadata (S3 answers a GET with the object's ETag, blake3,
    mtime and mode) exposes it as the reader's `entry` attribute, which saves a HEAD per
    download; other readers have none.
    """
    entry = getattr(reader, "entry", None)
    return entry if isinstance(entry, RemoteEntry) else None


def same_version(current: RemoteEntry | None, expect: RemoteEntry | None) -> bool:
    """True when `current` is still the version `expect` recorded (None on both: absent).

    Size and fingerprint decide; a digest is ignored because one side may have fetched it and
    the other not.
    """
    if current is None or expect is None:
        return current is None and expect is None
    return current.size == expect.size and current.fingerprint == expect.fingerprint


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do; tests and the engine branch on these, not on types."""

    stores_digest: bool = False
    """blake3 (and mtime, mode) travel in object metadata and come back from `read_digest`."""
    sets_mtime: bool = False
    """A written file takes the local mtime, so `RemoteEntry.mtime_ns` round-trips."""
    server_side_copy: bool = True
    writable: bool = True
    """Files can be written and deleted there; False for a read-only tree (http://), which
    only a pull may use."""
    reports_sent: bool = False
    """`put` tells its `on_sent` the bytes the store took, and the caller shows progress by
    those: S3 reads parts ahead of sending them (`transfers` of them), and progress shown by
    reads ran seconds ahead of the upload, then sat still at 100% while parts went out."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What is known about content being written: published as metadata where possible."""

    size: int
    digest: Digest
    mtime_ns: int
    mode: int = 0o100644


@dataclass(frozen=True, slots=True)
class Listing:
    """One recursive listing of the remote root.

    `entries` holds every regular object under the root by `RelPath`; `refused` holds the
    raw keys that cannot be mapped to a `RelPath` (e.g. `../x`) with the reason, so a pull can
    report them instead of writing outside the root. `skipped` holds the paths where the
    remote has something other than a file or folder, with what it is, a noun phrase ("a
    symbolic link", "a special file"): as a local tree's links, they are left alone, neither
    fetched nor followed, and not replaced or taken for deleted. `incomplete` holds the
    folders that could not be read (access denied, a path too long to open), with the
    system's words for why ("Permission denied"): what lies below them is unknown, as below a
    local folder the scanner cannot read, so it is left alone on both sides, never taken for
    deleted. `unread_files` names those of them that are files (an http file whose HEAD
    failed): the error then says so. `temps` holds the fsync temp files (`is_temp_name`,
    regular files only) the walk met, on a remote that writes them under a temp name and can
    remove them (`TempRemover`): never synced, but a killed run's are removed by the next run
    of its root, which needs no second walk to find them.
    """

    entries: dict[RelPath, RemoteEntry]
    refused: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[RelPath, str], ...] = ()
    incomplete: tuple[tuple[RelPath, str], ...] = ()
    temps: tuple[RelPath, ...] = ()
    unread_files: frozenset[RelPath] = frozenset()


def skipped_warning(path: RelPath, what: str) -> str:
    """The warning for a path the remote skips (`Listing.skipped`), `what` saying what is
    there: the remote's counterpart of the scanner's "skipping symlink PATH"."""
    return f"skipping {path} on the remote: it is {what} (fsync neither follows nor replaces it)"


def incomplete_error(why: str, *, file: bool = False) -> str:
    """The error for a folder the remote could not read (`Listing.incomplete`), or a `file`
    (`Listing.unread_files`: calling it a folder misled), `why` saying why: the remote's
    counterpart of the scanner's "cannot read (...)"."""
    if file:
        return f"cannot read this file on the remote ({why}); it is left alone"
    return f"cannot read this folder on the remote ({why}); what it holds is left alone"


class UploadJournal(Protocol):
    """Where an adapter records its unfinished uploads so a later run can continue them.

    The manifest implements it (`fsync.manifest.journal`); adapters see only this protocol.
    Methods are called from many transfer threads at once and must be thread-safe.
    """

    def for_target(self, target: str) -> list[PendingUpload]:
        """Every journaled upload of `target`, oldest first."""
        ...

    def start(self, upload: PendingUpload) -> None:
        """Record a newly created upload (replacing a row with the same upload id)."""
        ...

    def finish(self, upload_id: str) -> None:
        """Forget an upload: completed, aborted, or found gone (unknown ids are fine)."""
        ...

    def all(self) -> list[PendingUpload]:
        """Every journaled upload, oldest first."""
        ...


class Remote(Protocol):
    """A tree of files addressed by `RelPath` under one root URL."""

    url: str
    """The root's URL, without any password: what messages name the remote by."""
    capabilities: Capabilities

    @property
    def key(self) -> str:
        """What the state database knows this remote by: its URL, and the endpoint where
        one is given. `s3://b/p` on AWS and on a Ceph cluster are two trees: a base shared
        between them would make a pull from the one less filled delete local files."""
        ...

    def list(self) -> Listing:
        """List every object under the root in one recursive listing (no per-object calls).

        A root that does not exist lists as empty.
        """
        ...

    def root_exists(self) -> bool:
        """True if the root exists (a folder on filesystems; always True on object stores)."""
        ...

    def stat(self, path: RelPath) -> RemoteEntry | None:
        """The current entry for `path`, or None if absent."""
        ...

    def read_digest(self, path: RelPath) -> Digest | None:
        """The blake3 stored with the object, or None where the backend keeps none."""
        ...

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """A streaming reader of the object's bytes from `offset` on; raises
        `FileNotFoundError` if absent, and `RemoteChanged` when `expect` is given and the
        object is no longer that version (a resumed download must not splice two versions).
        """
        ...

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
        on_sent: Callable[[int], None] | None = None,
    ) -> RemoteEntry:
        """Write `source` to `path` atomically and return the new entry.

        The bytes are staged (a temporary name, or an unfinished upload) and become visible
        under `path` only after `before_publish()` returns; if it raises, the staged bytes are
        discarded and the exception propagates. Just before publishing, the current object must
        still match `expect` (None: must be absent), else `RemoteChanged` is raised and nothing
        is overwritten. `on_held` hears how many bytes of `source` the store already held and
        were not sent again (an upload continued from an earlier run), for the run's count of
        bytes sent; a remote that never continues an upload never calls it. Once `halted` is
        set (the run is abandoned), a remote that waits other than on reads of `source` (parts
        in flight, `--bw-limit`) stops waiting and raises `Halted`, publishing nothing; one
        that only reads `source` stops where reading it raises. Once `stopping()` is true
        (a graceful stop: a watch's Ctrl-C), a remote that sends in parts starts no further
        part, waits for those going out, and raises `Halted`, leaving the upload to be
        continued; others finish the file. A remote with `Capabilities.reports_sent` tells
        `on_sent` each run of bytes the store took (held parts too); others never call it.
        """
        ...

    def delete(self, path: RelPath, *, expect: RemoteEntry | None) -> None:
        """Delete `path` if it still matches `expect`; a missing object is not an error.

        Raises `RemoteChanged` if the object changed since `expect` was seen.
        """
        ...

    def copy(self, src: RelPath, dst: RelPath) -> RemoteEntry:
        """Copy `src` to `dst` inside the remote (server-side where possible)."""
        ...

    def abort_stale_uploads(self, older_than: float | None = None) -> int:
        """Discard unfinished writes under the root (S3 multipart uploads, temporary files)
        started at least `older_than` seconds ago, or all with None; return how many."""
        ...

    def flush(self) -> None:
        """Make every write so far durable; the engine calls it before recording outcomes,
        so the manifest never vouches for a write the store could still lose."""
        ...

    def close(self) -> None:
        """Release connections and clean up."""
        ...


@runtime_checkable
class Mover(Protocol):
    """An optional ability of a remote (rclone's `Mover`): rename an object, copying nothing.

    Filesystem remotes have it; object stores do not (a move there is a copy and a delete).
    Callers test `isinstance(remote, Mover)`, as they test capability flags.
    """

    def move(
        self, src: RelPath, dst: RelPath, *, expect: RemoteEntry | None, prune: bool = False
    ) -> RemoteEntry:
        """Rename `src` to `dst` if `src` still matches `expect`; return the entry at `dst`.

        Raises `RemoteChanged` if `src` changed since `expect` was seen, `FileNotFoundError`
        if it is absent, `FileExistsError` if something is at `dst` (never replaced). The
        rename is durable after the next `Remote.flush`. Folders left empty at `src` stay,
        unless `prune`: then they are removed up to the root, as `Remote.delete` does (a
        rename in the synced tree; a store that holds a sync root and its backup dir must
        keep the root, even empty).
        """
        ...


@runtime_checkable
class Resumer(Protocol):
    """An optional ability of a remote: it journals its chunked uploads (`UploadJournal`)
    so a later run continues them, and keeps them on the store until then (S3 multipart
    uploads, billed for their parts). Callers test `isinstance(remote, Resumer)`.
    """

    def abort_journaled(self, stale: Callable[[RelPath, PendingUpload], bool]) -> int:
        """Abort the journaled uploads under the root for which `stale(path, upload)` is
        true; return how many were aborted.

        Reads the journal only: no request unless one is stale. Best effort, as every abort
        of a run: an upload that cannot be aborted stays journaled, for a later run (or
        `fsync cleanup`) to abort, and `fsync status` lists it meanwhile.
        """
        ...


@runtime_checkable
class RootMaker(Protocol):
    """An optional ability of a remote with real folders whose root may not exist yet (a
    folder remote): it makes the root. Callers test `isinstance(remote, RootMaker)`."""

    def make_root(self) -> None:
        """Make the root and the folders above it where missing.

        Raises as `errors.unusable_root` says where it cannot be made: a push to a root
        below a folder it may not write failed once per file, each with the same error
        (and a watch retried each, forever).
        """
        ...


@runtime_checkable
class TempRemover(Protocol):
    """An optional ability of a remote whose writes go through temp files it lists
    (`Listing.temps`): it removes one. A folder remote has it; S3 has no temp objects (its
    unfinished writes are multipart uploads, `Resumer`). Callers test
    `isinstance(remote, TempRemover)`.
    """

    def remove_temp(self, path: RelPath) -> bool:
        """Remove the temp file at `path` (a `Listing.temps` path); True if it was removed.

        Only a regular file whose name is a temp name goes: `ValueError` for any other name.
        Best effort: one gone already, or that cannot be removed (access denied, a link
        among its parent folders, no longer a file), stays, and False says so.
        """
        ...


@runtime_checkable
class TokenHistory(Protocol):
    """An optional ability of a remote whose fingerprints gained a part in some release: it
    names the fingerprint an older fsync recorded for a version. A folder remote has it (the
    change time joined size, mtime and inode). Planning takes a base holding that older
    token for the version it names, so the upgrade costs no read of every file. Callers test
    `isinstance(remote, TokenHistory)`.
    """

    def older_token(self, entry: RemoteEntry, recorded_ns: int) -> str | None:
        """The fingerprint an older fsync recorded for the version `entry` names, if that
        version can be the one it recorded: unchanged since `recorded_ns`, by when every base
        in the older form was recorded. None where it changed since, or nothing tells."""
        ...


class Staged(Protocol):
    """Bytes a `Stager` wrote under a temporary name, not yet visible under their path."""

    entry: RemoteEntry
    """The staged bytes' entry: until published, what the path will hold (but for what the
    publish itself moves, a folder's change time); once published, what it holds."""

    def publish(self, expect: RemoteEntry | None) -> RemoteEntry:
        """Put the staged bytes in place if the path is still `expect` (None: absent); the
        entry the path then has.

        Raises `RemoteChanged` and discards them if it is not; any failure discards them.
        """
        ...

    def discard(self) -> None:
        """Remove the staged bytes (nothing if already published or discarded)."""
        ...


@runtime_checkable
class Stager(Protocol):
    """An optional ability of a remote: write now, publish after one sync for a whole batch.

    A filesystem makes a file durable before its rename either with one `fsync` per file
    (a disk flush each, and the thread waiting on it) or by writing many files, syncing the
    filesystem once, then renaming them all. The engine takes the second way where a remote
    has it: it stages uploads from its workers, calls `Remote.flush` (which makes every
    staged byte durable), and only then publishes them and records the batch.
    """

    @property
    def staging(self) -> bool:
        """True where staging is cheaper than a sync per file: the engine stages only then."""
        ...

    def stage(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        *,
        before_publish: Callable[[], None],
    ) -> Staged:
        """Write `source` under a temporary name beside `path`, with `meta`'s mode and mtime.

        `before_publish()` runs once the bytes are written (if it raises they are discarded
        and the exception propagates). The bytes are durable only after the next `flush`.
        """
        ...
