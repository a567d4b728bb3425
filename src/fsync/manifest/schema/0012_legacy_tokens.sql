-- 0012: when each remote's last run before this schema ended: the bound under which a base
-- an older fsync recorded for a folder remote, whose fingerprint lacks the change time
-- (`size:mtime:inode`), is taken for the version the file shows now (`TokenHistory`).
--
-- Every run recorded until now was such an fsync's (a newer schema keeps older ones out:
-- `db.migrate`), and none records a base in the old form from now on, so the bound is
-- fixed here, once. Taken from the last run at each planning instead, a run that saw an
-- in-place rewrite and did not record it (a push leaves a remote change for a pull) moved
-- the bound past the rewrite, and the next run adopted it as the old version (review).
CREATE TABLE legacy_tokens (
    remote_id  INTEGER PRIMARY KEY REFERENCES remotes (id) ON DELETE CASCADE,
    until      REAL    NOT NULL
) STRICT;

INSERT INTO legacy_tokens (remote_id, until)
    SELECT remote_id, MAX(ended) FROM runs
    WHERE remote_id IS NOT NULL AND ended IS NOT NULL
    GROUP BY remote_id;
