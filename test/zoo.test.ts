// `dac zoo` over a generated zoo of 50+ models in both formats (small
// synthetic nets, copies of the repo's demo model when present, nested and
// symlinked entries) plus deliberately broken files: every good model is
// decomposed and loads again, every broken one is reported with its reason,
// a second run does no work, and a run killed halfway resumes to the same
// summary.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { loadModel } from '../src/formats/index.js';
import { availableBackends } from '../src/index.js';
import { createRunner } from '../src/runtime/index.js';
import { WorkerPool } from '../src/zoo/pool.js';
import { discoverModels } from '../src/zoo/discover.js';
import { REMOTE_STALE_MS } from '../src/io/lock.js';
import { acquireZooLock } from '../src/zoo/lock.js';
import { formatDuration, Progress } from '../src/zoo/progress.js';
import { readDone, settingsHash, STATE_DIR } from '../src/zoo/resume.js';
import { runZooJob } from '../src/zoo/job.js';
import { packageVersion, runZoo, UP_TO_DATE } from '../src/zoo/run.js';
import type { ModelRecord, ZooSummary } from '../src/zoo/summary.js';
import { mergeShards, mergeShardSummaries, parseShard, shardOf } from '../src/zoo/shard.js';
import { decodeModel, encodeModel } from '../src/formats/onnx/schema.js';
import { onnxNet, randomSpec, writeOnnxNet, writeTfjsNet, type NetSpec } from '../bench/synthetic.js';
import { mulberry32 } from '../src/random.js';
import { ISOLATED_WORKER, type ProbeResult } from './helpers/isolated.js';

const repoRoot = path.resolve(__dirname, '..');
// Energy picks a valid rank for every layer of every random net (a fixed rank may exceed a small layer's).
const settings = { method: 'dac' as const, energy: 0.9 };

t.test('the worker pool survives throwing, hanging, exiting and out-of-memory jobs', async (tt) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-pool-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A worker speaking the pool's protocol, with one request kind per way to fail.
  const script = path.join(dir, 'worker.js');
  fs.writeFileSync(
    script,
    `const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, kind, payload }) => {
  if (kind === 'echo') parentPort.postMessage({ id, ok: true, result: payload });
  else if (kind === 'throw') parentPort.postMessage({ id, ok: false, error: { name: 'DacError', code: 'EFORMAT', message: 'bad', context: { model: 'm' } } });
  else if (kind === 'hang') for (;;);
  else if (kind === 'exit') process.exit(3);
  else if (kind === 'oom') { const keep = []; for (;;) keep.push(new Array(1e6).fill(keep.length)); }
});
`,
  );
  const pool = new WorkerPool({ size: 2, timeoutMs: 3000, resourceLimits: { maxOldGenerationSizeMb: 64 } }, script);
  try {
    const settle = (kind: string, payload: unknown = null) =>
      pool.run(kind, payload).then(
        (v) => ({ ok: true, v }),
        (e: Error & { code?: string; context?: object }) => ({ ok: false, name: e.name, code: e.code, context: e.context }),
      );
    const results = await Promise.all([
      settle('echo', 1),
      settle('hang'),
      settle('exit'),
      settle('oom'),
      settle('throw'),
      ...Array.from({ length: 6 }, (_, i) => settle('echo', i + 10)),
    ]);
    tt.same(results[0], { ok: true, v: 1 });
    tt.match(results[1], { ok: false, name: 'DacError', code: 'ETIMEOUT' }, 'a hang is stopped by the timeout');
    tt.match(results[2], { ok: false, name: 'DacError', code: 'EWORKER' }, 'an exiting worker fails its job');
    tt.match(results[3], { ok: false, name: 'DacError', code: 'EWORKER' }, 'running out of heap fails the job, not the process');
    tt.match(results[4], { ok: false, name: 'DacError', code: 'EFORMAT', context: { model: 'm' } }, 'a thrown DacError keeps code and context');
    tt.same(results.slice(5), Array.from({ length: 6 }, (_, i) => ({ ok: true, v: i + 10 })), 'later jobs run on replacement workers');
    tt.ok(pool.started >= 4, `${pool.started} workers started: the two first and replacements for lost ones`);
  } finally {
    await pool.close();
  }
});

t.test('node --cpu-prof profiles the pool\'s workers too; the parent\'s other flags stay out of them', async (tt) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-pool-prof-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'worker.js');
  // Answers with its own execArgv: a worker that inherited tsx's --import would list it.
  fs.writeFileSync(script, `const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id }) => parentPort.postMessage({ id, ok: true, result: process.execArgv }));
`);
  const prof = path.join(dir, 'prof');
  const parent = `const { WorkerPool } = require(${JSON.stringify(path.join(repoRoot, 'src/zoo/pool.ts'))});
const pool = new WorkerPool({ size: 2 }, ${JSON.stringify(script)});
Promise.all([pool.run('argv', null), pool.run('argv', null)]).then(async (argv) => {
  const ids = pool.threadIds();
  await pool.close();
  console.log(JSON.stringify({ ids, argv }));
});`;
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const res = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${prof}`, '--import', tsx, '-e', parent], { cwd: repoRoot, encoding: 'utf8' });
  tt.equal(res.status, 0, res.stderr);
  const { ids, argv } = JSON.parse(res.stdout.trim().split('\n').pop()!) as { ids: number[]; argv: string[][] };
  tt.equal(ids.length, 2);
  const files = fs.readdirSync(prof);
  for (const id of ids) tt.ok(files.some((f) => f.includes(`.${res.pid}.${id}.`)), `worker thread ${id} wrote its profile`);
  tt.same(argv, [['--cpu-prof', `--cpu-prof-dir=${prof}`], ['--cpu-prof', `--cpu-prof-dir=${prof}`]], 'the workers got the profiler flags only');
});

t.test('prepareZooProcess gives gc() to the workers started after it, and only to them', async (tt) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-pool-gc-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'worker.js');
  fs.writeFileSync(script, `const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id }) => parentPort.postMessage({ id, ok: true, result: typeof globalThis.gc }));
`);
  // Its own process: the V8 flag is process-wide.
  const parent = `const { WorkerPool } = require(${JSON.stringify(path.join(repoRoot, 'src/zoo/pool.ts'))});
