#!/usr/bin/env bash
# Compare Gatehouse's client_credentials token endpoint with node-oidc-provider 9
# on this machine, in the same run, with the same wrk settings; and, on the
# same Gatehouse process, client_secret_basic against private_key_jwt (ES256
# client assertions pre-signed by bench/assertions.mjs, each used once).
#
#   bash bench/token.sh
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (16),
# BENCH_THREADS (1), BENCH_ONLY (gatehouse|node: run one side only, for debugging),
# BENCH_GATEHOUSE_BIN (use this binary instead of building one, for debugging),
# BENCH_PKJWT_WARMUP_ASSERTIONS (100000), BENCH_PKJWT_ASSERTIONS (300000): assertions
# pre-signed for the private_key_jwt warm-up and measured run (each is used once;
# running out makes the run invalid, so raise them with longer durations).
# Every server listens on 127.0.0.1 only; every request goes to 127.0.0.1.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
AUDIENCE="http://127.0.0.1:9999/mcp"
TOKEN_PATH="/oauth/token"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
THREADS="${BENCH_THREADS:-1}"
ONLY="${BENCH_ONLY:-}"
READY_TIMEOUT_S=30
PKJWT_WARMUP_N="${BENCH_PKJWT_WARMUP_ASSERTIONS:-100000}"
PKJWT_RUN_N="${BENCH_PKJWT_ASSERTIONS:-300000}"
ASSERTION_TYPE="urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"

case "$ONLY" in "" | gatehouse | node) ;; *) echo "BENCH_ONLY must be gatehouse or node" >&2; exit 2 ;; esac
run_gatehouse() { [[ -z "$ONLY" || "$ONLY" == gatehouse ]]; }
run_node() { [[ -z "$ONLY" || "$ONLY" == node ]]; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- cleanup ----
GH_PID=""
NODE_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap (bench_cleanup)
stop_all() {
  stop_pid "$WRK_PID"
  stop_pid "$GH_PID"
  stop_pid "$NODE_PID"
}
bench_traps

# ------------------------------------------------------------------ tools ----
command -v node >/dev/null || die "node is required (the baseline is node-oidc-provider)"
command -v npm >/dev/null || die "npm is required"
command -v curl >/dev/null || die "curl is required"
ensure_wrk

# Header of a compact JWT (the access_token of a token response on stdin), as JSON.
jwt_header_of_token_response() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const t = JSON.parse(s).access_token;
      const parts = typeof t === "string" ? t.split(".") : [];
      if (parts.length !== 3) { process.stdout.write("(not a JWT)"); return; }
      process.stdout.write(Buffer.from(parts[0], "base64url").toString());
    });'
}

# --------------------------------------------------------------- builds ------
if run_gatehouse; then
  build_gatehouse
fi
if run_node && [[ ! -d "$BENCH_DIR/node_modules" ]]; then
  log "installing node-oidc-provider (npm ci in bench/)"
  (cd "$BENCH_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")"

# ---------------------------------------------------------------- helpers ----
# check_one NAME URL BASIC LOGFILE EXPECT_ALG: one token request by curl; must be 200 with
# an access_token (and, if EXPECT_ALG is set, a JWT whose header alg equals it).
# Prints the JWT header.
check_one() {
  local name="$1" url="$2" basic="$3" logf="$4" expect_alg="$5" body code header alg
  body="$WORK/$name.check.json"
  code="$(curl -s -o "$body" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' -H 'Accept: application/json' \
    -H "Authorization: Basic $basic" --data 'grant_type=client_credentials' "$url" || true)"
  if [[ "$code" != 200 ]] || ! json_field access_token <"$body" >/dev/null 2>&1; then
    echo "--- $name: POST $url answered HTTP $code ---" >&2; cat "$body" >&2 || true; echo >&2
    echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
    die "$name: a single client_credentials request did not return 200 with an access_token"
  fi
  header="$(jwt_header_of_token_response <"$body")"
  if [[ -n "$expect_alg" ]]; then
    alg="$(printf '%s' "$header" | json_field alg 2>/dev/null || true)"
    [[ "$alg" == "$expect_alg" ]] || die "$name: access token header is $header, expected alg $expect_alg"
  fi
  printf '%s' "$header"
}

