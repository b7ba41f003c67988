-- PostgreSQL twin of migrations/sqlite/20261127000001_initial.sql (same
-- tables, columns and meaning; Unix seconds are BIGINT, blobs BYTEA).

-- Clients: metadata and secrets as JSON documents (secrets hold only HMACs).
-- TEXT rather than JSONB: the store never queries inside them, and TEXT keeps
-- the bytes exactly as serialized, like the SQLite backend.
CREATE TABLE clients (
    id           TEXT PRIMARY KEY NOT NULL,
    origin       TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    secrets      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX clients_origin ON clients (origin, last_used_at);

-- The monotonic change sequence that every replica's caches follow.
-- BIGSERIAL alone hands out numbers in nextval order, not commit order; the
-- store serializes the transactions that insert here (LOCK TABLE, see
-- src/postgres.rs) so that numbers are also committed in order.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    at        BIGINT NOT NULL
);

-- Signing keys and the secret-hashing key, sealed under the key-encryption key.
CREATE TABLE keys (
    id         TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    alg        TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    status     TEXT NOT NULL
);
CREATE UNIQUE INDEX keys_one_current ON keys (kind, alg) WHERE status = 'current';
