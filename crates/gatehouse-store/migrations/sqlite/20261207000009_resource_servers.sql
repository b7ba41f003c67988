-- Who may introspect others' tokens moved from a client's `audiences` (which
-- now only restrict what it may obtain) to its own `resource_servers`
-- (`gatehouse client create --resource-server URL`). Confidential clients
-- an operator created with audiences could introspect tokens for them until
-- now; they keep that right, as resource servers for the same audiences.
UPDATE clients
SET metadata = json_set(metadata, '$.resource_servers', json(json_extract(metadata, '$.audiences'))),
    revision = revision + 1
WHERE origin = 'cli'
  AND json_type(metadata, '$.audiences') = 'array'
  AND json_type(metadata, '$.resource_servers') IS NULL
  AND json_extract(metadata, '$.token_endpoint_auth_method') <> 'none';
