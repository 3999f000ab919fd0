-- Mutual TLS (issue 17, RFC 8705). A tls_client_auth client's certificate
-- name (§2.1.2: one of the five is set, the others are ''), and whether its
-- tokens must be bound to its TLS client certificate (§3.4).
ALTER TABLE authsvc_clients ADD COLUMN tls_client_auth_subject_dn TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN tls_client_auth_san_dns TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN tls_client_auth_san_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN tls_client_auth_san_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN tls_client_auth_san_email TEXT NOT NULL DEFAULT '';
ALTER TABLE authsvc_clients ADD COLUMN tls_client_certificate_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
