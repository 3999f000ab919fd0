-- Writers no longer take a cluster-wide lock to append to the change log
-- (issue 15), so change ids may commit out of order. Each change records
-- the id of the transaction that wrote it (xid8, as a BIGINT: 64 bits with
-- the epoch, so it never wraps), and followers read the log in (xact, id)
-- order, only below the oldest transaction still in flight
-- (pg_snapshot_xmin): see store_changes.go for why that is gap-free.
-- Rows written before this migration committed in id order under the old
-- lock: they get xact 0, which sorts them before every later change, by id.
ALTER TABLE authsvc_changes ADD COLUMN IF NOT EXISTS xact BIGINT NOT NULL DEFAULT 0;
ALTER TABLE authsvc_changes ALTER COLUMN xact SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX IF NOT EXISTS authsvc_changes_xact_id ON authsvc_changes (xact, id);
-- The snapshot's deleted clients (kind = 'client_deleted' AND at >= ?).
CREATE INDEX IF NOT EXISTS authsvc_changes_kind_at ON authsvc_changes (kind, at);
-- Whether housekeeping ever deleted changes (one row, written before it
-- deletes): a follower reading the log from its start (a cursor of 0, taken
-- when no change was final yet) may then have missed some, and reloads.
CREATE TABLE IF NOT EXISTS authsvc_changes_purged (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    purged_at BIGINT NOT NULL
);
