-- Secretless clients (issue 16). A client authenticates with a secret
-- (client_secret_basic, client_secret_post) or with JWT assertions
-- (private_key_jwt: signed by its own keys, an inline JWK Set in jwks or
-- fetched from jwks_uri, or by a trusted issuer that names it in a
-- federated credential). Existing clients keep their secrets.
ALTER TABLE authsvc_clients ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
ALTER TABLE authsvc_clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN jwks_uri TEXT NOT NULL DEFAULT '';
-- The client's federated credentials as JSON ([{"issuer","subject"}]), as
-- the record shows them; authsvc_federated_credentials holds the same pairs
-- for the login's lookup by (issuer, subject), which names one client only.
ALTER TABLE authsvc_clients ADD COLUMN federated TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS authsvc_federated_credentials (
    issuer    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    client_id VARCHAR(128) NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX IF NOT EXISTS authsvc_federated_credentials_client_id ON authsvc_federated_credentials (client_id);

-- Issuers whose tokens (Kubernetes service account tokens, SPIFFE
-- JWT-SVIDs, CI OIDC tokens) a client may present as its assertion.
-- issuer is an https URL or spiffe://trust-domain; keys come from jwks
-- (inline), jwks_uri, or OIDC discovery when both are empty. audiences:
-- space-separated, '' meaning authd's issuer; max_lifetime in seconds.
CREATE TABLE IF NOT EXISTS authsvc_trusted_issuers (
    issuer       TEXT PRIMARY KEY,
    jwks         TEXT NOT NULL DEFAULT '',
    jwks_uri     TEXT NOT NULL DEFAULT '',
    audiences    TEXT NOT NULL DEFAULT '',
    max_lifetime BIGINT NOT NULL,
    allow_reuse  BOOLEAN NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Assertions already used, by (client, jti), until they expire: a replay
-- is refused on every instance. Housekeeping purges expired rows.
CREATE TABLE IF NOT EXISTS authsvc_used_jtis (
    client_id  VARCHAR(128) NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX IF NOT EXISTS authsvc_used_jtis_expires_at ON authsvc_used_jtis (expires_at);
