#!/usr/bin/env bash
# Store backends compared: the release `gatehouse serve` on SQLite (its default
# data directory) and on PostgreSQL, one after the other in the same run, with
# the same wrk settings. For each backend:
#   tokens:        POST /oauth/token, client_credentials, client_secret_basic
#                  (bench/token.lua; the hot path touches no database)
#   registrations: POST /oauth/register, dynamic registration of a confidential
#                  client_credentials client (bench/register.lua; one INSERT each)
#
#   bash bench/store.sh
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (16),
# BENCH_THREADS (1), BENCH_BACKENDS ("sqlite postgres": backends to run, in order),
# BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test: the script creates a
# schema of its own there and drops it at exit), BENCH_PG_MAX_CONNECTIONS (10, the
# server's default pool size), BENCH_QUIET_WAIT (300: seconds in all to wait, before
# each backend, for running cargo/rustc to finish), BENCH_GATEHOUSE_BIN (use this
# binary instead of building one).
# Every server listens on 127.0.0.1 only; every request goes to 127.0.0.1.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
AUDIENCE="http://127.0.0.1:9999/mcp"
TOKEN_PATH="/oauth/token"
REGISTER_PATH="/oauth/register"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
THREADS="${BENCH_THREADS:-1}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
PG_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
PG_MAX_CONNECTIONS="${BENCH_PG_MAX_CONNECTIONS:-10}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-300}"
READY_TIMEOUT_S=30
# Registration limits far above what the run can reach, so that neither the
# per-address limiter (429) nor the cap (503) answers during it: either would
# count as an error (register.lua), not as throughput.
REG_PER_MINUTE=4000000000  # u32
REG_MAX_CLIENTS=1000000000
# A fresh schema for this run: lower-case letters, digits and _ (the store checks).
SCHEMA="gatehouse_bench_$$_$(date +%s)"
# The body register.lua sends; the curl check sends the same.
REGISTER_BODY='{"client_name":"bench","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}'

for b in $BACKENDS; do
  case "$b" in sqlite | postgres) ;; *) echo "BENCH_BACKENDS lists sqlite and/or postgres, not $b" >&2; exit 2 ;; esac
