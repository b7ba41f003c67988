#!/usr/bin/env bash
# MCP gateway benchmark: tools/call through `gatehouse gateway` versus straight to
# the same trivial upstream, in the same run, with 30 and with 1,000 Cedar policies.
#
#   bash bench/gateway.sh
#
# Each target (direct, then the gateway with each policy-set size) gets two measured
# wrk runs: a throughput run with BENCH_CONNECTIONS calls in flight, and a latency
# run with one connection (one call at a time), whose added p50/p99 is the gateway's
# own per-call latency rather than queueing for the two shared cores.
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (16),
# BENCH_THREADS (1), BENCH_LATENCY_DURATION (5s: the one-connection run),
# BENCH_POLICIES ("30 1000": policy-set sizes to run, in order),
# BENCH_QUIET_WAIT (300: seconds in all to wait, before each target, for running
# cargo/rustc to finish), BENCH_GATEHOUSE_BIN (use this binary instead of building one).
# Every server listens on 127.0.0.1 only; every request goes to 127.0.0.1.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
MCP_PATH="/mcp"
CLIENT_ID="bench-bot"
TOOL="echo"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
THREADS="${BENCH_THREADS:-1}"
LAT_DURATION="${BENCH_LATENCY_DURATION:-5s}"
POLICY_SIZES="${BENCH_POLICIES:-30 1000}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-300}"
READY_TIMEOUT_S=30
# The request wrk sends (gateway.lua builds the same one); curl checks use it too.
CALL_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"'"$TOOL"'","arguments":{}}}'
OTHER_TOOL_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool-1","arguments":{}}}'

for n in $POLICY_SIZES; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_POLICIES must be positive integers, e.g. \"30 1000\"" >&2; exit 2; }
done

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- cleanup ----
AS_PID=""
UP_PID=""
GW_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap (bench_cleanup)
stop_all() {
  stop_pid "$WRK_PID"
  stop_pid "$GW_PID"
  stop_pid "$UP_PID"
  stop_pid "$AS_PID"
}
bench_traps

# ------------------------------------------------------------------ tools ----
command -v node >/dev/null || die "node is required (it runs the upstream and small JSON helpers)"
command -v curl >/dev/null || die "curl is required"
ensure_wrk

# Header of a compact JWT given as the first argument, as JSON.
jwt_header() {
  node -e '
    const parts = process.argv[1].split(".");
    process.stdout.write(parts.length === 3 ? Buffer.from(parts[0], "base64url").toString() : "(not a JWT)");' "$1"
}

# --------------------------------------------------------------- build -------
build_gatehouse

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-gwbench.XXXXXX")"

# ---------------------------------------------------------------- helpers ----
# mcp_call NAME URL BODY [TOKEN]: one POST by curl, exactly the headers wrk sends
# (Authorization only when TOKEN is given). Leaves the body in $WORK/NAME.json,
# the response headers in $WORK/NAME.headers; prints the status.
mcp_call() {
  local name="$1" url="$2" body="$3" token="${4:-}"
  local -a auth=()
  [[ -n "$token" ]] && auth=(-H "Authorization: Bearer $token")
  curl -s -o "$WORK/$name.json" -D "$WORK/$name.headers" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    "${auth[@]}" --data "$body" "$url" || true
}
# show_exchange NAME METHOD URL BODY CODE: the request and response of a failed check.
show_exchange() {
  {
    echo "--- request: POST $3"
    echo "Content-Type: application/json"
    echo "Accept: application/json, text/event-stream"
    echo "Authorization: Bearer <the bench-bot token>  (when sent)"
    echo; echo "$4"
    echo "--- response: HTTP $5"
    cat "$WORK/$1.headers" 2>/dev/null || true
    cat "$WORK/$1.json" 2>/dev/null || true
    echo
  } >&2
}
# expect_ok NAME URL LOGFILE: the bench call must answer 200 with the upstream's "ok".
expect_ok() {
  local name="$1" url="$2" logf="$3" code
  code="$(mcp_call "$name.check" "$url" "$CALL_BODY" "$TOKEN")"
  if [[ "$code" != 200 ]] || ! grep -q '"text":"ok"' "$WORK/$name.check.json" ||
    ! grep -q '"id":1[,}]' "$WORK/$name.check.json"; then
    show_exchange "$name.check" POST "$url" "$CALL_BODY" "$code"
    echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
    die "$name: the tools/call $TOOL request did not return 200 with the upstream's \"ok\" result"
  fi
}
# expect_status NAME URL BODY TOKEN STATUS WHAT LOGFILE
expect_status() {
  local name="$1" url="$2" body="$3" token="$4" want="$5" what="$6" logf="$7" code
  code="$(mcp_call "$name" "$url" "$body" "$token")"
  if [[ "$code" != "$want" ]]; then
    show_exchange "$name" POST "$url" "$body" "$code"
    echo "--- gateway log ($logf) ---" >&2; tail -n 20 "$logf" >&2 || true
    die "$what: expected HTTP $want, got $code"
  fi
}

