-- 0009: the token of each run's temporary file names (`fsync.paths.TEMP_TOKEN`, 8 hex
-- digits: `.fsync-<token><serial>.tmp`). A run killed outright (`kill -9`, a crash, a power
-- cut) never ends here and leaves its temp files beside their targets; the next run of the
-- root, holding its lock, removes those its scan meets whose token is that of a run that
-- never ended, and no other: a temp file another root's run is writing into this folder, or
-- a user's file of that form, is not one of them. NULL for runs recorded before this.
ALTER TABLE runs ADD COLUMN temp_token TEXT;
