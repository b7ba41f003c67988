#!/usr/bin/env bash
# A valid client's token throughput while another address hammers its client
# id with wrong secrets, against the same figure without the attack, in the
# same run on the same Gatehouse process (docs/operations.md "Limits per client address";
# bench/README.md "Token endpoint under a failed-authentication attack").
#
#   bash bench/auth_attack.sh
#
# Runs, each measured with wrk from 127.0.0.1 (client_secret_basic, bench/token.lua):
#   quiet-1, attack, quiet-2
# During "attack", bench/attacker.mjs sends wrong secrets for the same client id
# from 127.0.0.2 at BENCH_ATTACK_RATE requests/s (default 1000). The target is
# attack tokens/s >= 90% of the mean of the two quiet runs, with no non-200 for
# the valid client.
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (16),
# BENCH_ATTACK_RATE (1000), BENCH_GATEHOUSE_BIN (use this binary instead of building one).
# Everything listens on and connects to loopback addresses only.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
AUDIENCE="http://127.0.0.1:9999/mcp"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
ATTACK_RATE="${BENCH_ATTACK_RATE:-1000}"
READY_TIMEOUT_S=30
QUIET_LEFT=300

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

GH_PID=""
ATTACK_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap (bench_cleanup)
stop_all() {
  stop_pid "$WRK_PID"
  stop_pid "$ATTACK_PID"
  stop_pid "$GH_PID"
}
bench_traps

command -v node >/dev/null || die "node is required (bench/attacker.mjs)"
command -v curl >/dev/null || die "curl is required"
ensure_wrk
build_gatehouse

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")"
RESULTS="$BENCH_DIR/results"
mkdir -p "$RESULTS"
RESULT="$RESULTS/auth-attack-$(date -u +%Y%m%dT%H%M%SZ).txt"

PORT="$(free_port)"
DATA="$WORK/data"
mkdir -p "$DATA"
"$GATEHOUSE" client create --init --data-dir "$DATA" --name bench --grant client_credentials \
  --audience "$AUDIENCE" >"$WORK/client.json" 2>"$WORK/client-create.log" ||
  { cat "$WORK/client-create.log" >&2; die "gatehouse client create failed"; }
CLIENT_ID="$(json_field client_id <"$WORK/client.json")"
BASIC="$(printf '%s:%s' "$CLIENT_ID" "$(json_field client_secret <"$WORK/client.json")" | base64 -w0)"

log "gatehouse: serving on 127.0.0.1:$PORT"
"$GATEHOUSE" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --audience "$AUDIENCE" \
  >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
wait_ready gatehouse "$GH_PID" "http://127.0.0.1:$PORT/healthz" "$WORK/gatehouse.log"
URL="http://127.0.0.1:$PORT/oauth/token"
code="$(curl -s -o "$WORK/check.json" -w '%{http_code}' --max-time 5 -X POST \
  -H "Authorization: Basic $BASIC" --data 'grant_type=client_credentials' "$URL" || true)"
[[ "$code" == 200 ]] || { cat "$WORK/check.json" >&2; die "one token request answered $code"; }

log "warm-up $WARMUP"
BENCH_BASIC="$BASIC" wrk_bg "$WORK/warmup.wrk" -t1 -c"$CONNECTIONS" -d"$WARMUP" -s "$BENCH_DIR/token.lua" "$URL"

# measure NAME: one wrk run; leaves NAME.wrk, NAME.srv_s (server CPU seconds),
# NAME.att_s (attacker CPU seconds, 0 without one) and NAME.el (elapsed seconds).
measure() {
  local name="$1" s0 s1 a0=0 a1=0 t0 t1
  wait_quiet "$name"
  log "$name: wrk -t1 -c$CONNECTIONS -d$DURATION --latency"
  s0="$(proc_jiffies "$GH_PID")"
  [[ -n "$ATTACK_PID" ]] && a0="$(proc_jiffies "$ATTACK_PID")"
  t0="$(date +%s.%N)"
  BENCH_BASIC="$BASIC" wrk_bg "$WORK/$name.wrk" -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$BENCH_DIR/token.lua" "$URL"
  t1="$(date +%s.%N)"
  s1="$(proc_jiffies "$GH_PID")"
  [[ -n "$ATTACK_PID" ]] && a1="$(proc_jiffies "$ATTACK_PID")"
  local hz
  hz="$(getconf CLK_TCK)"
  awk -v j="$((s1 - s0))" -v hz="$hz" 'BEGIN { printf "%.3f", j / hz }' >"$WORK/$name.srv_s"
  awk -v j="$((a1 - a0))" -v hz="$hz" 'BEGIN { printf "%.3f", j / hz }' >"$WORK/$name.att_s"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }' >"$WORK/$name.el"
  grep -q '^BENCH ' "$WORK/$name.wrk" || { cat "$WORK/$name.wrk" >&2; die "$name: wrk printed no BENCH line"; }
  kill -0 "$GH_PID" 2>/dev/null || { tail -n 40 "$WORK/gatehouse.log" >&2; die "gatehouse died during $name"; }
}
cpu_per_token() {
  awk -v s="$(cat "$WORK/$1.srv_s")" -v n="$(bench_field "$1" ok200)" 'BEGIN { if (n > 0) printf "%.1f", s * 1e6 / n; else print "n/a" }'
}

