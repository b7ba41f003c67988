// A real MCP client built with the official TypeScript SDK, acting for a
// person: the SDK's own OAuth client (`auth()` driven by
// `StreamableHTTPClientTransport`) with an `OAuthClientProvider` whose
// redirect step follows the authorization URL headlessly (fetch with
// `redirect: 'manual'` and a small cookie jar: sign-in form, consent form).
// Driven by crates/gatehouse/tests/it/mcp_sdk_oauth.rs:
//
//   node interop/mcp-oauth-client.mjs MCP_URL USERNAME PASSWORD [TOOL] [CLIENT_METADATA_URL] [PROVIDER]
//
// With PROVIDER (a `[[people.providers]]` id) the person signs in at that
// upstream identity provider instead: the sign-in page's provider form, then
// node-oidc-provider's development sign-in and consent forms (any login,
// USERNAME), back through Gatehouse's callback to its consent page.
//
// With CLIENT_METADATA_URL the provider offers it as `clientMetadataUrl`:
// the SDK then uses it as its client id when the server advertises
// `client_id_metadata_document_supported`, and registers otherwise.
//
// It connects with no token, so the SDK starts from the gateway's bare 401:
// protected-resource metadata → authorization-server metadata → dynamic
// registration (public client, loopback redirect URI) → authorization request
// (PKCE S256, `resource`) → [this provider: sign in, allow] → finishAuth (code
// exchange) → reconnect → tools/call TOOL (default search_issues). Then it
// breaks the stored access token (keeping the real refresh token), so the
// gateway answers 401 and the SDK refreshes by itself, and calls TOOL again.
//
// Prints one JSON line on stdout:
//   {client_id, redirect_uri, authorization:{...query of the authorization URL...},
//    callback:{code_present, state, iss}, state_sent, state_matches,
//    first, second, refresh_token_before, refresh_token_after,
//    access_token_before, access_token_after, scope, flow:[...]}
// where `flow` lists every HTTP request made, in order, as
// "METHOD PATH -> STATUS" plus " (Bearer)" when it carried a bearer token and,
// for token requests, " grant_type=... resource=yes|no". Exits non-zero on any
// unexpected outcome (details on stderr).

import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpUrl, username, password, tool = 'search_issues', clientMetadataUrl, upstreamProvider] =
  process.argv.slice(2);
if (!mcpUrl || !username || password === undefined) {
  console.error('usage: node mcp-oauth-client.mjs MCP_URL USERNAME PASSWORD [TOOL]');
  process.exit(2);
}

function fail(message, err) {
  console.error(`mcp-oauth-client.mjs: ${message}`);
  if (err) console.error(err);
  process.exit(1);
}

/** Every request the SDK (and the headless user agent) made, in order. */
const flow = [];

async function recordingFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET');
  const headers = new Headers(init?.headers ?? (typeof input === 'object' && 'headers' in input ? input.headers : undefined));
  const response = await fetch(input, init);
  const u = new URL(url);
  const scheme = headers.get('authorization')?.split(' ')[0];
  let extra = '';
  if (u.pathname.endsWith('/oauth/token')) {
    const body = init?.body;
    const text = typeof body === 'string' ? body : body instanceof URLSearchParams ? body.toString() : '';
    const form = new URLSearchParams(text);
    extra = ` grant_type=${form.get('grant_type')} resource=${form.has('resource') ? 'yes' : 'no'}`;
  }
  flow.push(`${method} ${u.pathname} -> ${response.status}${scheme ? ` (${scheme})` : ''}${extra}`);
  return response;
}

// ---------------------------------------------------------------- the person
// A headless user agent: follows the authorization URL with a cookie jar,
// signs in with the form's own hidden fields, allows on the consent page.

const jar = new Map();

function remember(response) {
  for (const line of response.headers.getSetCookie?.() ?? []) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
}

function cookieHeader() {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}

async function browse(url, init = {}) {
  const headers = new Headers(init.headers);
  if (jar.size) headers.set('cookie', cookieHeader());
  const response = await recordingFetch(url, { ...init, headers, redirect: 'manual' });
  remember(response);
  return response;
}

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const k = e.toLowerCase();
    if (k === 'amp') return '&';
    if (k === 'lt') return '<';
    if (k === 'gt') return '>';
    if (k === 'quot') return '"';
    if (k === 'apos') return "'";
    return String.fromCodePoint(k.startsWith('#x') ? parseInt(k.slice(2), 16) : parseInt(k.slice(1), 10));
  });
}

