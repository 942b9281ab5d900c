#!/usr/bin/env bash
# Rebuilds wasm/dist/dac_core.{js,wasm} from the same C++ sources as the addon.
# Needs Emscripten (Debian: apt-get install emscripten) and Eigen 3.4 headers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
: "${EIGEN_INCLUDE:=/usr/include/eigen3}"
# Debian's emcc needs its bundled acorn on NODE_PATH.
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
out="${DAC_WASM_OUT:-$here/dist}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Portable sources plus the wasm SIMD variants; no x86/ARM variants.
mapfile -t sources < <(cd "$root" && ls native/common/*.cc native/*/*.cc 2>/dev/null | sort -u \
  | grep -Ev '_(sse41|avx2|avx512|neon)\.cc$' | grep -v '^native/addon\.cc$' | grep -v '^native/tests/')

cd "$root"
# NODEJS_CATCH_EXIT/REJECTION=0: a library must not install process-wide
# uncaughtException/unhandledRejection handlers (they would take over the
# host program's crashes and exit codes).
emcc -O3 -std=c++17 -msimd128 -DNDEBUG -DEIGEN_MPL2_ONLY -DEIGEN_NO_DEBUG -DEIGEN_DONT_PARALLELIZE \
  -I"$EIGEN_INCLUDE" -fno-exceptions \
  "${sources[@]}" wasm/bindings.cc \
  -s MODULARIZE=1 -s EXPORT_NAME=createDacCore -s ENVIRONMENT=node \
  -s WASM_ASYNC_COMPILATION=0 -s ALLOW_MEMORY_GROWTH=1 -s MAXIMUM_MEMORY=4GB \
  -s INITIAL_MEMORY=32MB -s TOTAL_STACK=1MB -s FILESYSTEM=0 \
  -s NODEJS_CATCH_EXIT=0 -s NODEJS_CATCH_REJECTION=0 \
  -s EXPORTED_FUNCTIONS='["_malloc","_free"]' \
  -s EXPORTED_RUNTIME_METHODS='["UTF8ToString","stringToUTF8","lengthBytesUTF8"]' \
  -o "$tmp/dac_core.js"

mkdir -p "$out"
mv "$tmp/dac_core.js" "$out/dac_core.js"
mv "$tmp/dac_core.wasm" "$out/dac_core.wasm"
echo "built $out/dac_core.js and dac_core.wasm ($(stat -c %s "$out/dac_core.wasm") bytes)"