# run_wrk NAME PID PORT BASIC [WARMUP_ASSERTIONS RUN_ASSERTIONS]: warm-up, then the measured
# run; leaves $WORK/NAME.wrk, NAME.cpu and NAME.srv_s (server CPU seconds during the run).
# With assertion files (private_key_jwt), BASIC is empty and each run sends its own file's lines.
run_wrk() {
  local name="$1" pid="$2" basic="$4" url="http://127.0.0.1:$3$TOKEN_PATH"
  local warm_assertions="${5:-}" run_assertions="${6:-}"
  log "$name: warm-up ${WARMUP}"
  BENCH_BASIC="$basic" BENCH_ASSERTIONS="$warm_assertions" BENCH_WRK_THREADS="$THREADS" BENCH_PATH="$TOKEN_PATH" \
    wrk_bg "$WORK/$name.warmup.wrk" -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$BENCH_DIR/token.lua" "$url"
  log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
  local b0 s0 t0 b1 s1 t1 w0 w1
  local st0 st1
  b0="$(busy_jiffies)"; st0="$(steal_jiffies)"; s0="$(proc_jiffies "$pid")"; t0="$(date +%s.%N)"
  times >"$WORK/times0"
  BENCH_BASIC="$basic" BENCH_ASSERTIONS="$run_assertions" BENCH_WRK_THREADS="$THREADS" BENCH_PATH="$TOKEN_PATH" \
    wrk_bg "$WORK/$name.wrk" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$BENCH_DIR/token.lua" "$url"
  times >"$WORK/times1"
  b1="$(busy_jiffies)"; st1="$(steal_jiffies)"; s1="$(proc_jiffies "$pid")"; t1="$(date +%s.%N)"
  w0="$(children_cpu_s "$WORK/times0")"; w1="$(children_cpu_s "$WORK/times1")"
  awk -v s="$((s1 - s0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", s / hz }' >"$WORK/$name.srv_s"
  # CPU used during the measured run, in cores: the server, wrk, and everything else on the machine.
  awk -v b="$((b1 - b0))" -v st="$((st1 - st0))" -v s="$((s1 - s0))" -v w="$(awk -v a="$w0" -v c="$w1" 'BEGIN { print c - a }')" \
    -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      el = t1 - t0; srv = s / hz / el; wrk = w / el; all = b / hz / el; other = all - srv - wrk
      if (other < 0) other = 0
      printf "server %.2f, wrk %.2f, everything else %.2f (machine total %.2f of %d; hypervisor steal %.2f)", srv, wrk, other, all, '"$(nproc)"', st / hz / el
      if (other > 0.25) printf "%.2f\n", other > "/dev/stderr"
    }' >"$WORK/$name.cpu" 2>"$WORK/$name.busy"
  grep -q '^BENCH ' "$WORK/$name.wrk" || { cat "$WORK/$name.wrk" >&2; die "$name: wrk printed no BENCH line"; }
}
# cpu_per_token NAME: the server's CPU time (user + system, all threads) per 200 response, in µs.
cpu_per_token() {
  awk -v s="$(cat "$WORK/$1.srv_s")" -v n="$(bench_field "$1" ok200)" 'BEGIN { if (n > 0) printf "%.0f", s * 1e6 / n; else print "n/a" }'
}

