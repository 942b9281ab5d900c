// `npm run bench:svd`: the DAC decomposition of VGG16's 13 convs (random
// weights, 14.7M parameters, all 3x3) at rank 4, timed on every backend that
// loads (native with 1 and 2 threads, WASM), the TypeScript Jacobi reference
// (on a subset of channels, extrapolated) and numpy's batched SVD of the same
// slices (bench/svd_numpy.py, when python3 has numpy). Prints a table and
// writes bench/results/svd.md and svd.json.
//
//   npm run bench:svd -- [--repeats 9] [--ref-channels 8] [--out bench/results]
//
// With --wide: one 1024->1024 3x3 layer instead, DAC at rank 4 beside the
// spatial and channel baselines at the widths of the same cost (688, 410),
// through the native Backend API with 1 and 2 threads (bench/results/svd-wide.md).
//
// Backend rows call the raw binding with preallocated outputs (the core's
// time); the "API" row goes through Backend.decomposeDacBatch, which adds
// argument validation (a finiteness scan of every weight) and allocation.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { availableBackends, type Backend } from '../src/index.js';
import type { DacArgs } from '../src/backend/binding.js';
import { referenceDac } from './reference-svd.js';
import { seededValues } from '../src/random.js';

const { values: opts } = parseArgs({
  options: {
    repeats: { type: 'string', default: '9' },
    'ref-channels': { type: 'string', default: '8' },
    out: { type: 'string', default: path.join(__dirname, 'results') },
    wide: { type: 'boolean', default: false },
  },
});
const REPEATS = Math.max(1, Number(opts.repeats));
const REF_CHANNELS = Math.max(1, Number(opts['ref-channels']));
const RANK = 4;

/** VGG16's convs as [input channels, output channels], all 3x3. */
const VGG16: Array<[number, number]> = [
  [3, 64], [64, 64], [64, 128], [128, 128], [128, 256], [256, 256], [256, 256],
  [256, 512], [512, 512], [512, 512], [512, 512], [512, 512], [512, 512],
];

interface Layer {
  n: number;
  c: number;
  kh: number;
  kw: number;
  weights: Float32Array;
}

/** Deterministic He-scaled uniform weights (mulberry32), OIHW. */
function makeLayer(c: number, n: number, seed: number): Layer {
  return { n, c, kh: 3, kw: 3, weights: seededValues(n * c * 9, seed, Math.sqrt(6 / (c * 9))) };
}

function rawArgs(layers: Layer[], withSingular: boolean): DacArgs[] {
  return layers.map((l) => ({
    weights: l.weights,
    layout: 0,
    n: l.n,
    c: l.c,
    kh: l.kh,
    kw: l.kw,
    rank: RANK,
    depthwise: new Float32Array(l.c * RANK * 9),
    pointwise: new Float32Array(l.n * l.c * RANK),
    singular: withSingular ? new Float32Array(l.c * Math.min(l.n, 9)) : null,
    threads: 1,
  }));
}

interface Timing {
  bestMs: number;
  medianMs: number;
}

function summarize(ms: number[]): Timing {
  const sorted = [...ms].sort((x, y) => x - y);
  return { bestMs: sorted[0], medianMs: sorted[Math.floor(sorted.length / 2)] };
}

/**
 * One untimed call, then one timed: each round starts with other rows'
 * leftovers in the caches (numpy's row is a whole Python process), and the
 * numpy row gets the same one warm-up pass per round (bench/svd_numpy.py).
 */
function timeWarm(fn: () => void): number {
  fn();
  return timeOnce(fn);
}

