-- 0004: partial downloads, so a large download cut short (a kill, a crash, a lost network)
-- continues from its last verified block on the next run instead of starting over.
--
-- One row per local path being fetched. `temp` is the partial file's name in the path's
-- folder; `source` (the remote's URL) and `fingerprint` (its ETag or equivalent) name the
-- version being fetched, and `size` its length: a row for another version is discarded with
-- its file. `blocks` holds the blake3 digests (32 bytes each) of the partial file's first
-- blocks of `block_size` bytes, each appended only once its bytes are on disk; a re-run keeps
-- the longest prefix of blocks that still hash to them and fetches the rest.
CREATE TABLE download_journal (
    path        TEXT    NOT NULL PRIMARY KEY,
    source      TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    temp        TEXT    NOT NULL,
    block_size  INTEGER NOT NULL CHECK (block_size > 0),
    blocks      BLOB    NOT NULL,
    created     REAL    NOT NULL      -- seconds since the epoch
) STRICT;