done
[[ "$PG_MAX_CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_PG_MAX_CONNECTIONS must be a positive integer" >&2; exit 2; }
uses_postgres() { [[ " $BACKENDS " == *" postgres "* ]]; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- cleanup ----
GH_PID=""
SCHEMA_CREATED=""
psql_q() { PGOPTIONS='-c lock_timeout=10s -c statement_timeout=60s' psql -X -q -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }
# shellcheck disable=SC2317  # invoked by the EXIT trap (bench_cleanup)
stop_all() {
  stop_pid "$WRK_PID"
  stop_pid "$GH_PID"
  # After the server (its connections hold the schema's tables): leave nothing behind.
  if [[ -n "$SCHEMA_CREATED" ]]; then
    if psql_q -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1; then
      SCHEMA_CREATED=""
    else
      echo "$BENCH_SCRIPT: could not drop schema $SCHEMA; drop it by hand: psql \"\$BENCH_POSTGRES_URL\" -c 'DROP SCHEMA $SCHEMA CASCADE'" >&2
    fi
  fi
}
bench_traps

# ------------------------------------------------------------------ tools ----
command -v node >/dev/null || die "node is required (small JSON helpers)"
command -v curl >/dev/null || die "curl is required"
if uses_postgres; then
  command -v psql >/dev/null || die "psql is required for the PostgreSQL backend (apt-get install postgresql-client)"
  psql_q -At -c 'SELECT 1' >/dev/null || die "PostgreSQL at BENCH_POSTGRES_URL does not answer (set BENCH_POSTGRES_URL, or BENCH_BACKENDS=sqlite)"
fi
ensure_wrk

build_gatehouse

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-storebench.XXXXXX")"

# ---------------------------------------------------------------- helpers ----
# PostgreSQL's own CPU: it shares the two cores. Jiffies of every process named
# postgres (utime + stime, plus cutime + cstime, so that backends that exit
# during a run are counted through the postmaster that reaps them). Machine-wide:
# other sessions' queries on the same server count too (see "everything else").
pg_jiffies() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '$2 == "(postgres)" { s += $14 + $15 + $16 + $17 } END { printf "%d\n", s }'
}

# write_config BACKEND PORT FILE: the server's whole configuration.
write_config() {
  local backend="$1" port="$2" file="$3"
  {
    echo "listen = \"127.0.0.1:$port\""
    echo "data_dir = \"$WORK/data-$backend\""
    echo "allowed_audiences = [\"$AUDIENCE\"]"
    echo
    echo "[registration]"
    echo "confidential = \"open\""
    echo "per_address_per_minute = $REG_PER_MINUTE"
    echo "max_clients = $REG_MAX_CLIENTS"
    echo "max_clients_per_address = 0"
    if [[ "$backend" == postgres ]]; then
      echo
      echo "[store]"
      echo "url = \"$PG_URL\""
      echo "schema = \"$SCHEMA\""
      echo "max_connections = $PG_MAX_CONNECTIONS"
    fi
  } >"$file"
}

# gh_env BACKEND: sets GH_ENV, the `env` prefix gatehouse runs with for BACKEND:
# default logging (RUST_LOG unset), no store from the caller's environment, and the
# key-encryption key for PostgreSQL (never printed). An array, not a function, so
# that `"${GH_ENV[@]}" "$GATEHOUSE" serve ... &` leaves the server's own pid in $!.
gh_env() {
  GH_ENV=(env -u RUST_LOG -u GATEHOUSE_STORE -u GATEHOUSE_KEY_ENCRYPTION_KEY)
  [[ "$1" == postgres ]] && GH_ENV+=(GATEHOUSE_KEY_ENCRYPTION_KEY="$KEK")
  return 0
}

# check_token NAME URL BASIC LOGFILE: one token request by curl; 200 with an access_token.
check_token() {
  local name="$1" url="$2" basic="$3" logf="$4" body code
  body="$WORK/$name.check-token.json"
  code="$(curl -s -o "$body" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' -H 'Accept: application/json' \
    -H "Authorization: Basic $basic" --data 'grant_type=client_credentials' "$url" || true)"
  if [[ "$code" != 200 ]] || ! json_field access_token <"$body" >/dev/null 2>&1; then
    echo "--- $name: POST $url answered HTTP $code ---" >&2; cat "$body" >&2 || true; echo >&2
    echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
    die "$name: a single client_credentials request did not return 200 with an access_token"
  fi
}
# check_register NAME URL LOGFILE: one registration by curl, the body register.lua
# sends; 201 with a client_id and a client_secret. Prints base64(client_id:client_secret).
check_register() {
  local name="$1" url="$2" logf="$3" body code id secret
  body="$WORK/$name.check-register.json"
  code="$(curl -s -o "$body" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    --data "$REGISTER_BODY" "$url" || true)"
  id="$(json_field client_id <"$body" 2>/dev/null || true)"
  secret="$(json_field client_secret <"$body" 2>/dev/null || true)"
  if [[ "$code" != 201 || -z "$id" || -z "$secret" ]]; then
    echo "--- $name: POST $url answered HTTP $code ---" >&2; cat "$body" >&2 || true; echo >&2
    echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
    die "$name: a single registration did not return 201 with a client_id and a client_secret"
  fi
  printf '%s:%s' "$id" "$secret" | base64 -w0
}

# run_wrk NAME PID URL SCRIPT [BASIC]: warm-up, then the measured run with SCRIPT.
# Leaves $WORK/NAME.warmup.wrk, NAME.wrk (with the BENCH line), NAME.cpu (a human
# line), NAME.vals (srv_s, pg_s: CPU seconds of the server and of PostgreSQL over the
# measured run) and NAME.busy (when other processes used over 0.25 cores).
run_wrk() {
  local name="$1" pid="$2" url="$3" script="$4" basic="${5:-}"
  log "$name: warm-up ${WARMUP}"
  BENCH_BASIC="$basic" BENCH_WRK_THREADS="$THREADS" \
    wrk_bg "$WORK/$name.warmup.wrk" -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$BENCH_DIR/$script" "$url"
  log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/$script"
  local b0 st0 s0 p0 t0 b1 st1 s1 p1 t1 w0 w1
  b0="$(busy_jiffies)"; st0="$(steal_jiffies)"; s0="$(proc_jiffies "$pid")"; p0="$(pg_jiffies)"; t0="$(date +%s.%N)"
  times >"$WORK/times0"
  BENCH_BASIC="$basic" BENCH_WRK_THREADS="$THREADS" \
    wrk_bg "$WORK/$name.wrk" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$BENCH_DIR/$script" "$url"
  times >"$WORK/times1"
  b1="$(busy_jiffies)"; st1="$(steal_jiffies)"; s1="$(proc_jiffies "$pid")"; p1="$(pg_jiffies)"; t1="$(date +%s.%N)"
  w0="$(children_cpu_s "$WORK/times0")"; w1="$(children_cpu_s "$WORK/times1")"
  grep -q '^BENCH ' "$WORK/$name.wrk" || { cat "$WORK/$name.wrk" >&2; die "$name: wrk printed no BENCH line"; }
  # CPU used during the measured run, in cores: the server, PostgreSQL, wrk, and
  # everything else on the machine.
  awk -v b="$((b1 - b0))" -v st="$((st1 - st0))" -v s="$((s1 - s0))" -v p="$((p1 - p0))" \
    -v w="$(awk -v a="$w0" -v c="$w1" 'BEGIN { print c - a }')" \
    -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v ncpu="$(nproc)" \
    -v vals="$WORK/$name.vals" -v busy="$WORK/$name.busy" 'BEGIN {
      el = t1 - t0; srv = s / hz / el; pg = p / hz / el; wrk = w / el; all = b / hz / el
      other = all - srv - pg - wrk
      if (other < 0) other = 0
      printf "server %.2f, postgres %.2f, wrk %.2f, everything else %.2f (machine total %.2f of %d; hypervisor steal %.2f)", srv, pg, wrk, other, all, ncpu, st / hz / el
      printf "srv_s=%.3f pg_s=%.3f\n", s / hz, p / hz > vals
      if (other > 0.25) printf "%.2f\n", other > busy
    }' >"$WORK/$name.cpu"
}
# val NAME KEY: a value from NAME.vals.
val() { tr ' ' '\n' <"$WORK/$1.vals" | sed -n "s/^$2=//p"; }
# ok_field NAME: the BENCH key counting successes (tokens: ok200, registrations: ok201).
ok_field() { if [[ "$1" == *.register ]]; then echo ok201; else echo ok200; fi; }
# per_req NAME KEY: KEY's CPU seconds (srv_s or pg_s) per successful request, in µs.
per_req() {
  awk -v s="$(val "$1" "$2")" -v n="$(bench_field "$1" "$(ok_field "$1")")" \
    'BEGIN { if (n > 0) printf "%.0f", s * 1e6 / n; else print "n/a" }'
}