# gen_policies N FILE: the one permit the benchmark's call needs, after N-1 permits
# for other clients on other tools, so Cedar has N policies to evaluate per call.
gen_policies() {
  local n="$1" file="$2"
  awk -v n="$n" -v client="$CLIENT_ID" -v tool="$TOOL" 'BEGIN {
    printf "// %d policies for bench/gateway.sh: %d permits for other clients, then the benchmark call.\n", n, n - 1
    for (i = 1; i < n; i++)
      printf "permit (principal == Client::\"other-%d\", action == Action::\"call_tool\", resource == Tool::\"tool-%d\");\n", i, i
    printf "permit (principal == Client::\"%s\", action == Action::\"call_tool\", resource == Tool::\"%s\");\n", client, tool
  }' >"$file"
}

# wait_quiet (lib.sh) before each target: a build can start at any time. QUIET_WAIT is
# the budget for the whole script, so the one token (15 minutes) outlives the waits.
QUIET_LEFT="$QUIET_WAIT"
file_bytes() { if [[ -n "$1" && -f "$1" ]]; then stat -c %s "$1"; else echo 0; fi; }

# run_wrk NAME PORT GW_PID GW_LOG THREADS CONNECTIONS DURATION [WARMUP]: warm-up (when
# WARMUP is given), then the measured run against http://127.0.0.1:PORT/mcp. GW_PID is
# empty for the direct run. Leaves $WORK/NAME.wrk (wrk output with the BENCH line),
# NAME.cpu (a human line), NAME.vals (numbers).
run_wrk() {
  local name="$1" gwpid="$3" gwlog="$4" url="http://127.0.0.1:$2$MCP_PATH"
  local threads="$5" conns="$6" duration="$7" warmup="${8:-}"
  if [[ -n "$warmup" ]]; then
    log "$name: warm-up ${warmup}"
    BENCH_TOKEN="$TOKEN" BENCH_PATH="$MCP_PATH" BENCH_TOOL="$TOOL" \
      wrk_bg "$WORK/$name.warmup.wrk" -t"$threads" -c"$conns" -d"$warmup" -s "$BENCH_DIR/gateway.lua" "$url"
  fi
  log "$name: wrk -t$threads -c$conns -d$duration --latency"
  local b0 st0 g0=0 u0 t0 l0 b1 st1 g1=0 u1 t1 l1 w0 w1
  b0="$(busy_jiffies)"; st0="$(steal_jiffies)"; u0="$(proc_jiffies "$UP_PID")"
  [[ -n "$gwpid" ]] && g0="$(proc_jiffies "$gwpid")"
  l0="$(file_bytes "$gwlog")"; t0="$(date +%s.%N)"
  times >"$WORK/times0"
  BENCH_TOKEN="$TOKEN" BENCH_PATH="$MCP_PATH" BENCH_TOOL="$TOOL" \
    wrk_bg "$WORK/$name.wrk" -t"$threads" -c"$conns" -d"$duration" --latency -s "$BENCH_DIR/gateway.lua" "$url"
  times >"$WORK/times1"
  b1="$(busy_jiffies)"; st1="$(steal_jiffies)"; u1="$(proc_jiffies "$UP_PID")"
  [[ -n "$gwpid" ]] && g1="$(proc_jiffies "$gwpid")"
  l1="$(file_bytes "$gwlog")"; t1="$(date +%s.%N)"
  w0="$(children_cpu_s "$WORK/times0")"; w1="$(children_cpu_s "$WORK/times1")"
  grep -q '^BENCH ' "$WORK/$name.wrk" || { cat "$WORK/$name.wrk" >&2; die "$name: wrk printed no BENCH line"; }
  # CPU used during the measured run: the gateway, the upstream, wrk, and everything
  # else on the machine (in cores), plus the gateway's and upstream's CPU per call.
  awk -v b="$((b1 - b0))" -v st="$((st1 - st0))" -v g="$((g1 - g0))" -v u="$((u1 - u0))" \
    -v w="$(awk -v a="$w0" -v c="$w1" 'BEGIN { print c - a }')" -v logb="$((l1 - l0))" \
    -v calls="$(bench_field "$name" requests)" -v gw="${gwpid:+1}" \
    -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v ncpu="$(nproc)" \
    -v vals="$WORK/$name.vals" -v busy="$WORK/$name.busy" 'BEGIN {
      el = t1 - t0; gs = g / hz; us = u / hz
      gwc = gs / el; upc = us / el; wrk = w / el; all = b / hz / el; other = all - gwc - upc - wrk
      if (other < 0) other = 0
      if (gw) printf "gateway %.2f, ", gwc
      printf "upstream %.2f, wrk %.2f, everything else %.2f (machine total %.2f of %d; hypervisor steal %.2f)", upc, wrk, other, all, ncpu, st / hz / el
      printf "gw_cores=%.3f gw_us_per_call=%.1f up_cores=%.3f up_us_per_call=%.1f wrk_cores=%.3f other_cores=%.3f log_bytes_per_call=%.0f\n",
        gwc, (calls > 0 ? gs / calls * 1e6 : 0), upc, (calls > 0 ? us / calls * 1e6 : 0), wrk, other,
        (calls > 0 ? logb / calls : 0) > vals
      if (other > 0.25) printf "%.2f\n", other > busy
    }' >"$WORK/$name.cpu"
}
# val NAME KEY: a value from NAME.vals.
val() { tr ' ' '\n' <"$WORK/$1.vals" | sed -n "s/^$2=//p"; }

