"""The transfer journal: unfinished uploads, partial downloads and unrecorded conflict copies
of one local root, kept in its state database.

Remote adapters and the engine's workers call it from their transfer threads while the
engine's main thread writes the manifest, so it has its own SQLite connection (WAL lets both
work on one database file) used under a lock. Every call commits on its own: a journal row
must be durable before the transfer it names moves a byte, or a kill could leave an upload
nobody remembers or a partial file nobody can trust.

Which paths have a partial download is also kept in memory, so that the two questions every
download asks (is there a partial to continue? forget it now that the file is in place)
cost no SQL when the answer is no, as it is for nearly every file. Each was a statement
under the lock, and the DELETE a write that waited for the engine's manifest transaction
while the other transfer threads queued on the lock (a moto pull of 2,010 files, 4 runs
each way: 12.4 s and 11.2 CPU-s against 12.8 s and 11.8). Only a pull adds rows, and it
holds the root's lock, so what this process read at its first download question stays true.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator
from types import TracebackType
from typing import Any

from fsync.errors import PermanentError
from fsync.fileops import file_identity
from fsync.manifest.db import DB_NAME, connect, failed_access, ns_to_db, state_dir
from fsync.model import PartialDownload, PendingUpload, PublishIntent, RelPath

_COLUMNS = "target, upload_id, digest, size, part_size, created, metadata, owner"
_CHECKPOINT_PAGES = 64
"""WAL pages after which a commit of the journal's connection checkpoints (see
`_thread_shared`)."""
_PARTIAL_COLUMNS = "path, source, fingerprint, size, temp, block_size, blocks, created"


class TransferJournal:
    """Unfinished uploads by target (`fsync.remote.base.UploadJournal`), partial downloads
    by local path (`fsync.transfer.download.DownloadJournal`) and remote conflict copies not
    yet recorded, by remote and path (`fsync.transfer.copies.CopyJournal`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._path: str = conn.execute("PRAGMA database_list").fetchone()[2]
        self._lock = threading.Lock()
        self._downloads: set[str] | None = None  # paths with a row; read at first need

    @classmethod
    def open(cls, root: str) -> TransferJournal:
        """The journal in `root`'s state database (created and migrated if needed).

        Raises `ConfigError` like `Manifest.open`.
        """
        path = os.path.join(state_dir(root), DB_NAME)
        return cls(_thread_shared(connect(path)))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TransferJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def for_target(self, target: str) -> list[PendingUpload]:
        """Every journaled upload of `target`, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM upload_journal WHERE target = ?"
                " ORDER BY created, upload_id",
                (target,),
            ).fetchall()
        return [PendingUpload(*row) for row in rows]

    def start(self, upload: PendingUpload) -> None:
        """Record a newly created upload (a row with the same upload id is replaced)."""
        with self._lock:
            self._conn.execute(
                f"INSERT OR REPLACE INTO upload_journal ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload.target,
                    upload.upload_id,
                    upload.digest,
                    upload.size,
                    upload.part_size,
                    upload.created,
                    upload.metadata,
                    upload.owner,
                ),
            )

    def finish(self, upload_id: str) -> None:
        """Forget an upload (completed, aborted or gone); an unknown id is fine."""
        with self._lock:
            self._conn.execute("DELETE FROM upload_journal WHERE upload_id = ?", (upload_id,))

    def all(self) -> list[PendingUpload]:
        """Every journaled upload, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM upload_journal ORDER BY created, upload_id"
            ).fetchall()
        return [PendingUpload(*row) for row in rows]

    # -- partial downloads -----------------------------------------------------------------

    def _download_paths(self) -> set[str]:
        """The paths that have a download row (call under the lock)."""
        if self._downloads is None:
            rows = self._conn.execute("SELECT path FROM download_journal")
            self._downloads = {path for (path,) in rows}
        return self._downloads

    def partial(self, path: RelPath) -> PartialDownload | None:
        """The partial download of `path`, if one is journaled."""
        with self._lock:
            if path not in self._download_paths():
                return None
            row = self._conn.execute(
                f"SELECT {_PARTIAL_COLUMNS} FROM download_journal WHERE path = ?", (path,)
            ).fetchone()
        return None if row is None else _partial(row)

    def begin_download(self, partial: PartialDownload) -> None:
        """Record a partial download (replacing any row of the same path)."""
        with self._lock:
            paths = self._download_paths()
            self._conn.execute(
                f"INSERT OR REPLACE INTO download_journal ({_PARTIAL_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    partial.path,
                    partial.source,
                    partial.fingerprint,
                    partial.size,
                    partial.temp,
                    partial.block_size,
                    partial.blocks,
                    partial.created,
                ),
            )
            paths.add(partial.path)

    def checkpoint(self, path: RelPath, blocks: bytes) -> None:
        """Set the digests of the blocks of `path`'s partial file that are on disk."""
        with self._writing():
            self._conn.execute(
                "UPDATE download_journal SET blocks = ? WHERE path = ?", (blocks, path)
            )

    def end_download(self, path: RelPath) -> None:
        """Forget the partial download of `path` (finished or discarded); unknown is fine."""
        with self._writing():
            paths = self._download_paths()
            if path in paths:
                self._conn.execute("DELETE FROM download_journal WHERE path = ?", (path,))
                paths.discard(path)

    def partials(self) -> list[PartialDownload]:
        """Every journaled partial download, by path."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_PARTIAL_COLUMNS} FROM download_journal ORDER BY path"
            ).fetchall()
        return [_partial(row) for row in rows]

    # -- conflict copies on the remote -----------------------------------------------------

    def copy_made(self, source: str, path: RelPath, fingerprint: str) -> RelPath | None:
        """The conflict copy journaled for version `fingerprint` of `path` on the remote
        `source` (its key), or None; whether the copy was made is for the caller to see."""
        with self._lock:
            row = self._conn.execute(
                "SELECT copy FROM conflict_copies WHERE source = ? AND path = ?"
                " AND fingerprint = ?",
                (source, path, fingerprint),
            ).fetchone()
        return None if row is None else RelPath(row[0])

    def copying(self, source: str, path: RelPath, fingerprint: str, copy: RelPath) -> None:
        """Record that version `fingerprint` of `path` is about to be copied to `copy` on the
        remote `source` (replacing any row of `path`); call it before making the copy."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO conflict_copies (source, path, fingerprint, copy)"
                " VALUES (?, ?, ?, ?)",
                (source, path, fingerprint, copy),
            )

    def drop_copies(self, source: str, keep: Collection[RelPath]) -> int:
        """Forget the conflict copies journaled for `source` except those of the paths in
        `keep` (a plan that no longer keeps a copy of a path will never record one); return
        how many were forgotten."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path FROM conflict_copies WHERE source = ?", (source,)
            ).fetchall()
            stale = [(source, path) for (path,) in rows if path not in keep]
            self._conn.executemany(
                "DELETE FROM conflict_copies WHERE source = ? AND path = ?", stale
            )
        return len(stale)

    # -- publish intents -------------------------------------------------------------------

    def intend(self, source: str, intents: Collection[PublishIntent]) -> None:
        """Record that `intents` are about to be published against the remote `source` (its
        key), in one transaction (replacing rows of the same paths); call it before any of
        them takes its name. The rows go when their outcomes are recorded
        (`Manifest.settle_intents`), or at the next run's start (`transfer.intents`)."""
        if not intents:
            return
        rows = [
            (
                source,
                i.path,
                "up" if i.upload else "down",
                i.digest,
                i.size,
                i.fingerprint,
                None if i.mtime_ns is None else ns_to_db(i.mtime_ns),
                i.dev or None,
                i.ino or None,
            )
            for i in intents
        ]
        # A full disk fails the transfer with what to do, never publishes it unjournaled.
        with self._writing():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO publish_intents (source, path, direction,"
                    " digest, size, fingerprint, mtime_ns, dev, ino)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.execute("COMMIT")
            finally:
                if self._conn.in_transaction:  # (SQLite may have rolled it back itself)
                    self._conn.execute("ROLLBACK")

    def unintend(self, source: str, paths: Collection[RelPath]) -> None:
        """Drop the intents of `paths` on `source`, whose transfers will not be published:
        call it before their temp files are removed. A removed temp frees its inode for the
        next new file, which could be created at the same path before the next run settles;
        with the intent left, that file would pass for fsync's download. Raises
        `PermanentError` where the row cannot be deleted: the caller then keeps the temp."""
        if not paths:
            return
        with self._writing():
            self._conn.executemany(
                "DELETE FROM publish_intents WHERE source = ? AND path = ?",
                [(source, path) for path in paths],
            )

    def forget_unplaced_identities(self, root: str) -> None:
        """Withdraw the identity of each download intent whose file at `root` is not its
        temp renamed into place (another inode, or none): content alone then decides it.

        Call it before removing temp files anywhere but in the run that settles the intent
        (which drops it first): a temp not renamed frees its inode, which a new file at the
        path could take and pass for fsync's download, and the next sync sent that file over
        the remote's version with no conflict (reviews). A download renamed into place keeps
        its proof: the file holds its inode, which no temp removal frees.
        """
        with self._writing():
            rows = self._conn.execute(
                "SELECT source, path, dev, ino FROM publish_intents WHERE ino IS NOT NULL"
            ).fetchall()
            unplaced = [
                (source, path)
                for source, path, dev, ino in rows
                if file_identity(os.path.join(root, path)) != (dev, ino)
            ]
            self._conn.executemany(
                "UPDATE publish_intents SET dev = NULL, ino = NULL WHERE source = ? AND path = ?",
                unplaced,
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the journal's lock; a write SQLite refuses raises as a run error saying what
        to do (a full disk: `db.failed_access`), never as sqlite3's own."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise failed_access(self._path, exc) or PermanentError(
                    f"{self._path}: {exc}"
                ) from exc


def _partial(row: tuple[Any, ...]) -> PartialDownload:
    """A journal row as its value type (the STRICT table guarantees the column types)."""
    path, *rest = row
    return PartialDownload(RelPath(path), *rest)


def _thread_shared(conn: sqlite3.Connection) -> sqlite3.Connection:
    """`conn` reopened so any thread may use it (the journal's lock serialises the calls).

    `connect` made and migrated the database; sqlite3 binds a connection to its creating
    thread unless told otherwise at open, so a second connection is opened on the same file
    with the same settings, and the first is closed.
    """
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    conn.close()
    shared = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
    shared.execute("PRAGMA synchronous=NORMAL")
    shared.execute("PRAGMA temp_store=MEMORY")  # (as `db.connect`: no temp files)
    # Every download journals its intent in a commit of its own (`intend`), a page or two
    # of WAL each: checkpointed only at SQLite's default of 1,000 pages, a pull of a few
    # hundred files grows the WAL by megabytes, enough to fill a nearly full disk that the
    # files themselves fit on. A checkpoint every 64 pages costs about one fdatasync per 50
    # files downloaded (a 20,000-file push, whose intents go a batch at a time: 114 more).
    shared.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES:d}")
    return shared
