-- 0008: which remote made each journaled upload. One local root's journal holds its uploads
-- to every remote it pushes to; a run aborts the stale uploads of its own remote only (a
-- file deleted or changed since a killed run), and a target URL alone did not say which
-- remote that is: a push to s3://b/tree took s3://b/tree/sub's upload of big.bin for its
-- own sub/big.bin, gone here, and aborted it. `owner` is the remote's key (`Remote.key`: its
-- URL, and its endpoint unless it is AWS's own); '' for rows journaled before this.
ALTER TABLE upload_journal ADD COLUMN owner TEXT NOT NULL DEFAULT '';