# ------------------------------------------------------------------ ports ----
{ read -r GW_PORT; read -r AS_PORT; read -r UP_PORT; } < <(free_ports 3)
[[ -n "$UP_PORT" && "$GW_PORT" != "$AS_PORT" && "$GW_PORT" != "$UP_PORT" && "$AS_PORT" != "$UP_PORT" ]] ||
  die "could not pick three free ports ($GW_PORT $AS_PORT $UP_PORT)"
RESOURCE="http://127.0.0.1:$GW_PORT$MCP_PATH"
ISSUER="http://127.0.0.1:$AS_PORT"
UPSTREAM="http://127.0.0.1:$UP_PORT$MCP_PATH"

for n in $POLICY_SIZES; do gen_policies "$n" "$WORK/policies-$n.cedar"; done

# --------------------------------------------------------------- upstream ----
log "upstream: node bench/upstream.mjs on 127.0.0.1:$UP_PORT"
node "$BENCH_DIR/upstream.mjs" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
wait_ready upstream "$UP_PID" "http://127.0.0.1:$UP_PORT/healthz" "$WORK/upstream.log"

# ------------------------------------------------- authorization server -------
AS_DATA="$WORK/gatehouse-data"
mkdir -p "$AS_DATA"
log "gatehouse: registering client $CLIENT_ID for $RESOURCE"
"$GATEHOUSE" client create --init --data-dir "$AS_DATA" --id "$CLIENT_ID" --name bench --grant client_credentials \
  --audience "$RESOURCE" >"$WORK/client.json" 2>"$WORK/client-create.log" ||
  { cat "$WORK/client-create.log" >&2; die "gatehouse client create failed"; }
[[ "$(json_field client_id <"$WORK/client.json" || true)" == "$CLIENT_ID" ]] ||
  { cat "$WORK/client.json" >&2; die "gatehouse client create did not register client_id $CLIENT_ID"; }
CLIENT_SECRET="$(json_field client_secret <"$WORK/client.json")" ||
  die "gatehouse client create printed no client_secret"

log "gatehouse: authorization server on $ISSUER"
"$GATEHOUSE" serve --data-dir "$AS_DATA" --listen "127.0.0.1:$AS_PORT" --issuer "$ISSUER" --audience "$RESOURCE" \
  >"$WORK/gatehouse-serve.log" 2>&1 &
AS_PID=$!
wait_ready "gatehouse serve" "$AS_PID" "$ISSUER/healthz" "$WORK/gatehouse-serve.log"

code="$(curl -s -o "$WORK/token.json" -w '%{http_code}' --max-time 5 -u "$CLIENT_ID:$CLIENT_SECRET" \
  -d grant_type=client_credentials "$ISSUER/oauth/token" || true)"
