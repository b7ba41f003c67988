-- wrk script for bench/gateway.sh: POST one MCP tools/call (JSON-RPC over
-- Streamable HTTP) with a bearer token, to the gateway or straight to the upstream.
--
-- Environment:
--   BENCH_TOKEN   access token sent as "Authorization: Bearer ...", required
--                 (the upstream ignores it; the gateway verifies it)
--   BENCH_PATH    MCP endpoint path (default /mcp)
--   BENCH_TOOL    tool name (default echo)
--
-- Every response that is not a 200 is counted, and the first responses of each
-- thread are checked for the upstream's "ok" result, so a run of errors or of
-- JSON-RPC refusals is never reported as throughput. done() prints one
-- machine-readable line starting "BENCH " (same fields as token.lua).

local token = os.getenv("BENCH_TOKEN")
if token == nil or token == "" then
  error("BENCH_TOKEN (an access token) is not set")
end
local tool = os.getenv("BENCH_TOOL") or "echo"

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/mcp"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. token

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok200 = 0
  non200 = 0
  checked = 0
  bad_body = 0
  statuses = ""
  seen = {}
end

local BODY_CHECKS = 200

function response(status, headers, body)
  if status == 200 then
    ok200 = ok200 + 1
    if checked < BODY_CHECKS then
      checked = checked + 1
      if body == nil
        or not string.find(body, '"id"%s*:%s*1[,}]')
        or not string.find(body, '"text"%s*:%s*"ok"')
        or string.find(body, '"error"%s*:') then
        bad_body = bad_body + 1
      end
    end
  else
    non200 = non200 + 1
    if not seen[status] then
      seen[status] = true
      statuses = statuses .. status .. " "
    end
  end
end

function done(summary, latency, requests)
  local ok, bad, chk, badb, st = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok200")
    bad = bad + t:get("non200")
    chk = chk + t:get("checked")
    badb = badb + t:get("bad_body")
    st = st .. t:get("statuses")
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d ok200=%d non200=%d non200_statuses=%s body_checked=%d bad_body=%d "
      .. "duration_s=%.3f ok_per_s=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d wrk_non2xx3xx=%d\n",
    summary.requests, ok, bad, (st == "" and "-" or (st:gsub(" $", ""):gsub(" ", ","))), chk, badb,
    secs, ok / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status))
end
