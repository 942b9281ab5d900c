// The loader: which backend runs, forcing one, falling back, and the errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { availableBackends, backendInfo, getBackend } from '../src/index.js';

const root = path.resolve(__dirname, '..');

/** Runs a snippet against the library in a fresh process with the given env. */
function probe(code: string, env: Record<string, string>): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

const infoSnippet = `const m = require('./src/index.ts'); console.log(JSON.stringify(m.backendInfo()));`;

t.test('at least one backend loads, and CI has both', async (t) => {
  const names = availableBackends().map((b) => b.name);
  t.ok(names.length >= 1, `loaded: ${names.join(', ')}`);
  if (process.env.CI) t.same(names.sort(), ['native', 'wasm'], 'CI builds native and WASM');
});

t.test('backendInfo says which backend runs, its ISA and kernels', async (t) => {
  const info = backendInfo();
  t.match(info.backend, /^(native|wasm)$/);
  t.match(info.version, /^\d+\.\d+\.\d+/);
  t.type(info.isa, 'string');
  t.ok(info.kernels.dwpwVariants.includes('ref'), 'reference kernel is always available');
  t.ok(info.kernels.dwpwVariants.includes(info.kernels.dwpw), 'chosen variant is one of the available ones');
  for (const b of availableBackends()) {
    const i = b.info();
    t.equal(i.backend, b.name);
    if (b.name === 'wasm') t.match(i.isa, /^wasm32/);
  }
});

t.test('DAC_BACKEND forces a backend', async (t) => {
  for (const b of availableBackends()) {
    const r = probe(infoSnippet, { DAC_BACKEND: b.name });
    t.equal(r.status, 0, r.err);
    t.equal(JSON.parse(r.out).backend, b.name);
  }
});

t.test('a bad DAC_BACKEND value is a clear error', async (t) => {
  const r = probe(infoSnippet, { DAC_BACKEND: 'cuda' });
  t.not(r.status, 0);
  t.match(r.err, /DAC_BACKEND must be 'native' or 'wasm', got 'cuda'/);
});

t.test('without the addon, the facade falls back to WASM and says why', async (t) => {
  const r = probe(infoSnippet, { DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'), DAC_BACKEND: '' });
  t.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  t.equal(info.backend, 'wasm');
  t.equal(info.skipped[0].backend, 'native');
  t.match(info.skipped[0].reason, /no-such-addon\.node: not built/);
});

t.test('forcing an unavailable backend names every failure', async (t) => {
  const r = probe(infoSnippet, { DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'), DAC_BACKEND: 'native' });
  t.not(r.status, 0);
  t.match(r.err, /backend 'native' is unavailable: native addon unavailable \(.*no-such-addon\.node: not built\)/);
});

t.test('no backend at all: one error listing each failure', async (t) => {
  const r = probe(infoSnippet, {
    DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'),
    DAC_WASM_DIR: path.join(root, 'no-such-wasm'),
    DAC_BACKEND: '',
  });
  t.not(r.status, 0);
  t.match(r.err, /no dac-conv backend could be loaded \(native: .*; wasm: WASM module missing/);
});

t.test('getBackend rejects unknown names', async (t) => {
  t.throws(() => getBackend('gpu' as never), /backend must be 'native' or 'wasm'/);
});
