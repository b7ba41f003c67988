-- Who may introspect others' tokens moved from a client's `audiences` (which
-- now only restrict what it may obtain) to its own `resource_servers`
-- (`gatehouse client create --resource-server URL`). Confidential clients
-- an operator created with audiences could introspect tokens for them until
-- now; they keep that right, as resource servers for the same audiences.
UPDATE clients
SET metadata = jsonb_set(metadata::jsonb, '{resource_servers}', metadata::jsonb -> 'audiences')::text,
    revision = revision + 1
-- The tests read `json`, which accepts any stored text (jsonb refuses a
-- \u0000 escape a self-registered client's display fields may hold); only
-- the rows changed are converted to jsonb.
WHERE origin = 'cli'
  AND json_typeof(metadata::json -> 'audiences') = 'array'
  AND (metadata::json -> 'resource_servers') IS NULL
  AND metadata::json ->> 'token_endpoint_auth_method' <> 'none';
