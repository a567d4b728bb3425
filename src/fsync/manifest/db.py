"""Open the state database: private files, WAL, and the numbered schema migrations.

The schema lives in `schema/NNNN_<what>.sql`, applied in order, each in its own transaction
together with the bump of `PRAGMA user_version`, so a crash mid-migration leaves the
previous version intact. A database written by a newer fsync is refused, never downgraded.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from importlib import resources

from fsync.errors import ConfigError, DiskFull, FsyncError, PermanentError
from fsync.fileops import NO_SPACE
from fsync.ignore import STATE_DIR

DB_NAME = "state.db"
"""The database's file name inside `ROOT/.fsync`."""

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIN_SQLITE = (3, 37, 0)
"""STRICT tables need SQLite 3.37."""
_IO_FAILURES = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL}
_AROUND_THE_FILE = _IO_FAILURES | {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_READONLY,
}
"""SQLite's primary codes for a failure of the disk or the system, not of the file's
content: a new database in its place would meet the same."""
_LOW_SPACE = 1 << 20
"""Free bytes below which an I/O failure of SQLite is taken for a full disk: SQLite gives
no errno, and a WAL database needs room for its 32 KiB index and the pages of a commit."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema file: its version (the NNNN prefix), file name and SQL text."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged schema files in version order.

    Raises `RuntimeError` when the versions are not exactly 1, 2, ... N: a gap or a duplicate
    is a packaging bug, and applying around it would build a schema nobody wrote.
    """
    found = []
    for item in resources.files("fsync.manifest").joinpath("schema").iterdir():
        match = _MIGRATION_NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name, item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema files are not numbered 1..N: {[m.name for m in found]}")
    return found


