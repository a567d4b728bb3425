-- 0010: the permission bits of each base entry, so a push sends a `chmod` alone (a mode
-- change without a content change) as a metadata update. `mode` holds the bits fsync carries
-- (`model.KEPT_MODE_BITS`: never setuid or setgid) that both sides held when they last
-- agreed; NULL where that is not known. Rows from before this column are NULL: a change of
-- mode is looked for only against a known one, so an upgrade does not make every file look
-- chmod-ed (its bits are recorded with the next change of its content or mtime).
ALTER TABLE base ADD COLUMN mode INTEGER;
