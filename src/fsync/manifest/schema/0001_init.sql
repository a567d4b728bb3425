-- 0001: the first schema of LOCAL/.fsync/state.db.
--
-- Every table is STRICT, so a value of the wrong type is an error instead of being stored
-- as whatever SQLite can coerce it to. Paths are RelPaths: POSIX, NFC, relative to the
-- local root (or to the remote root, which is the same tree). Times ending in _ns are
-- integer nanoseconds since the epoch; REAL times are seconds since the epoch.

-- The local digest cache: what the scanner last hashed, keyed by path. A row is reused
-- without reading the file only while size, mtime_ns, ino, ctime_ns and mode all still
-- match, `trusted` is 1 (the file was not "racily clean" when hashed) and hash_version is
-- the code's current HASH_VERSION. `ino` is st_ino stored as a signed 64-bit value (inode
-- numbers at or above 2**63 wrap to negative numbers; the store converts both ways).
CREATE TABLE local_cache (
    path          TEXT    NOT NULL PRIMARY KEY,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    ino           INTEGER NOT NULL,
    ctime_ns      INTEGER NOT NULL,
    mode          INTEGER NOT NULL,   -- full st_mode, file type bits included
    digest        TEXT    NOT NULL,   -- lower-case hex blake3
    trusted       INTEGER NOT NULL CHECK (trusted IN (0, 1)),
    hash_version  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Every remote this root was synced with, by the URL the user gave (as the app normalises
-- it). The id keys the per-remote tables.
CREATE TABLE remotes (
    id   INTEGER PRIMARY KEY,
    url  TEXT    NOT NULL UNIQUE
) STRICT;

-- The base: per remote and path, the last state both sides agreed on. Deletions are only
-- ever planned against a row here, so an empty base never deletes anything. `fingerprint`
-- is the remote's cheap change marker (ETag on S3, size and mtime on filesystems); `digest`
-- the blake3 of the content; `mtime_ns` the local modification time at that moment.
CREATE TABLE base (
    remote_id    INTEGER NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    path         TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    digest       TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    PRIMARY KEY (remote_id, path)
) STRICT, WITHOUT ROWID;

-- Run history, what `fsync status` shows. A row is written when a run starts and completed
-- when it ends; a row with ended NULL is a run that is still going or that died.
CREATE TABLE runs (
    id         INTEGER PRIMARY KEY,
    remote_id  INTEGER REFERENCES remotes (id) ON DELETE SET NULL,
    command    TEXT    NOT NULL,      -- push, pull, watch, ...
    started    REAL    NOT NULL,
    ended      REAL,
    exit_code  INTEGER,
    summary    TEXT                   -- the run's JSON summary object
) STRICT;

CREATE INDEX runs_by_remote ON runs (remote_id, id);