def state_dir(root: str) -> str:
    """`ROOT/.fsync`, created with mode 0700 if missing.

    Raises `ConfigError` if `root` does not exist or is not a directory, or the folder
    cannot be created.
    """
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise ConfigError(f"local root {root} does not exist") from None
    except OSError as e:
        raise ConfigError(f"local root {root} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"local root {root} is not a directory")
    folder = os.path.join(root, STATE_DIR)
    _make_private_dir(folder)
    return folder


def _make_private_dir(folder: str) -> None:
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        return
    except OSError as e:
        if e.errno in NO_SPACE:
            raise _no_space(folder, e.strerror or str(e)) from None
        raise ConfigError(f"cannot create {folder} ({e.strerror or e})") from None
    # mkdir's mode passes through the umask; the state is private whatever the umask.
    os.chmod(folder, 0o700)


def _make_private_file(path: str) -> None:
    """Create `path` empty with mode 0600 unless it exists (SQLite gives -wal/-shm its mode)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        check_is_file(path)
        return
    except OSError as e:
        if e.errno in NO_SPACE:
            raise _no_space(path, e.strerror or str(e)) from None
        raise ConfigError(f"cannot create {path} ({e.strerror or e})") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


_KINDS = {stat.S_IFDIR: "folder", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def check_is_file(path: str) -> None:
    """Raise `ConfigError` if `path`, one of fsync's state files, is there but no file:
    SQLite met a folder or a fifo there with "unable to open database file" or "disk I/O
    error", and the lock with `[Errno 22] Invalid argument`, naming neither the file nor
    what to do (exit 1)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent, or unreadable: opening it says why
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "device")
        raise ConfigError(
            f"{path} is not a file (a {kind}); move it aside and fsync will make a new one"
        )


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, migrated to the latest schema.

    The parent folder is created with mode 0700 and the file with 0600. The connection is
    in autocommit mode (`isolation_level=None`): callers open transactions explicitly.
    Raises `ConfigError` when the file is not a database, was written by a newer fsync, or
    SQLite is too old for the schema; `PermanentError` when SQLite cannot read or write it
    (a full disk, a failing one, a lock held past the timeout).
    """
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise ConfigError(f"SQLite {sqlite3.sqlite_version} is too old; fsync needs 3.37 or newer")
    folder = os.path.dirname(path) or "."
    _make_private_dir(folder)
    _make_private_file(path)
    for side_file in (f"{path}-wal", f"{path}-shm"):  # (SQLite's own, made as it needs them)
        check_is_file(side_file)
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
        # SQLite would open it read-only and fail at the first write, mid-run.
        raise ConfigError(
            f"{path} cannot be written (permission denied); check the permissions of that "
            "file and its folder"
        )
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # SQLite's statement journals and sorts otherwise spill to files in /var/tmp: 1,620
        # writes there for a 2,000-file push (strace), none of which a crash needs.
        conn.execute("PRAGMA temp_store=MEMORY")
        migrate(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise _unusable(path, e) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _unusable(path: str, err: sqlite3.DatabaseError) -> FsyncError:
    """The error for a state database SQLite could not open or migrate, with the advice
    that fits what went wrong.

    Moving the file aside costs the sync history (every base, the unfinished transfers), so
    it is advised only where the file's content is at fault: no database, a damaged one, a
    schema fsync cannot build on. A full disk makes SQLite fail with "disk I/O error" (its
    shared-memory index cannot grow) or "database or disk is full": that advice threw away
    a sound database for nothing.
    """
    return failed_access(path, err) or ConfigError(
        f"{path} is not a usable fsync state database ({err}); move it aside and fsync "
        "will start a new one (no data is lost, identical files are adopted)"
    )


def ns_to_db(ns: int) -> int:
    """A time in nanoseconds as a signed 64-bit SQLite integer can hold it: one after 2262
    (which `touch` can give a file) is stored at the limit rather than failing every run.
    Such a file's cached signature then never matches, so it is hashed again at each scan:
    slower, never wrong."""
    return min(max(ns, -(1 << 63)), (1 << 63) - 1)


def failed_access(path: str, err: sqlite3.Error) -> PermanentError | None:
    """The error for `err`, met reading or writing the state database at `path`, where the
    disk or the system is at fault: a full disk (exit 1) says so and what to do, instead of
    SQLite's bare "database or disk is full". None for another error (the file's content, or
    a bug), which the caller words or lets through."""
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    low = code in _IO_FAILURES and _free_bytes(os.path.dirname(path) or ".") < _LOW_SPACE
    if code == sqlite3.SQLITE_FULL or low:
        return _no_space(path, str(err))
    if code in _AROUND_THE_FILE:
        return PermanentError(
            f"{path} cannot be read or written now ({err}); it is kept as it is (run again "
            "once that is resolved)"
        )
    return None


def _free_bytes(folder: str) -> int:
    """The bytes an unprivileged writer may still use on `folder`'s filesystem; where that
    cannot be told, `_LOW_SPACE`, which claims no full disk."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return _LOW_SPACE
    return st.f_bavail * st.f_frsize


def _no_space(path: str, why: str) -> DiskFull:
    """The error for a full disk under `path`: a run-time failure (exit 1), as a full disk
    under a downloaded file is, with nothing to move aside."""
    return DiskFull(
        f"{path} cannot be written: no space left on device ({why}; free some space on that "
        "disk and run again)"
    )


def _statements(sql: str) -> list[str]:
    """Split a schema file into complete SQL statements (SQLite's own tokenizer decides)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    leftover = "\n".join(
        ln for ln in pending.splitlines() if ln.strip() and not ln.strip().startswith("--")
    )
    if leftover:
        raise RuntimeError(f"incomplete SQL statement at the end of a schema file: {leftover}")
    return statements


def migrate(conn: sqlite3.Connection, path: str = "the state database") -> int:
    """Apply every schema file newer than the database's `user_version`; return the version.

    Each file runs in one `BEGIN IMMEDIATE` transaction that also sets `user_version`, so
    two processes cannot both apply it and a failure leaves the previous version. Raises
    `ConfigError` for a database newer than this code knows.
    """
    known = migrations()
    latest = known[-1].version
    current = _user_version(conn)
    if current > latest:
        raise ConfigError(
            f"{path} was written by a newer fsync (schema {current}; this one knows up to "
            f"{latest}); upgrade fsync, or move the file aside to start afresh"
        )
    for migration in known:
        if migration.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if _user_version(conn) >= migration.version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = migration.version
    return current


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])