const { prepareZooProcess } = require(${JSON.stringify(path.join(repoRoot, 'src/zoo/run.ts'))});
(async () => {
  const ask = async () => { const pool = new WorkerPool({ size: 1 }, ${JSON.stringify(script)}); try { return await pool.run('gc', null); } finally { await pool.close(); } };
  const before = await ask();
  prepareZooProcess();
  console.log(JSON.stringify({ before, after: await ask(), main: typeof globalThis.gc }));
})();`;
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const res = spawnSync(process.execPath, ['--import', tsx, '-e', parent], { cwd: repoRoot, encoding: 'utf8' });
  tt.equal(res.status, 0, res.stderr);
  tt.same(JSON.parse(res.stdout.trim().split('\n').pop()!), { before: 'undefined', after: 'function', main: 'undefined' });
});

t.test('a uniform --rank above every conv\'s largest DAC rank skips the model; a model it fits is decomposed', async (tt) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-zoo-rank-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const zoo = path.join(dir, 'zoo');
  // 3x1 and 1x3 convs (as a spatial decomposition writes them): largest DAC rank min(n, 3) = 3.
  writeTfjsNet(path.join(zoo, 'thin'), { name: 'thin', input: [6, 6, 3], convs: [{ filters: 8, kernel: [3, 1] }, { filters: 8, kernel: [1, 3] }] }, 1);
  writeTfjsNet(path.join(zoo, 'square'), { name: 'square', input: [6, 6, 3], convs: [{ filters: 8, kernel: [3, 3] }] }, 2);
  const s = await runZoo({ root: zoo, out: path.join(dir, 'out'), settings: { method: 'dac', rank: 4 }, jobs: 1, progress: null });
  const m = new Map(s.models.map((r) => [r.model, r]));
  tt.match(m.get('thin/model.json'), { status: 'skipped', reason: /no conv to decompose at this rank: rank 4 is out of range 1\.\.3/ });
  tt.match(m.get('square/model.json'), { status: 'ok' });
});

t.test('a zoo job collects garbage where its worker lends it a collection: after planning, and before the write', async (tt) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-zoo-collect-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeTfjsNet(path.join(dir, 'zoo', 'm'), { name: 'm', input: [8, 8, 3], convs: [{ filters: 8, kernel: [3, 3] }, { filters: 8, kernel: [3, 3] }] }, 3);
  const file = path.join(dir, 'zoo', 'm', 'model.json');
  const out = path.join(dir, 'out');
  const stages: string[] = [];
  const settings = { method: 'auto' as const, flopsSaved: 0.3 };
  const record = await runZooJob(
    { entry: { rel: 'm/model.json', path: file, format: 'tfjs' }, outRoot: out, settings, optionsHash: settingsHash(settings), limits: { maxModelBytes: 2 ** 30, timeoutMs: 0 }, threads: 1, toolVersion: packageVersion() },
    { collect: () => stages.push(fs.existsSync(path.join(out, 'm', 'model.json')) ? 'after the write' : 'before the write') },
  );
  tt.equal(record.status, 'ok');
  tt.ok(fs.existsSync(path.join(out, 'm', 'model.json')), 'the output is where the spy looked');
  tt.same(stages, ['before the write', 'before the write'], 'twice: between planning and building, and once the model as read is dead');
  tt.same(await runZooJob({ entry: { rel: 'm/model.json', path: file, format: 'tfjs' }, outRoot: path.join(dir, 'out2'), settings, optionsHash: settingsHash(settings), limits: { maxModelBytes: 2 ** 30, timeoutMs: 0 }, threads: 1, toolVersion: packageVersion() }).then((r) => r.status), 'ok', 'without a collection it runs all the same');
});

t.test('progress: a bar with rate and ETA on a terminal, one line per model otherwise', async (tt) => {
  let now = 0;
  const clock = () => now;
  const plain: string[] = [];
  const p = new Progress(4, 3, { write: (x: string) => plain.push(x), isTTY: false }, clock);
  now = 2000;
  p.update({ model: 'a/model.json', format: 'tfjs', status: 'ok', flopsSaved: 0.5, seconds: 1.5 });
  p.update({ model: 'b.onnx', format: 'onnx', status: 'failed', reason: 'cannot parse' });
  p.update({ model: 'c.onnx', format: 'onnx', status: 'skipped', cached: true, reason: UP_TO_DATE });
  p.finish();
  tt.same(plain, ['[1/4] ok a/model.json 50.0% FLOPs saved (1.50 s)\n', '[2/4] failed b.onnx: cannot parse\n']);
  tt.same(p.rate(), { perSecond: 1, etaSeconds: 1 }, 'rate over worked models only; ETA for the one left');
  const tty: string[] = [];
  const q = new Progress(10, 10, { write: (x: string) => tty.push(x), isTTY: true, columns: 100 }, clock);
  q.start();
  now = 4000;
  q.update({ model: 'x.onnx', format: 'onnx', status: 'ok', seconds: 2 });
  tt.match(tty.join(''), /\r\[#{2,}\.+\] 1\/10 +10% 0\.50 models\/s ETA 18s ok 1 fail 0 skip 0/, 'bar, counts, rate, ETA');
  tt.equal(formatDuration(3725), '1h02m');
  tt.equal(formatDuration(NaN), '--');
});

t.test('the output folder lock: exclusive, names its holder, stale ones taken over', async (tt) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-lock-'));
  tt.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const file = path.join(out, STATE_DIR, 'lock');
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
      return null;
    } catch (err) {
      return err;
    }
  };
  const writeLock = (owner: object | string) => fs.writeFileSync(file, typeof owner === 'string' ? owner : JSON.stringify(owner));

  const a = acquireZooLock(out, STATE_DIR);
  tt.same(JSON.parse(fs.readFileSync(file, 'utf8')), { pid: process.pid, hostname: os.hostname(), startedAt: a.owner.startedAt }, 'pid, host, start time');
  tt.equal(a.tookOver, null);
  tt.match(thrown(() => acquireZooLock(out, STATE_DIR)), { name: 'DacError', code: 'ELOCKED', message: new RegExp(`in use by another dac zoo run \\(pid ${process.pid} on .*this process`) }, 'a second run fails naming the first');
  a.release();
  tt.notOk(fs.existsSync(file), 'released');

  // A pid that ran and is gone: stale, taken over, and what it said is returned for the note.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  writeLock({ pid: dead, hostname: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z' });
  const b = acquireZooLock(out, STATE_DIR);
  tt.same(b.tookOver, { pid: dead, hostname: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z' }, 'a dead pid\'s lock is taken over');
  tt.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
  b.release();
  // Our own pid in a lock we do not hold: an earlier process with that pid (a restarted container's), so stale.
  const predecessor = { pid: process.pid, hostname: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z' };
  writeLock(predecessor);
  const p = acquireZooLock(out, STATE_DIR);
  tt.same(p.tookOver, predecessor, 'a lock left by an earlier process with our pid is taken over');
  p.release();

  // Another host's lock: its pid cannot be asked, so it holds while it is refreshed, and is stale once it is not.
  const remote = { pid: dead, hostname: `not-${os.hostname()}`, startedAt: '2020-01-01T00:00:00.000Z' };
  writeLock(remote);
  tt.match(thrown(() => acquireZooLock(out, STATE_DIR)), { code: 'ELOCKED', message: /on another host/ });
  tt.same(JSON.parse(fs.readFileSync(file, 'utf8')), remote, 'left as it was');
  const late = new Date(Date.now() - REMOTE_STALE_MS - 60_000);
  fs.utimesSync(file, late, late);
  const r = acquireZooLock(out, STATE_DIR);
  tt.same(r.tookOver, remote, 'not refreshed for too long: taken over');
  r.release();
  // A holder refreshes its lock's mtime.
  const h = acquireZooLock(out, STATE_DIR, 'lock', 20);
  fs.utimesSync(file, late, late);
  await new Promise((res) => setTimeout(res, 200));
  tt.ok(fs.statSync(file).mtimeMs > Date.now() - 60_000, 'the heartbeat refreshed it');
  h.release();

  // An unreadable lock is being written when fresh, left by a crash when old.
  writeLock('');
  tt.match(thrown(() => acquireZooLock(out, STATE_DIR)), { code: 'ELOCKED', message: /being locked by another dac zoo run/ });
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(file, old, old);
  const c = acquireZooLock(out, STATE_DIR);
  tt.match(c.tookOver, { pid: 0, hostname: /unreadable/ });

  // Releasing never removes a lock that is no longer ours.
  const other = { pid: process.ppid, hostname: os.hostname(), startedAt: new Date().toISOString() };
  writeLock(other);
  c.release();
  tt.same(JSON.parse(fs.readFileSync(file, 'utf8')), other, 'another run\'s lock is kept');
  fs.rmSync(file);
  tt.same(fs.readdirSync(path.dirname(file)), [], 'no takeover guard left');
});

t.test('shards: K/N parsed strictly; the split is a function of the path alone', async (tt) => {
  tt.same(parseShard('2/3'), { index: 2, count: 3 });
  tt.same(parseShard(' 1/1 '), { index: 1, count: 1 });
  for (const bad of ['0/3', '4/3', '1/0', '3', '1/2/3', '-1/2', 'a/b', '1.5/2', '']) tt.equal(parseShard(bad), null, `'${bad}' refused`);
  // Pinned: the first 48 bits of SHA-256 of the path, mod N, plus 1; a change would re-split every zoo under way.
  tt.same([2, 3, 7, 1000].map((n) => shardOf('a/model.json', n)), [1, 3, 1, 333]);
  tt.same([2, 3, 7, 1000].map((n) => shardOf('zoo/resnet50/model.json', n)), [1, 2, 4, 731]);
  tt.same([2, 3, 7, 1000].map((n) => shardOf('x/y/z.onnx', n)), [1, 3, 2, 273]);
  const composed = 'caf\u00e9/model.json';
  const decomposed = 'cafe\u0301/model.json';
  tt.same([2, 3, 7, 1000].map((n) => shardOf(decomposed, n)), [2, 3, 7, 1000].map((n) => shardOf(composed, n)), 'a name composed or decomposed: one shard');
  const rels = Array.from({ length: 500 }, (_, i) => `d${i % 7}/m${i}${i % 2 ? '.onnx' : '/model.json'}`);
  for (const n of [1, 2, 3, 8]) {
    const sizes = new Array<number>(n).fill(0);
    for (const rel of rels) sizes[shardOf(rel, n) - 1]++;
    tt.ok(sizes.every((k) => k > (rels.length / n) * 0.7), `${n} shards of about equal size: ${sizes.join(', ')}`);
  }
});

if (availableBackends().length === 0) {
  t.test('zoo runs', { skip: 'no dac-conv backend is built' }, async () => undefined);
} else {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-zoo-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const zoo = path.join(work, 'zoo');
  const put = (rel: string): string => {
    const p = path.join(zoo, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    return p;
  };

  // ---- the good models
  const good: string[] = [];
  for (let i = 0; i < 24; i++) {
    const depth = ['a', 'a/b', 'c', 'c/d/e'][i % 4];
    writeTfjsNet(put(`${depth}/tf${i}/x`).replace(/x$/, ''), randomSpec(`tf${i}`, 1000 + i), i);
    good.push(`${depth}/tf${i}/model.json`);
    writeOnnxNet(put(`${depth}/on${i}.onnx`), randomSpec(`on${i}`, 2000 + i), i);
    good.push(`${depth}/on${i}.onnx`);
  }
  // A model at the zoo's root, one nested below another, and an ONNX file beside a TF.js model:
  // each output must land in the mirrored place without replacing the others.
  const bn: NetSpec = { name: 'root', input: [11, 9, 2], convs: [{ filters: 6, kernel: [3, 3], bn: true }, { filters: 4, kernel: [3, 3], strides: [2, 2] }], classes: 3 };
  writeTfjsNet(zoo, bn, 1);
  good.push('model.json');
  writeTfjsNet(path.join(zoo, 'a'), { ...bn, name: 'a' }, 2);
  good.push('a/model.json');
  writeOnnxNet(put('a/beside.onnx'), { ...bn, name: 'beside' }, 3);
  good.push('a/beside.onnx');
  // Copies of the repo's demo model (real fashion-vgg weights), when it is in the repo.
  const demoTfjs = [path.join(repoRoot, 'demo/fashion-vgg/model.json')].find((p) => fs.existsSync(p));
  const demoOnnx = [path.join(repoRoot, 'test/fixtures/fashion-vgg.onnx')].find((p) => fs.existsSync(p));
  // One copy of each (planning the real model is the slowest part of the test).
  if (demoTfjs) {
    const dir = path.dirname(put('demo/vgg/model.json'));
    for (const f of fs.readdirSync(path.dirname(demoTfjs))) fs.copyFileSync(path.join(path.dirname(demoTfjs), f), path.join(dir, f));
    good.push('demo/vgg/model.json');
  }
  if (demoOnnx) {
    fs.copyFileSync(demoOnnx, put('demo/vgg.onnx'));
    good.push('demo/vgg.onnx');
  }
  // A symlink to a model inside the zoo is a model of its own.
  fs.mkdirSync(path.join(zoo, 'links'));
  fs.symlinkSync(path.join(zoo, 'a/on0.onnx'), path.join(zoo, 'links/alias.onnx'));
  good.push('links/alias.onnx');

  // ---- the broken ones, with the error code each must fail with
  const broken = new Map<string, string[]>();
  const r = mulberry32(7);
  // Symlinked folders are never entered (one back to the root would loop).
  fs.symlinkSync(path.join(zoo, 'c'), path.join(zoo, 'links/cdir'));
  fs.symlinkSync(zoo, path.join(zoo, 'links/loop'));
  fs.writeFileSync(put('broken/garbage.onnx'), Buffer.from(Array.from({ length: 2048 }, () => Math.floor(r() * 256))));
  broken.set('broken/garbage.onnx', ['EFORMAT']);
  const okOnnx = fs.readFileSync(path.join(zoo, 'a/on0.onnx'));
  fs.writeFileSync(put('broken/truncated.onnx'), okOnnx.subarray(0, okOnnx.length >> 1));
  broken.set('broken/truncated.onnx', ['EFORMAT']);
  fs.writeFileSync(put('broken/empty.onnx'), '');
  broken.set('broken/empty.onnx', ['EFORMAT']);
  writeTfjsNet(path.dirname(put('broken/truncated-json/x')), bn, 4);
  const tj = path.join(zoo, 'broken/truncated-json/model.json');
  fs.writeFileSync(tj, fs.readFileSync(tj, 'utf8').slice(0, 300));
  broken.set('broken/truncated-json/model.json', ['EPARSE', 'EFORMAT']);
  writeTfjsNet(path.dirname(put('broken/missing-shard/x')), bn, 5);
  fs.rmSync(path.join(zoo, 'broken/missing-shard/group1-shard1of1.bin'));
  broken.set('broken/missing-shard/model.json', ['ENOENT']);
  writeTfjsNet(path.dirname(put('broken/escaping-shard/x')), bn, 6);
  const ej = path.join(zoo, 'broken/escaping-shard/model.json');
  fs.writeFileSync(ej, fs.readFileSync(ej, 'utf8').replace('"group1-shard1of1.bin"', '"../../../outside.bin"'));
  broken.set('broken/escaping-shard/model.json', ['EPATH', 'EFORMAT']);
  // A 3 GB shard (sparse: no disk used) is refused by size before anything is read.
  writeTfjsNet(path.dirname(put('broken/huge/x')), bn, 7);
  fs.truncateSync(path.join(zoo, 'broken/huge/group1-shard1of1.bin'), 3 * 1024 ** 3);
  broken.set('broken/huge/model.json', ['ETOOBIG']);
  // Declared sizes nothing real has: refused before planning would walk 10^9 x 10^9 positions.
  writeTfjsNet(path.dirname(put('broken/huge-input/x')), bn, 11);
  const hj = path.join(zoo, 'broken/huge-input/model.json');
  fs.writeFileSync(hj, fs.readFileSync(hj, 'utf8').replace('"batch_input_shape":[null,11,9,2]', '"batch_input_shape":[null,1000000000,1000000000,2]'));
  broken.set('broken/huge-input/model.json', ['ESHAPE']);
  fs.writeFileSync(put('broken/graph-model/model.json'), JSON.stringify({ format: 'graph-model', modelTopology: { node: [] } }));
  broken.set('broken/graph-model/model.json', ['EFORMAT']);
  const nanSpec: NetSpec = { name: 'nan', input: [7, 7, 1], convs: [{ filters: 2, kernel: [3, 3] }] };
  const nanModel = decodeModel(encodeModel(onnxNet(nanSpec, 8)));
  const nanWeight = nanModel.graph!.initializer[0];
  const nanRaw = Buffer.from(nanWeight.raw_data!);
  nanRaw.writeFloatLE(NaN, 4);
  nanWeight.raw_data = nanRaw;
  fs.writeFileSync(put('broken/nan.onnx'), encodeModel(nanModel));
  broken.set('broken/nan.onnx', ['ENONFINITE']);
  writeTfjsNet(path.dirname(put('broken/cycle/x')), bn, 9);
  const cj = path.join(zoo, 'broken/cycle/model.json');
  const cycle = JSON.parse(fs.readFileSync(cj, 'utf8'));
  const layers = cycle.modelTopology.config.layers;
  layers.forEach((l: { name?: string; config: { name: string }; inbound_nodes?: unknown[] }, i: number) => {
    l.name = l.config.name;
    l.inbound_nodes = i === 0 ? [] : [[[layers[i === 1 ? layers.length - 1 : i - 1].config.name, 0, 0, {}]]];
  });
  cycle.modelTopology.class_name = 'Functional';
  cycle.modelTopology.config.input_layers = [[layers[0].config.name, 0, 0]];
  cycle.modelTopology.config.output_layers = [[layers[layers.length - 1].config.name, 0, 0]];
  fs.writeFileSync(cj, JSON.stringify(cycle));
  broken.set('broken/cycle/model.json', ['EFORMAT', 'EGRAPH']);

  // A link out of the zoo is not followed, and a model with only 1x1 convs has nothing to decompose: both skipped.
  const outside = path.join(work, 'outside.onnx');
  fs.copyFileSync(path.join(zoo, 'a/on0.onnx'), outside);
  fs.symlinkSync(outside, path.join(zoo, 'links/outside.onnx'));
  writeTfjsNet(path.join(zoo, 'pointwise'), { name: 'pw', input: [5, 5, 3], convs: [{ filters: 4, kernel: [1, 1] }, { filters: 2, kernel: [1, 1] }] }, 10);
  const skipped = new Map([
    ['links/outside.onnx', /outside the zoo/],
    ['pointwise/model.json', /no conv to decompose/],
  ]);

  // The first run's output folder is inside the zoo: it must not be scanned.
  const out1 = path.join(zoo, '_out');
  const total = good.length + broken.size + skipped.size;

  const byModel = (s: ZooSummary) => new Map(s.models.map((m) => [m.model, m]));
  // What an interrupted write leaves: staging folders and temporary siblings (src/io/output.ts, atomic.ts).
  const leftovers = (dir: string): string[] => {
    const found: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (/\.dac-stage-|\.(tmp|old)-\d+-/.test(e.name)) found.push(p);
        else if (e.isDirectory()) walk(p);
      }
    };
    walk(dir);
    return found;
  };
  // What a run ended with per model, whether now or remembered from an earlier run.
  const outcome = (s: ZooSummary) =>
    s.models.map((m) => ({
      model: m.model,
      status: m.reason === UP_TO_DATE ? 'ok' : m.status,
      reason: m.reason === UP_TO_DATE ? undefined : m.reason,
      flops: m.flopsBefore === undefined ? undefined : [m.flopsBefore, m.flopsAfter],
    }));

  let first: ZooSummary;

  t.test(`a zoo of ${good.length} good and ${broken.size} broken models`, async (tt) => {
    tt.ok(good.length >= 50, `${good.length} good models`);
    first = await runZoo({ root: zoo, out: out1, settings, jobs: 2, progress: null });
    const m = byModel(first);
    tt.equal(first.models.length, total, 'every model is in the summary, the output folder is not scanned');
    tt.notOk(first.models.some((r) => r.model.startsWith('links/cdir/') || r.model.startsWith('links/loop/')), 'symlinked folders not entered');
    tt.same(first.counts, { total, ok: good.length, failed: broken.size, skipped: skipped.size, cached: 0 });
    for (const rel of good) {
      const r = m.get(rel);
      tt.equal(r?.status, 'ok', `${rel}: ok${r?.reason ? ` (${r.reason})` : ''}`);
      tt.ok(r && r.flopsBefore! > 0 && r.flopsAfter! > 0, `${rel}: FLOPs before and after`);
      tt.ok(fs.existsSync(path.join(out1, r!.output!)) && fs.existsSync(path.join(out1, r!.report!)), `${rel}: output and report`);
    }
    for (const [rel, codes] of broken) {
      const r = m.get(rel);
      tt.equal(r?.status, 'failed', `${rel}: failed`);
      tt.ok(r && codes.includes(r.code!), `${rel}: code ${r?.code} is one of ${codes.join('/')}: ${r?.reason}`);
      tt.ok(r?.reason && r.reason.length > 10, `${rel}: has a reason`);
    }
    for (const [rel, why] of skipped) tt.match(m.get(rel), { status: 'skipped', reason: why }, `${rel}: skipped`);
    // The summary files exist and name every model.
    const md = fs.readFileSync(path.join(out1, 'summary.md'), 'utf8');
    for (const rel of [...good, ...broken.keys()]) tt.ok(md.includes(`| ${rel} |`), `summary.md lists ${rel}`);
    tt.same(JSON.parse(fs.readFileSync(path.join(out1, 'summary.json'), 'utf8')).counts, first.counts);
    // Nested outputs did not replace each other.
    for (const f of ['model.json', 'report.json', 'a/model.json', 'a/report.json', 'a/beside.onnx', 'a/beside.report.json', 'a/b/tf1/model.json']) {
      tt.ok(fs.existsSync(path.join(out1, f)), `output ${f}`);
    }
    tt.same(leftovers(out1), [], 'no staging or temporary files left');
  });

  t.test('every decomposed model loads again (in workers), and two run in a runtime', async (tt) => {
    const pool = new WorkerPool({ size: 2 }, ISOLATED_WORKER);
    try {
      const results = await Promise.all(
        good.map(async (rel) => {
          const r = byModel(first).get(rel)!;
          const file = path.join(out1, r.output!);
          try {
            return { rel, info: await pool.run<ProbeResult>('probe', { path: file, maxModelBytes: 2 ** 31 }) };
          } catch (err) {
            return { rel, error: (err as Error).message };
          }
        }),
      );
      for (const x of results) {
        tt.notOk('error' in x && x.error, `${x.rel} loads: ${'error' in x ? x.error : ''}`);
        const r = byModel(first).get(x.rel)!;
        if ('info' in x && x.info) tt.ok(x.info.convs >= r.layersTotal!, `${x.rel}: ${x.info.convs} convs after, ${r.layersTotal} before`);
      }
    } finally {
      await pool.close();
    }
    for (const rel of ['a/tf0/model.json', 'a/on0.onnx']) {
      const before = await loadModel(path.join(zoo, rel));
      const after = await loadModel(path.join(out1, byModel(first).get(rel)!.output!));
      const [h, w, c] = before.inputShape;
      const x = Float32Array.from({ length: 2 * h * w * c }, (_, i) => Math.sin(i));
      const ra = await createRunner(before);
      const rb = await createRunner(after);
      try {
        const ya = await ra.run(x, 2);
        const yb = await rb.run(x, 2);
        tt.equal(yb.length, ya.length, `${rel}: same output size`);
        tt.ok(yb.every(Number.isFinite), `${rel}: finite outputs`);
      } finally {
        ra.dispose();
        rb.dispose();
      }
    }
  });

  t.test('a second run does no work', async (tt) => {
    const files = (dir: string): Map<string, number> => {
      const m = new Map<string, number>();
      const walk = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) walk(p);
          else if (!/^summary\.(json|md)$/.test(e.name)) m.set(p, fs.statSync(p).mtimeMs);
        }
      };
      walk(dir);
      return m;
    };
    const before = files(out1);
    const second = await runZoo({ root: zoo, out: out1, settings, jobs: 2, progress: null });
    const m = byModel(second);
    for (const rel of good) tt.match(m.get(rel), { status: 'skipped', cached: true }, `${rel}: up to date`);
    for (const rel of broken.keys()) {
      const r = m.get(rel)!;
      tt.equal(r.status, 'failed', `${rel}: still failed`);
      tt.equal(r.reason, byModel(first).get(rel)!.reason, `${rel}: same reason`);
      tt.equal(r.cached, true, `${rel}: remembered, not redone`);
    }
    tt.same(files(out1), before, 'no output, report or marker was rewritten');
    tt.same(outcome(second), outcome(first), 'same outcome per model');
    // Other options, or an edited input, make a model not done; other thread counts do not.
    const { models } = await discoverModels(zoo, out1);
    const version = packageVersion();
    const goodEntries = models.filter((e) => good.includes(e.rel));
    tt.equal(goodEntries.length, good.length);
    tt.ok(goodEntries.every((e) => readDone(e, out1, settingsHash({ ...settings, threads: 3 }), version)), 'done whatever the threads');
    tt.ok(goodEntries.every((e) => !readDone(e, out1, settingsHash({ method: 'dac', energy: 0.8 }), version)), 'other options: to redo');
    const edited = goodEntries.find((e) => e.rel === 'a/tf0/model.json')!;
    const shard = path.join(zoo, 'a/tf0/group1-shard1of1.bin');
    const st = fs.statSync(shard);
    fs.utimesSync(shard, st.atime, new Date(st.mtimeMs + 5000));
    tt.equal(readDone(edited, out1, settingsHash(settings), version), null, 'a touched shard: to redo');
    fs.utimesSync(shard, st.atime, st.mtime);
  });

  t.test('a run killed halfway resumes to the same summary', async (tt) => {
    // The first run's output (inside the zoo) would be scanned by a run writing elsewhere.
    fs.rmSync(out1, { recursive: true, force: true });
    const out2 = path.join(work, 'out-killed');
    // The real command line, `dac zoo`, run from source.
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    const cli = path.join(repoRoot, 'src/cli/main.ts');
    const args = ['zoo', zoo, '-o', out2, '--energy', '0.9', '--jobs', '1', '--quiet'];
    const child = spawn(process.execPath, ['--import', tsx, cli, ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const doneDir = path.join(out2, STATE_DIR, 'done');
    const countDone = (): number => {
      let n = 0;
      const walk = (d: string) => {
        if (!fs.existsSync(d)) return;
        // Complete markers only: a killed write leaves a temporary sibling, which is not one.
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else if (e.name.endsWith('.done') && !e.name.startsWith('.')) n++;
        }
      };
      walk(doneDir);
      return n;
    };
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    let killedAt = -1;
    while (child.exitCode === null) {
      const n = countDone();
      if (n >= 15) {
        child.kill('SIGKILL');
        killedAt = n;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await exited;
    tt.ok(killedAt >= 15 && killedAt < total - 1, `killed after ${killedAt} of ${total} models (stderr: ${stderr.slice(0, 200)})`);
    tt.notOk(fs.existsSync(path.join(out2, 'summary.json')), 'the killed run wrote no summary');

    const resumed = await runZoo({ root: zoo, out: out2, settings, jobs: 2, progress: null });
    tt.ok(resumed.counts.cached >= killedAt, `${resumed.counts.cached} outcomes taken from the killed run (>= ${killedAt})`);
    tt.match(resumed.notes, [/took over the lock of an earlier run that is gone \(pid \d+/], 'the killed run\'s lock was taken over, with a note');
    tt.notOk(fs.existsSync(path.join(out2, STATE_DIR, 'lock')), 'and released at the end');
    tt.same(outcome(resumed), outcome(first), 'same outcome per model as an uninterrupted run');
    tt.same(leftovers(out2), [], 'no half-written files among the outputs');
  });

  t.test('failures are remembered: a re-run redoes neither timeouts nor size refusals, unless retried or the limit is raised', async (tt) => {
    const z = path.join(work, 'zoo-fail');
    const o = path.join(work, 'out-fail');
    writeOnnxNet(path.join(z, 'a.onnx'), randomSpec('fa', 31), 1);
    writeTfjsNet(path.join(z, 'b'), randomSpec('fb', 32), 2);
    const run = (extra: Partial<Parameters<typeof runZoo>[0]>) => runZoo({ root: z, out: o, settings, jobs: 1, progress: null, ...extra });
    const markers = () =>
      ['a.onnx', 'b/model.json'].map((rel) => {
        const f = path.join(o, STATE_DIR, 'done', rel) + '.done';
        return fs.existsSync(f) ? fs.statSync(f).mtimeMs : null;
      });
    const codes = (s: ZooSummary) => s.models.map((m) => [m.status, m.code, m.cached === true]);

    // 1 ms: every model is stopped in its worker long before it could finish.
    const first = await run({ timeoutMs: 1 });
    tt.same(codes(first), [['failed', 'ETIMEOUT', false], ['failed', 'ETIMEOUT', false]], 'both time out');
    const stamped = markers();
    tt.ok(stamped.every((m) => m !== null), 'and the timeouts are recorded');
    const again = await run({ timeoutMs: 1 });
    tt.same(codes(again), [['failed', 'ETIMEOUT', true], ['failed', 'ETIMEOUT', true]], 'a re-run reports them failed again, from the record');
    tt.same(again.models.map((m) => m.reason), first.models.map((m) => m.reason), 'with the same reasons');
    tt.same(markers(), stamped, 'and does no work: no marker rewritten');
    const retried = await run({ timeoutMs: 1, retryFailed: true });
    tt.same(codes(retried), [['failed', 'ETIMEOUT', false], ['failed', 'ETIMEOUT', false]], '--retry-failed redoes them');
    const longer = await run({});
    tt.same(codes(longer), [['ok', undefined, false], ['ok', undefined, false]], 'a longer timeout retries them by itself');

    // Size: refused under a small limit (forced, as both are done), remembered under it, retried above it.
    const small = await run({ maxModelBytes: 1000, force: true });
    tt.same(codes(small), [['failed', 'ETOOBIG', false], ['failed', 'ETOOBIG', false]], 'refused by size');
    tt.match(small.models[0].reason, /over the limit of 0\.0 MB/);
    tt.same(codes(await run({ maxModelBytes: 1000 })), [['failed', 'ETOOBIG', true], ['failed', 'ETOOBIG', true]], 'remembered under the same limit');
    tt.same(codes(await run({})), [['ok', undefined, false], ['ok', undefined, false]], 'retried under the default limit');
    tt.same(codes(await run({})), [['skipped', undefined, true], ['skipped', undefined, true]], 'then up to date');
  });

  t.test('the CLI: a second run on the same output folder fails naming the first; SIGTERM releases the lock', async (tt) => {
    const out3 = path.join(work, 'out-locked');
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    const cli = path.join(repoRoot, 'src/cli/main.ts');
    const args = ['zoo', zoo, '-o', out3, '--energy', '0.9', '--jobs', '1', '--quiet'];
    const child = spawn(process.execPath, ['--import', tsx, cli, ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const lockFile = path.join(out3, STATE_DIR, 'lock');
    while (child.exitCode === null && !fs.existsSync(lockFile)) await new Promise((r) => setTimeout(r, 20));
    const second = spawnSync(process.execPath, ['--import', tsx, cli, ...args], { cwd: repoRoot, encoding: 'utf8' });
    tt.equal(second.status, 1, 'the second run fails');
    tt.match(second.stderr, new RegExp(`in use by another dac zoo run \\(pid ${child.pid} on `), `and names the first: ${second.stderr.trim()}`);
    tt.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid, child.pid, 'the first run keeps its lock');
    child.kill('SIGTERM');
    tt.same(await exited, { code: null, signal: 'SIGTERM' }, 'the first run dies of the signal');
    tt.notOk(fs.existsSync(lockFile), 'having released its lock');
  });

  t.test('shards: N shards cover every model once, a killed shard resumes, the merged summary is a single run\'s', async (tt) => {
    const z = path.join(work, 'zoo-shard');
    for (let i = 0; i < 60; i++) {
      const dir = ['p', 'q/r', 's'][i % 3];
      if (i % 2) writeOnnxNet(path.join(z, dir, `n${i}.onnx`), randomSpec(`n${i}`, 5000 + i), i);
      else writeTfjsNet(path.join(z, dir, `t${i}`), randomSpec(`t${i}`, 5000 + i), i);
    }
    fs.writeFileSync(path.join(z, 'p/garbage.onnx'), 'not a model');
    fs.symlinkSync(outside, path.join(z, 's/outside.onnx'));
    const run = (out: string, extra: Partial<Parameters<typeof runZoo>[0]> = {}) => runZoo({ root: z, out, settings, jobs: 1, progress: null, ...extra });
    const single = await run(path.join(work, 'out-single'), { jobs: 2 });
    tt.same(single.counts, { total: 62, ok: 60, failed: 1, skipped: 1, cached: 0 });
    const N = 3;
    const shard = (index: number, count = N) => ({ index, count });
    const noTime = (r: ModelRecord) => ({ ...r, seconds: undefined });
    // What a model ended with, now or in an earlier run of the same output folder.
    const settled = (r: ModelRecord) => ({ ...noTime(r), cached: undefined, ...(r.reason === UP_TO_DATE ? { status: 'ok', reason: undefined } : {}) });
    const totals = (s: ZooSummary) => [s.version, s.root, s.options, s.flops, s.params, s.inputBytes];

    // Shard 2 of 3 from the command line, killed once its first models are done.
    const shared = path.join(work, 'out-shards');
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    const cli = path.join(repoRoot, 'src/cli/main.ts');
    const child = spawn(process.execPath, ['--import', tsx, cli, 'zoo', z, '-o', shared, '--energy', '0.9', '--jobs', '1', '--quiet', '--shard', '2/3'], {
      cwd: repoRoot,
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const markers = () => single.models.filter((m) => fs.existsSync(path.join(shared, STATE_DIR, 'done', m.model) + '.done')).length;
    let killedAt = -1;
    while (child.exitCode === null) {
      const n = markers();
      if (n >= 2) {
        child.kill('SIGKILL');
        killedAt = n;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    const inTwo = single.models.filter((m) => shardOf(m.model, N) === 2).length;
    tt.ok(killedAt >= 2 && killedAt < inTwo, `shard 2/3 killed after ${killedAt} of its ${inTwo} models`);
    tt.ok(fs.existsSync(path.join(shared, STATE_DIR, 'lock.2-of-3')), 'leaving its lock');
    tt.notOk(fs.existsSync(path.join(shared, 'summary-2-of-3.json')), 'and no summary');

    // The three shards at once in one output folder, shard 2 resuming.
    const shards = await Promise.all([1, 2, 3].map((k) => run(shared, { shard: shard(k) })));
    tt.match(shards[1].notes, [/took over the lock of an earlier run that is gone/], 'the killed shard\'s lock is taken over');
    tt.ok(shards[1].counts.cached >= killedAt, `the resumed shard takes ${shards[1].counts.cached} outcomes from the killed run`);
    tt.same(shards.map((s) => s.shard), [shard(1), shard(2), shard(3)]);
    const seen = new Map<string, number>();
    for (const s of shards) for (const m of s.models) seen.set(m.model, (seen.get(m.model) ?? 0) + 1);
    tt.same([...seen.keys()].sort(), single.models.map((m) => m.model), 'together the shards hold every model');
    tt.ok([...seen.values()].every((k) => k === 1), 'each exactly once');
    tt.ok(shards.every((s) => s.models.length > 5), `and share them out: ${shards.map((s) => s.models.length).join(', ')}`);
    const names = (s: ZooSummary) => s.models.map((m) => m.model);
    // Which shard runs a model is a function of its relative path alone, not of the order models are found in.
    for (const k of [1, 2, 3]) {
      tt.same(names(shards[k - 1]), single.models.filter((m) => shardOf(m.model, N) === k).map((m) => m.model), `shard ${k}/3 holds the models whose path hashes to ${k}`);
    }
    // The same zoo at another absolute path (another machine's mount) splits the same.
    const moved = path.join(work, 'elsewhere', 'mnt', 'zoo-copy');
    fs.cpSync(z, moved, { recursive: true, verbatimSymlinks: true });
    const movedShard = await run(path.join(work, 'out-moved'), { root: moved, shard: shard(2) });
    tt.same(names(movedShard), names(shards[1]), 'a copy of the zoo at another path: shard 2/3 is the same models');
    const outcome = (r: ModelRecord) => [r.model, settled(r).status, r.code, r.flopsAfter];
    tt.same(movedShard.models.map(outcome), shards[1].models.map(outcome), 'with the same outcomes');
    for (const k of [1, 2, 3]) tt.ok(fs.existsSync(path.join(shared, `summary-${k}-of-3.md`)), `summary-${k}-of-3 written`);
    tt.notOk(fs.existsSync(path.join(shared, 'summary.json')), 'no whole-zoo summary before the merge');
    tt.same(fs.readdirSync(path.join(shared, STATE_DIR)).filter((n) => n.startsWith('lock')), [], 'every lock released');

    const merged = await mergeShards([shared], shared);
    tt.same(merged.models.map(settled), single.models.map(settled), 'merged: every model as in a single run');
    tt.same(totals(merged), totals(single), 'with the same totals');
    tt.same(merged.counts.total, single.counts.total);
    tt.same(JSON.parse(fs.readFileSync(path.join(shared, 'summary.json'), 'utf8')).counts, merged.counts, 'written to summary.json');

    // While a shard of 3 runs, the whole zoo and other splits are refused there; the other shards of 3 are not.
    const held = acquireZooLock(shared, STATE_DIR, 'lock.1-of-3');
    try {
      await tt.rejects(run(shared), { code: 'ELOCKED', message: /in use by a dac zoo run of shard 1\/3/ });
      await tt.rejects(run(shared, { shard: shard(1, 2) }), { code: 'ELOCKED', message: /shard 1\/3/ });
      const again = await run(shared, { shard: shard(3) });
      tt.ok(again.models.every((m) => m.cached || m.format === null), 'shard 3/3 runs beside it, with nothing left to do');
    } finally {
      held.release();
    }

    // Separate output folders, one per machine, merged into a third: equal to the single run but for timings.
    const outs = [1, 2].map((k) => path.join(work, `out-sep-${k}`));
    await Promise.all(outs.map((o, i) => run(o, { shard: shard(i + 1, 2) })));
    const sep = path.join(work, 'out-sep-merged');
    const res = spawnSync(process.execPath, ['--import', tsx, cli, 'zoo', '--merge', ...outs, '-o', sep], { cwd: repoRoot, encoding: 'utf8' });
    tt.equal(res.status, 1, `--merge exits 1: a model failed (${res.stdout.trim().split('\n')[0]})`);
    const fromCli = JSON.parse(fs.readFileSync(path.join(sep, 'summary.json'), 'utf8')) as ZooSummary;
    tt.same(fromCli.models.map(noTime), single.models.map(noTime), 'merged from separate folders: the single run\'s records');
    tt.same(fromCli.counts, single.counts);
    tt.same(totals(fromCli), totals(single));
    tt.same(fromCli.jobs, 2, 'jobs of the shards added up');
    tt.same(fromCli.shards?.map((s) => s.shard), ['1/2', '2/2']);

    // Merging refuses what would not be a whole zoo.
    const partial = path.join(work, 'out-partial');
    fs.mkdirSync(partial);
    fs.copyFileSync(path.join(shared, 'summary-1-of-3.json'), path.join(partial, 'summary-1-of-3.json'));
    fs.copyFileSync(path.join(shared, 'summary-3-of-3.json'), path.join(partial, 'summary-3-of-3.json'));
    tt.throws(() => mergeShardSummaries([partial], partial), { code: 'EINVAL', message: /missing shard summaries: 2\/3/ });
    tt.throws(() => mergeShardSummaries([partial, shared], partial), { code: 'EINVAL', message: /shard 1\/3 found twice/ });
    tt.throws(() => mergeShardSummaries([partial, outs[0]], partial), { code: 'EINVAL', message: /one split at a time/ });
    tt.throws(() => mergeShardSummaries([path.join(work, 'out-single')], partial), { code: 'ENOENT', message: /no shard summary/ });
  });
}

t.test('dac zoo plans by measured latency: each conv geometry timed once, a table serves any model; --tfjs-layer dac', async (tt) => {
  const { main } = await import('../src/cli/main.js');
  const { benchModel, LATENCY_TABLE_VERSION } = await import('../src/latency/index.js');
  const { measureLatencies } = await import('../src/zoo/latency.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-zoo-latency-'));
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Two nets of the same geometry with different weights, and one of another geometry.
  const same: NetSpec = { name: 'same', input: [10, 10, 3], convs: [{ filters: 8, kernel: [3, 3] }, { filters: 8, kernel: [3, 3], pool: true }], classes: 4 };
  const zoo = path.join(dir, 'zoo');
  writeTfjsNet(path.join(zoo, 'a'), same, 1);
  writeTfjsNet(path.join(zoo, 'b'), same, 2);
  writeTfjsNet(path.join(zoo, 'c'), { ...same, name: 'other', input: [12, 12, 3] }, 3);
  const { models } = await discoverModels(zoo, path.join(dir, 'out'));
  const rel = (m: string) => models.find((e) => e.rel.startsWith(m))!;
  const limits = { maxModelBytes: 1 << 30, timeoutMs: 120_000 };
  const s = { method: 'dac' as const, runtime: 'ours' as const, threads: 1 };
  const got = await measureLatencies([rel('a'), rel('b'), rel('c')], s, limits, null);
  const times = (m: string) => {
    const r = got.get(rel(m).rel)!;
    if ('error' in r) throw new Error(r.error.message);
    return r.latency;
  };
  tt.same(Object.keys(times('a')).length, 2, 'both convs of a are timed');
  // Measured times never repeat to the last bit: equal times are the same measurement, reused.
  tt.same(times('b'), times('a'), 'b has the same geometry: its times are a\'s');
  tt.notSame(times('c'), times('a'), 'c has another input size: measured anew');

  // A dac bench table of a serves b without measuring (its times come back as they are).
  const table = await benchModel(await loadModel(rel('a').path), { runtimes: ['ours'], methods: ['dac'], plan: null, reps: 1, threads: 1 });
  tt.equal(table.version, LATENCY_TABLE_VERSION);
  const tableFile = path.join(dir, 'latency.json');
  fs.writeFileSync(tableFile, JSON.stringify(table));
  const fromTable = await measureLatencies([rel('b')], { ...s, latencyTable: tableFile }, limits, null);
  const b = fromTable.get(rel('b').rel)!;
  tt.ok('latency' in b && b.latency[table.layers[0].name]?.original === table.layers[0].runtimes.ours!.original, 'b takes the table\'s times for its convs');

  // The whole command, on a table of a's and c's geometries whose times say every replacement saves time
  // (measured ones need not: tiny convs rarely gain): DacConv2D layers, planned on those times.
  const tableC = await benchModel(await loadModel(rel('c').path), { runtimes: ['ours'], methods: ['dac'], plan: null, reps: 1, threads: 1 });
  const layers = [...table.layers, ...tableC.layers].map((l) => {
    const times = l.runtimes.ours!;
    return { ...l, runtimes: { ours: { ...times, original: 10, variants: times.variants.map((v) => ({ ...v, ms: v.rank, originalMs: 10 })) } } };
  });
  const fastFile = path.join(dir, 'fast.json');
  fs.writeFileSync(fastFile, JSON.stringify({ ...table, layers }));
  const out = path.join(dir, 'out');
  const code = await main(['zoo', zoo, '-o', out, '--latency-saved', '0.2', '--latency-table', fastFile, '--runtime', 'ours', '--tfjs-layer', 'dac', '-j', '1', '--json']);
  tt.equal(code, 0, 'every model decomposed');
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as ZooSummary;
  tt.same(summary.counts.ok, 3);
  const written = fs.readFileSync(path.join(out, 'a', 'model.json'), 'utf8');
  tt.match(written, /"class_name":"DacConv2D"/, 'DAC replacements written as DacConv2D layers');
  tt.equal(await main(['zoo', zoo, '-o', path.join(dir, 'x'), '--rank', '2', '--runtime', 'ours', '-q']), 2, '--runtime alone is a usage error');
  tt.equal(await main(['zoo', zoo, '-o', path.join(dir, 'x'), '--latency-saved', '0.2', '--latency-table', path.join(dir, 'missing.json'), '-q']), 1, 'a missing table fails before any work');
});
