"""An independent OAuth client: Python authlib's `private_key_jwt` client
authentication (RFC 7523 §2.2) getting a client_credentials token from
Gatehouse. Driven by crates/gatehouse/tests/it/pkjwt_interop.rs.

    python3 interop/authlib_client.py TOKEN_URL CLIENT_ID KEY_PEM_FILE ALG RESOURCE

KEY_PEM_FILE is the client's private key (PKCS#8 PEM); ALG is RS256 or ES256.
authlib signs the assertion itself (iss = sub = client id, aud = the token
endpoint URL, a fresh jti) on every token request.

Prints one JSON line on stdout:
    {"token": {...token response...}, "assertion": {"header": {...}, "claims": {...}}}
where `assertion` is what authlib sent (decoded, not verified). Exits
non-zero with details on stderr on any failure.
"""

import base64
import json
import sys
from urllib.parse import parse_qs

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey


def decode_segment(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    token_url, client_id, key_file, alg, resource = sys.argv[1:]
    with open(key_file, "rb") as f:
        pem = f.read()
    if alg.startswith("ES"):
        key = ECKey.import_key(pem)
    elif alg.startswith(("RS", "PS")):
        key = RSAKey.import_key(pem)
    else:
        print(f"authlib_client.py: unsupported alg {alg}", file=sys.stderr)
        return 2

    sent = []

    def record(response, *args, **kwargs):
        sent.append(response.request.body)

    session = OAuth2Session(
        client_id,
        key,
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg=alg),
    )
    session.hooks["response"].append(record)
    try:
        token = session.fetch_token(
            token_url, grant_type="client_credentials", resource=resource, timeout=20
        )
    except Exception as err:  # noqa: BLE001 - report whatever failed
        print(f"authlib_client.py: token request failed: {err!r}", file=sys.stderr)
        for body in sent:
            print(f"request body: {body!r}", file=sys.stderr)
        return 1

    body = sent[-1] if sent else ""
    if isinstance(body, bytes):
        body = body.decode()
    form = parse_qs(body or "")
    assertion = (form.get("client_assertion") or [""])[0]
    parts = assertion.split(".")
    decoded = None
    if len(parts) == 3:
        decoded = {"header": decode_segment(parts[0]), "claims": decode_segment(parts[1])}
    out = {
        "token": dict(token),
        "assertion": decoded,
        "assertion_type": (form.get("client_assertion_type") or [None])[0],
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
