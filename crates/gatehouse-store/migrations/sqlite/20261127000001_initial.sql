-- Clients: metadata and secrets as JSON documents (secrets hold only HMACs).
CREATE TABLE clients (
    id           TEXT PRIMARY KEY NOT NULL,
    origin       TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    secrets      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX clients_origin ON clients (origin, last_used_at);

-- The monotonic change sequence that every replica's caches follow.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    at        INTEGER NOT NULL
);

-- Signing keys and the secret-hashing key, sealed under the key-encryption key.
CREATE TABLE keys (
    id         TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    alg        TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    status     TEXT NOT NULL
);
CREATE UNIQUE INDEX keys_one_current ON keys (kind, alg) WHERE status = 'current';
