-- Clients, revocations, signing keys and the change log. Times are unix
-- seconds (BIGINT), the same in both dialects and the same as the tokens'
-- own claims. Every table is prefixed authsvc_ so that authd can share the
-- Flask service's database, whose own tables are named clients and blacklist.
CREATE TABLE IF NOT EXISTS authsvc_clients (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id             VARCHAR(128) NOT NULL UNIQUE,
    secret_hash           TEXT NOT NULL,
    old_secret_hash       TEXT NOT NULL DEFAULT '',
    old_secret_expires_at BIGINT NOT NULL DEFAULT 0,
    is_admin              BOOLEAN NOT NULL DEFAULT 0,
    scopes                TEXT NOT NULL DEFAULT '',
    tokens_valid_after    BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS authsvc_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  VARCHAR(128) NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS authsvc_revoked_tokens_expires_at ON authsvc_revoked_tokens (expires_at);

-- activate_at: when instances start signing with the key (it is published
-- in the JWKS from created_at on, so verifiers know it before it is used).
CREATE TABLE IF NOT EXISTS authsvc_signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    activate_at BIGINT NOT NULL
);

-- Every change that other instances must learn of, in commit order (SQLite
-- has one writer at a time): kind is revoke, client,
-- client_deleted or key. Instances follow it with a cursor (id).
CREATE TABLE IF NOT EXISTS authsvc_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    client_id  VARCHAR(128) NOT NULL DEFAULT '',
    row_id     BIGINT NOT NULL DEFAULT 0,
    jti        TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL DEFAULT 0,
    at         BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS authsvc_changes_at ON authsvc_changes (at);
