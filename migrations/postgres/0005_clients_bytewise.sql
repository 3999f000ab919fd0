-- Listing pages clients by client_id in byte order (keyset pagination and a
-- prefix filter as a range), whatever the database's collation: this index
-- lets a page be read without scanning the table. SQLite compares bytes
-- already (its unique index serves).
CREATE INDEX IF NOT EXISTS authsvc_clients_client_id_bytes ON authsvc_clients (client_id COLLATE "C");
