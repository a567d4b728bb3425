-- 0013: S3 remotes' endpoints under one spelling. A remote's key is its URL, then
-- " on ENDPOINT" for a store other than AWS's own; the endpoint's scheme and host are now
-- written in lower case (`S3Remote.key`): `HTTP://127.0.0.1:P` had a base of its own, empty,
-- and a file deleted on the remote since came back. Rows written with capitals there are
-- renamed, so their base, outbox and runs stay theirs (left under the old name, an upgrade
-- would have cost the same). An endpoint with a user in it keeps its case, as the key does;
-- where the lower-case row exists already (both spellings were used), the other keeps its name.
UPDATE OR IGNORE remotes SET url = fixed.url
FROM (
    SELECT id, substr(url, 1, at + 3) || lower(site) || substr(url, at + 4 + length(site)) AS url
    FROM (
        SELECT id, url, at, substr(url, at + 4, reach) AS site
        FROM (
            SELECT id, url, at,
                instr(substr(url, at + 4), '://') + 2
                + instr(substr(url, at + 4 + instr(substr(url, at + 4), '://') + 2) || '/', '/')
                - 1 AS reach
            FROM (SELECT id, url, instr(lower(url), ' on http') AS at FROM remotes)
            WHERE at > 0
        )
    )
    WHERE instr(site, '@') = 0 AND site != lower(site)
) AS fixed
WHERE remotes.id = fixed.id;
