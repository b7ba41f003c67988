// A real MCP client built with the official TypeScript SDK, authenticating
// with the SDK's own client-credentials support (`ClientCredentialsProvider`),
// driven by crates/gatehouse/tests/mcp_sdk.rs.
//
//   node interop/client.mjs MCP_URL CLIENT_ID CLIENT_SECRET [EXPECTED_ISSUER]
//
// It connects with no token, so the session starts from the gateway's bare
// 401 and the SDK does the discovery itself (protected-resource metadata →
// authorization-server metadata → token request → retry). Then it lists the
// tools, calls `search_issues` (must succeed) and `merge_pr` (must be refused).
//
// Prints one JSON line on stdout:
//   {"tools":[...],"search":"<text>","merge_error":"<message>","merge_code":N,"flow":[...]}
// where `merge_code` is the refusal's code (the HTTP status when the transport
// refused the POST, e.g. 403; a JSON-RPC error code otherwise), and `flow` lists every HTTP request the SDK made, in order, as
// "METHOD PATH -> STATUS", plus " (Scheme)" when it carried an Authorization
// header (Basic for the token request, Bearer for MCP requests) and
// " (metadata patched)" where the workaround below applied. Exits non-zero on any unexpected outcome (details on stderr).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [mcpUrl, clientId, clientSecret, expectedIssuer] = process.argv.slice(2);
if (!mcpUrl || !clientId || !clientSecret) {
  console.error('usage: node client.mjs MCP_URL CLIENT_ID CLIENT_SECRET [EXPECTED_ISSUER]');
  process.exit(2);
}

function fail(message, err) {
  console.error(`client.mjs: ${message}`);
  if (err) console.error(err);
  process.exit(1);
}

/** Every request the SDK made (transport and OAuth alike), in order. */
const flow = [];

const AS_METADATA_PATHS = ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration'];

function isAuthorizationServerMetadata(url) {
  const path = new URL(url).pathname;
  // Both the root form and the path-inserted form (RFC 8414 §3.1) and the
  // OIDC path-appended form (".../openid-configuration" at the end).
  return AS_METADATA_PATHS.some((p) => path.startsWith(p)) || path.endsWith('/.well-known/openid-configuration');
}

// WORKAROUND (test-side only; see /work/shared/STACK.md "Interoperability facts").
//
// Gatehouse's authorization server only supports the client_credentials grant
// so far, so its RFC 8414 metadata has no `authorization_endpoint` — which is
// correct: RFC 8414 §2 makes that field required only "unless no grant types
// are supported that use the authorization endpoint". The SDK (1.32.x),
// however, parses the metadata with `authorization_endpoint` required (and
// `response_types_supported` required), and would reject the whole document
// before ever reaching the client-credentials token request, which never uses
// that endpoint.
//
// So, for authorization-server metadata responses only, this wrapper adds a
// placeholder `authorization_endpoint` (issuer + "/oauth/authorize-unsupported",
// never contacted by the client-credentials flow) and `response_types_supported:
// ["code"]` when they are missing. Every other request and response passes
// through untouched. Remove this once Gatehouse has an authorization endpoint.
async function patchingFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET');
  const headers = new Headers(init?.headers ?? (typeof input === 'object' && 'headers' in input ? input.headers : undefined));
  const response = await fetch(input, init);
  const u = new URL(url);
  const scheme = headers.get('authorization')?.split(' ')[0];
  flow.push(`${method} ${u.pathname} -> ${response.status}${scheme ? ` (${scheme})` : ''}`);

  if (!response.ok || !isAuthorizationServerMetadata(url)) {
    return response;
  }
  let metadata;
  try {
    metadata = await response.clone().json();
  } catch {
    return response;
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    return response;
  }
  let patched = false;
  if (metadata.authorization_endpoint === undefined && typeof metadata.issuer === 'string') {
    metadata.authorization_endpoint = `${metadata.issuer}/oauth/authorize-unsupported`;
    patched = true;
  }
  if (metadata.response_types_supported === undefined) {
    metadata.response_types_supported = ['code'];
    patched = true;
  }
  if (!patched) {
    return response;
  }
  flow[flow.length - 1] += ' (metadata patched)';
  const outHeaders = new Headers(response.headers);
  outHeaders.delete('content-length');
  outHeaders.delete('content-encoding');
  outHeaders.set('content-type', 'application/json');
  return new Response(JSON.stringify(metadata), {
    status: response.status,
    statusText: response.statusText,
    headers: outHeaders,
  });
}

const provider = new ClientCredentialsProvider({
  clientId,
  clientSecret,
  clientName: 'gatehouse-interop-client',
  // Only present the credentials to the authorization server they were issued by.
  ...(expectedIssuer ? { expectedIssuer } : {}),
});

const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
  authProvider: provider,
  // Used for the MCP requests and, by the SDK, for every OAuth request
  // (discovery, metadata, token) too.
  fetch: patchingFetch,
});
const client = new Client({ name: 'gatehouse-interop-client', version: '1.0.0' });

const watchdog = setTimeout(() => fail(`timed out; requests so far: ${JSON.stringify(flow)}`), 30_000);

try {
  try {
    await client.connect(transport);
  } catch (err) {
    fail(`connect failed; requests so far: ${JSON.stringify(flow)}`, err);
  }

  let tools;
  try {
    tools = (await client.listTools()).tools.map((t) => t.name);
  } catch (err) {
    fail('tools/list failed', err);
  }

  let search;
  try {
    const result = await client.callTool({ name: 'search_issues', arguments: {} });
    if (result.isError) fail(`search_issues returned a tool error: ${JSON.stringify(result)}`);
    search = (result.content ?? [])
      .filter((c) => c.type === 'text')
      .map((c) => c.text)
      .join('\n');
  } catch (err) {
    fail('search_issues failed', err);
  }

  let mergeError;
  let mergeCode = null;
  try {
    const result = await client.callTool({ name: 'merge_pr', arguments: {} });
    fail(`merge_pr must be refused, but it returned: ${JSON.stringify(result)}`);
  } catch (err) {
    mergeError = String(err?.message ?? err);
    // StreamableHTTPError carries the HTTP status; a JSON-RPC error its code.
    mergeCode = typeof err?.code === 'number' ? err.code : null;
  }
  if (!mergeError) fail('merge_pr was refused with an empty error message');

  process.stdout.write(`${JSON.stringify({ tools, search, merge_error: mergeError, merge_code: mergeCode, flow })}\n`);
  try {
    await transport.terminateSession();
  } catch {
    // Ending the session is courtesy; the result above is what counts.
  }
  await client.close();
} finally {
  clearTimeout(watchdog);
}
process.exit(0);
