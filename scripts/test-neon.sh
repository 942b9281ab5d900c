#!/usr/bin/env bash
# Cross-compiles the kernel tests (native/tests/kernels_test.cc) for aarch64
# with the NEON variants and runs them under qemu-aarch64, so the NEON code
# is checked against the reference loops on an x86 machine.
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
# The kernels and what they use; no Eigen (decompose) and no x86/WASM variants.
mapfile -t sources < <(ls native/common/*.cc native/dwpw/*.cc native/conv/*.cc | grep -Ev '_(sse41|avx2|avx512|wasm_simd)\.cc$')
"$cxx" -std=c++17 -O2 -DDAC_HAVE_NEON_VARIANTS=1 -pthread "${sources[@]}" native/tests/kernels_test.cc -o "$out/kernels_test"

if "$qemu" -L "$sysroot" "$out/kernels_test" >"$out/log" 2>&1; then
  grep -E 'variants|passed' "$out/log"
  echo "PASS: NEON kernel tests under qemu-aarch64"
else
  cat "$out/log"
  echo "FAIL: NEON kernel tests under qemu-aarch64"
  exit 1
fi
