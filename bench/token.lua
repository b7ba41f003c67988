-- wrk script for bench/token.sh: POST a client_credentials grant to /oauth/token.
--
-- Environment:
--   BENCH_BASIC   base64(client_id:client_secret), required
--   BENCH_PATH    token endpoint path (default /oauth/token)
--
-- Every response that is not a 200 is counted, and the first responses of each
-- thread are checked for an access_token, so a run of errors is never reported
-- as throughput. done() prints one machine-readable line starting "BENCH ".

local basic = os.getenv("BENCH_BASIC")
if basic == nil or basic == "" then
  error("BENCH_BASIC (base64 of client_id:client_secret) is not set")
end

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/oauth/token"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. basic

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
      if body == nil or not string.find(body, '"access_token"%s*:%s*"[^"]+"') then
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
