#!/usr/bin/env bash
# Builds the prebuilt N-API addons shipped in the package:
#   prebuilds/linux-x64/dac.node    (host g++)
#   prebuilds/linux-arm64/dac.node  (cross-built with aarch64-linux-gnu-g++)
#   scripts/prebuild.sh [x64] [arm64]   (default: both)
# Plain CMake against the N-API headers (node-api-headers, a dependency of
# cmake-js): an N-API addon needs no Node binary or library of the target, so
# one machine builds both. Only the ISA-suffixed files get ISA flags
# (CMakeLists.txt). libstdc++ stays a shared library (Node itself needs it):
# linked statically it would pull in symbols of this glibc (2.36) and refuse
# older systems; shared, the addon needs glibc >= 2.32. The result is stripped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)
napi_inc=$(node -p "require('node-api-headers').include_dir")
eigen=${EIGEN_INCLUDE:-/usr/include/eigen3}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

for arch in "${arches[@]}"; do
  case "$arch" in
    x64) cxx=${CXX_X64:-g++}; strip=${STRIP_X64:-strip}; proc=x86_64 ;;
    arm64) cxx=${CXX_AARCH64:-aarch64-linux-gnu-g++}; strip=${STRIP_AARCH64:-aarch64-linux-gnu-strip}; proc=aarch64 ;;
    *) echo "unknown arch $arch (x64|arm64)"; exit 2 ;;
  esac
  command -v "$cxx" >/dev/null || { echo "FAIL: $cxx not found"; exit 1; }
  build="$root/build-prebuild-$arch"
  cross=()
  # CMAKE_SYSTEM_NAME marks a cross build; CMAKE_SYSTEM_PROCESSOR picks the ISA variants in CMakeLists.txt.
  [ "$proc" != "$(uname -m)" ] && cross=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="$proc")
  cmake -S "$root" -B "$build" "${gen[@]}" "${cross[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DDAC_EIGEN_DIR="$eigen" -DCMAKE_JS_INC="$napi_inc" \
    -DCMAKE_CXX_FLAGS="-DBUILDING_NODE_EXTENSION -fvisibility=hidden" \
    -DCMAKE_SHARED_LINKER_FLAGS="-Wl,--as-needed" >/dev/null
  cmake --build "$build" --target dac_addon -j"${JOBS:-$(nproc)}"
  # The addon must run on any CPU of its architecture: ISA flags on the ISA-suffixed files only.
  node -e '
    const bad = require(process.argv[1]).filter((c) => /\s-m(avx|sse|fma|fpu|arch|cpu)/.test(c.command) &&
      !/_(sse41|avx2|avx512|neon)\.cc$/.test(c.file));
    if (bad.length) { console.error("FAIL: ISA flags on " + bad.map((c) => c.file).join(", ")); process.exit(1); }
  ' "$build/compile_commands.json"
  mkdir -p "prebuilds/linux-$arch"
  "$strip" --strip-unneeded -o "prebuilds/linux-$arch/dac.node" "$build/dac_addon.node"
  f="prebuilds/linux-$arch/dac.node"
  glibc=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "built $f ($(stat -c %s "$f") bytes, needs $glibc)"
done
