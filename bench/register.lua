-- wrk script for bench/store.sh: dynamic client registration (RFC 7591), POST a
-- confidential client_credentials client to /oauth/register. Every request
-- registers a new client (the server picks its id and secret).
--
-- Environment:
--   BENCH_PATH        registration endpoint path (default /oauth/register)
--
-- A registration succeeds with 201 Created. Every response that is not a 201 is
-- counted (a 429 from the registration rate limiter, a 503 at the client cap, a
-- 400 are errors, never throughput), and the first responses of each thread are
-- checked for a client_id and a client_secret. done() prints one machine-readable
-- line starting "BENCH " (the fields of token.lua, with ok201/non201 in place of
-- ok200/non200).

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/oauth/register"
wrk.body = '{"client_name":"bench","grant_types":["client_credentials"],'
  .. '"token_endpoint_auth_method":"client_secret_basic"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok201 = 0
  non201 = 0
  checked = 0
  bad_body = 0
  statuses = ""
  seen = {}
end

local BODY_CHECKS = 200

function response(status, headers, body)
  if status == 201 then
    ok201 = ok201 + 1
    if checked < BODY_CHECKS then
      checked = checked + 1
      if body == nil
        or not string.find(body, '"client_id"%s*:%s*"[^"]+"')
        or not string.find(body, '"client_secret"%s*:%s*"[^"]+"') then
        bad_body = bad_body + 1
      end
    end
  else
    non201 = non201 + 1
    if not seen[status] then
      seen[status] = true
      statuses = statuses .. status .. " "
    end
  end
end

function done(summary, latency, requests)
  local ok, bad, chk, badb, st = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok201")
    bad = bad + t:get("non201")
    chk = chk + t:get("checked")
    badb = badb + t:get("bad_body")
    st = st .. t:get("statuses")
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d ok201=%d non201=%d non201_statuses=%s body_checked=%d bad_body=%d "
      .. "duration_s=%.3f ok_per_s=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d wrk_non2xx3xx=%d\n",
    summary.requests, ok, bad, (st == "" and "-" or (st:gsub(" $", ""):gsub(" ", ","))), chk, badb,
    secs, ok / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status))
end
