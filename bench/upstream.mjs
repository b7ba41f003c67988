// A trivial MCP-like upstream for bench/gateway.sh: POST /mcp answers every
// JSON-RPC request at once with a fixed tools/call result, so that the gateway in
// front of it, not the upstream, is what the benchmark measures.
//
//   node bench/upstream.mjs PORT
//
// Plain node:http, no dependencies, 127.0.0.1 only. It does not parse JSON: it
// copies the request's "id" value textually (the benchmark always sends id 1) and
// ignores everything else, Authorization included. A message without an id (a
// notification) gets 202 with no body, as Streamable HTTP says. GET /healthz
// answers 200 for the readiness check; anything else is 404 or 405.
import http from "node:http";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node bench/upstream.mjs PORT");
  process.exit(2);
}

const HEAD = '{"jsonrpc":"2.0","id":';
const TAIL = ',"result":{"content":[{"type":"text","text":"ok"}]}}';
const FIXED = Buffer.from(HEAD + "1" + TAIL); // the benchmark's request id is always 1
const FIXED_HEADERS = { "content-type": "application/json", "content-length": FIXED.length };

// The id's text in a JSON-RPC request body, or null: a cheap scan, not a parser.
function idOf(body) {
  const at = body.indexOf('"id"');
  if (at < 0) return null;
  let i = body.indexOf(":", at + 4);
  if (i < 0) return null;
  i++;
  while (body[i] === " ") i++;
  if (body[i] === '"') {
    const end = body.indexOf('"', i + 1);
    return end < 0 ? null : body.slice(i, end + 1);
  }
  let j = i;
  while (j < body.length && body[j] !== "," && body[j] !== "}" && body[j] !== " ") j++;
  return j > i ? body.slice(i, j) : null;
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  if (req.url !== "/mcp") {
    res.writeHead(404);
    res.end();
    return;
  }
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST" });
    res.end();
    return;
  }
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    const id = idOf(body);
    if (id === "1") {
      res.writeHead(200, FIXED_HEADERS);
      res.end(FIXED);
    } else if (id === null) {
      res.writeHead(202);
      res.end();
    } else {
      const out = Buffer.from(HEAD + id + TAIL);
      res.writeHead(200, { "content-type": "application/json", "content-length": out.length });
      res.end(out);
    }
  });
});
// Keep idle connections open longer than any pause in the benchmark, so a pooled
// connection from the gateway is never closed under it between runs.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.on("connection", (socket) => socket.setNoDelay(true));
server.listen(port, "127.0.0.1", () => {
  console.error(`upstream listening on 127.0.0.1:${port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
