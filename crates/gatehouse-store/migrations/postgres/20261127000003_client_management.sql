-- RFC 7592 client management and secret rotation.
-- registration_token: JSON of the HMAC of the registration access token (as
--   the secrets column holds secrets), NULL for clients created on the CLI.
-- revision: bumped by every update, so that concurrent read-modify-write
--   updates (two rotations, a rotation and a PUT) cannot overwrite each other.
ALTER TABLE clients ADD COLUMN registration_token TEXT;
ALTER TABLE clients ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
