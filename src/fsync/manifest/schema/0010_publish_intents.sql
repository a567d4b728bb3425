-- 0010: transfers about to take their name on the destination and not yet recorded in the
-- base (write-ahead intents), so a run killed in between (`kill -9`, a crash) does not leave
-- fsync's own transfer looking like the user's edit to the next run.
--
-- A download is renamed into place, an upload renamed into place on a folder remote or
-- published by its PutObject / CompleteMultipartUpload, well before the batch holding its
-- outcome commits (after a sync of the disk). A row is written before the publish: `source`
-- is the remote (its key), `path` the name, `direction` 'down' (the local file is replaced)
-- or 'up' (the remote object is), `digest` and `size` the content being published,
-- `fingerprint` for a download the remote version fetched and for an upload the version the
-- remote will show where it is known beforehand ('' if not), `mtime_ns` for an upload the
-- local file's mtime (the base's). A row is deleted in the transaction that records its
-- outcome; one left over is settled at the start of the next run, before it plans: where the
-- destination holds exactly that content, the base becomes that version (as the killed run
-- would have recorded it), and otherwise (the publish never happened, or the file changed
-- since) the row is dropped and the usual rules apply.
CREATE TABLE publish_intents (
    source      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    direction   TEXT    NOT NULL CHECK (direction IN ('up', 'down')),
    digest      TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    mtime_ns    INTEGER,
    PRIMARY KEY (source, path)
) STRICT, WITHOUT ROWID;