function timeOnce(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface Row extends Timing {
  name: string;
  threads: number;
  note: string;
}

/** A method timed once per round; rounds interleave all methods so that a machine whose load drifts affects every row alike. */
interface Method {
  name: string;
  threads: number;
  note: string;
  /** Returns the round's milliseconds (numpy times itself in its own process). */
  run: () => number;
  ms: number[];
}

interface NumpyResult extends Timing {
  numpy: string;
  maxSingularDiff?: number;
}

/** Writes the slices (and the native singular values) for bench/svd_numpy.py. */
function writeNumpyInputs(dir: string, layers: Layer[], singular: Float32Array[] | null): void {
  const manifest = {
    layers: layers.map((l, i) => {
      const file = `layer${i}.f32`;
      fs.writeFileSync(path.join(dir, file), Buffer.from(l.weights.buffer, l.weights.byteOffset, l.weights.byteLength));
      return { file, n: l.n, c: l.c, kh: l.kh, kw: l.kw };
    }),
    singular: singular ? 'singular.f32' : null,
  };
  if (singular) {
    const all = new Float32Array(singular.reduce((a, s) => a + s.length, 0));
    let off = 0;
    for (const s of singular) {
      all.set(s, off);
      off += s.length;
    }
    fs.writeFileSync(path.join(dir, 'singular.f32'), Buffer.from(all.buffer));
  }
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
}

function main(): void {
  const layers = VGG16.map(([c, n], i) => makeLayer(c, n, 16 + i));
  const params = layers.reduce((a, l) => a + l.weights.length, 0);
  const channels = layers.reduce((a, l) => a + l.c, 0);
  const loadBefore = os.loadavg()[0];
  const backends = availableBackends();
  const byName = (name: string): Backend | undefined => backends.find((b) => b.name === name);

  const methods: Method[] = [];
  let singular: Float32Array[] | null = null;
  const nat = byName('native');
  if (nat) {
    const args = rawArgs(layers, true);
    singular = args.map((a) => a.singular!);
    const apiLayers = layers.map((l) => ({ weights: l.weights, shape: { n: l.n, c: l.c, kh: l.kh, kw: l.kw }, rank: RANK }));
    methods.push(
      { name: 'native', threads: 1, note: 'raw binding, one batch call', run: () => timeWarm(() => nat.binding.decomposeDacBatch(args, 1)), ms: [] },
      { name: 'native', threads: 2, note: 'raw binding, one batch call', run: () => timeWarm(() => nat.binding.decomposeDacBatch(args, 2)), ms: [] },
      {
        name: 'native API',
        threads: 1,
        note: 'Backend.decomposeDacBatch: + validation (finiteness scan), allocation',
        run: () => timeWarm(() => nat.decomposeDacBatch(apiLayers, { threads: 1 })),
        ms: [],
      },
    );
  }
  const wasm = byName('wasm');
  if (wasm) {
    const args = rawArgs(layers, true);
    singular = singular ?? args.map((a) => a.singular!);
    methods.push({ name: 'wasm', threads: 1, note: 'raw binding (copies in and out of the WASM heap)', run: () => timeWarm(() => wasm.binding.decomposeDacBatch(args, 1)), ms: [] });
  }
  for (const m of methods) m.run(); // warm-up (page faults, lazy initialization); fills `singular`

  let numpy: NumpyResult | null = null;
  let numpyWhy = '';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-bench-svd-'));
  try {
    if (spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0) {
      writeNumpyInputs(dir, layers, singular);
      for (const blas of ['1', null]) {
        const env = { ...process.env };
        if (blas) env.OPENBLAS_NUM_THREADS = blas;
        else delete env.OPENBLAS_NUM_THREADS;
        methods.push({
          name: 'numpy linalg.svd',
          threads: blas ? 1 : 0,
          note: `stacked (c, n, 9) slices, float32, OPENBLAS_NUM_THREADS=${blas ?? 'default'}`,
          // One timed pass per round, after numpy's own warm-up pass.
          run: () => {
            const r = spawnSync('python3', [path.join(__dirname, 'svd_numpy.py'), dir, '--repeats', '1'], { encoding: 'utf8', env });
            if (r.status !== 0) throw new Error(`bench/svd_numpy.py failed: ${r.stderr.trim()}`);
            const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as NumpyResult;
            numpy = numpy ?? res;
            return res.bestMs;
          },
          ms: [],
        });
      }
    } else {
      numpyWhy = 'python3 with numpy not found: no numpy row.';
    }
    for (let round = 0; round < REPEATS; round++) for (const m of methods) m.ms.push(m.run());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const np = numpy as NumpyResult | null;
  const rows: Row[] = methods.map((m) => ({
    name: m.name.startsWith('numpy') && np ? `numpy ${np.numpy} linalg.svd` : m.name,
    threads: m.threads,
    note: m.note,
    ...summarize(m.ms),
  }));

  // The reference is O(sweeps * n * k^2) per channel in plain JS: time the
  // first REF_CHANNELS channels of each layer once and scale by c / REF_CHANNELS.
  let refMs = 0;
  for (const l of layers) {
    const sub = Math.min(l.c, REF_CHANNELS);
    const w = new Float32Array(l.n * sub * 9);
    for (let o = 0; o < l.n; o++) w.set(l.weights.subarray(o * l.c * 9, (o * l.c + sub) * 9), o * sub * 9);
    refMs += timeOnce(() => referenceDac(w, { n: l.n, c: sub, kh: 3, kw: 3 }, RANK)) * (l.c / sub);
  }
  rows.push({
    name: 'TS reference (Jacobi)',
    threads: 1,
    note: `one pass over the first ${REF_CHANNELS} channels of each layer, extrapolated to all ${channels}`,
    bestMs: refMs,
    medianMs: refMs,
  });

  const base = rows.find((r) => r.name === 'native' && r.threads === 1) ?? rows[0];
  const ratio = (r: Row, key: 'bestMs' | 'medianMs'): string => (r[key] / base[key]).toFixed(2);
  const lines = [
    `| backend | threads | best ms | median ms | vs ${base.name} ${base.threads}t: best / median | note |`,
    '|---|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.threads === 0 ? 'BLAS default' : r.threads} | ${r.bestMs.toFixed(1)} | ${r.medianMs.toFixed(1)} | ${ratio(r, 'bestMs')}x / ${ratio(r, 'medianMs')}x | ${r.note} |`,
    ),
  ];
  const loadAfter = os.loadavg()[0];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const context = [
    `VGG16 convs (13 layers, ${(params / 1e6).toFixed(1)}M parameters, ${channels} channel slices of n x 9), DAC rank ${RANK}.`,
    `${REPEATS} rounds after a warm-up; each round runs every row once (one untimed pass, then the timed one, for every row including numpy's), interleaved, so load that drifts during the run hits all rows alike.`,
    `Machine: ${cpu}, ${os.cpus().length} logical CPUs, Node ${process.version}; load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (other work on the machine inflates every row, memory-bound ones most).`,
    nat ? `Native ISA: ${nat.info().isa}.` : 'Native backend not loaded: no native rows.',
    wasm ? '' : 'WASM backend not loaded: no WASM row.',
    np && typeof np.maxSingularDiff === 'number'
      ? `Singular values, ${nat ? 'native' : 'WASM'} vs numpy's float64 SVD of the same slices: max difference ${np.maxSingularDiff.toExponential(2)} of each channel's largest.`
      : numpyWhy,
  ].filter(Boolean);
  const md = ['# DAC decomposition speed: VGG16 at rank 4', '', ...context.map((c) => `${c}  `), '', ...lines, ''].join('\n');
  process.stdout.write(`${md}\n`);
  fs.mkdirSync(opts.out!, { recursive: true });
  fs.writeFileSync(path.join(opts.out!, 'svd.md'), md);
  fs.writeFileSync(
    path.join(opts.out!, 'svd.json'),
    `${JSON.stringify({ date: new Date().toISOString(), cpu, cpus: os.cpus().length, node: process.version, loadBefore, loadAfter, params, channels, rank: RANK, rounds: REPEATS, rows, numpy: np }, null, 2)}\n`,
  );
}

/** --wide: the baselines' truncated SVD of a wide layer (a (c*kh) x (n*kw) = 3072 x 3072 matrix for spatial). */
function mainWide(): void {
  const nat = availableBackends().find((b) => b.name === 'native');
  if (!nat) throw new Error('--wide needs the native backend');
  const l = makeLayer(1024, 1024, 99);
  const shape = { n: l.n, c: l.c, kh: l.kh, kw: l.kw };
  const loadBefore = os.loadavg()[0];
  const cases: Array<[string, (threads: number) => void]> = [
    ['dac rank 4', (threads) => nat.decomposeDac(l.weights, shape, RANK, { threads })],
    ['spatial width 688', (threads) => nat.decomposeSpatial(l.weights, shape, 688, { threads })],
    ['channel width 410', (threads) => nat.decomposeChannel(l.weights, shape, 410, { threads })],
  ];
  const lines = ['| method | threads | best s | best CPU s |', '|---|---:|---:|---:|'];
  for (const [name, run] of cases) {
    for (const threads of [1, 2]) {
      let best = Infinity;
      let bestCpu = Infinity;
      for (let r = 0; r < Math.min(REPEATS, 3); r++) {
        const c0 = process.cpuUsage();
        const ms = timeOnce(() => run(threads));
        const cpu = process.cpuUsage(c0);
        best = Math.min(best, ms / 1000);
        bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1e6);
      }
      lines.push(`| ${name} | ${threads} | ${best.toFixed(2)} | ${bestCpu.toFixed(2)} |`);
      process.stderr.write(`${lines[lines.length - 1]}\n`);
    }
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const md = [
    '# Baselines on a wide layer: 1024->1024 3x3, widths of DAC rank 4\'s cost',
    '',
    `Best of ${Math.min(REPEATS, 3)} calls per row, native Backend API. Machine: ${cpu}, ${os.cpus().length} logical CPUs, Node ${process.version}; load average ${loadBefore.toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after.  `,
    '',
    ...lines,
    '',
  ].join('\n');
  process.stdout.write(`${md}\n`);
  fs.mkdirSync(opts.out!, { recursive: true });
  fs.writeFileSync(path.join(opts.out!, 'svd-wide.md'), md);
}

if (opts.wide) mainWide();
else main();
