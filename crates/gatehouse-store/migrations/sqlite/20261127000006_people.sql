-- People (issue 6): built-in accounts, browser sign-in sessions, consent,
-- authorization codes and refresh-token families.
--
-- Codes, refresh tokens and session cookies are kept only as their SHA-256
-- (`hash`, see gatehouse-oauth grant_records.rs), never in the clear.
-- Lists (groups, scopes, resources) are JSON arrays in TEXT columns, like the
-- clients' metadata: the store never queries inside them.
--
-- No foreign keys to users or clients: deleting a user revokes their grant
-- families but keeps those rows until they expire (a refresh token presented
-- later must find its family revoked, not vanished), so a cascade would be
-- wrong there. The store deletes what belongs together explicitly, in one
-- transaction.

-- Accounts. `name` is the sign-in name, unique; `id` the stable subject.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    groups        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Server-side browser sessions, by the hash of the cookie's random id.
-- Ended with the user's password change or deletion (by user_id), swept at
-- expiry.
CREATE TABLE browser_sessions (
    hash       TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);

-- What a user has granted a client for one resource; recording it again
-- replaces the scopes.
CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);

-- Authorization codes. consumed_at is set by one conditional UPDATE (NULL ->
-- now), so of two replicas redeeming one code exactly one succeeds; the row
-- stays until it expires so that a replay is recognised (and its family,
-- decided when the code was issued, revoked).
CREATE TABLE auth_codes (
    hash           TEXT PRIMARY KEY NOT NULL,
    family_id      TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT,
    code_challenge TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resources      TEXT NOT NULL,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER
);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- One grant to one client for one user: the code and every refresh token
-- rotated from it. revoked_at, once set, is never cleared or moved.
CREATE TABLE grant_families (
    id         TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resources  TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX grant_families_user ON grant_families (user_id);
CREATE INDEX grant_families_expiry ON grant_families (expires_at);

-- Refresh tokens of a family, by hash. used_at is set by one conditional
-- UPDATE (NULL -> now): the first exchange is decided in SQL.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Access tokens issued from a family, kept until their own `exp` so that
-- revoking the family can copy the live ones into `revocations`.
CREATE TABLE issued_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX issued_tokens_family ON issued_tokens (family_id);
CREATE INDEX issued_tokens_expiry ON issued_tokens (expires_at);