TOKEN="$(json_field access_token <"$WORK/token.json" 2>/dev/null || true)"
if [[ "$code" != 200 || -z "$TOKEN" ]]; then
  echo "--- POST $ISSUER/oauth/token answered HTTP $code ---" >&2; cat "$WORK/token.json" >&2; echo >&2
  die "no access token for $CLIENT_ID"
fi
TOKEN_HEADER="$(jwt_header "$TOKEN")"
TOKEN_LIFETIME="$(json_field expires_in <"$WORK/token.json" 2>/dev/null || echo '?')"
log "token: header $TOKEN_HEADER, expires_in $TOKEN_LIFETIME s"

# ------------------------------------------------------------- direct run ----
log "direct: checking one call to the upstream"
expect_ok direct "$UPSTREAM" "$WORK/upstream.log"
wait_quiet direct
run_wrk direct "$UP_PORT" "" "" "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP"
# One call at a time, right after the throughput run (which warmed everything up).
run_wrk direct.c1 "$UP_PORT" "" "" 1 1 "$LAT_DURATION"
kill -0 "$UP_PID" 2>/dev/null || { tail -n 40 "$WORK/upstream.log" >&2; die "the upstream died during the run"; }

# ------------------------------------------------------------ gateway runs ----
declare -A GW_IDLE GW_AFTER GW_HWM
for n in $POLICY_SIZES; do
  name="gw$n"
  gwlog="$WORK/gateway-$n.log"
  wait_quiet "$name"
  log "gateway: $n policies, on 127.0.0.1:$GW_PORT"
  env -u RUST_LOG "$GATEHOUSE" gateway --listen "127.0.0.1:$GW_PORT" --resource "$RESOURCE" \
    --upstream "$UPSTREAM" --issuer "$ISSUER" --policies "$WORK/policies-$n.cedar" >"$gwlog" 2>&1 &
  GW_PID=$!
  wait_ready gateway "$GW_PID" "http://127.0.0.1:$GW_PORT/.well-known/oauth-protected-resource$MCP_PATH" "$gwlog"
  grep -q 'gateway started' "$gwlog" || log "gateway: note, no \"gateway started\" line in its log"
  sleep 1
  GW_IDLE[$n]="$(rss_kib "$GW_PID" VmRSS)"
  # Cedar must be in the path: the allowed call passes, another tool is refused.
  expect_status "$name.noauth" "$RESOURCE" "$CALL_BODY" "" 401 "gateway, $n policies: a call without a token" "$gwlog"
  expect_ok "$name" "$RESOURCE" "$gwlog"
  expect_status "$name.deny" "$RESOURCE" "$OTHER_TOOL_BODY" "$TOKEN" 403 \
    "gateway, $n policies: tools/call of tool-1 (permitted only to other-1) by $CLIENT_ID" "$gwlog"
  log "gateway: $TOOL allowed (200, \"ok\"), tool-1 denied (403), no token 401"
  run_wrk "$name" "$GW_PORT" "$GW_PID" "$gwlog" "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP"
  run_wrk "$name.c1" "$GW_PORT" "$GW_PID" "$gwlog" 1 1 "$LAT_DURATION"
  kill -0 "$GW_PID" 2>/dev/null || { tail -n 40 "$gwlog" >&2; die "the gateway died during the run"; }
  GW_AFTER[$n]="$(rss_kib "$GW_PID" VmRSS)"
  GW_HWM[$n]="$(rss_kib "$GW_PID" VmHWM)"
  grep -m3 -E '"level":"(WARN|ERROR)"|WARN|ERROR' "$gwlog" >"$WORK/$name.warnings" || true
  stop_pid "$GW_PID"; GW_PID=""
done
kill -0 "$UP_PID" 2>/dev/null || { tail -n 40 "$WORK/upstream.log" >&2; die "the upstream died during the runs"; }

