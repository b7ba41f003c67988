// A real MCP client built with the official TypeScript SDK, authenticating
// with the SDK's own client-credentials support, driven by
// crates/gatehouse/tests/it/mcp_sdk.rs (client secret, `ClientCredentialsProvider`)
// and crates/gatehouse/tests/it/pkjwt_interop.rs (private_key_jwt,
// `PrivateKeyJwtProvider`):
//
//   node interop/client.mjs MCP_URL CLIENT_ID CLIENT_SECRET [EXPECTED_ISSUER]
//   node interop/client.mjs --private-key-jwt KEY_PEM_FILE ALG MCP_URL CLIENT_ID [EXPECTED_ISSUER]
//
// With --private-key-jwt the SDK signs a JWT client assertion (RFC 7523 §2.2)
// with the PKCS#8 PEM private key in KEY_PEM_FILE and algorithm ALG (e.g.
// ES256) for every token request, instead of sending a secret.
//
// It connects with no token, so the session starts from the gateway's bare
// 401 and the SDK does the discovery itself (protected-resource metadata →
// authorization-server metadata → token request → retry). Then it lists the
// tools, calls `search_issues` (must succeed) and `merge_pr` (must be refused).
//
// Prints one JSON line on stdout:
//   {"tools":[...],"search":"<text>","merge_error":"<message>","merge_code":N,"flow":[...],"assertion_claims":{...}|null}
// where `merge_code` is the refusal's code (a JSON-RPC error code, or the HTTP
// status when the transport refused the POST), and `flow` lists every HTTP request the SDK made, in order, as
// "METHOD PATH -> STATUS", plus " (Scheme)" when it carried an Authorization
// header (Basic for the token request, Bearer for MCP requests),
// " (client_assertion)" when the request body carried a JWT client assertion, and
// " (metadata patched)" where the workaround below applied. Exits non-zero on any unexpected outcome (details on stderr).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { readFileSync } from 'node:fs';

const USAGE =
  'usage: node client.mjs MCP_URL CLIENT_ID CLIENT_SECRET [EXPECTED_ISSUER]\n' +
  '       node client.mjs --private-key-jwt KEY_PEM_FILE ALG MCP_URL CLIENT_ID [EXPECTED_ISSUER]';
const argv = process.argv.slice(2);
const privateKeyJwt = argv[0] === '--private-key-jwt';
const [keyFile, algorithm] = privateKeyJwt ? argv.slice(1, 3) : [];
const [mcpUrl, clientId, ...rest] = privateKeyJwt ? argv.slice(3) : argv;
const clientSecret = privateKeyJwt ? undefined : rest.shift();
const [expectedIssuer] = rest;
if (!mcpUrl || !clientId || (privateKeyJwt ? !keyFile || !algorithm : !clientSecret)) {
  console.error(USAGE);
  process.exit(2);
}

function fail(message, err) {
  console.error(`client.mjs: ${message}`);
  if (err) console.error(err);
  process.exit(1);
}

/** Every request the SDK made (transport and OAuth alike), in order. */
const flow = [];
/** The claims of the last JWT client assertion the SDK sent (private_key_jwt mode). */
let assertionClaims = null;

// Records every request the SDK makes (the flow the test asserts) and the
// claims of any client assertion it sends. Gatehouse's metadata now carries
// `authorization_endpoint` (for people's sign-in), so the SDK takes it as it
// is; the earlier test-side patch for its absence is gone.
async function recordingFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET');
  const headers = new Headers(init?.headers ?? (typeof input === 'object' && 'headers' in input ? input.headers : undefined));
  const response = await fetch(input, init);
  const u = new URL(url);
  const scheme = headers.get('authorization')?.split(' ')[0];
  const body = init?.body;
  const bodyText = typeof body === 'string' ? body : body instanceof URLSearchParams ? body.toString() : '';
  const assertion = new URLSearchParams(bodyText).get('client_assertion');
  if (assertion) {
    // Decoded, not verified: what the SDK put in its assertion (iss, sub, aud, ...).
    try {
      assertionClaims = JSON.parse(Buffer.from(assertion.split('.')[1], 'base64url').toString());
    } catch {
      assertionClaims = 'unreadable';
    }
  }
  flow.push(
    `${method} ${u.pathname} -> ${response.status}${scheme ? ` (${scheme})` : ''}${assertion ? ' (client_assertion)' : ''}`,
  );

  return response;
}

// Only present the credentials to the authorization server they were issued by.
const issuerPin = expectedIssuer ? { expectedIssuer } : {};
const provider = privateKeyJwt
  ? new PrivateKeyJwtProvider({
      clientId,
      privateKey: readFileSync(keyFile, 'utf8'),
      algorithm,
      clientName: 'gatehouse-interop-client',
      ...issuerPin,
    })
  : new ClientCredentialsProvider({
      clientId,
      clientSecret,
      clientName: 'gatehouse-interop-client',
      ...issuerPin,
    });

const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
  authProvider: provider,
  // Used for the MCP requests and, by the SDK, for every OAuth request
  // (discovery, metadata, token) too.
  fetch: recordingFetch,
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

  process.stdout.write(`${JSON.stringify({ tools, search, merge_error: mergeError, merge_code: mergeCode, flow, assertion_claims: assertionClaims })}\n`);
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
