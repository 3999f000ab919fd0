-- The addresses each client authenticated from successfully in the last 24
-- hours (authhttp's throttle exempts such a pair from the limits that other
-- clients' failures can exhaust). Written at most once an hour per pair,
-- read at start and every minute, purged by housekeeping after 24 hours.
-- addr is the caller's address as text (an IP address, at most 64 bytes).
CREATE TABLE IF NOT EXISTS authsvc_known_addresses (
    client_id       VARCHAR(128) NOT NULL,
    addr            VARCHAR(64) NOT NULL,
    last_success_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, addr)
);
CREATE INDEX IF NOT EXISTS authsvc_known_addresses_last_success_at ON authsvc_known_addresses (last_success_at);
