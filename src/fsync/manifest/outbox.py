"""The outbox table: local changes a watch has seen but not yet carried to a remote.

Plain functions over a connection, called by `Manifest` inside its transactions: the rows
must be written in the same transaction as the cache update of those paths, and removed in
the one that records their outcomes, which only the manifest's single writer can promise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from fsync.model import RelPath


def add(conn: sqlite3.Connection, remote_id: int, paths: Iterable[RelPath], now: float) -> None:
    """Queue `paths` for `remote_id`; a path already queued keeps its first `queued_at`."""
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (remote_id, path, queued_at) VALUES (?, ?, ?)",
        [(remote_id, path, now) for path in paths],
    )


def pending(conn: sqlite3.Connection, remote_id: int) -> list[RelPath]:
    """The queued paths of `remote_id`, oldest first (then by path)."""
    rows = conn.execute(
        "SELECT path FROM outbox WHERE remote_id = ? ORDER BY queued_at, path", (remote_id,)
    )
    return [RelPath(path) for (path,) in rows]


def remove(conn: sqlite3.Connection, remote_id: int, paths: Iterable[RelPath]) -> None:
    """Unqueue `paths` of `remote_id` (paths that are not queued are fine)."""
    conn.executemany(
        "DELETE FROM outbox WHERE remote_id = ? AND path = ?",
        [(remote_id, path) for path in paths],
    )