# --------------------------------------------------------------- gatehouse ---
GH_HEADER="" GH_IDLE="" GH_AFTER="" GH_HWM=""
if run_gatehouse; then
  GH_PORT="$(free_port)"
  GH_DATA="$WORK/gatehouse-data"
  mkdir -p "$GH_DATA"
  log "gatehouse: registering client"
  "$GATEHOUSE" client create --init --data-dir "$GH_DATA" --name bench --grant client_credentials \
    --audience "$AUDIENCE" >"$WORK/client.json" 2>"$WORK/client-create.log" ||
    { cat "$WORK/client-create.log" >&2; die "gatehouse client create failed"; }
  GH_CLIENT_ID="$(json_field client_id <"$WORK/client.json")" ||
    { cat "$WORK/client.json" >&2; die "gatehouse client create printed no client_id"; }
  GH_CLIENT_SECRET="$(json_field client_secret <"$WORK/client.json")" ||
    die "gatehouse client create printed no client_secret"
  GH_BASIC="$(printf '%s:%s' "$GH_CLIENT_ID" "$GH_CLIENT_SECRET" | base64 -w0)"

  log "gatehouse: registering a private_key_jwt client (ES256 key made by bench/assertions.mjs)"
  node "$BENCH_DIR/assertions.mjs" keygen "$WORK"
  "$GATEHOUSE" client create --init --data-dir "$GH_DATA" --name bench-pkjwt --grant client_credentials \
    --audience "$AUDIENCE" --auth-method private_key_jwt --jwks "$WORK/client-jwks.json" \
    >"$WORK/client-pkjwt.json" 2>"$WORK/client-pkjwt-create.log" ||
    { cat "$WORK/client-pkjwt-create.log" >&2; die "gatehouse client create (private_key_jwt) failed"; }
  GH_PK_CLIENT_ID="$(json_field client_id <"$WORK/client-pkjwt.json")" ||
    { cat "$WORK/client-pkjwt.json" >&2; die "gatehouse client create printed no client_id"; }
  # The assertions' aud is the issuer identifier, which defaults to the listen URL.
  GH_ISSUER="http://127.0.0.1:$GH_PORT"
  log "gatehouse: pre-signing $((1 + PKJWT_WARMUP_N + PKJWT_RUN_N)) assertions (exp 30 min, one jti each)"
  node "$BENCH_DIR/assertions.mjs" mint "$WORK" "$GH_PK_CLIENT_ID" "$GH_ISSUER" \
    "$((1 + PKJWT_WARMUP_N + PKJWT_RUN_N))" "$WORK/assertions-all.txt"
  head -n 1 "$WORK/assertions-all.txt" >"$WORK/assertions-check.txt"
  sed -n "2,$((1 + PKJWT_WARMUP_N))p" "$WORK/assertions-all.txt" >"$WORK/assertions-warmup.txt"
  tail -n +"$((2 + PKJWT_WARMUP_N))" "$WORK/assertions-all.txt" >"$WORK/assertions-run.txt"
  rm -f "$WORK/assertions-all.txt"

  log "gatehouse: serving on 127.0.0.1:$GH_PORT"
  "$GATEHOUSE" serve --data-dir "$GH_DATA" --listen "127.0.0.1:$GH_PORT" --audience "$AUDIENCE" \
    >"$WORK/gatehouse.log" 2>&1 &
  GH_PID=$!
  wait_ready gatehouse "$GH_PID" "http://127.0.0.1:$GH_PORT/healthz" "$WORK/gatehouse.log"
  sleep 1
  GH_IDLE="$(rss_kib "$GH_PID" VmRSS)"
  GH_HEADER="$(check_one gatehouse "http://127.0.0.1:$GH_PORT$TOKEN_PATH" "$GH_BASIC" "$WORK/gatehouse.log" "")"
  log "gatehouse: one request OK, access token header $GH_HEADER"
  run_wrk gatehouse "$GH_PID" "$GH_PORT" "$GH_BASIC"
  kill -0 "$GH_PID" 2>/dev/null || { tail -n 40 "$WORK/gatehouse.log" >&2; die "gatehouse died during the run"; }

  # private_key_jwt on the same process: one request by curl first.
  code="$(curl -s -o "$WORK/gatehouse-pkjwt.check.json" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' -H 'Accept: application/json' \
    --data "grant_type=client_credentials&client_assertion_type=$ASSERTION_TYPE&client_assertion=$(cat "$WORK/assertions-check.txt")" \
    "http://127.0.0.1:$GH_PORT$TOKEN_PATH" || true)"
  if [[ "$code" != 200 ]] || ! json_field access_token <"$WORK/gatehouse-pkjwt.check.json" >/dev/null 2>&1; then
    cat "$WORK/gatehouse-pkjwt.check.json" >&2 || true; echo >&2; tail -n 40 "$WORK/gatehouse.log" >&2 || true
    die "gatehouse: a single private_key_jwt request answered HTTP $code, not 200 with an access_token"
  fi
  log "gatehouse: one private_key_jwt request OK"
  run_wrk gatehouse-pkjwt "$GH_PID" "$GH_PORT" "" "$WORK/assertions-warmup.txt" "$WORK/assertions-run.txt"
  kill -0 "$GH_PID" 2>/dev/null || { tail -n 40 "$WORK/gatehouse.log" >&2; die "gatehouse died during the private_key_jwt run"; }
  GH_AFTER="$(rss_kib "$GH_PID" VmRSS)"
  GH_HWM="$(rss_kib "$GH_PID" VmHWM)"
  stop_pid "$GH_PID"; GH_PID=""
