"""The manifest: everything fsync remembers about one local root, in one SQLite database.

It holds the local digest cache (which satisfies `scanner.DigestCache`), the base of each
remote, and the run history. One thread writes it (the engine's main thread); every method
called outside `transaction()` commits on its own, and inside it joins the open transaction,
so a batch of results costs one commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Set
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from fsync.hashing import HASH_VERSION, CacheRecord, StatSig
from fsync.manifest import outbox
from fsync.manifest.db import DB_NAME, connect, failed_access, ns_to_db, state_dir
from fsync.model import BaseEntry, Digest, PublishIntent, RelPath, base_entry

_INO_WRAP = 1 << 64
_I64_MAX = (1 << 63) - 1


def _ino_to_db(ino: int) -> int:
    """st_ino is unsigned 64-bit; SQLite integers are signed, so large inodes wrap."""
    return ino - _INO_WRAP if ino > _I64_MAX else ino


def _ino_from_db(ino: int) -> int:
    return ino + _INO_WRAP if ino < 0 else ino


CacheRow = tuple[RelPath, int, int, int, int, int, Digest, int]
"""One digest-cache row as the manifest keeps it in memory: path, size, mtime_ns, ino,
ctime_ns, mode (full st_mode), digest, trusted (0 or 1). The same shape as
`scanner.CacheRow`, by structure: neither module imports the other."""


def _sig_fields(sig: StatSig) -> tuple[int, int, int, int, int]:
    """The signature's fields in `CacheRow` order (size, mtime_ns, ino, ctime_ns, mode)."""
    return (sig.size, sig.mtime_ns, sig.ino, sig.ctime_ns, sig.mode)


CLOCK_MARGIN = 2.0
"""Seconds by which a file's change time may trail the clock a run's end was read from: the
kernel stamps it from a coarser clock (a tick behind `time.time()`), and an NFS server from
its own. A file changed within this much before that end is read rather than trusted."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the history records it; `ended`/`exit_code` are None while it runs."""

    id: int
    remote_url: str | None
    command: str
    started: float
    ended: float | None
    exit_code: int | None
    summary: dict[str, Any]


