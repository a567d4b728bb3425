-- 0006: remote conflict copies made and not yet recorded, so a run cut short (a kill, a
-- crash, an upload that failed after its copy) does not copy the same version again.
--
-- A keep-both conflict first copies the remote version aside on the remote (and, for a
-- two-way sync, fetches that copy), then sends the local version under the name; the base
-- learns of both only when the batch holding them commits. A row is written before the copy
-- is made: `source` is the remote (its key), `path` the name in conflict, `fingerprint` the
-- remote version being kept, `copy` the conflict name it is copied to. A later run that meets
-- the conflict with the same version still at `path` keeps that copy instead of making a
-- second one. A row is deleted in the transaction that records the conflict's outcome, or
-- at the start of a run whose plan no longer keeps a copy of that path.
CREATE TABLE conflict_copies (
    source      TEXT NOT NULL,
    path        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    copy        TEXT NOT NULL,
    PRIMARY KEY (source, path)
) STRICT, WITHOUT ROWID;
