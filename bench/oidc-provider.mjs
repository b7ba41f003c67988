// Baseline for bench/token.sh: node-oidc-provider 9 issuing client_credentials
// access tokens as ES256-signed JWTs for one resource (the MCP audience).
//
// Usage: node bench/oidc-provider.mjs [PORT]
//   PORT                 argv[2], else $PORT, else 9300
//   $AUDIENCE            resource / audience   (default http://127.0.0.1:9999/mcp)
//   $BENCH_CLIENT_ID     static client id      (default bench)
//   $BENCH_CLIENT_SECRET static client secret (default: random, printed at start)
//
// Listens on 127.0.0.1 only. Prints one JSON line on stdout once listening:
//   {"ready":true,"port":...,"client_id":...,"client_secret":...}
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? '9300', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`invalid port: ${process.argv[2] ?? process.env.PORT}`);
  process.exit(2);
}
const host = '127.0.0.1';
const audience = process.env.AUDIENCE ?? 'http://127.0.0.1:9999/mcp';
const clientId = process.env.BENCH_CLIENT_ID ?? 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET ?? randomBytes(32).toString('base64url');
const issuer = `http://${host}:${port}`;

// A fresh P-256 signing key for this run (the provider's dev keys are RS256 only).
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `bench-es256-${randomBytes(4).toString('hex')}`,
  alg: 'ES256',
  use: 'sig',
};

const resourceServer = {
  scope: 'mcp',
  audience,
  accessTokenTTL: 3600,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'ES256' } },
};

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      id_token_signed_response_alg: 'ES256',
    },
  ],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== audience) {
          throw new Provider.errors.InvalidTarget();
        }
        return resourceServer;
      },
    },
  },
  // The same path as Gatehouse, so the wrk script is identical for both servers.
  routes: { token: '/oauth/token' },
  ttl: { ClientCredentials: 3600 },
  // Fixed for this process only; silences the "cookies.keys" dev warning.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
});
provider.proxy = false;

const server = createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port, issuer, client_id: clientId, client_secret: clientSecret })}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