fi

# -------------------------------------------------------- node-oidc-provider --
NODE_HEADER="" NODE_IDLE="" NODE_AFTER="" NODE_HWM="" NODE_OIDC_VERSION=""
if run_node; then
  NODE_OIDC_VERSION="$(node -p 'require(process.argv[1]).version' "$BENCH_DIR/node_modules/oidc-provider/package.json")"
  NODE_PORT="$(free_port)"
  NODE_SECRET="$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
  NODE_BASIC="$(printf '%s:%s' bench "$NODE_SECRET" | base64 -w0)"
  log "node-oidc-provider $NODE_OIDC_VERSION: serving on 127.0.0.1:$NODE_PORT"
  BENCH_CLIENT_ID=bench BENCH_CLIENT_SECRET="$NODE_SECRET" AUDIENCE="$AUDIENCE" NODE_ENV=production \
    node "$BENCH_DIR/oidc-provider.mjs" "$NODE_PORT" >"$WORK/node.log" 2>&1 &
  NODE_PID=$!
  wait_ready node "$NODE_PID" "http://127.0.0.1:$NODE_PORT/.well-known/openid-configuration" "$WORK/node.log"
  sleep 1
  NODE_IDLE="$(rss_kib "$NODE_PID" VmRSS)"
  NODE_HEADER="$(check_one node "http://127.0.0.1:$NODE_PORT$TOKEN_PATH" "$NODE_BASIC" "$WORK/node.log" ES256)"
  log "node: one request OK, access token header $NODE_HEADER"
  run_wrk node "$NODE_PID" "$NODE_PORT" "$NODE_BASIC"
  kill -0 "$NODE_PID" 2>/dev/null || { tail -n 40 "$WORK/node.log" >&2; die "node-oidc-provider died during the run"; }
  NODE_AFTER="$(rss_kib "$NODE_PID" VmRSS)"
  NODE_HWM="$(rss_kib "$NODE_PID" VmHWM)"
  stop_pid "$NODE_PID"; NODE_PID=""
fi

