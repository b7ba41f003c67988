-- Credential generations, and what a client's deletion takes with it.
--
-- `users.credentials_gen` is bumped in the same transaction as every
-- password change. Sessions, codes and grant families record the generation
-- they were made under and are honoured only while it is still the user's:
-- the store joins users and compares at every use, so a sign-in or code in
-- flight during a reset dies with the reset whatever the interleaving.
-- Existing rows start at 0, like their users: what was live stays live.
ALTER TABLE users ADD COLUMN credentials_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE browser_sessions ADD COLUMN credentials_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_codes ADD COLUMN credentials_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grant_families ADD COLUMN credentials_gen INTEGER NOT NULL DEFAULT 0;

-- Deleting a client revokes its families, deletes its unredeemed codes and
-- forgets its consents; withdrawing consent deletes the codes of one user
-- and client. These find them without a scan.
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX grant_families_client ON grant_families (client_id);
CREATE INDEX auth_codes_client_user ON auth_codes (client_id, user_id);
