-- Revoked access tokens (RFC 7009), by `jti`, kept until the token's own
-- `exp`: after that the token is refused for being expired, so the row is
-- swept. Shared here so every replica and the introspection endpoint agree.
CREATE TABLE revocations (
    jti        TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocations_expiry ON revocations (expires_at);
