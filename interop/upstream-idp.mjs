// A real OpenID Provider as Gatehouse's upstream identity provider:
// node-oidc-provider (pinned in package.json; OpenID-certified) with its
// development sign-in and consent screens, which accept any login name and
// password. Driven by crates/gatehouse/tests/it/federation.rs.
//
//   node interop/upstream-idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// One confidential client (client_secret_basic, the authorization code
// grant with PKCE) whose only redirect URI is REDIRECT_URI. People: any
// login; `alice` is in groups ["mcp-users", "eng"] with a verified
// alice@example.com, `bob` in ["sales"] with an unverified
// bob@elsewhere.example; anyone else has no groups. Their claims are in the
// ID token (the `groups` claim comes with `profile`).
//
// Prints one JSON line once listening: {"ready":true,"issuer":"http://127.0.0.1:PORT"}

import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!port || !clientId || !clientSecret || !redirectUri) {
  console.error('usage: node upstream-idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const people = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['mcp-users', 'eng'] },
  bob: { email: 'bob@elsewhere.example', email_verified: false, groups: ['sales'] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'groups'],
  },
  // The scope's claims in the ID token itself, not only at userinfo.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
  },
  pkce: { required: () => true },
  cookies: { keys: ['gatehouse-interop-upstream-idp'] },
  async findAccount(ctx, id) {
    const who = people[id] ?? { groups: [] };
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...who };
      },
    };
  },
});

// Plain http on loopback for the tests.
provider.proxy = false;
const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