function attributes(tag) {
  const attrs = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/** The form on this HTML page (at `pageUrl`) posting to `path`: its
 *  resolved action URL and hidden fields. */
function form(html, pageUrl, path) {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const action = new URL(attributes(m[1]).action ?? '', pageUrl);
    if (action.pathname !== path) continue;
    const fields = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1]);
      if (a.type?.toLowerCase() === 'hidden' && a.name) fields[a.name] = a.value ?? '';
    }
    return { action, fields };
  }
  return null;
}

async function expectStatus(response, status, what) {
  if (response.status !== status) {
    fail(`${what}: expected HTTP ${status}, got ${response.status}:\n${await response.text().catch(() => '')}`);
  }
}

let authorizationUrl = null;
let authorizationCode = null;
let callback = null;

/** The first form on an HTML page: its resolved action and its fields
 *  (hidden ones, and the others with the values given). */
function anyForm(html, pageUrl) {
  const m = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!m) return null;
  const action = new URL(attributes(m[1]).action ?? '', pageUrl);
  const fields = {};
  for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
    const a = attributes(input[1]);
    if (a.name) fields[a.name] = a.value ?? '';
  }
  return { action, fields };
}

/** Through the upstream provider: from the sign-in page's provider button
 *  to Gatehouse's consent page; returns that page's URL and response. */
async function viaProvider(page, url) {
  const gatehouse = new URL(url).origin;
  const html = await page.text();
  let start = null;
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const action = new URL(attributes(m[1]).action ?? '', url);
    if (action.pathname === '/oauth/federate' && m[2].includes(`value="${upstreamProvider}"`)) {
      const f = form(m[0], url, '/oauth/federate');
      start = { action, fields: { ...f.fields, provider: upstreamProvider } };
    }
  }
  if (!start) fail(`the sign-in page offers no provider ${upstreamProvider}`);
  let response = await browse(start.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(start.fields).toString(),
  });
  let at = start.action;
  for (let hop = 0; hop < 20; hop += 1) {
    if (response.status >= 300 && response.status < 400) {
      at = new URL(response.headers.get('location'), at);
      response = await browse(at);
      continue;
    }
    await expectStatus(response, 200, `GET ${at}`);
    if (at.origin === gatehouse) return { at, response };
    // A provider page: its sign-in form, or its consent form.
    const f = anyForm(await response.text(), at);
    if (!f) fail(`no form on the provider's page ${at}`);
    if ('login' in f.fields) {
      f.fields.login = username;
      f.fields.password = password;
    }
    response = await browse(f.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(f.fields).toString(),
    });
    at = f.action;
  }
  fail('too many hops through the identity provider');
}

async function signInAndAllow(url) {
  authorizationUrl = url;
  const page = await browse(url);
  await expectStatus(page, 200, 'GET authorization URL (sign-in page)');
  if (upstreamProvider) {
    const { at, response } = await viaProvider(page, url);
    return allowAt(at, response, url);
  }
  const signinForm = form(await page.text(), url, '/oauth/signin');
  if (!signinForm || !('csrf' in signinForm.fields) || !('request' in signinForm.fields)) {
    fail('the sign-in page has no form posting to /oauth/signin with csrf and request fields');
  }
  const signin = await browse(signinForm.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...signinForm.fields, username, password }).toString(),
  });
  await expectStatus(signin, 303, 'POST /oauth/signin');
  const back = new URL(signin.headers.get('location'), signinForm.action);
  const consentPage = await browse(back);
  await expectStatus(consentPage, 200, `GET ${back.pathname} after signing in (consent page)`);
  return allowAt(back, consentPage, url);
}

/** Allow on Gatehouse's consent page (at `back`); reads the code. */
async function allowAt(back, consentPage, url) {
  const consentForm = form(await consentPage.text(), back, '/oauth/consent');
  if (!consentForm) fail('the consent page has no form posting to /oauth/consent');
  const consent = await browse(consentForm.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...consentForm.fields, decision: 'allow' }).toString(),
  });
  await expectStatus(consent, 303, 'POST /oauth/consent decision=allow');
  const location = new URL(consent.headers.get('location'), url);
  callback = {
    url: `${location.origin}${location.pathname}`,
    code_present: location.searchParams.has('code'),
    state: location.searchParams.get('state'),
    iss: location.searchParams.get('iss'),
    error: location.searchParams.get('error'),
  };
  authorizationCode = location.searchParams.get('code');
  if (!authorizationCode) fail(`no code in the redirect: ${location.href}`);
}

