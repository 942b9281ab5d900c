// A library must leave the host process alone: loading the WASM backend
// installs no process-wide handlers, so the host's own errors keep their
// message and exit code; the prebuilt addon loads first; the WASM fallback
// says why, once, on stderr.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

function run(code: string, env: Record<string, string> = {}): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: root,
    env: { ...process.env, DAC_BACKEND: '', DAC_NO_FALLBACK_NOTE: '', ...env },
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

const loadWasm = `const m = require('./src/index.ts'); m.getBackend('wasm').info();`;

t.test('loading the WASM backend installs no process handlers', async (t) => {
  // Counted before and after: the runner (tsx) may hold listeners of its own.
  const count = `['uncaughtException', 'unhandledRejection', 'exit'].map((e) => process.listenerCount(e))`;
  const r = run(`const before = ${count}; ${loadWasm} console.log(JSON.stringify([before, ${count}]));`);
  t.equal(r.status, 0, r.err);
  const [before, after] = JSON.parse(r.out);
  t.same(before.slice(0, 2), [0, 0]);
  t.same(after, before);
});

t.test("an error thrown by the host after WASM loaded keeps the host's message and exit code", async (t) => {
  const thrown = run(`${loadWasm} setTimeout(() => { throw new Error('host failure 17'); }, 0);`);
  t.equal(thrown.status, 1, 'node exits 1 on an uncaught exception');
  t.match(thrown.err, /Error: host failure 17/);
  t.notMatch(thrown.err, /dac_core/, 'not reported from inside the WASM glue');

  const handled = run(`${loadWasm}
    process.on('uncaughtException', (e) => { console.error('host handler: ' + e.message); process.exit(42); });
    setTimeout(() => { throw new Error('host failure 18'); }, 0);`);
  t.equal(handled.status, 42, "the host's own handler decides the exit code");
  t.match(handled.err, /host handler: host failure 18/);

  const rejected = run(`${loadWasm} Promise.reject(new Error('host rejection 19'));`);
  t.equal(rejected.status, 1, 'node exits 1 on an unhandled rejection');
  t.match(rejected.err, /host rejection 19/);
  t.notMatch(rejected.err, /dac_core/);
});

const target = `${process.platform}-${process.arch}`;
const prebuild = path.join(root, 'prebuilds', target, 'dac.node');

t.test('the prebuilt addon for this platform loads first', { skip: !fs.existsSync(prebuild) && `no prebuild for ${target}` }, async (t) => {
  const r = run(`console.log(JSON.stringify(require('./src/index.ts').backendInfo()));`, { DAC_ADDON_PATH: '' });
  t.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  t.equal(info.backend, 'native');
  t.equal(info.addon, prebuild);
  t.equal(info.prebuilt, true);
  t.equal(info.fallback, null);
  t.equal(r.err, '', 'no note when native runs');
});

t.test('the WASM fallback says why, once, on stderr; DAC_NO_FALLBACK_NOTE=1 hides it', async (t) => {
  const missing = path.join(root, 'no-such-addon.node');
  const code = `const m = require('./src/index.ts');
    m.decomposeDac(new Float32Array(2 * 1 * 9).fill(1), { n: 2, c: 1, kh: 3, kw: 3 }, 1);
    m.decomposeDac(new Float32Array(2 * 1 * 9).fill(1), { n: 2, c: 1, kh: 3, kw: 3 }, 1);
    console.log(JSON.stringify(m.backendInfo()));`;
  const r = run(code, { DAC_ADDON_PATH: missing });
  t.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  t.equal(info.backend, 'wasm');
  t.match(info.fallback, /using the WASM backend .*no-such-addon\.node: not built/);
  const notes = r.err.split('\n').filter((l) => l.startsWith('dac-conv: using the WASM backend'));
  t.equal(notes.length, 1, 'one line, on first use only');
  t.match(notes[0], /no-such-addon\.node: not built/);

  const quiet = run(code, { DAC_ADDON_PATH: missing, DAC_NO_FALLBACK_NOTE: '1' });
  t.equal(quiet.status, 0, quiet.err);
  t.equal(quiet.err, '');
  t.match(JSON.parse(quiet.out).fallback, /no-such-addon/, 'backendInfo still says why');

  const forced = run(code, { DAC_ADDON_PATH: missing, DAC_BACKEND: 'wasm' });
  t.equal(forced.status, 0, forced.err);
  t.equal(forced.err, '', 'no note when WASM was asked for');
  t.equal(JSON.parse(forced.out).fallback, null);
});
