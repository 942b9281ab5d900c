#!/usr/bin/env bash
# Loads the linux-arm64 prebuild (prebuilds/linux-arm64/dac.node) in an arm64
# Node under qemu-aarch64 and checks it: the loader picks the prebuild
# (process.arch is arm64 there), the NEON kernels are available, and DAC,
# spatial and channel decompositions and the fused kernel agree with the WASM
# backend in the same process.
# The arm64 Node is Debian's nodejs:arm64 (Node 18) unpacked with its arm64
# libraries into a root folder (cached in .cache/arm64-node); fetching it
# needs apt (dpkg --add-architecture arm64, root) the first time only.
#   scripts/test-arm64-node.sh      (after npm run build and scripts/prebuild.sh arm64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qemu=${QEMU_AARCH64:-qemu-aarch64-static}
R=${ARM64_NODE_ROOT:-$root/.cache/arm64-node}
cd "$root"
command -v "$qemu" >/dev/null || { echo "FAIL: $qemu not found"; exit 1; }
[ -f prebuilds/linux-arm64/dac.node ] || { echo "FAIL: no prebuilds/linux-arm64/dac.node (bash scripts/prebuild.sh arm64)"; exit 1; }
[ -f dist/index.js ] || { echo "FAIL: no dist/ (npm run build)"; exit 1; }

if [ ! -x "$R/usr/bin/node" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -q
  fi
  debs=$(mktemp -d)
  trap 'rm -rf "$debs"' EXIT
  # nodejs and what it links, as arm64 packages; its bundled JS deps are arch-independent.
  (cd "$debs" && apt-get download -q \
    nodejs:arm64 libnode108:arm64 libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 libuv1:arm64 libssl3:arm64 \
    zlib1g:arm64 libicu72:arm64 libbrotli1:arm64 libc-ares2:arm64 libnghttp2-14:arm64 \
    node-acorn node-cjs-module-lexer node-undici >/dev/null)
  mkdir -p "$R"
  for d in "$debs"/*.deb; do dpkg -x "$d" "$R"; done
fi

node18() { "$qemu" -L "$R" "$R/usr/bin/node" "$@"; }
echo "arm64 node $(node18 -p 'process.version + " " + process.arch')"
DAC_BACKEND= DAC_ADDON_PATH= node18 -e '
const assert = require("node:assert");
const m = require("./dist/index.js");
const info = m.backendInfo();
assert.equal(info.backend, "native", "the native backend runs");
assert.equal(info.prebuilt, true, "from the prebuild");
assert.match(info.addon, /prebuilds\/linux-arm64\/dac\.node$/);
assert.ok(info.kernels.dwpwVariants.includes("neon"), "NEON kernels: " + info.kernels.dwpwVariants);
let seed = 7;
const rand = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
const shape = { n: 16, c: 8, kh: 3, kw: 3 };
const w = rand(16 * 8 * 9);
const close = (a, b, what) => {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  assert.ok(d <= 1e-4 * Math.max(1, s), what + ": native and WASM differ by " + d);
};
const cmp = (f, keys) => {
  const a = f("native"), b = f("wasm");
  for (const k of keys) close(a[k], b[k], k);
};
cmp((backend) => m.decomposeDac(w, shape, 4, { backend }), ["depthwise", "pointwise", "singular"]);
cmp((backend) => m.decomposeSpatial(w, shape, 6, { backend }), ["vertical", "horizontal"]);
cmp((backend) => m.decomposeChannel(w, shape, 6, { backend }), ["first", "second"]);
const dac = m.decomposeDac(w, shape, 4);
const input = rand(1 * 10 * 10 * 8);
const fused = (backend) => m.fusedDepthwisePointwise(input, [1, 10, 10, 8], { rank: 4, depthwise: dac.depthwise, pointwise: dac.pointwise }, shape, { padding: "same", backend }).output;
close(fused("native"), fused("wasm"), "fused depthwise+pointwise");
console.log("PASS: linux-arm64 prebuild under qemu: " + info.isa + ", kernels " + info.kernels.dwpwVariants.join(","));
'
