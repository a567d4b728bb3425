-- 0007: S3 remotes under one spelling. A remote's key (`Remote.key`) is its URL, then
-- " on ENDPOINT" for a store other than AWS's own. S3 URLs are now written one way: `s3://`,
-- and the prefix without slashes at its end (`s3://b/p/`, `S3://b/p` and `s3a://b/p` name
-- the objects of `s3://b/p`). Rows written under another spelling are renamed here, so their
-- base, outbox and runs stay theirs: left under the old name, a run would have started from
-- an empty base (deleted files brought back, edits taken for conflicts). Where the row of
-- the new spelling exists already (both spellings were used), the other keeps its name.
UPDATE OR IGNORE remotes SET url = 's3://' || substr(url, 7) WHERE url LIKE 's3a://%';
UPDATE OR IGNORE remotes SET url = 's3://' || substr(url, 6)
    WHERE url LIKE 's3://%' AND substr(url, 1, 5) != 's3://';
UPDATE OR IGNORE remotes SET url = rtrim(url, '/')
    WHERE url LIKE 's3://%/' AND instr(url, ' on ') = 0;
UPDATE OR IGNORE remotes
    SET url = rtrim(substr(url, 1, instr(url, ' on http') - 1), '/')
        || substr(url, instr(url, ' on http'))
    WHERE url LIKE 's3://%/ on http%';
