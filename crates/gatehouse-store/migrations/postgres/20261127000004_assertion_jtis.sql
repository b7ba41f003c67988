-- Client assertion `jti`s already used (RFC 7523 §3 item 7), per client:
-- the primary key makes "insert if absent" atomic, so a replay is refused on
-- every replica. Rows matter only until the assertion's own `exp` (plus
-- leeway), after which it is refused as expired, so they are swept.
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
