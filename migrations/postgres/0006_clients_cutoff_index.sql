-- The revocation feed's snapshot lists the clients logged out everywhere
-- within a token's lifetime: through this index, not a scan of every client
-- (issue 15: a snapshot of a 65-byte answer read a million clients).
CREATE INDEX IF NOT EXISTS authsvc_clients_tokens_valid_after ON authsvc_clients (tokens_valid_after);