# ------------------------------------------------------------------ runs -----
if uses_postgres; then
  KEK="$(head -c 32 /dev/urandom | base64 -w0)"
  log "postgres: creating schema $SCHEMA ($(psql_q -At -c 'SHOW server_version' | cut -d' ' -f1))"
  SCHEMA_CREATED=1  # before creating it, so that an interrupt in between still drops it
  psql_q -c "CREATE SCHEMA $SCHEMA" >/dev/null
fi
QUIET_LEFT="$QUIET_WAIT"
declare -A IDLE AFTER HWM
for backend in $BACKENDS; do
  port="$(free_port)"
  cfg="$WORK/$backend.toml"
  logf="$WORK/gatehouse-$backend.log"
  mkdir -p "$WORK/data-$backend"
  write_config "$backend" "$port" "$cfg"
  gh_env "$backend"
  log "$backend: registering a client (gatehouse client create --config $cfg)"
  "${GH_ENV[@]}" "$GATEHOUSE" client create --init --config "$cfg" --name bench --grant client_credentials \
    --audience "$AUDIENCE" >"$WORK/$backend.client.json" 2>"$WORK/$backend.client-create.log" ||
    { cat "$WORK/$backend.client-create.log" >&2; die "$backend: gatehouse client create failed"; }
  id="$(json_field client_id <"$WORK/$backend.client.json")" ||
    { cat "$WORK/$backend.client.json" >&2; die "$backend: gatehouse client create printed no client_id"; }
  secret="$(json_field client_secret <"$WORK/$backend.client.json")" ||
    die "$backend: gatehouse client create printed no client_secret"
  basic="$(printf '%s:%s' "$id" "$secret" | base64 -w0)"

  wait_quiet "$backend"
  log "$backend: serving on 127.0.0.1:$port"
  "${GH_ENV[@]}" "$GATEHOUSE" serve --config "$cfg" >"$logf" 2>&1 &
  GH_PID=$!
  wait_ready "gatehouse ($backend)" "$GH_PID" "http://127.0.0.1:$port/healthz" "$logf"
  sleep 1
  IDLE[$backend]="$(rss_kib "$GH_PID" VmRSS)"
  sed -n 's/.*gatehouse started.* store=\(.*\) kid=.*/\1/p' "$logf" | head -n1 >"$WORK/$backend.store"
  check_token "$backend" "http://127.0.0.1:$port$TOKEN_PATH" "$basic" "$logf"
  # A registered client must work: its credentials get a token (the client cache
  # follows the store's change sequence, polled every second).
  reg_basic="$(check_register "$backend" "http://127.0.0.1:$port$REGISTER_PATH" "$logf")"
  deadline=$((SECONDS + 10))
  until curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "Authorization: Basic $reg_basic" \
    --data 'grant_type=client_credentials' "http://127.0.0.1:$port$TOKEN_PATH" | grep -q '^200$'; do
    ((SECONDS < deadline)) || die "$backend: a client registered through $REGISTER_PATH got no token within 10 s"
    sleep 0.2
  done
  log "$backend: one token (200), one registration (201), and a token for the registered client: OK"

  run_wrk "$backend.token" "$GH_PID" "http://127.0.0.1:$port$TOKEN_PATH" token.lua "$basic"
  kill -0 "$GH_PID" 2>/dev/null || { tail -n 40 "$logf" >&2; die "$backend: gatehouse died during the token run"; }
  run_wrk "$backend.register" "$GH_PID" "http://127.0.0.1:$port$REGISTER_PATH" register.lua
  kill -0 "$GH_PID" 2>/dev/null || { tail -n 40 "$logf" >&2; die "$backend: gatehouse died during the registration run"; }
  AFTER[$backend]="$(rss_kib "$GH_PID" VmRSS)"
  HWM[$backend]="$(rss_kib "$GH_PID" VmHWM)"
  grep -m3 -E '"level":"(WARN|ERROR)"|WARN|ERROR' "$logf" | cut -c1-300 >"$WORK/$backend.warnings" || true
  stop_pid "$GH_PID"; GH_PID=""
