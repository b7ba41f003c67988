#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one at a time,
# at low priority, and prints per target the runs, execs/s and coverage.
# Exits non-zero if any target crashed; the crashing input is kept under
# fuzz/artifacts/<target>/.
#
#   fuzz/run-all.sh            # 30 s per target
#   fuzz/run-all.sh 5          # CI smoke
#   fuzz/run-all.sh 600 jwt    # one target, ten minutes
#
# The committed corpus (fuzz/corpus/<target>) is read, not written: new
# inputs go to a scratch directory unless GROW_CORPUS=1, in which case they
# are added to the committed corpus (minimise it afterwards, see README.md).
# FUZZ_LOG_DIR=dir keeps each target's libFuzzer log as dir/<target>.log.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true

# cargo-fuzz needs nightly features: the nightly toolchain if installed,
# otherwise the stable one with RUSTC_BOOTSTRAP.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

named=$#
if [ "$named" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

# Build everything first so build time is not counted as fuzzing time.
if [ "$named" -gt 0 ]; then
    for t in "${targets[@]}"; do nice -n 19 "${cargo[@]}" fuzz build -O "$t"; done
else
    nice -n 19 "${cargo[@]}" fuzz build -O
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
printf '%-18s %8s %12s %10s %8s %8s  %s\n' target seconds runs execs/s cov ft result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ "${GROW_CORPUS:-0}" = 1 ]; then
        dirs=("corpus/$t")
    else
        mkdir -p "$scratch/$t"
        dirs=("$scratch/$t" "corpus/$t")
    fi
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    log="${FUZZ_LOG_DIR:-$scratch}/$t.log"
    result=ok
    # One process (libFuzzer's default, equivalent to -jobs=1), nice'd: the
    # machine is shared with builds.
    if ! nice -n 19 "${cargo[@]}" fuzz run -O "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=8192 \
        -timeout=60 -rss_limit_mb=2048 "${dict[@]}" >"$log" 2>&1; then
        result=CRASH
        failed+=("$t")
        mkdir -p artifacts && cp "$log" "artifacts/$t.log" 2>/dev/null || true
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    done_line=$(grep -aE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    secs=$(sed -E -n 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' <<<"$done_line")
    last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -E -n 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    printf '%-18s %8s %12s %10s %8s %8s  %s\n' "$t" "${secs:--}" "${runs:--}" \
        "${rate:--}" "${cov:--}" "${ft:--}" "$result"
    if [ "$result" = CRASH ]; then
        grep -aE -m5 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|Test unit written' "$log" | sed 's/^/    /' || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs and logs under fuzz/artifacts/)" >&2
    exit 1
fi