# ---------------------------------------------------------------- summary ----
# Every measured run, in the order they ran: NAME is the throughput run (CONNECTIONS
# in flight), NAME.c1 the latency run (one connection).
RUNS="direct direct.c1"
for n in $POLICY_SIZES; do RUNS="$RUNS gw$n gw$n.c1"; done
row() { # NAME LABEL
  printf '%-30s %10s %9s %9s %9s %9s\n' "$2" "$(bench_field "$1" ok_per_s)" \
    "$(bench_field "$1" p50_ms)" "$(bench_field "$1" p99_ms)" \
    "$(bench_field "$1" non200)" "$(bench_field "$1" bad_body)"
}
D_RPS="$(bench_field direct ok_per_s)"
D_P50="$(bench_field direct p50_ms)"
D_P99="$(bench_field direct p99_ms)"
D1_P50="$(bench_field direct.c1 p50_ms)"
D1_P99="$(bench_field direct.c1 p99_ms)"
cmp_row() { # N: the throughput run against direct
  local name="gw$1"
  awk -v r="$(bench_field "$name" ok_per_s)" -v p50="$(bench_field "$name" p50_ms)" -v p99="$(bench_field "$name" p99_ms)" \
    -v dr="$D_RPS" -v d50="$D_P50" -v d99="$D_P99" -v cpu="$(val "$name" gw_us_per_call)" \
    -v cores="$(val "$name" gw_cores)" -v label="gateway, $1 policies" 'BEGIN {
      printf "%-30s %9.1f%% %+11.3f %+11.3f %12.1f %9.2f\n", label, (dr > 0 ? 100 * r / dr : 0), p50 - d50, p99 - d99, cpu, cores
    }'
}
cmp1_row() { # N: the one-connection run against direct's
  local name="gw$1.c1"
  awk -v p50="$(bench_field "$name" p50_ms)" -v p99="$(bench_field "$name" p99_ms)" \
    -v d50="$D1_P50" -v d99="$D1_P99" -v cpu="$(val "$name" gw_us_per_call)" \
    -v cores="$(val "$name" gw_cores)" -v label="gateway, $1 policies" 'BEGIN {
      printf "%-30s %11.3f %+11.3f %+11.3f %12.1f %9.2f\n", label, p50, p50 - d50, p99 - d99, cpu, cores
    }'
}
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$BENCH_DIR/results"
RESULT="$BENCH_DIR/results/gateway-$STAMP.txt"
BIN_NOTE="$(bin_note)"
{
  echo "Gatehouse MCP gateway: tools/call through \`gatehouse gateway\` vs straight to the same upstream"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%SZ')  host: $(uname -n)  cores: $(nproc)  $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)  node: $(node --version)"
  echo "gatehouse: $BIN_NOTE"
  echo "load: per target, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up (throughput), then wrk -t1 -c1 -d$LAT_DURATION --latency (latency, one call at a time); one target at a time; wrk, the gateway and the upstream (node, one thread) share the machine's cores"
  echo "call: POST /mcp tools/call \"$TOOL\" as Client::\"$CLIENT_ID\"; token header $TOKEN_HEADER (verified once, then from the gateway's cache)"
  echo "policies: N = N-1 permits for other clients/tools + 1 permit for $CLIENT_ID/$TOOL; checked before each run: $TOOL → 200 \"ok\", tool-1 → 403, no token → 401"
  [[ -n "$BUILDERS_AT_START" ]] && echo "NOTE: builds still running when measuring started (after waiting up to $QUIET_WAIT s in all): $BUILDERS_AT_START"
  echo
  printf '%-30s %10s %9s %9s %9s %9s\n' run "calls/s" "p50 ms" "p99 ms" "non-200" "bad body"
  row direct "direct (no gateway), c$CONNECTIONS"
  row direct.c1 "direct (no gateway), c1"
  for n in $POLICY_SIZES; do
    row "gw$n" "gateway, $n policies, c$CONNECTIONS"
    row "gw$n.c1" "gateway, $n policies, c1"
  done
  echo
  echo "vs direct, $CONNECTIONS connections (throughput; p50 here is mostly queueing for the cores):"
  printf '%-30s %10s %11s %11s %12s %9s\n' "" "throughput" "added p50" "added p99" "gw CPU/call" "gw cores"
  printf '%-30s %10s %11s %11s %12s %9s\n' "" "of direct" "ms" "ms" "µs" ""
  for n in $POLICY_SIZES; do cmp_row "$n"; done
  echo
  echo "vs direct, 1 connection (one call at a time: the gateway's own per-call latency):"
  printf '%-30s %11s %11s %11s %12s %9s\n' "" "p50" "added p50" "added p99" "gw CPU/call" "gw cores"
  printf '%-30s %11s %11s %11s %12s %9s\n' "" "ms" "ms" "ms" "µs" ""
  awk -v p50="$D1_P50" 'BEGIN { printf "%-30s %11.3f\n", "direct (no gateway)", p50 }'
  for n in $POLICY_SIZES; do cmp1_row "$n"; done
  echo
  if [[ " $POLICY_SIZES " == *" 30 "* ]]; then
    awk -v r="$(bench_field gw30 ok_per_s)" -v p50="$(bench_field gw30 p50_ms)" -v dr="$D_RPS" -v d50="$D_P50" \
      -v p50c1="$(bench_field gw30.c1 p50_ms)" -v d50c1="$D1_P50" -v c="$CONNECTIONS" 'BEGIN {
      added = p50c1 - d50c1; queued = p50 - d50; share = (dr > 0 ? 100 * r / dr : 0)
      printf "targets (30 policies):\n"
      printf "  added p50 < 0.3 ms, at 1 connection (the gateway'"'"'s own latency): %+.3f ms, %s\n",
        added, (added < 0.3 ? "MET" : "NOT MET")
      printf "    (at %d connections, mostly queueing for the shared cores, not the target: %+.3f ms, %s)\n",
        c, queued, (queued < 0.3 ? "under 0.3 ms" : "over 0.3 ms")
      printf "  throughput >= 70%% of direct, at %d connections: %.1f%%, %s\n", c, share, (share >= 70 ? "MET" : "NOT MET")
    }'
  else
    echo "targets are for 30 policies, which this run (BENCH_POLICIES=\"$POLICY_SIZES\") did not measure"
  fi
  echo
  for n in $POLICY_SIZES; do
    printf 'gateway RSS, %4s policies: idle %s MiB, after load (both runs) %s MiB, peak (VmHWM) %s MiB\n' "$n" \
      "$(mib "${GW_IDLE[$n]}")" "$(mib "${GW_AFTER[$n]}")" "$(mib "${GW_HWM[$n]}")"
  done
  echo "CPU during each measured run, in cores:"
  printf '  %-30s %s\n' "direct, c$CONNECTIONS" "$(cat "$WORK/direct.cpu")"
  printf '  %-30s %s\n' "direct, c1" "$(cat "$WORK/direct.c1.cpu")"
  for n in $POLICY_SIZES; do
    printf '  %-30s %s\n' "gateway, $n policies, c$CONNECTIONS" "$(cat "$WORK/gw$n.cpu")"
    printf '  %-30s %s\n' "gateway, $n policies, c1" "$(cat "$WORK/gw$n.c1.cpu")"
  done
  printf 'upstream CPU per call: direct %s µs (c1 %s µs)' "$(val direct up_us_per_call)" "$(val direct.c1 up_us_per_call)"
  for n in $POLICY_SIZES; do
    printf ', via gateway (%s policies) %s µs (c1 %s µs)' "$n" "$(val "gw$n" up_us_per_call)" "$(val "gw$n.c1" up_us_per_call)"
  done
  echo
  printf 'gateway log written per call (default logging, RUST_LOG unset):'
  for n in $POLICY_SIZES; do printf ' %s policies %s bytes;' "$n" "$(val "gw$n" log_bytes_per_call)"; done
  echo
  for n in $RUNS; do
    [[ -s "$WORK/$n.busy" ]] || continue
    echo "WARNING: other processes used $(cat "$WORK/$n.busy") cores during the $n run: its figures are depressed and noisy; rerun on a quiet machine"
  done
  for n in $POLICY_SIZES; do
    [[ -s "$WORK/gw$n.warnings" ]] || continue
    echo "gateway log ($n policies) has warnings/errors, first ones:"; sed 's/^/  /' "$WORK/gw$n.warnings"
  done
  for n in $RUNS; do
    echo "$n socket errors: connect $(bench_field "$n" sock_connect) read $(bench_field "$n" sock_read) write $(bench_field "$n" sock_write) timeout $(bench_field "$n" sock_timeout); non-200 statuses: $(bench_field "$n" non200_statuses)"
  done
} >"$WORK/summary.txt"
# shellcheck disable=SC2086  # RUNS is a list of names
publish_results "$RESULT" $RUNS

# A run with errors must not pass for a measurement.
status=0
for n in $RUNS; do
  if [[ "$(bench_field "$n" non200)" != 0 || "$(bench_field "$n" bad_body)" != 0 || "$(bench_field "$n" ok200)" == 0 ]]; then
    echo "gateway.sh: $n answered non-200 or malformed responses under load; the figures above are not a valid measurement" >&2
    status=1
  fi
done
exit "$status"
