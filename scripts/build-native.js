#!/usr/bin/env node
// Builds the native addon at install time: cmake-js where cmake exists, else
// node-gyp. A failed build is not a failed install: the package falls back
// to the prebuilt WASM module, and this says so. `--required` (npm run
// build:native, CI) makes a failure fatal instead.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const required = process.argv.includes('--required');

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
  if (!cmakeJs) return 'cmake-js is not installed';
  if (!has('cmake')) return 'cmake is not on PATH';
  return run(cmakeJs, ['compile', '--out', 'build']) ? null : 'cmake-js build failed';
}

function buildWithGyp() {
  const gyp = process.env.npm_config_node_gyp || resolveBin('node-gyp', 'bin/node-gyp.js');
  if (!gyp) return 'node-gyp is not available';
  const args = ['rebuild'];
  // Headers shipped with the system's Node: build offline instead of downloading them.
  if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  return run(gyp, args) ? null : 'node-gyp build failed';
}

function main() {
  if (process.env.DAC_SKIP_NATIVE === '1') {
    log('DAC_SKIP_NATIVE=1: not building the native addon; the WASM backend will be used.');
    return 0;
  }
  const failures = [];
  for (const [name, build] of [['cmake-js', buildWithCmake], ['node-gyp', buildWithGyp]]) {
    const why = build();
    if (why === null) {
      log(`native addon built with ${name}.`);
      return 0;
    }
    failures.push(`${name}: ${why}`);
  }
  const msg = `native addon not built (${failures.join('; ')}).`;
  if (required) {
    log(msg);
    return 1;
  }
  log(`${msg} Falling back to the prebuilt WASM backend.`);
  return 0;
}

process.exitCode = main();
