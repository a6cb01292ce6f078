#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer build dir (if needed) and runs
# every fuzz target for SECONDS each (default 30), starting from the seed
# corpus in tests/fuzz/corpus/<target>/. Exits non-zero if any target finds
# a crash, a leak, undefined behaviour or a timeout; the crashing input's
# path is printed ("CRASH <target>: <path>").
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#   SEGLAKE_FUZZ_BUILD=DIR   build dir (default: <repo>/build-fuzz)
#   SEGLAKE_FUZZ_NO_BUILD=1  do not configure/compile (meson run_target)
#   SEGLAKE_FUZZ_JOBS=N      targets run N at a time (default 1)
#
# New inputs found go to DIR/fuzz-corpus/<target>/ (not the repo), crash
# artifacts to DIR/fuzz-artifacts/<target>/, logs to DIR/fuzz-logs/.
# Not here: the sanitizer unit-test build (tests/run-all.sh, build-asan).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECS=${1:-30}
shift || true
BUILD=${SEGLAKE_FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${SEGLAKE_FUZZ_JOBS:-1}
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  TARGETS=(sigv4 chunked segment repl rebuild policy meta s3d_xml s3d_headers s3d_bodies)
fi

if [ -z "${SEGLAKE_FUZZ_NO_BUILD:-}" ]; then
  if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined \
      -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link || exit 1
  fi
  meson compile -C "$BUILD" $(printf 'fuzz_%s ' "${TARGETS[@]}") >"$BUILD/fuzz-build.log" 2>&1 || {
    tail -n 40 "$BUILD/fuzz-build.log"; echo "fuzz: build failed" >&2; exit 1; }
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

run_one() {
  local t=$1 exe="$BUILD/tests/fuzz/fuzz_$1"
  local seeds="$ROOT/tests/fuzz/corpus/$t" work="$BUILD/fuzz-corpus/$t"
  local art="$BUILD/fuzz-artifacts/$t/" log="$BUILD/fuzz-logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  if [ ! -x "$exe" ]; then
    echo "FAIL $t: $exe not built"; return 1
  fi
  "$exe" "$work" "$seeds" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2560 \
    -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1
  local rc=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $t (exit $rc, log $log)"
    grep -E 'ERROR: |runtime error|SUMMARY' "$log" | head -n 5
    grep -o "Test unit written to .*" "$log" | sort -u | sed "s|Test unit written to |CRASH $t: |"
    return 1
  fi
  echo "ok   $t: ${execs:-?} runs in ${SECS}s, corpus $(ls "$work" | wc -l) (+ $(ls "$seeds" | wc -l) seeds)"
}

fail=0
running=0
pids=()
names=()
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  pids+=($!); names+=("$t")
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}"); names=("${names[@]:1}")
    running=$((running - 1))
  fi
done
for p in "${pids[@]}"; do
  wait "$p" || fail=1
done
if [ "$fail" -ne 0 ]; then
  echo "fuzz: FAILED (inputs above; reproduce with $BUILD/tests/fuzz/fuzz_TARGET INPUT)" >&2
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets clean for ${SECS}s each"
