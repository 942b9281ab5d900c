#!/usr/bin/env bash
# Cross-compiles the kernel tests (native/tests/kernels_test.cc, with the NEON
# variants), the decomposition tests (native/tests/decompose_test.cc) and the
# linear algebra tests (native/tests/linalg_test.cc, Eigen's products there) for
# aarch64 and runs them under qemu-aarch64, so the ARM code is checked on an
# x86 machine.
# Needs g++-aarch64-linux-gnu and qemu-user-static. Exits non-zero on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX_AARCH64:-aarch64-linux-gnu-g++}
qemu=${QEMU_AARCH64:-qemu-aarch64-static}
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
for tool in "$cxx" "$qemu"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found"; exit 1; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$root"
# The kernels and what they use (no x86/WASM variants), and the decomposition
# core, whose portable kernels take their NEON form from vector extensions.
mapfile -t kernels < <(ls native/common/*.cc native/tiles/*.cc native/dwpw/*.cc native/conv/*.cc | grep -Ev '_(sse41|avx2|avx512|wasm_simd)\.cc$')
mapfile -t core < <(ls native/common/*.cc native/linalg/*.cc native/decompose/*.cc | grep -Ev '_(sse41|avx2|avx512|wasm_simd|neon)\.cc$')
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
"$cxx" -std=c++17 -O2 -DDAC_HAVE_NEON_VARIANTS=1 -pthread "${kernels[@]}" native/tests/kernels_test.cc -o "$out/kernels_test"
# shellcheck disable=SC2086
"$cxx" -std=c++17 -O2 -pthread $eigen -DEIGEN_MPL2_ONLY "${core[@]}" native/tests/decompose_test.cc -o "$out/decompose_test"
# shellcheck disable=SC2086
"$cxx" -std=c++17 -O2 -pthread $eigen -DEIGEN_MPL2_ONLY "${core[@]}" native/tests/linalg_test.cc -o "$out/linalg_test"

status=0
for t in kernels_test decompose_test linalg_test; do
  if "$qemu" -L "$sysroot" "$out/$t" >"$out/log" 2>&1; then
    grep -E 'variants|passed' "$out/log"
    echo "PASS: $t under qemu-aarch64"
  else
    cat "$out/log"
    echo "FAIL: $t under qemu-aarch64"
    status=1
  fi
done
exit $status