// ---------------------------------------------------------------- the provider

// Registered, never listened on: the headless agent reads the code from the
// consent response's Location instead of following it.
const redirectUri = `http://127.0.0.1:${20000 + (randomBytes(2).readUInt16BE() % 40000)}/callback`;
const stateSent = randomBytes(16).toString('base64url');

const store = { client: undefined, tokens: undefined, verifier: undefined, discovery: undefined };
let registrations = 0;

const provider = {
  clientMetadataUrl: clientMetadataUrl || undefined,
  get redirectUrl() {
    return redirectUri;
  },
  get clientMetadata() {
    return {
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      client_name: 'Gatehouse interop MCP client',
    };
  },
  state: () => stateSent,
  clientInformation: () => store.client,
  saveClientInformation: (info) => {
    registrations += 1;
    store.client = info;
  },
  tokens: () => store.tokens,
  saveTokens: (tokens) => {
    store.tokens = tokens;
  },
  redirectToAuthorization: async (url) => {
    await signInAndAllow(url);
  },
  saveCodeVerifier: (v) => {
    store.verifier = v;
  },
  codeVerifier: () => {
    if (!store.verifier) throw new Error('no code verifier saved');
    return store.verifier;
  },
  discoveryState: () => store.discovery,
  saveDiscoveryState: (s) => {
    store.discovery = s;
  },
};

function text(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

const watchdog = setTimeout(() => fail(`timed out; requests so far: ${JSON.stringify(flow)}`), 60_000);

function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'gatehouse-interop-oauth-client', version: '1.0.0' });
  return { transport, client };
}

try {
  // 1. No token: the 401 starts discovery, registration and the
  //    authorization request, which this provider completes headlessly.
  let { transport, client } = connect();
  try {
    await client.connect(transport);
    fail('connected without authorizing');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) fail(`connect failed; requests so far: ${JSON.stringify(flow)}`, err);
  }
  if (!authorizationCode) fail(`the SDK never asked to authorize; requests so far: ${JSON.stringify(flow)}`);
  try {
    await transport.finishAuth(authorizationCode);
  } catch (err) {
    fail(`finishAuth (code exchange) failed; requests so far: ${JSON.stringify(flow)}`, err);
  }
  await client.close().catch(() => {});
  const before = { ...store.tokens };

  // 2. Connect again with the token and call the tool.
  ({ transport, client } = connect());
  try {
    await client.connect(transport);
  } catch (err) {
    fail(`connect with the token failed; requests so far: ${JSON.stringify(flow)}`, err);
  }
  let first;
  try {
    const r = await client.callTool({ name: tool, arguments: {} });
    if (r.isError) fail(`${tool} returned a tool error: ${JSON.stringify(r)}`);
    first = text(r);
  } catch (err) {
    fail(`${tool} failed; requests so far: ${JSON.stringify(flow)}`, err);
  }

  // 3. Break the access token (keeping everything else as saved), so the
  //    gateway answers 401 and the SDK refreshes by itself.
  store.tokens = { ...store.tokens, access_token: 'broken.access.token' };
  flow.push('-- access token broken --');
  let second;
  try {
    const r = await client.callTool({ name: tool, arguments: {} });
    if (r.isError) fail(`${tool} after refresh returned a tool error: ${JSON.stringify(r)}`);
    second = text(r);
  } catch (err) {
    fail(`${tool} after breaking the access token failed; requests so far: ${JSON.stringify(flow)}`, err);
  }
  const after = store.tokens;

  const query = Object.fromEntries(new URL(authorizationUrl).searchParams);
  process.stdout.write(
    `${JSON.stringify({
      client_id: store.client?.client_id ?? null,
      registrations,
      redirect_uri: redirectUri,
      authorization_url: authorizationUrl.toString(),
      authorization: query,
      callback,
      state_sent: stateSent,
      state_matches: callback?.state === stateSent,
      code_verifier_used: Boolean(store.verifier),
      first,
      second,
      scope: before.scope ?? null,
      token_type: before.token_type ?? null,
      refresh_token_before: before.refresh_token ?? null,
      refresh_token_after: after?.refresh_token ?? null,
      access_token_before: before.access_token ?? null,
      access_token_after: after?.access_token ?? null,
      flow,
    })}\n`,
  );
  try {
    await transport.terminateSession();
  } catch {
    // Ending the session is courtesy; the result above is what counts.
  }
  await client.close().catch(() => {});
} finally {
  clearTimeout(watchdog);
}
process.exit(0);
