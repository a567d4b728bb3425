-- 0003: the outbox of `fsync watch` (the transactional-outbox pattern).
--
-- A row says "this path changed locally and its change has not reached this remote yet".
-- The watcher's batch is written here in the same transaction as the cache update of its
-- paths, and a row is deleted in the transaction that records the path's outcome (or once
-- the path needs no action), so a watch killed at any moment leaves every unfinished change
-- here for the next start. `path` may name a folder: a moved or deleted subtree is one row,
-- and whatever lies under it is covered. `queued_at` is seconds since the epoch, for
-- `fsync status` and for processing the oldest changes first.
CREATE TABLE outbox (
    remote_id  INTEGER NOT NULL REFERENCES remotes (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    queued_at  REAL    NOT NULL,
    PRIMARY KEY (remote_id, path)
) STRICT, WITHOUT ROWID;
