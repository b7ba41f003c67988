-- Self-registered clients remember the client address they registered from
-- (as the server's limits see it: behind trusted proxies the forwarded
-- address, IPv6 as its /64), so that the number of live registrations per
-- address can be capped (`registration.max_clients_per_address`). NULL for
-- clients created on the CLI and for registrations made before this column.
ALTER TABLE clients ADD COLUMN registered_from TEXT;
CREATE INDEX clients_registered_from ON clients (registered_from) WHERE registered_from IS NOT NULL;
