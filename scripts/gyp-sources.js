#!/usr/bin/env node
// Prints source lists for gyp/binding.gyp (gyp has no globbing): the same
// selection CMakeLists.txt makes, so both builds compile the same files.
// Paths are relative to the working directory gyp runs this in (gyp/).
//   node scripts/gyp-sources.js portable|sse41|avx2|avx512|neon|eigen
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const ISA = /_(sse41|avx2|avx512|neon|wasm_simd)\.cc$/;

function sources() {
  const out = [];
  for (const dir of fs.readdirSync(path.join(root, 'native'), { withFileTypes: true })) {
    if (!dir.isDirectory() || dir.name === 'tests') continue;
    for (const f of fs.readdirSync(path.join(root, 'native', dir.name))) {
      if (f.endsWith('.cc')) out.push(path.relative(process.cwd(), path.join(root, 'native', dir.name, f)));
    }
  }
  return out.sort();
}

const kind = process.argv[2];
if (kind === 'eigen') {
  const candidates = [process.env.EIGEN_INCLUDE, '/usr/include/eigen3', '/usr/local/include/eigen3', '/opt/homebrew/include/eigen3'];
  const found = candidates.find((d) => d && fs.existsSync(path.join(d, 'Eigen', 'Core')));
  process.stdout.write(found || '/usr/include/eigen3');
} else if (kind === 'portable') {
  process.stdout.write(sources().filter((f) => !ISA.test(f)).join(' '));
} else if (['sse41', 'avx2', 'avx512', 'neon'].includes(kind)) {
  process.stdout.write(sources().filter((f) => f.endsWith(`_${kind}.cc`)).join(' '));
} else {
  process.stderr.write('usage: gyp-sources.js portable|sse41|avx2|avx512|neon|eigen\n');
  process.exitCode = 2;
}
