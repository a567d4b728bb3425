-- 0002: the transfer journal, so an upload cut short (a kill, a crash, a lost network)
-- continues where it stopped on the next run instead of starting over.
--
-- One row per unfinished chunked upload. `target` names the object (`s3://bucket/key`);
-- `digest` (lower-case hex blake3) and `size` the content being sent, so an upload is only
-- continued for the very same content, and `part_size` how that content was cut. Which parts
-- are done is not stored: the store's own record (S3 ListParts) is the truth, and each listed
-- part is checked against the bytes re-read from the file before it is skipped. A row is
-- deleted when its upload completes, is aborted, or is found gone on the server.
CREATE TABLE upload_journal (
    upload_id  TEXT    NOT NULL PRIMARY KEY,
    target     TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    part_size  INTEGER NOT NULL CHECK (part_size > 0),
    created    REAL    NOT NULL      -- seconds since the epoch
) STRICT;

CREATE INDEX upload_journal_by_target ON upload_journal (target, created);