# ---------------------------------------------------------------- summary ----
row() { # NAME LABEL
  local n="$1"
  if [[ -f "$WORK/$n.wrk" ]]; then
    printf '%-30s %10s %9s %9s %9s %9s %14s\n' "$2" "$(bench_field "$n" ok_per_s)" \
      "$(bench_field "$n" p50_ms)" "$(bench_field "$n" p99_ms)" \
      "$(bench_field "$n" non200)" "$(bench_field "$n" bad_body)" "$(cpu_per_token "$n")"
  else
    printf '%-26s %10s\n' "$2" "(not run)"
  fi
}
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$BENCH_DIR/results"
RESULT="$BENCH_DIR/results/token-$STAMP.txt"
{
  echo "Gatehouse vs node-oidc-provider: POST $TOKEN_PATH grant_type=client_credentials (client_secret_basic; Gatehouse also private_key_jwt, ES256 assertions)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%SZ')  host: $(uname -n)  cores: $(nproc)  $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)  node: $(node --version)"
  echo "gatehouse: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$REPO" status --porcelain -- crates 2>/dev/null | grep -q . && echo ' (+uncommitted changes)')  node-oidc-provider: ${NODE_OIDC_VERSION:-n/a}"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up, one server at a time; wrk and the server share the machine's cores"
  echo "access token header: gatehouse ${GH_HEADER:-n/a}  node ${NODE_HEADER:-n/a}"
  echo
  printf '%-30s %10s %9s %9s %9s %9s %14s\n' server "tokens/s" "p50 ms" "p99 ms" "non-200" "bad body" "CPU us/token"
  row gatehouse "gatehouse (client_secret_basic)"
  row gatehouse-pkjwt "gatehouse (private_key_jwt)"
  row node "node-oidc-provider ${NODE_OIDC_VERSION:-9}"
  if [[ -f "$WORK/gatehouse.wrk" && -f "$WORK/node.wrk" ]]; then
    echo
    echo "ratio gatehouse/node (tokens/s, client_secret_basic): $(awk -v a="$(bench_field gatehouse ok_per_s)" -v b="$(bench_field node ok_per_s)" \
      'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')"
  fi
  if [[ -f "$WORK/gatehouse.wrk" && -f "$WORK/gatehouse-pkjwt.wrk" ]]; then
    echo "private_key_jwt / client_secret_basic: tokens/s $(awk -v a="$(bench_field gatehouse-pkjwt ok_per_s)" -v b="$(bench_field gatehouse ok_per_s)" \
      'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'), server CPU per token $(awk -v a="$(cpu_per_token gatehouse-pkjwt)" -v b="$(cpu_per_token gatehouse)" \
      'BEGIN { if (b > 0) printf "%.2fx (+%d µs)", a / b, a - b; else print "n/a" }')"
  fi
  echo
  if [[ -n "$GH_IDLE" ]]; then
    echo "gatehouse RSS: idle $(mib "$GH_IDLE") MiB, after load $(mib "$GH_AFTER") MiB, peak (VmHWM) $(mib "$GH_HWM") MiB"
  fi
  if [[ -n "$NODE_IDLE" ]]; then
    echo "node RSS:      idle $(mib "$NODE_IDLE") MiB, after load $(mib "$NODE_AFTER") MiB, peak (VmHWM) $(mib "$NODE_HWM") MiB"
  fi
  for n in gatehouse gatehouse-pkjwt node; do
    [[ -f "$WORK/$n.wrk" ]] || continue
    printf '%-9s CPU during the run, in cores: %s\n' "$n" "$(cat "$WORK/$n.cpu")"
  done
  for n in gatehouse gatehouse-pkjwt node; do
    [[ -s "$WORK/$n.busy" ]] || continue
    echo "WARNING: other processes used $(cat "$WORK/$n.busy") cores during the $n run: its figures are depressed and noisy; rerun on a quiet machine"
  done
  for n in gatehouse gatehouse-pkjwt node; do
    [[ -f "$WORK/$n.wrk" ]] || continue
    echo "$n socket errors: connect $(bench_field "$n" sock_connect) read $(bench_field "$n" sock_read) write $(bench_field "$n" sock_write) timeout $(bench_field "$n" sock_timeout); non-200 statuses: $(bench_field "$n" non200_statuses)"
  done
} >"$WORK/summary.txt"
publish_results "$RESULT" gatehouse gatehouse-pkjwt node

# A run with errors must not pass for a measurement.
status=0
for n in gatehouse gatehouse-pkjwt node; do
  [[ -f "$WORK/$n.wrk" ]] || continue
  if [[ "$(bench_field "$n" exhausted)" != 0 ]]; then
    echo "token.sh: $n ran out of pre-signed assertions; raise BENCH_PKJWT_ASSERTIONS / BENCH_PKJWT_WARMUP_ASSERTIONS" >&2
    status=1
  fi
  if [[ "$(bench_field "$n" non200)" != 0 || "$(bench_field "$n" bad_body)" != 0 || "$(bench_field "$n" ok200)" == 0 ]]; then
    echo "token.sh: $n answered non-200 or malformed responses under load; the figures above are not a valid measurement" >&2
    status=1
  fi
done
exit "$status"
