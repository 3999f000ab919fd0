-- Clients, revocations and signing keys. Times are unix seconds (BIGINT), the
-- same in both dialects and the same as the tokens' own claims.
CREATE TABLE IF NOT EXISTS authsvc_clients (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id          VARCHAR(128) NOT NULL UNIQUE,
    secret_hash        TEXT NOT NULL,
    is_admin           BOOLEAN NOT NULL DEFAULT 0,
    scopes             TEXT NOT NULL DEFAULT '',
    tokens_valid_after BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS authsvc_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  VARCHAR(128) NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS authsvc_revoked_tokens_expires_at ON authsvc_revoked_tokens (expires_at);

CREATE TABLE IF NOT EXISTS authsvc_signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
