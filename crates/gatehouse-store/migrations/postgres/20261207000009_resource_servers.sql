-- Who may introspect others' tokens moved from a client's `audiences` (which
-- now only restrict what it may obtain) to its own `resource_servers`
-- (`gatehouse client create --resource-server URL`). Confidential clients
-- an operator created with audiences could introspect tokens for them until
-- now; they keep that right, as resource servers for the same audiences.
UPDATE clients
SET metadata = jsonb_set(metadata::jsonb, '{resource_servers}', metadata::jsonb -> 'audiences')::text,
    revision = revision + 1
WHERE origin = 'cli'
  AND jsonb_typeof(metadata::jsonb -> 'audiences') = 'array'
  AND NOT (metadata::jsonb ? 'resource_servers')
  AND metadata::jsonb ->> 'token_endpoint_auth_method' <> 'none';
