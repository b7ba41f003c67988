// Pre-signed private_key_jwt client assertions for bench/token.sh (wrk's Lua
// cannot sign JWTs cheaply). Node's own crypto only; no npm packages.
//
//   node bench/assertions.mjs keygen DIR
//       writes DIR/client-key.pem (PKCS#8, P-256) and DIR/client-jwks.json
//       (the public key as a JWKS, kid "bench-1") for `gatehouse client create
//       --auth-method private_key_jwt --jwks`.
//   node bench/assertions.mjs mint DIR CLIENT_ID AUD COUNT OUT_FILE
//       writes COUNT ES256 assertions, one a line, to OUT_FILE: header
//       {"alg":"ES256","typ":"JWT","kid":"bench-1"}, claims iss = sub =
//       CLIENT_ID, aud = AUD, iat = now, exp = now + 30 minutes, and a jti
//       unique to each line (a random prefix for the file plus the line
//       number), so that each assertion can be used exactly once.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const KID = 'bench-1';
const LIFETIME_S = 30 * 60;
const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

const [cmd, dir, ...rest] = process.argv.slice(2);
if (cmd === 'keygen' && dir) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'client-key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  writeFileSync(join(dir, 'client-jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid: KID, use: 'sig' }] }));
} else if (cmd === 'mint' && dir && rest.length === 4) {
  const [clientId, aud, countText, out] = rest;
  const count = Number.parseInt(countText, 10);
  if (!(count > 0)) throw new Error(`bad COUNT ${countText}`);
  const key = createPrivateKey(readFileSync(join(dir, 'client-key.pem')));
  const header = b64url({ alg: 'ES256', typ: 'JWT', kid: KID });
  const prefix = randomBytes(9).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const stream = createWriteStream(out);
  let chunk = [];
  for (let i = 0; i < count; i++) {
    const claims = b64url({ iss: clientId, sub: clientId, aud, iat: now, exp: now + LIFETIME_S, jti: `${prefix}-${i}` });
    const input = `${header}.${claims}`;
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    chunk.push(`${input}.${signature}\n`);
    if (chunk.length === 1000) {
      if (!stream.write(chunk.join(''))) await new Promise((r) => stream.once('drain', r));
      chunk = [];
    }
  }
  stream.end(chunk.join(''));
  await new Promise((r, j) => stream.on('finish', r).on('error', j));
} else {
  console.error('usage: node assertions.mjs keygen DIR | mint DIR CLIENT_ID AUD COUNT OUT_FILE');
  process.exit(2);
}
