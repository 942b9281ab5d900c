#!/usr/bin/env node
// Builds the native addon from source into build/Release: cmake-js where it
// and cmake exist (a devDependency: a clone of the repository), else node-gyp
// from gyp/binding.gyp (in a folder of its own: a binding.gyp at the package
// root makes npm list an implied `node-gyp rebuild` install script) (npm ships it: `npm run build:native` in an installed
// package). Only on request: installs never compile (linux-x64 and
// linux-arm64 load the addon shipped in prebuilds/, other platforms the WASM
// backend). The loader takes a matching prebuild first, then this build; set
// DAC_ADDON_PATH=build/Release/dac_addon.node to use this one instead.
// Eigen comes from the system (libeigen3-dev) or EIGEN_INCLUDE; it is never
// downloaded. Exits non-zero when no build succeeds.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function log(msg) {
  process.stderr.write(`dac-conv: ${msg}\n`);
}

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

function resolveBin(pkg, rel) {
  try {
    return require.resolve(`${pkg}/${rel}`, { paths: [root] });
  } catch {
    return null;
  }
}

function run(file, args) {
  const r = spawnSync(process.execPath, [file, ...args], { cwd: root, stdio: 'inherit', env: process.env });
  return r.status === 0;
}

function buildWithCmake() {
  const cmakeJs = resolveBin('cmake-js', 'bin/cmake-js');
  if (!cmakeJs) return 'cmake-js is not installed (a devDependency)';
  if (!has('cmake')) return 'cmake is not on PATH';
  return run(cmakeJs, ['compile', '--out', 'build']) ? null : 'cmake-js build failed';
}

function buildWithGyp() {
  const gyp = process.env.npm_config_node_gyp || resolveBin('node-gyp', 'bin/node-gyp.js');
  if (!gyp) return 'node-gyp is not available';
  const args = ['rebuild', '--directory=gyp'];
  // Headers shipped with the system's Node: build offline instead of downloading them.
  if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  if (!run(gyp, args)) return 'node-gyp build failed';
  // Where the loader looks for a source build, whichever tool made it.
  fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
  fs.copyFileSync(path.join(root, 'gyp', 'build', 'Release', 'dac_addon.node'), path.join(root, 'build', 'Release', 'dac_addon.node'));
  return null;
}

function main() {
  const failures = [];
  for (const [name, build] of [['cmake-js', buildWithCmake], ['node-gyp', buildWithGyp]]) {
    const why = build();
    if (why === null) {
      log(`native addon built with ${name}: build/Release/dac_addon.node`);
      return 0;
    }
    failures.push(`${name}: ${why}`);
  }
  log(`native addon not built (${failures.join('; ')}).`);
  return 1;
}

process.exitCode = main();
