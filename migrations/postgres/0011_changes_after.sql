-- The change log's read (store_changes.go): the change at a follower's
-- cursor (none if housekeeping purged it) and up to max_rows changes after
-- it, in log order. A function only so that its plan cannot depend on the
-- table's statistics: without them (a log that grew since autovacuum last
-- analyzed it, up to a minute under a burst of writes; a restored or
-- upgraded database) the planner took a third of the log to follow the
-- cursor, and read the whole log and sorted it for every catch-up of every
-- instance: with two instances logging out at 4,000/s that doubled the
-- database's CPU a logout. The walk along the indexes is right whatever the
-- statistics say. STABLE: it reads in the caller's snapshot, which the
-- caller's horizon (pg_snapshot_xmin) is taken from.
CREATE OR REPLACE FUNCTION authsvc_changes_after(after_id BIGINT, max_rows INTEGER)
RETURNS SETOF authsvc_changes
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
    cursor_change authsvc_changes;
BEGIN
    SELECT * INTO cursor_change FROM authsvc_changes WHERE id = after_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN NEXT cursor_change;
    RETURN QUERY SELECT c.* FROM authsvc_changes c
        WHERE (c.xact, c.id) > (cursor_change.xact, cursor_change.id)
        ORDER BY c.xact, c.id LIMIT max_rows;
END
$$;