done

# ---------------------------------------------------------------- summary ----
RUNS=""
for b in $BACKENDS; do RUNS="$RUNS $b.token $b.register"; done
row() { # NAME LABEL
  local n="$1" ok
  ok="$(ok_field "$n")"
  printf '%-26s %10s %10s %9s %9s %9s %9s %11s %11s\n' "$2" "$(bench_field "$n" ok_per_s)" \
    "$(sed -n 's/^BENCH //p' "$WORK/$n.warmup.wrk" | tr ' ' '\n' | sed -n 's/^ok_per_s=//p')" \
    "$(bench_field "$n" p50_ms)" "$(bench_field "$n" p99_ms)" \
    "$(bench_field "$n" "non${ok#ok}")" "$(bench_field "$n" bad_body)" "$(per_req "$n" srv_s)" "$(per_req "$n" pg_s)"
}
ratio() { # KIND: postgres ÷ sqlite for /s and CPU per request
  awk -v a="$(bench_field "postgres.$1" ok_per_s)" -v b="$(bench_field "sqlite.$1" ok_per_s)" \
    -v ca="$(per_req "postgres.$1" srv_s)" -v cb="$(per_req "sqlite.$1" srv_s)" -v kind="$1" 'BEGIN {
      printf "postgres / sqlite, %-13s  per second %s, server CPU per request %s\n", kind ":",
        (b > 0 ? sprintf("%.2fx", a / b) : "n/a"), (cb > 0 ? sprintf("%.2fx (%+d µs)", ca / cb, ca - cb) : "n/a")
    }'
}
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$BENCH_DIR/results"
RESULT="$BENCH_DIR/results/store-$STAMP.txt"
{
  echo "Gatehouse store backends: POST $TOKEN_PATH (client_credentials, client_secret_basic) and POST $REGISTER_PATH (dynamic registration, confidential client_credentials client)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%SZ')  host: $(uname -n)  cores: $(nproc)  $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "gatehouse: $(bin_note)"
  for b in $BACKENDS; do
    echo "$b store: $(cat "$WORK/$b.store")"
  done
  uses_postgres && echo "postgres: server $(psql_q -At -c 'SHOW server_version' | cut -d' ' -f1), schema $SCHEMA (dropped at exit), pool max_connections $PG_MAX_CONNECTIONS"
  echo "load: per backend, tokens then registrations on one server process, each wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up; wrk, the server and PostgreSQL share the machine's cores"
  [[ -n "$BUILDERS_AT_START" ]] && echo "NOTE: builds still running when measuring started (after waiting up to $QUIET_WAIT s in all): $BUILDERS_AT_START"
  echo
  printf '%-26s %10s %10s %9s %9s %9s %9s %11s %11s\n' run "per s" "warm-up/s" "p50 ms" "p99 ms" "errors" "bad body" "server µs" "postgres µs"
  for b in $BACKENDS; do
    row "$b.token" "$b: tokens"
    row "$b.register" "$b: registrations"
  done
  echo "(per s: 200s (tokens) or 201s (registrations) per second of the measured run; warm-up/s: the same over"
  echo " the warm-up before it; errors: any other status; server/postgres µs: CPU time per successful request)"
  if [[ " $BACKENDS " == *" sqlite "* && " $BACKENDS " == *" postgres "* ]]; then
    echo
    ratio token
    ratio register
  fi
  echo
  for b in $BACKENDS; do
    printf 'gatehouse RSS (%s): idle %s MiB, after both runs %s MiB, peak (VmHWM) %s MiB\n' "$b" \
      "$(mib "${IDLE[$b]}")" "$(mib "${AFTER[$b]}")" "$(mib "${HWM[$b]}")"
  done
  echo "CPU during each measured run, in cores (postgres: every process named postgres on the machine):"
  for n in $RUNS; do printf '  %-20s %s\n' "$n" "$(cat "$WORK/$n.cpu")"; done
  for n in $RUNS; do
    [[ -s "$WORK/$n.busy" ]] || continue
    echo "WARNING: other processes used $(cat "$WORK/$n.busy") cores during the $n run: its figures are depressed and noisy; rerun on a quiet machine"
  done
  for b in $BACKENDS; do
    [[ -s "$WORK/$b.warnings" ]] || continue
    echo "gatehouse log ($b) has warnings/errors, first ones:"; sed 's/^/  /' "$WORK/$b.warnings"
  done
  for n in $RUNS; do
    ok="$(ok_field "$n")"
    echo "$n socket errors: connect $(bench_field "$n" sock_connect) read $(bench_field "$n" sock_read) write $(bench_field "$n" sock_write) timeout $(bench_field "$n" sock_timeout); error statuses: $(bench_field "$n" "non${ok#ok}_statuses")"
  done
} >"$WORK/summary.txt"
# shellcheck disable=SC2086  # RUNS is a list of names
publish_results "$RESULT" $RUNS

# A run with errors must not pass for a measurement.
status=0
for n in $RUNS; do
  ok="$(ok_field "$n")"
  if [[ "$(bench_field "$n" "non${ok#ok}")" != 0 || "$(bench_field "$n" bad_body)" != 0 || "$(bench_field "$n" "$ok")" == 0 ]]; then
    echo "store.sh: $n answered unexpected statuses or malformed responses under load; the figures above are not a valid measurement" >&2
    status=1
  fi
done
exit "$status"
