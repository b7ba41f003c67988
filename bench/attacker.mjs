// The attacker of bench/auth_attack.sh: POSTs client_credentials requests
// with a wrong secret for one client id, from another loopback address
// (connections bound to BENCH_ATTACK_FROM, default 127.0.0.2), at a fixed
// rate, until SIGTERM; then writes what it sent and the statuses it got as
// JSON to OUT_FILE.
//
//   node bench/attacker.mjs PORT CLIENT_ID RATE_PER_S OUT_FILE
//
// Node's own http module only, no packages. At most 64 requests are in
// flight (over 4 keep-alive connections); a tick that finds that many
// outstanding skips, and the skips are counted.
import http from "node:http";
import fs from "node:fs";

const [port, clientId, rateArg, outFile] = process.argv.slice(2);
const rate = Number(rateArg);
if (!port || !clientId || !(rate > 0) || !outFile) {
  console.error("usage: attacker.mjs PORT CLIENT_ID RATE_PER_S OUT_FILE");
  process.exit(2);
}
const from = process.env.BENCH_ATTACK_FROM || "127.0.0.2";
const agent = new http.Agent({ keepAlive: true, maxSockets: 4, localAddress: from });
const auth = "Basic " + Buffer.from(`${clientId}:not-the-secret`).toString("base64");
const body = "grant_type=client_credentials";
const statuses = {};
let sent = 0, inflight = 0, skipped = 0, errors = 0;
const started = process.hrtime.bigint();

function send() {
  inflight++;
  sent++;
  const req = http.request(
    {
      host: "127.0.0.1", port: Number(port), path: "/oauth/token", method: "POST", agent,
      headers: {
        authorization: auth,
        "content-type": "application/x-www-form-urlencoded",
        "content-length": Buffer.byteLength(body),
      },
    },
    (res) => {
      res.resume();
      res.on("end", () => {
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        inflight--;
      });
    },
  );
  req.on("error", () => { errors++; inflight--; });
  req.end(body);
}

// Every 10 ms, send what the rate allows since the start.
const tick = setInterval(() => {
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const due = Math.floor(elapsed * rate) - sent - skipped;
  for (let i = 0; i < due; i++) {
    if (inflight >= 64) { skipped++; continue; }
    send();
  }
}, 10);

process.on("SIGTERM", () => {
  clearInterval(tick);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  fs.writeFileSync(outFile, JSON.stringify({ from, seconds, sent, skipped, errors, statuses }) + "\n");
  process.exit(0);
});
