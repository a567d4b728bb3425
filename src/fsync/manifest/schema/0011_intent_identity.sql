-- 0011: the identity (st_dev, st_ino) of the temp file a download intent is about to rename
-- into place, so the next run can tell fsync's download apart from a file that is not it.
--
-- 0010 settled a leftover intent by content only: a download renamed into place and then
-- edited before the killed run's record no longer matched, the intent was dropped, the base
-- stayed the version before the download, and the next run met "both changed" (with
-- `--on-conflict remote` the user's edit, made on top of fsync's download, was overwritten).
-- A rename keeps the inode, so the local file still being the temp's inode (on the same
-- device) proves the download was published, whatever it holds now. NULL (rows of 0010, an
-- upload, or a proof withdrawn because the temp was removed unpublished): no such proof, the
-- content alone decides, as before. (Uploads have none: see `fsync.transfer.intents`.)
ALTER TABLE publish_intents ADD COLUMN dev INTEGER;
ALTER TABLE publish_intents ADD COLUMN ino INTEGER;
