-- DPoP (issue 17, RFC 9449 §5.2): a client whose tokens must be bound to a
-- DPoP key; its token requests without a proof are refused.
ALTER TABLE authsvc_clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT 0;
