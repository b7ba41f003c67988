-- wrk script for bench/token.sh: POST a client_credentials grant to /oauth/token.
--
-- Environment:
--   BENCH_BASIC       base64(client_id:client_secret): client_secret_basic, or
--   BENCH_ASSERTIONS  a file of pre-signed private_key_jwt client assertions, one a
--                     line (bench/assertions.mjs): each request sends the next one
--                     in the body (client_assertion_type jwt-bearer), no
--                     Authorization header. Each assertion is sent once (the server
--                     refuses a reused jti); thread i of n takes lines i, i+n, ...
--                     (n = BENCH_WRK_THREADS, default 1: must equal wrk's -t)
--                     When a thread runs out, it sends the string "exhausted"
--                     (refused with 401) and counts it.
--   BENCH_PATH        token endpoint path (default /oauth/token)
--
-- Every response that is not a 200 is counted, and the first responses of each
-- thread are checked for an access_token, so a run of errors is never reported
-- as throughput. done() prints one machine-readable line starting "BENCH ".

local basic = os.getenv("BENCH_BASIC")
local assertions_file = os.getenv("BENCH_ASSERTIONS")
if (basic == nil or basic == "") and (assertions_file == nil or assertions_file == "") then
  error("set BENCH_BASIC (base64 of client_id:client_secret) or BENCH_ASSERTIONS (a file of assertions)")
end

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/oauth/token"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
if assertions_file == nil or assertions_file == "" then
  wrk.headers["Authorization"] = "Basic " .. basic
end

local threads = {}

function setup(thread)
  -- init() of a thread runs right after its setup(), before the next thread
  -- exists, so the thread count comes from the environment.
  thread:set("tid", #threads)
  thread:set("nthreads", tonumber(os.getenv("BENCH_WRK_THREADS") or "1"))
  table.insert(threads, thread)
end

function init(args)
  ok200 = 0
  non200 = 0
  checked = 0
  bad_body = 0
  statuses = ""
  seen = {}
  exhausted = 0
  if assertions_file ~= nil and assertions_file ~= "" then
    assertions = {}
    next_assertion = 1
    local n = 0
    for line in io.lines(assertions_file) do
      if n % nthreads == tid then
        assertions[#assertions + 1] = line
      end
      n = n + 1
    end
  end
end

if assertions_file ~= nil and assertions_file ~= "" then
  local prefix = "grant_type=client_credentials"
    .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    .. "&client_assertion="
  function request()
    local a = assertions[next_assertion]
    if a == nil then
      exhausted = exhausted + 1
      a = "exhausted"
    else
      next_assertion = next_assertion + 1
    end
    return wrk.format(nil, nil, nil, prefix .. a)
  end
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
  local ok, bad, chk, badb, st, ex = 0, 0, 0, 0, "", 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok200")
    bad = bad + t:get("non200")
    chk = chk + t:get("checked")
    badb = badb + t:get("bad_body")
    st = st .. t:get("statuses")
    ex = ex + t:get("exhausted")
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d ok200=%d non200=%d non200_statuses=%s body_checked=%d bad_body=%d "
      .. "duration_s=%.3f ok_per_s=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d wrk_non2xx3xx=%d exhausted=%d\n",
    summary.requests, ok, bad, (st == "" and "-" or (st:gsub(" $", ""):gsub(" ", ","))), chk, badb,
    secs, ok / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, ex))
end
