#!/usr/bin/env bash
# Install what is missing, build, and run every test.
#   scripts/test.sh              # release build in build/
#   scripts/test.sh --sanitize   # the same tests under ASan + UBSan (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "$@"
dir=build
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cd "$dir"
ctest --output-on-failure -j2 --timeout 900
