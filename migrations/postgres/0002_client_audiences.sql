-- The audiences (aud values, RFC 8707 resources) each client may request
-- besides the default audience, space-separated as scopes are. Existing
-- clients get none: they keep getting tokens for the default audience, and
-- a request naming another one is refused (invalid_target).
ALTER TABLE authsvc_clients ADD COLUMN IF NOT EXISTS audiences TEXT NOT NULL DEFAULT '';
