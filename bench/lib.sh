# Helpers shared by the benchmark scripts (bench/token.sh, bench/gateway.sh,
# bench/store.sh). Sourced, never run: the caller sets `set -euo pipefail` and
# the variables each helper names (BENCH_DIR, REPO, WORK, READY_TIMEOUT_S, ...).
# shellcheck shell=bash

BENCH_SCRIPT="${0##*/}"  # e.g. token.sh: prefixes die's messages

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_SCRIPT" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup ----
# stop_pid PID: TERM, up to 5 s to exit, then KILL; reaps it. Empty PID: nothing.
stop_pid() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# bench_traps: on exit, call the caller's stop_all (which stops every process it
# started, and undoes anything else it made), then remove $WORK after a good run
# or keep it, naming it, after a failed one; INT and TERM exit 130 and 143.
WORK=""  # the caller creates it (mktemp -d) once the builds are done
# shellcheck disable=SC2317  # invoked by the EXIT trap
bench_cleanup() {
  local rc=$?
  if declare -F stop_all >/dev/null; then stop_all; fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ $rc -ne 0 ]]; then
      echo "$BENCH_SCRIPT: failed (exit $rc); logs kept in $WORK" >&2
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# ------------------------------------------------------------------ tools ----
ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
}

# build_gatehouse: sets GATEHOUSE to BENCH_GATEHOUSE_BIN, or builds the release
# binary (cargo build --release -p gatehouse, in REPO) and points at it.
build_gatehouse() {
  if [[ -n "${BENCH_GATEHOUSE_BIN:-}" ]]; then
    GATEHOUSE="$BENCH_GATEHOUSE_BIN"
    log "using $GATEHOUSE (BENCH_GATEHOUSE_BIN; not building)"
  else
    log "building gatehouse (cargo build --release -p gatehouse)"
    (cd "$REPO" && cargo build --release -p gatehouse)
    GATEHOUSE="${CARGO_TARGET_DIR:-$REPO/target}/release/gatehouse"
  fi
  [[ -x "$GATEHOUSE" ]] || die "built, but no binary at $GATEHOUSE"
}

# bin_note: identifies the measured binary for a results file: the commit (and
# whether crates/ or Cargo.lock had uncommitted changes) when this script built
# it; its SHA-256 and time when it came from BENCH_GATEHOUSE_BIN, since the
# repository's HEAD says nothing about a binary built elsewhere.
bin_note() {
  if [[ -n "${BENCH_GATEHOUSE_BIN:-}" ]]; then
    echo "binary: $GATEHOUSE (BENCH_GATEHOUSE_BIN, not built by this script; sha256 $(sha256sum "$GATEHOUSE" | cut -c1-12), modified $(date -u -r "$GATEHOUSE" '+%Y-%m-%d %H:%M:%SZ')); repository HEAD: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
  else
    echo "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$REPO" status --porcelain -- crates Cargo.lock 2>/dev/null | grep -q . && echo ' (+uncommitted changes)')  binary: $GATEHOUSE"
  fi
}

# JSON field from stdin, without depending on jq.
json_field() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const v = JSON.parse(s)[process.argv[1]];
      if (v === undefined || v === null) process.exit(3);
      process.stdout.write(String(v));
    });' "$1"
}
# free_ports N: N distinct free ports on 127.0.0.1, one a line (all held open at
# once while the kernel picks them, so none comes back twice).
free_ports() {
  node -e '
    const net = require("net"), n = Number(process.argv[1]), servers = [];
    const next = () => {
      if (servers.length === n) {
        console.log(servers.map((s) => s.address().port).join("\n"));
        servers.forEach((s) => s.close());
        return;
      }
      const s = net.createServer().listen(0, "127.0.0.1", next);
      servers.push(s);
    };
    next();' "$1"
}
free_port() { free_ports 1; }
rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# wait_ready NAME PID URL LOGFILE: poll URL until it answers 200.
wait_ready() {
  local name="$1" pid="$2" url="$3" logf="$4" deadline=$((SECONDS + READY_TIMEOUT_S))
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" == 200 ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
      die "$name exited before it was ready"
    fi
    if ((SECONDS >= deadline)); then
      echo "--- $name log ($logf) ---" >&2; tail -n 40 "$logf" >&2 || true
      die "$name was not ready at $url within ${READY_TIMEOUT_S}s"
    fi
    sleep 0.1
  done
}

