"""Fetch a remote file into a temporary file beside its destination, resumably.

A download streams into a temp file in the destination's folder and is hashed as it is
written; the engine checks the hash and renames the file into place. A large download
(more than one `RESUME_BLOCK`) is also journaled: before its first byte a row names the temp
file and the remote version being fetched, and at every block boundary the block is flushed
to disk and its blake3 appended to the row. If the run dies (a kill, a crash, a lost
network), the next run for the same version re-hashes the blocks the journal vouches for,
keeps the longest prefix that still matches (a torn or tampered block and everything after
it is fetched again), and asks the remote only for the rest, with the version pinned
(`If-Match` on S3) so two versions are never spliced together. The whole file is then still
checked against the object's blake3 before the rename, so a resumed file is trusted no
more than a fresh one. Where that blake3 is unknown (a plain folder, memory://, an S3 object
another tool wrote), the partial is dropped and the file fetched whole: only a hash of the
whole object can tell a spliced file, and a version token (size and mtime) rewritten with
the same value, by `touch -r` or within a coarse clock's tick, let the prefix of one version
be completed with the rest of another.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, BinaryIO, Protocol

from fsync.errors import DiskFull, RemoteChanged, VerificationError
from fsync.fileops import NO_SPACE, create_exclusive, unlink_quietly
from fsync.hashing import new_hasher
from fsync.model import PartialDownload, RelPath, RemoteEntry
from fsync.paths import TEMP_TOKEN, is_temp_name, temp_name, temp_token
from fsync.remote.base import Remote, served_entry

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from blake3 import blake3

CHUNK = 1 << 20
"""Bytes per read from the remote: memory per download stays at one chunk."""
RESUME_BLOCK = 16 << 20
"""Bytes between checkpoints of a journaled download; files larger than this are journaled.
Each checkpoint costs an fsync and a row update, so this keeps them to ~1% of the time."""
_DIGEST = 32


class DownloadJournal(Protocol):
    """Where partial downloads are remembered (the manifest's transfer journal)."""

    def partial(self, path: RelPath) -> PartialDownload | None:
        """The partial download of `path`, if one is journaled."""
        ...

    def begin_download(self, partial: PartialDownload) -> None:
        """Record a partial download, durably, before its first byte is written."""
        ...

    def checkpoint(self, path: RelPath, blocks: bytes) -> None:
        """Set the digests of the blocks of `path`'s partial file that are on disk."""
        ...

    def end_download(self, path: RelPath) -> None:
        """Forget the partial download of `path`."""
        ...

    def partials(self) -> list[PartialDownload]:
        """Every journaled partial download."""
        ...

    def forget_unplaced_identities(self, root: str) -> None:
        """Withdraw the identities of the publish intents whose temp was not renamed into
        place under `root`, before temp files are removed."""
        ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A verified-size temp file holding a remote file: its blake3, and the entry the backend
    served with the bytes (S3 answers a GET with the object's metadata), if any."""

    temp: str
    digest: str
    size: int
    served: RemoteEntry | None
    resumed_at: int = 0
    """The byte the transfer started from (0 unless a partial file was continued)."""


class Fetcher:
    """Fetches remote files into temp files, journaling and resuming large ones.

    Thread-safe as long as no two threads fetch the same path at once (the engine never
    runs two actions on one path).
    """

    def __init__(
        self,
        remote: Remote,
        journal: DownloadJournal | None,
        root: str,
        *,
        file_mode: int,
        on_bytes: Callable[[RelPath, int], None],
        block_size: int = RESUME_BLOCK,
    ) -> None:
        self.remote = remote
        self.journal = journal
        self.root = root
        self.file_mode = file_mode
        self.on_bytes = on_bytes
        self.block_size = block_size

    def fetch(self, path: RelPath, folder: str, expect: RemoteEntry) -> Fetched:
        """Fetch `path` (the version `expect` lists) into a new temp file in `folder`.

        A failure that a re-run can continue from (a dropped network, a kill) leaves a
        journaled partial file behind; any other failure removes what was written.
        """
        if self.journal is None:
            return self._fetch_whole(path, folder, expect)
        journaled = expect.size > self.block_size and bool(expect.fingerprint)
        partial = self.journal.partial(path)
        if partial is not None:
            # A store without hashes can never check a resumed file whole (`_checkable`).
            resumable = journaled and self.remote.capabilities.stores_digest
            if resumable and self._same_download(partial, expect):
                resumed = self._resume(partial, folder, expect)
                if resumed is not None:
                    return resumed
            # Not continued (another version, even a small one): its file goes now, or
            # nothing would ever remove it (after a killed run's intent naming its inode
            # lost that identity: `drop_abandoned_temps`).
            self.journal.forget_unplaced_identities(self.root)
            self.discard(path, _temp_path(folder, partial.temp))
        if not journaled:
            return self._fetch_whole(path, folder, expect)
        return self._fetch_journaled(path, folder, expect)

    def finish(self, path: RelPath) -> None:
        """The temp file was renamed into place (or never journaled): forget it."""
        if self.journal is not None:
            self.journal.end_download(path)

    def discard(self, path: RelPath, temp: str | None) -> None:
        """Remove a temp file (None: none to remove) and its journal row."""
        if temp is not None and is_temp_name(os.path.basename(temp)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self.finish(path)

    # -- the three ways of fetching ---------------------------------------------------------

    def _fetch_whole(self, path: RelPath, folder: str, expect: RemoteEntry) -> Fetched:
        temp = _new_temp(folder)
        try:
            with os.fdopen(create_exclusive(temp), "wb") as out:
                with _gone_is_raced(path), self.remote.open_read(path, expect=expect) as src:
                    hasher = new_hasher()
                    size = self._copy(path, src, out, hasher, None)
                    served = served_entry(src)
                self._seal(out)
        except BaseException:
            unlink_quietly(temp)
            raise
        return Fetched(temp, hasher.hexdigest(), size, served)

    def _fetch_journaled(self, path: RelPath, folder: str, expect: RemoteEntry) -> Fetched:
        assert self.journal is not None
        temp = _new_temp(folder)
        fd = create_exclusive(temp)
        partial = PartialDownload(
            path,
            self.remote.url,
            expect.fingerprint,
            expect.size,
            os.path.basename(temp),
            self.block_size,
            b"",
            time.time(),
        )
        try:
            self.journal.begin_download(partial)
        except BaseException:
            os.close(fd)
            unlink_quietly(temp)
            raise
        with os.fdopen(fd, "wb") as out:
            return self._continue(partial, temp, out, hasher=new_hasher(), offset=0, expect=expect)

    def _resume(self, partial: PartialDownload, folder: str, expect: RemoteEntry) -> Fetched | None:
        """Continue `partial` after its verified prefix; None when it cannot be continued
        (its file is gone or the remote's answer cannot be checked whole)."""
        assert self.journal is not None
        temp = os.path.join(folder, partial.temp)
        try:
            fd = os.open(temp, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None  # gone, or not a plain file any more: start afresh
        with os.fdopen(fd, "r+b") as out:
            hasher = new_hasher()
            # Leave the last byte to the remote: a ranged read must ask for at least one.
            limit = (expect.size - 1) // partial.block_size
            kept = _verified_prefix(out, partial, hasher, limit)
            offset = kept * partial.block_size
            blocks = partial.blocks[: kept * _DIGEST]
            out.truncate(offset)
            out.seek(offset)
            self.journal.checkpoint(partial.path, blocks)
            if offset:
                self.on_bytes(partial.path, offset)  # progress counts the kept prefix
            resumed = replace(partial, blocks=blocks)
            try:
                return self._continue(
                    resumed, temp, out, hasher=hasher, offset=offset, expect=expect
                )
            except _Unverifiable:
                return None

    def _continue(
        self,
        partial: PartialDownload,
        temp: str,
        out: BinaryIO,
        *,
        hasher: blake3,
        offset: int,
        expect: RemoteEntry,
    ) -> Fetched:
        """Fetch from `offset` into `out`, checkpointing blocks; `hasher` has the prefix."""
        try:
            with (
                _gone_is_raced(partial.path),
                self.remote.open_read(partial.path, offset=offset, expect=expect) as src,
            ):
                served = served_entry(src)
                if offset and not self._checkable(expect, served):
                    raise _Unverifiable
                checkpoints = _Checkpoints(self.journal, partial)
                size = offset + self._copy(partial.path, src, out, hasher, checkpoints)
                served = served_entry(src)  # as the whole read found it (stale metadata)
            self._seal(out)
        except (_Unverifiable, RemoteChanged, VerificationError, FileNotFoundError):
            self.discard(partial.path, temp)  # this version cannot be finished from here
            raise
        except BaseException as exc:
            if (offset == 0 and not partial.blocks and out.tell() == 0) or not self._keeps(exc):
                # Emptied first: an unlinked file still open holds its space, which the
                # journal's write that forgets it needs on a full disk.
                with contextlib.suppress(OSError):
                    out.truncate(0)
                self.discard(partial.path, temp)  # nothing worth keeping
            raise
        return Fetched(temp, hasher.hexdigest(), size, served, resumed_at=offset)

    def _keeps(self, failure: BaseException) -> bool:
        """Whether a partial file cut short by `failure` is worth keeping for a later run.

        Not on a full disk: kept, it held the space the rest of the run needed, and every
        run after failed the same way, a partial fetched whole again each time. Nor from a
        remote that stores no blake3, which no later run can check a continued file against
        (`_checkable`): its partials were dropped at the next run, after holding the space.
        """
        # (a write of the journal, which holds no errno, may meet the full disk first; free
        # space alone tells nothing: a network failure on a nearly full disk keeps its part)
        full = isinstance(failure, DiskFull) or (
            isinstance(failure, OSError) and failure.errno in NO_SPACE
        )
        return self.remote.capabilities.stores_digest and not full

    # -- bytes -------------------------------------------------------------------------------

    def _copy(
        self,
        path: RelPath,
        src: BinaryIO,
        out: BinaryIO,
        hasher: blake3,
        checkpoints: _Checkpoints | None,
    ) -> int:
        """Copy `src` to its end into `out`, hashing; return the bytes copied."""
        copied = 0
        while chunk := src.read(CHUNK):
            hasher.update(chunk)
            if checkpoints is None:
                out.write(chunk)
            else:
                checkpoints.write(out, chunk)
            copied += len(chunk)
            self.on_bytes(path, len(chunk))
        return copied

    def _seal(self, out: BinaryIO) -> None:
        """Give the finished temp file the mode downloads get and make it durable."""
        out.flush()
        os.fchmod(out.fileno(), self.file_mode)
        os.fsync(out.fileno())

    def _checkable(self, expect: RemoteEntry, served: RemoteEntry | None) -> bool:
        """Whether a resumed file can be checked whole: against the object's known blake3."""
        return bool(expect.digest or (served.digest if served is not None else None))

    def _same_download(self, partial: PartialDownload, expect: RemoteEntry) -> bool:
        return (
            partial.source == self.remote.url
            and partial.fingerprint == expect.fingerprint
            and partial.size == expect.size
            and partial.block_size > 0
            and _temp_path("", partial.temp) is not None
        )


def drop_stale_partials(journal: DownloadJournal, root: str, keep: set[RelPath]) -> int:
    """Remove the partial downloads of paths not in `keep` (the paths this run downloads):
    their file was deleted or changed on the remote, or the local file changed, so nothing
    will continue them. Returns how many were removed."""
    stale = [partial for partial in journal.partials() if partial.path not in keep]
    if stale:  # (a killed run's intent may name a temp's inode: `drop_abandoned_temps`)
        journal.forget_unplaced_identities(root)
    for partial in stale:
        temp = _temp_path(os.path.dirname(os.path.join(root, partial.path)), partial.temp)
        if temp is not None:
            unlink_quietly(temp)
        journal.end_download(partial.path)
    return len(stale)


def drop_missing_partials(journal: DownloadJournal, root: str) -> int:
    """Forget the partial downloads whose temp file is gone (`fsync cleanup` removed it, or
    a person did): nothing is left to continue, and `fsync status` would list the bytes as
    on disk. A temp file is created before its row is written, so a download starting
    meanwhile is never forgotten. Returns how many were forgotten."""
    dropped = 0
    for partial in journal.partials():
        temp = _temp_path(os.path.dirname(os.path.join(root, partial.path)), partial.temp)
        if temp is None or not os.path.lexists(temp):
            journal.end_download(partial.path)
            dropped += 1
    return dropped


def drop_abandoned_temps(
    journal: DownloadJournal,
    root: str,
    temps: Collection[RelPath],
    tokens: Callable[[], Collection[str]],
) -> int:
    """Remove the temp files `temps` (found under `root` by a scan) that a run whose
    `TEMP_TOKEN` is in `tokens()` made, other than this process: this root's runs
    (`Manifest.temp_tokens`), killed outright, or ended without removing them (a temp that
    could not be removed: a folder made append-only). Returns how many.
    `tokens` is asked only when there are temp files to judge: most runs meet none.

    Call it holding the root's lock (no run of the root is then writing them), after this
    run settled its publish intents (the others' lose their identities). A temp file of
    another token is not this root's to remove (another root's run may be writing it into
    this folder as its remote, or it is a user's file of that form), nor is one the journal
    keeps for a download to continue (`drop_stale_partials` decides on those).
    """
    if not temps:
        return 0
    owners = set(tokens()) - {TEMP_TOKEN}
    if not owners:
        return 0
    kept = {posixpath.join(posixpath.dirname(p.path), p.temp) for p in journal.partials()}
    doomed = [
        path
        for path in temps
        if temp_token(posixpath.basename(path)) in owners and path not in kept
    ]
    if doomed:
        # This run settled its own remote's intents; a killed run's of another remote may
        # still name these temps' inodes, which a new file at their path could take.
        journal.forget_unplaced_identities(root)
    for path in doomed:
        unlink_quietly(os.path.join(root, path))
    return len(doomed)


class _Unverifiable(Exception):
    """A resumed read whose whole content could not be checked: fetch the file whole."""


class _Checkpoints:
    """Writes a journaled download, flushing and recording each block as it completes."""

    def __init__(self, journal: DownloadJournal | None, partial: PartialDownload) -> None:
        assert journal is not None
        self._journal = journal
        self._path = partial.path
        self._block_size = partial.block_size
        self._blocks = bytearray(partial.blocks)
        self._hasher = new_hasher()
        self._in_block = 0

    def write(self, out: BinaryIO, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._block_size - self._in_block)
            piece = view[:take]
            out.write(piece)
            self._hasher.update(piece)
            self._in_block += take
            view = view[take:]
            if self._in_block == self._block_size:
                self._checkpoint(out)

    def _checkpoint(self, out: BinaryIO) -> None:
        # The block's bytes reach the disk before the journal vouches for them.
        out.flush()
        os.fsync(out.fileno())
        self._blocks += self._hasher.digest()
        self._journal.checkpoint(self._path, bytes(self._blocks))
        self._hasher = new_hasher()
        self._in_block = 0


def _verified_prefix(out: BinaryIO, partial: PartialDownload, hasher: blake3, limit: int) -> int:
    """How many leading blocks (at most `limit`) of the partial file still hash to the
    journal's digests; their bytes are fed to `hasher`."""
    kept = 0
    for i in range(min(limit, len(partial.blocks) // _DIGEST)):
        block = out.read(partial.block_size)
        if len(block) != partial.block_size:
            break
        check = new_hasher()
        check.update(block)
        if check.digest() != partial.blocks[i * _DIGEST : (i + 1) * _DIGEST]:
            break
        hasher.update(block)
        kept += 1
    return kept


@contextlib.contextmanager
def _gone_is_raced(path: RelPath) -> Iterator[None]:
    """A remote file gone since the listing as `RemoteChanged`: another writer moved or
    deleted it in between, a race like a replaced file's (a conflict the next run plans
    again from a new listing), not a failure of this run."""
    try:
        yield
    except FileNotFoundError as err:
        raise RemoteChanged(f"{path}: gone from the remote since it was listed") from err


def _temp_path(folder: str, name: str) -> str | None:
    """`name` in `folder` if it is a plain temp-file name (a journal row is data, and data
    never names a file elsewhere to remove); else None."""
    if is_temp_name(name) and os.path.basename(name) == name:
        return os.path.join(folder, name)
    return None


def _new_temp(folder: str) -> str:
    return os.path.join(folder, temp_name())
