// A real MCP server built with the official TypeScript SDK, used as the
// upstream behind Gatehouse's gateway in crates/gatehouse/tests/it/mcp_sdk.rs.
//
//   node interop/server.mjs PORT [--resumable]
//
// With --resumable, each session keeps its SSE events in the SDK's
// InMemoryEventStore, with ordered event ids (resumable streams): a GET with Last-Event-ID replays
// what followed that event, as crates/gatehouse/tests/it/gateway_attacks.rs
// checks through the gateway.
//
// Streamable HTTP at http://127.0.0.1:PORT/mcp (POST, GET, DELETE), stateful:
// each `initialize` creates a session (its own McpServer + transport), later
// requests are routed by the `Mcp-Session-Id` header. Three tools, each
// answering the text "called <name>".
//
// On stdout: "listening on 127.0.0.1:PORT" once ready, then one line per HTTP
// request, `request METHOD authorization=present|absent`, one line per
// tool call received, `tools/call NAME`, and one per tools/list,
// `tools/list`, so the test can check that the
// gateway never passes the client's token upstream and that a denied call
// never reaches the server.

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';

// The SDK's example store names events `<stream>_<Date.now()>_<random>` and
// replays in the order of those names, so two events stored in the same
// millisecond (a stream's priming event and its answer, on a fast machine)
// sort by their random suffix and a resume may skip the answer. Names with a
// counter keep the order events were stored in.
class OrderedEventStore extends InMemoryEventStore {
  constructor() {
    super();
    this.stored = 0;
  }

  generateEventId(streamId) {
    this.stored += 1;
    return `${streamId}_${String(this.stored).padStart(12, '0')}`;
  }
}

const port = Number(process.argv[2]);
const resumable = process.argv.includes('--resumable');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.mjs PORT [--resumable]');
  process.exit(2);
}

const TOOLS = ['search_issues', 'merge_pr', 'delete_repo'];

function newServer() {
  const server = new McpServer({ name: 'gatehouse-interop-upstream', version: '1.0.0' });
  for (const name of TOOLS) {
    server.registerTool(name, { description: `The ${name} tool (test upstream).` }, async () => ({
      content: [{ type: 'text', text: `called ${name}` }],
    }));
  }
  return server;
}

/** Session id → transport. */
const transports = new Map();

function jsonRpcError(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text.length ? JSON.parse(text) : undefined;
}

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host ?? '127.0.0.1'}`);
  process.stdout.write(
    `request ${req.method} authorization=${req.headers.authorization ? 'present' : 'absent'}\n`,
  );
  if (url.pathname !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  try {
    const sessionId = req.headers['mcp-session-id'];
    if (req.method === 'POST') {
      let body;
      try {
        body = await readJson(req);
      } catch {
        jsonRpcError(res, 400, 'Parse error');
        return;
      }
      for (const msg of Array.isArray(body) ? body : [body]) {
        if (msg?.method === 'tools/call') process.stdout.write(`tools/call ${msg.params?.name}\n`);
        if (msg?.method === 'tools/list') process.stdout.write('tools/list\n');
      }
      let transport = sessionId ? transports.get(sessionId) : undefined;
      if (!transport) {
        if (sessionId || !isInitializeRequest(body)) {
          jsonRpcError(res, sessionId ? 404 : 400, sessionId ? 'Session not found' : 'No session');
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
          eventStore: resumable ? new OrderedEventStore() : undefined,
        });
        transport.onclose = () => {
          if (transport.sessionId) transports.delete(transport.sessionId);
        };
        await newServer().connect(transport);
      }
      await transport.handleRequest(req, res, body);
      return;
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      const transport = sessionId ? transports.get(sessionId) : undefined;
      if (!transport) {
        jsonRpcError(res, sessionId ? 404 : 400, sessionId ? 'Session not found' : 'No session');
        return;
      }
      await transport.handleRequest(req, res);
      return;
    }
    res.writeHead(405, { allow: 'GET, POST, DELETE' }).end();
  } catch (err) {
    console.error('request failed:', err);
    if (!res.headersSent) jsonRpcError(res, 500, 'Internal error');
  }
});

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${port}\n`);
});

function shutdown() {
  for (const t of transports.values()) t.close().catch(() => {});
  httpServer.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