# ------------------------------------------------------- quiet machine -------
# Compilers and linkers that other work on this machine may be running.
# One line each: pid, name, command line.
builders() {
  ps -eo pid=,comm=,args= |
    awk '$2 ~ /^(cargo|rustc|cargo-clippy|clippy-driver|cc1|cc1plus|ld|ld\.lld|mold|rust-lld)$/' | cut -c1-120
}
# wait_quiet LABEL: before measuring LABEL, wait for builds to finish. QUIET_LEFT
# (initially the caller's whole budget in seconds) is what is left of it; a label
# measured with builds still running is added to BUILDERS_AT_START.
BUILDERS_AT_START=""
wait_quiet() {
  local label="$1" start=$SECONDS deadline=$((SECONDS + QUIET_LEFT)) busy still
  busy="$(builders)"
  [[ -z "$busy" ]] && return 0
  log "other builds are running; waiting up to ${QUIET_LEFT}s for them to finish before measuring $label:"
  printf '%s\n' "$busy" | sed 's/^/      /' | head -n 8 >&2
  while [[ -n "$busy" ]] && ((SECONDS < deadline)); do
    sleep 5
    busy="$(builders)"
  done
  QUIET_LEFT=$((QUIET_LEFT - (SECONDS - start)))
  ((QUIET_LEFT > 0)) || QUIET_LEFT=0
  if [[ -n "$busy" ]]; then
    still="$(printf '%s\n' "$busy" | awk '{ print $2 }' | sort | uniq -c |
      awk '{ printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1 }')"
    BUILDERS_AT_START="${BUILDERS_AT_START:+$BUILDERS_AT_START; }$label: $still"
    log "still running after $((SECONDS - start))s ($still); measuring $label anyway, the CPU lines will show it"
  else
    log "no builds running any more"
    sleep 3  # let their last writes settle
  fi
}

# ------------------------------------------------------- CPU accounting ------
# Busy jiffies of the whole machine, of one process (all its threads),
# and the user+sys seconds of this shell's waited-for children (from `times` output).
busy_jiffies() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal_jiffies() { awk '$1 == "cpu" { print $9 }' /proc/stat; }
proc_jiffies() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
children_cpu_s() {
  tail -n1 "$1" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] } print t }'
}

# ------------------------------------------------------------------- wrk -----
# wrk_bg OUTFILE WRK_ARGS...: runs wrk with stdout to OUTFILE, in the background so
# that the EXIT trap can stop it (WRK_PID, for the caller's stop_all), and waits.
WRK_PID=""
wrk_bg() {
  local out="$1"
  shift
  wrk "$@" >"$out" &
  WRK_PID=$!; wait "$WRK_PID"; WRK_PID=""
}
# bench_field NAME KEY: a value from the BENCH line of NAME's wrk run.
bench_field() {
  sed -n 's/^BENCH //p' "$WORK/$1.wrk" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# publish_results RESULT NAME...: $WORK/summary.txt followed by the raw wrk output of
# each NAME that ran into the results file RESULT; prints the summary and where it went.
publish_results() {
  local result="$1" n
  shift
  {
    cat "$WORK/summary.txt"
    for n in "$@"; do
      [[ -f "$WORK/$n.wrk" ]] || continue
      echo; echo "----- $n: wrk output -----"; cat "$WORK/$n.wrk"
    done
  } >"$result"
  echo
  cat "$WORK/summary.txt"
  echo
  echo "written to ${result#"$REPO"/}"
}
