-- SQLite has one writer at a time, so change ids commit in order and the
-- log's order is the id's (the PostgreSQL twin of this migration adds the
-- writing transaction's id for that). Here only the index the snapshot's
-- deleted clients are read by (kind = 'client_deleted' AND at >= ?).
CREATE INDEX IF NOT EXISTS authsvc_changes_kind_at ON authsvc_changes (kind, at);
-- Whether housekeeping ever deleted changes (one row, written before it
-- deletes): a follower reading the log from its start (a cursor of 0, taken
-- when no change was final yet) may then have missed some, and reloads.
CREATE TABLE IF NOT EXISTS authsvc_changes_purged (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    purged_at BIGINT NOT NULL
);
