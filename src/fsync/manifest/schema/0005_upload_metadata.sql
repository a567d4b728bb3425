-- 0005: the object metadata an unfinished upload was created with. CreateMultipartUpload
-- fixes it (mtime, mode, blake3, md5chksum) before the first part is sent, so a re-run
-- continues an upload only when that is still what the object must carry: a file touched or
-- chmod-ed since, with the same content, gets a new upload. Rows from before this column
-- hold '' and are never continued (each is aborted once, and its file sent again).
ALTER TABLE upload_journal ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
