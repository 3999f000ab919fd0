-- What each change was and who made it, for the admin console's activity
-- page (issue 18). action is finer than kind (kind says what followers must
-- apply; action tells created from updated, a rotated secret from a log-out
-- everywhere); actor is the client_id of the admin (or client) that asked
-- through HTTP, '' for the CLI, housekeeping and rows written before this.
-- Followers read neither, so instances not yet upgraded keep working.
ALTER TABLE authsvc_changes ADD COLUMN IF NOT EXISTS action TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_changes ADD COLUMN IF NOT EXISTS actor TEXT NOT NULL DEFAULT '';
-- The activity of one client, newest first.
CREATE INDEX IF NOT EXISTS authsvc_changes_client_id ON authsvc_changes (client_id, id);
