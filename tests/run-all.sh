#!/usr/bin/env bash
# Installs what is needed, builds Seglake (normal and sanitizer builds) and
# runs every test: C unit tests in both builds, the libFuzzer targets for a
# short time, then the pytest integration suite against the real binaries of
# both builds. Exits non-zero if anything fails.
#
#   bash tests/run-all.sh            everything
#   SEGLAKE_SKIP_ASAN=1 ...          skip the sanitizer build and its test passes (faster local runs)
#   SEGLAKE_SKIP_FUZZ=1 ...          skip the short libFuzzer run (tests/fuzz/run.sh)
#   PYTEST_ARGS="-k s3" ...          pass arguments to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash packaging/install-deps.sh

echo "== build (debugoptimized, -Werror)"
[ -f build/build.ninja ] || meson setup build
meson compile -C build

echo "== unit tests"
meson test -C build --print-errorlogs

if [ -z "${SEGLAKE_SKIP_ASAN:-}" ]; then
  echo "== sanitizer build (address + undefined) and its unit tests"
  [ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
  meson compile -C build-asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs
fi

if [ -z "${SEGLAKE_SKIP_FUZZ:-}" ]; then
  echo "== fuzz targets (libFuzzer, clang, 30 s each; see tests/fuzz/README.md)"
  SEGLAKE_FUZZ_JOBS=2 bash tests/fuzz/run.sh 30
fi

echo "== integration tests (pytest)"
cd tests/integration
set +e
# shellcheck disable=SC2086
SEGLAKE_BUILD="$ROOT/build" /usr/bin/python3 -m pytest -p no:cacheprovider -ra ${PYTEST_ARGS:-}
rc=$?
if [ "$rc" -eq 0 ] && [ -z "${SEGLAKE_SKIP_ASAN:-}" ]; then
  echo "== integration tests again against the sanitizer build (ASan + UBSan + LeakSanitizer)"
  # every daemon and mount the tests start is the sanitized binary; a leak or
  # UB report makes it exit non-zero, which the tests' teardown checks
  # shellcheck disable=SC2086
  SEGLAKE_BUILD="$ROOT/build-asan" SEGLAKE_SANITIZED=1 \
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    /usr/bin/python3 -m pytest -p no:cacheprovider -ra ${PYTEST_ARGS:-}
  rc=$?
fi
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
fi
exit "$rc"
