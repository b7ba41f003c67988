#!/usr/bin/env python3
"""Server CPU per refused private_key_jwt assertion (bench/README.md
"Refused assertions: CPU per request").

Usage: python3 bench/assertion_cpu.py PATH/TO/gatehouse [before|after]

For each case: a fresh data directory, a private_key_jwt client with eight
RSA keys (random odd moduli: the verifier takes them, nobody holds their
private half) and a secret client; `gatehouse serve` with the failure
backoff raised out of the way; 50 warm-up requests, then 2,000 RS256
assertions with valid claims and a random signature over one keep-alive
connection, and 2,000 Basic requests with a wrong secret. The server's
utime+stime (/proc/PID/stat) over each run, divided by the requests.
"before" registers 8192-bit keys (refused by builds with the 4096-bit cap).
"""
import base64, json, os, subprocess, sys, time, http.client, tempfile, random, socket, shutil

def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()

def rsa_jwk(bits, kid):
    n = bytearray(random.getrandbits(8) for _ in range(bits // 8))
    n[0] |= 0x80; n[-1] |= 1
    return {"kty": "RSA", "kid": kid, "n": b64(bytes(n)), "e": "AQAB"}

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def run(binary, bits, nkeys, kid, label, n=2000):
    d = tempfile.mkdtemp(prefix="gh-measure-")
    jwks = {"keys": [rsa_jwk(bits, f"k{i}") for i in range(nkeys)]}
    open(f"{d}/jwks.json", "w").write(json.dumps(jwks))
    env = dict(os.environ, GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS="100000000",
               GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS_CLIENT="100000000", RUST_LOG="warn")
    out = subprocess.run([binary, "client", "create", "--init", "--data-dir", d, "--name", "m", "--grant", "client_credentials",
                          "--auth-method", "private_key_jwt", "--jwks", f"{d}/jwks.json"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(label, "client create refused:", out.stderr.strip()); shutil.rmtree(d); return
    cid = json.loads(out.stdout)["client_id"]
    sec = subprocess.run([binary, "client", "create", "--init", "--data-dir", d, "--name", "s", "--grant", "client_credentials"],
                         capture_output=True, text=True, env=env)
    sid = json.loads(sec.stdout)["client_id"]
    port = free_port()
    p = subprocess.Popen([binary, "serve", "--data-dir", d, "--listen", f"127.0.0.1:{port}", "--audience", "http://127.0.0.1:9/mcp"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/healthz"); c.getresponse().read(); break
        except Exception: time.sleep(0.1)
    iss = f"http://127.0.0.1:{port}"
    header = {"alg": "RS256"} if kid is None else {"alg": "RS256", "kid": kid}
    def assertion():
        now = int(time.time())
        claims = {"iss": cid, "sub": cid, "aud": iss, "iat": now, "exp": now + 60, "jti": os.urandom(8).hex()}
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(os.urandom(bits // 8))}"
    import urllib.parse
    c = http.client.HTTPConnection("127.0.0.1", port)
    def post(body, headers={}):
        h = {"Content-Type": "application/x-www-form-urlencoded"}; h.update(headers)
        c.request("POST", "/oauth/token", body=body, headers=h); r = c.getresponse(); r.read(); return r.status
    bodies = [urllib.parse.urlencode({"grant_type": "client_credentials",
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
              "client_assertion": assertion()}) for _ in range(n + 50)]
    for b in bodies[:50]: post(b)
    t0 = cpu(p.pid)
    st = [post(b) for b in bodies[50:]]
    t1 = cpu(p.pid)
    basic = "Basic " + base64.b64encode(f"{sid}:wrong-secret".encode()).decode()
    sb = "grant_type=client_credentials"
    for _ in range(50): post(sb, {"Authorization": basic})
    t2 = cpu(p.pid)
    st2 = [post(sb, {"Authorization": basic}) for _ in range(n)]
    t3 = cpu(p.pid)
    p.terminate(); p.wait(); shutil.rmtree(d)
    print(f"{label}: refused assertion {1e6*(t1-t0)/n:.0f} µs/request (statuses {sorted(set(st))}); "
          f"wrong secret {1e6*(t3-t2)/n:.0f} µs/request (statuses {sorted(set(st2))})")

binary, which = sys.argv[1], sys.argv[2]
if which == "before":
    # A build without the cap: what eight RSA-8192 keys cost.
    run(binary, 8192, 8, None, "before, 8 x RSA-8192, no kid")
    run(binary, 4096, 8, None, "before, 8 x RSA-4096, no kid")
else:
    run(binary, 8192, 8, None, "after, 8 x RSA-8192, no kid")
    run(binary, 4096, 8, None, "after, 8 x RSA-4096, no kid")
    run(binary, 4096, 8, "k3", "after, 8 x RSA-4096, kid of one")
