#!/usr/bin/env bash
# Builds the addon the way a machine without cmake does (node-gyp from
# gyp/binding.gyp, offline with the system's Node headers) in a scratch copy,
# then runs the backend and decomposition tests against that addon, so
# gyp/binding.gyp cannot drift from CMakeLists.txt unnoticed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tar -C "$root" -cf - native gyp/binding.gyp scripts package.json | tar -C "$out" -xf -
ln -s "$root/node_modules" "$out/node_modules"
gyp=$(cd "$root" && node -p "require.resolve('node-gyp/bin/node-gyp.js')" 2>/dev/null ||
  ls /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js)
nodedir=()
[ -f /usr/include/node/node_api.h ] && nodedir=(--nodedir=/usr)
(cd "$out" && node "$gyp" rebuild --directory=gyp "${nodedir[@]}" -j "$(nproc)" >"$out/gyp.log" 2>&1) || {
  tail -40 "$out/gyp.log"
  echo "FAIL: node-gyp build"
  exit 1
}
cd "$root"
DAC_ADDON_PATH="$out/gyp/build/Release/dac_addon.node" npx tsx -e "
  import { backendInfo } from './src/index.ts';
  const info = backendInfo('native');
  console.log('node-gyp addon:', info.backend, info.isa);
"
DAC_ADDON_PATH="$out/gyp/build/Release/dac_addon.node" npx tap test/backend.test.ts test/decompose.test.ts
