-- Federated sign-in (docs/decisions.md "People"): people who sign in at an
-- upstream identity provider instead of with a password here.

-- An identity at a provider, linked to an account by (provider, subject)
-- and by nothing else — never by email, which would let one provider's
-- account take over another's. Deleted with the account.
CREATE TABLE linked_identities (
    provider        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    email           TEXT,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    linked_at       INTEGER NOT NULL,
    last_sign_in_at INTEGER,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX linked_identities_user ON linked_identities (user_id);

-- A sign-in under way at a provider: one row per redirect there, found by
-- the SHA-256 of its `state` and consumed by the first callback that
-- names it (one DELETE decides, across replicas). `browser` is the SHA-256
-- of the cookie that binds it to the browser that started it; `request`
-- the authorization request to return to. Swept at expiry.
CREATE TABLE federated_logins (
    hash       TEXT PRIMARY KEY NOT NULL,
    provider   TEXT NOT NULL,
    browser    TEXT NOT NULL,
    request    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX federated_logins_expiry ON federated_logins (expires_at);