measure quiet-1

log "attack: node bench/attacker.mjs from 127.0.0.2, $ATTACK_RATE wrong secrets/s for $CLIENT_ID"
node "$BENCH_DIR/attacker.mjs" "$PORT" "$CLIENT_ID" "$ATTACK_RATE" "$WORK/attacker.json" &
ATTACK_PID=$!
sleep 2 # the attacker has spent its free failures and is being held back
kill -0 "$ATTACK_PID" 2>/dev/null || die "the attacker exited early"
measure attack
kill -TERM "$ATTACK_PID"
wait "$ATTACK_PID" 2>/dev/null || true
ATTACK_PID=""
[[ -s "$WORK/attacker.json" ]] || die "the attacker wrote no summary"

measure quiet-2

QUIET_MEAN="$(awk -v a="$(bench_field quiet-1 ok_per_s)" -v b="$(bench_field quiet-2 ok_per_s)" 'BEGIN { printf "%.1f", (a + b) / 2 }')"
RATIO="$(awk -v a="$(bench_field attack ok_per_s)" -v q="$QUIET_MEAN" 'BEGIN { if (q > 0) printf "%.3f", a / q; else print 0 }')"
ATTACK_SENT="$(json_field sent <"$WORK/attacker.json")"
ATTACK_SECS="$(json_field seconds <"$WORK/attacker.json")"
ATTACK_STATUSES="$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1])); process.stdout.write(Object.entries(j.statuses).map(([k, v]) => k + ": " + v).join(", ") + (j.errors ? ", errors: " + j.errors : "") + (j.skipped ? ", skipped (64 in flight): " + j.skipped : ""))' "$WORK/attacker.json")"

{
  echo "auth_attack.sh  $(date -u '+%Y-%m-%d %H:%M:%SZ')  $(bin_note)"
  echo "wrk -t1 -c$CONNECTIONS -d$DURATION from 127.0.0.1 (client_secret_basic); attacker from 127.0.0.2 at $ATTACK_RATE/s during 'attack'"
  [[ -n "$BUILDERS_AT_START" ]] && echo "WARNING: builds were running during: $BUILDERS_AT_START"
  echo
  printf '%-9s %10s %9s %9s %8s %14s %14s\n' run tokens/s p50_ms p99_ms non-200 "CPU us/token" "server cores"
  for n in quiet-1 attack quiet-2; do
    printf '%-9s %10s %9s %9s %8s %14s %14s\n' "$n" "$(bench_field "$n" ok_per_s)" "$(bench_field "$n" p50_ms)" \
      "$(bench_field "$n" p99_ms)" "$(bench_field "$n" non200)" "$(cpu_per_token "$n")" \
      "$(awk -v s="$(cat "$WORK/$n.srv_s")" -v e="$(cat "$WORK/$n.el")" 'BEGIN { printf "%.2f", s / e }')"
  done
  echo
  echo "attack / mean(quiet-1, quiet-2) tokens/s: $RATIO (target >= 0.90; quiet mean $QUIET_MEAN)"
  echo "attacker: $ATTACK_SENT requests in ${ATTACK_SECS}s ($(awk -v n="$ATTACK_SENT" -v s="$ATTACK_SECS" 'BEGIN { printf "%.0f", n / s }')/s) -> $ATTACK_STATUSES; its own CPU during the run $(awk -v s="$(cat "$WORK/attack.att_s")" -v e="$(cat "$WORK/attack.el")" 'BEGIN { printf "%.2f", s / e }') cores"
} >"$WORK/summary.txt"
publish_results "$RESULT" quiet-1 attack quiet-2

status=0
for n in quiet-1 attack quiet-2; do
  if [[ "$(bench_field "$n" non200)" != 0 || "$(bench_field "$n" bad_body)" != 0 || "$(bench_field "$n" ok200)" == 0 ]]; then
    echo "auth_attack.sh: the valid client got non-200 or malformed responses in $n" >&2
    status=1
  fi
done
if ! awk -v r="$RATIO" 'BEGIN { exit !(r >= 0.90) }'; then
  echo "auth_attack.sh: under attack the valid client got $RATIO of its quiet throughput (target >= 0.90)" >&2
  status=1
fi
exit "$status"