class Manifest:
    """The state database of one local root (`ROOT/.fsync/state.db`)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._depth = 0
        self._cache: dict[RelPath, CacheRow] | None = None
        self._remote_ids: dict[str, int] = {}

    @classmethod
    def open(cls, root: str) -> Manifest:
        """Open the manifest of `root`, creating `.fsync/state.db` on first use.

        Raises `ConfigError` if `root` is missing or not a directory, or the database is
        unusable or newer than this fsync.
        """
        path = os.path.join(state_dir(root), DB_NAME)
        return cls(connect(path), path)

    def close(self) -> None:
        """Close the database; an unfinished transaction is rolled back."""
        with suppress(sqlite3.Error):
            self._conn.execute("PRAGMA optimize")
        self._conn.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block's writes as one transaction: all of them or, on an exception, none.

        Nested use opens a savepoint, so an inner block that fails is undone alone while the
        outer transaction goes on (if the exception is caught). A write the disk refuses (it
        is full, or failing) raises `PermanentError` naming the database and what to do.
        """
        if self._depth:
            name = f"sp{self._depth}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                self._forget_memory()
                raise
            else:
                self._conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._forget_memory()
            failure = failed_access(self.path, exc) if isinstance(exc, sqlite3.Error) else None
            if failure is not None:
                raise failure from exc
            raise
        finally:
            self._depth = 0

    def _forget_memory(self) -> None:
        """Drop what is mirrored in memory; after a rollback it may hold undone writes."""
        self._cache = None
        self._remote_ids.clear()

    # --- the local digest cache ----------------------------------------------------------

    def cached(self, path: RelPath) -> CacheRecord | None:
        """The cache record for `path`, or None (also for rows of an older hash version).

        The whole cache is read into memory on first use, so each call is a dict lookup.
        """
        row = self.cache_rows().get(path)
        if row is None:
            return None
        _, size, mtime_ns, ino, ctime_ns, mode, digest, trusted = row
        return CacheRecord(StatSig(size, mtime_ns, ino, ctime_ns, mode), digest, bool(trusted))

    def cache_rows(self) -> Mapping[RelPath, CacheRow]:
        """Every current-version cache row by path, as plain tuples (see `CacheRow`).

        What `cached` answers, without building two objects per file: the scanner's fast
        path for a tree of unchanged files (`scanner.RowCache`). Read-only to the caller;
        it is read once, then kept in step with this manifest's own writes.
        """
        cache = self._cache
        if cache is None:
            cache = self._cache = self._load_cache()
        return cache

    def _load_cache(self) -> dict[RelPath, CacheRow]:
        query = (
            "SELECT path, size, mtime_ns, ino, ctime_ns, mode, digest, trusted"
            " FROM local_cache WHERE hash_version = ?"
        )
        # The rows SQLite hands out are kept as they are: building a record per file cost
        # more than reading the table (54 ms against 21 ms for 20,000 rows). Stored paths
        # were RelPaths when written; re-validating them would cost more than the scan.
        rows: dict[RelPath, CacheRow] = {
            row[0]: row for row in self._conn.execute(query + " AND ino >= 0", (HASH_VERSION,))
        }
        for path, size, mtime_ns, ino, ctime_ns, mode, digest, trusted in self._conn.execute(
            query + " AND ino < 0", (HASH_VERSION,)
        ):
            rows[path] = (path, size, mtime_ns, _ino_from_db(ino), ctime_ns, mode, digest, trusted)
        return rows

    def update_cache(self, updates: Iterable[tuple[RelPath, CacheRecord]]) -> None:
        """Store (insert or replace) the cache records in `updates`."""
        batch = list(updates)
        if not batch:
            return
        rows = [
            (
                path,
                r.sig.size,
                ns_to_db(r.sig.mtime_ns),
                _ino_to_db(r.sig.ino),
                ns_to_db(r.sig.ctime_ns),
                r.sig.mode,
                r.digest,
                int(r.trusted),
                HASH_VERSION,
            )
            for path, r in batch
        ]
        with self.transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO local_cache (path, size, mtime_ns, ino, ctime_ns, mode,"
                " digest, trusted, hash_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if self._cache is not None:
                self._cache.update(
                    (path, (path, *_sig_fields(r.sig), r.digest, int(r.trusted)))
                    for path, r in batch
                )

    def prune_cache(self, present: Collection[RelPath]) -> int:
        """Remove cache rows for paths not in `present` (after a full scan); return how many."""
        if self._cache is None:
            keep = present if isinstance(present, Set | Mapping) else set(present)
            paths = [p for (p,) in self._conn.execute("SELECT path FROM local_cache")]
            stale = [(p,) for p in paths if p not in keep]
        else:
            # The loaded cache holds every current-version row; older rows go below. A set
            # difference, not a loop: after a scan that found every file, nothing is stale.
            stale = [(p,) for p in self._cache.keys() - present]
        with self.transaction():
            self._delete_cache_rows(stale)
            old = self._conn.execute(
                "DELETE FROM local_cache WHERE hash_version != ?", (HASH_VERSION,)
            )
        return len(stale) + old.rowcount

    def drop_cache(self, paths: Iterable[RelPath]) -> None:
        """Remove the cache rows of `paths` (missing rows are fine)."""
        self._delete_cache_rows([(p,) for p in paths])

    def _delete_cache_rows(self, rows: list[tuple[str]]) -> None:
        if not rows:
            return
        with self.transaction():
            self._conn.executemany("DELETE FROM local_cache WHERE path = ?", rows)
            if self._cache is not None:
                for (path,) in rows:
                    self._cache.pop(RelPath(path), None)

    # --- the base ------------------------------------------------------------------------
    # Every method taking `remote` takes the remote's `Remote.key`: its URL, and the
    # endpoint where one is given.

    def _remote_id(self, url: str, *, create: bool) -> int | None:
        """The id of the remote whose `Remote.key` is `url` (the column kept its first name)."""
        known = self._remote_ids.get(url)
        if known is not None:
            return known
        if create:
            self._conn.execute("INSERT OR IGNORE INTO remotes (url) VALUES (?)", (url,))
        row = self._conn.execute("SELECT id FROM remotes WHERE url = ?", (url,)).fetchone()
        if row is None:
            return None
        self._remote_ids[url] = int(row[0])
        return int(row[0])

    def base(self, remote: str) -> dict[RelPath, BaseEntry]:
        """The base for `remote`: every path both sides last agreed on ({} if none)."""
        remote_id = self._remote_id(remote, create=False)
        if remote_id is None:
            return {}
        rows = self._conn.execute(
            "SELECT path, size, digest, fingerprint, mtime_ns FROM base WHERE remote_id = ?",
            (remote_id,),
        )
        # Paths and digests were RelPaths and Digests when written (see `_load_cache`).
        return {
            path: base_entry(size, digest, fp, mtime_ns)
            for path, size, digest, fp, mtime_ns in rows
        }

    def set_base(self, remote: str, changes: Iterable[tuple[RelPath, BaseEntry | None]]) -> None:
        """Record base entries for `remote`; an entry of None forgets that path."""
        upserts = []
        forgets = []
        for path, entry in changes:
            if entry is None:
                forgets.append((path,))
            else:
                mtime = None if entry.mtime_ns is None else ns_to_db(entry.mtime_ns)
                upserts.append((path, entry.size, entry.digest, entry.fingerprint, mtime))
        if not upserts and not forgets:
            return
        with self.transaction():
            remote_id = self._remote_id(remote, create=True)
            self._conn.executemany(
                "INSERT OR REPLACE INTO base (remote_id, path, size, digest, fingerprint,"
                f" mtime_ns) VALUES ({remote_id:d}, ?, ?, ?, ?, ?)",
                upserts,
            )
            self._conn.executemany(
                f"DELETE FROM base WHERE remote_id = {remote_id:d} AND path = ?", forgets
            )

    def forget_copies(self, remote: str, paths: Collection[RelPath]) -> None:
        """Drop the transfer journal's conflict copies of `paths` on `remote`: call it in the
        transaction that records their conflicts' outcomes (the copies among them)."""
        if not paths:
            return
        with self.transaction():
            self._conn.executemany(
                "DELETE FROM conflict_copies WHERE source = ? AND path = ?",
                [(remote, path) for path in paths],
            )

    def intents(self, remote: str) -> list[PublishIntent]:
        """The publish intents journaled against `remote` and never recorded, by path: what
        runs killed between a publish and its record may have left (`TransferJournal.intend`)."""
        rows = self._conn.execute(
            "SELECT path, direction, digest, size, fingerprint, mtime_ns, dev, ino"
            " FROM publish_intents WHERE source = ? ORDER BY path",
            (remote,),
        )
        return [
            PublishIntent(
                RelPath(path),
                direction == "up",
                Digest(digest),
                size,
                fp,
                mtime,
                dev or 0,
                ino or 0,
            )
            for path, direction, digest, size, fp, mtime, dev, ino in rows
        ]

    def settle_intents(self, remote: str, paths: Iterable[RelPath]) -> None:
        """Drop the publish intents of `paths` on `remote`: call it in the transaction that
        records their outcomes (or decides what the base is without them)."""
        rows = [(remote, path) for path in paths]
        if not rows:
            return
        with self.transaction():
            self._conn.executemany(
                "DELETE FROM publish_intents WHERE source = ? AND path = ?", rows
            )

    # --- the outbox (fsync watch) ---------------------------------------------------------

    def queue(self, remote: str, paths: Iterable[RelPath]) -> None:
        """Record `paths` as changed but not yet carried to `remote`.

        Call it inside the `transaction()` that stores the cache records of those paths, so
        the change and the promise to send it become durable together.
        """
        batch = list(paths)
        if not batch:
            return
        with self.transaction():
            remote_id = self._remote_id(remote, create=True)
            assert remote_id is not None
            outbox.add(self._conn, remote_id, batch, time.time())

    def queued(self, remote: str) -> list[RelPath]:
        """The paths queued for `remote` and not yet done, oldest first."""
        remote_id = self._remote_id(remote, create=False)
        return [] if remote_id is None else outbox.pending(self._conn, remote_id)

    def unqueue(self, remote: str, paths: Iterable[RelPath]) -> None:
        """Mark `paths` done for `remote` (call it where their outcomes are recorded)."""
        batch = list(paths)
        remote_id = self._remote_id(remote, create=False)
        if not batch or remote_id is None:
            return
        with self.transaction():
            outbox.remove(self._conn, remote_id, batch)

    def known_remotes(self) -> list[str]:
        """The keys (`Remote.key`) of every remote this root has a base or a run for, sorted."""
        return [url for (url,) in self._conn.execute("SELECT url FROM remotes ORDER BY url")]

    # --- run history ---------------------------------------------------------------------

    def start_run(self, command: str, remote: str, temp_token: str | None = None) -> int:
        """Record that `command` started against `remote`, writing its temp files under
        names with `temp_token` (`fsync.paths.TEMP_TOKEN`); return the run's id.

        The record is durable before the run writes anything: a run killed at any point
        after it can have its temp files recognised (`temp_tokens`).
        """
        with self.transaction():
            remote_id = self._remote_id(remote, create=True)
            cur = self._conn.execute(
                "INSERT INTO runs (remote_id, command, started, temp_token) VALUES (?, ?, ?, ?)",
                (remote_id, command, time.time(), temp_token),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run_id: int, exit_code: int, summary: Mapping[str, Any]) -> None:
        """Record the end of run `run_id`; `summary` must be JSON-serialisable.

        Raises `KeyError` for an unknown run id.
        """
        text = json.dumps(dict(summary), separators=(",", ":"))
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE runs SET ended = ?, exit_code = ?, summary = ? WHERE id = ?",
                (time.time(), int(exit_code), text, run_id),
            )
        if cur.rowcount != 1:
            raise KeyError(f"no run with id {run_id}")

    def note_progress(self, run_id: int, summary: Mapping[str, Any]) -> None:
        """Record what run `run_id` has done so far, while it runs (call in the transaction
        that commits those outcomes): a run killed outright (`kill -9`, a power cut) shows
        in the history with the counts of its last committed batch, not as having done
        nothing."""
        text = json.dumps(dict(summary), separators=(",", ":"))
        self._conn.execute(
            "UPDATE runs SET summary = ? WHERE id = ? AND ended IS NULL", (text, run_id)
        )

    def temp_tokens(self, *, unfinished: bool = False) -> set[str]:
        """The temp-name tokens of this root's runs (`unfinished`: of those that started
        and never ended). A run that ended removed its temp files but those it could not
        (a folder made append-only, a permission); one that never ended was killed outright
        before it could, or is still running (the caller's own run: the root's lock rules
        out any other). Either way, what is left of theirs is litter for the next run."""
        rows = self._conn.execute(
            "SELECT DISTINCT temp_token FROM runs WHERE temp_token IS NOT NULL"
            + (" AND ended IS NULL" if unfinished else "")
        )
        return {token for (token,) in rows}

    def legacy_tokens_until_ns(self, remote: str) -> int | None:
        """A time (ns since the epoch) no base of `remote` in a fingerprint's older form
        (`TokenHistory`) was recorded after, but by a run killed before it ended: when its
        last run before schema 0012 ended, less `CLOCK_MARGIN`. None if none ended."""
        row = self._conn.execute(
            "SELECT t.until FROM legacy_tokens AS t JOIN remotes AS m ON m.id = t.remote_id"
            " WHERE m.url = ?",
            (remote,),
        ).fetchone()
        return None if row is None else int((row[0] - CLOCK_MARGIN) * 1e9)

    def last_runs(self, limit: int = 10, remote: str | None = None) -> list[RunRecord]:
        """The most recent runs, newest first, optionally only those against `remote`."""
        sql = (
            "SELECT r.id, m.url, r.command, r.started, r.ended, r.exit_code, r.summary"
            " FROM runs AS r LEFT JOIN remotes AS m ON m.id = r.remote_id"
        )
        params: tuple[object, ...] = (limit,)
        if remote is not None:
            sql += " WHERE m.url = ?"
            params = (remote, limit)
        rows = self._conn.execute(sql + " ORDER BY r.id DESC LIMIT ?", params)
        return [
            RunRecord(rid, url, command, started, ended, code, json.loads(summary or "{}"))
            for rid, url, command, started, ended, code, summary in rows
        ]
