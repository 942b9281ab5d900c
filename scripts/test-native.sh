#!/usr/bin/env bash
# Builds and runs the standalone C++ tests (native/tests/*_test.cc).
#   scripts/test-native.sh [sanitize]   (sanitize: AddressSanitizer + UBSan build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-plain}
build="$root/build-tests-$mode"
flags=(-DDAC_BUILD_TESTS=ON -DDAC_BUILD_ADDON=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ "$mode" = sanitize ] && flags+=(-DDAC_SANITIZE=ON)
cmake -S "$root" -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
shopt -s nullglob
tests=("$build"/*_test)
[ ${#tests[@]} -gt 0 ] || { echo "no native tests found in $build"; exit 1; }
for t in "${tests[@]}"; do
  echo "== $(basename "$t") ($mode)"
  "$t" || status=1
done
exit $status
