// Layer benchmark: does DAC's FLOP saving become a time saving?
//
// For VGG16-like 3x3 layers (and one 5x5 and one 7x7 layer), in one process:
//   original conv: ours (native), onnxruntime-node, TF.js + tfjs-backend-wasm (XNNPACK)
//   decomposed, unfused: onnxruntime (grouped Conv + 1x1 Conv), tfjs-wasm (depthwiseConv2d + conv2d)
//   decomposed, fused: ours
// at ranks 1..9 and 1 and 2 threads, all with bias + ReLU. Measurements are
// interleaved round-robin (every contender once per round) and the median
// of the rounds is reported. Writes bench/results/layers.md and layers.svg
// (layers-quick.* in quick mode).
//
//   npm run bench:layers                 full run
//   BENCH_QUICK=1 npm run bench:layers   two layers, ranks 1/4/9, 1 thread, 3 rounds
//   BENCH_REPS=9 BENCH_LAYERS=56x56,28x28 BENCH_THREADS=1 BENCH_RANKS=4 ...   overrides
//   BENCH_NAME=layers-threads ...        writes bench/results/layers-threads.* instead
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as protobuf from 'protobufjs';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';

import { availableBackends, getBackend, type Backend } from '../src/index.js';
import { conv2d, fusedDepthwisePointwise, type Nhwc } from '../src/kernels.js';
import { toSeparableKernels } from '../src/tfjs-layer/dac-conv2d-layer.js';
import { signedUniform } from '../src/random.js';
import { ortSessionOptions } from '../src/runtime/index.js';

interface Layer {
  id: string;
  label: string;
  h: number;
  c: number;
  n: number;
  k: number;
}

const ALL_LAYERS: Layer[] = [
  { id: '112x112', label: 'VGG16 conv2_2: 112x112, 128->128, 3x3', h: 112, c: 128, n: 128, k: 3 },
  { id: '56x56', label: 'VGG16 conv3_2: 56x56, 256->256, 3x3', h: 56, c: 256, n: 256, k: 3 },
  { id: '28x28', label: 'VGG16 conv4_2: 28x28, 512->512, 3x3', h: 28, c: 512, n: 512, k: 3 },
  { id: '14x14', label: 'VGG16 conv5_2: 14x14, 512->512, 3x3', h: 14, c: 512, n: 512, k: 3 },
  { id: '28x28-5x5', label: '28x28, 192->256, 5x5', h: 28, c: 192, n: 256, k: 5 },
  { id: '14x14-7x7', label: '14x14, 256->256, 7x7', h: 14, c: 256, n: 256, k: 7 },
];

const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.BENCH_REPS ?? (QUICK ? 3 : 5));
const RANKS = process.env.BENCH_RANKS?.split(',').map(Number) ?? (QUICK ? [1, 4, 9] : [1, 2, 3, 4, 5, 6, 7, 8, 9]);
const THREADS = (process.env.BENCH_THREADS ?? (QUICK ? '1' : '1,2')).split(',').map(Number);
const LAYER_IDS = process.env.BENCH_LAYERS?.split(',') ?? (QUICK ? ['56x56', '28x28'] : ALL_LAYERS.map((l) => l.id));
const LAYERS = ALL_LAYERS.filter((l) => LAYER_IDS.includes(l.id));
const OUT_DIR = path.join(__dirname, 'results');

// ---------- data ----------

function randomArray(n: number, next: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = next() * scale;
  return a;
}

function nhwcToNchw(x: Float32Array, h: number, w: number, c: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let p = 0; p < h * w; p++) for (let i = 0; i < c; i++) y[i * h * w + p] = x[p * c + i];
  return y;
}

function oihwToHwio(w: Float32Array, n: number, c: number, k: number): Float32Array {
  const y = new Float32Array(w.length);
  for (let o = 0; o < n; o++)
    for (let i = 0; i < c; i++)
      for (let t = 0; t < k * k; t++) y[(t * c + i) * n + o] = w[(o * c + i) * k * k + t];
  return y;
}

/** Largest |a - b| over max |b|, with a in NCHW and b in NHWC. */
function nchwVsNhwc(a: Float32Array, b: Float32Array, hw: number, n: number): number {
  let scale = 1e-20;
  let worst = 0;
  for (let v of b) scale = Math.max(scale, Math.abs(v));
  for (let p = 0; p < hw; p++)
    for (let o = 0; o < n; o++) worst = Math.max(worst, Math.abs(a[o * hw + p] - b[p * n + o]));
  return worst / scale;
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-20;
  let worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / scale;
}

// ---------- ONNX models built in memory ----------

const ONNX_SCHEMA = `
syntax = "proto3";
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; }
message AttributeProto { string name = 1; int64 i = 3; repeated int64 ints = 8; int32 type = 20; }
message Dimension { int64 dim_value = 1; }
message TensorShapeProto { repeated Dimension dim = 1; }
message TensorTypeProto { int32 elem_type = 1; TensorShapeProto shape = 2; }
message TypeProto { TensorTypeProto tensor_type = 1; }
message ValueInfoProto { string name = 1; TypeProto type = 2; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4; repeated AttributeProto attribute = 5; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message ModelProto { int64 ir_version = 1; string producer_name = 2; GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
`;
const ModelProto = protobuf.parse(ONNX_SCHEMA).root.lookupType('ModelProto');
const FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

function valueInfo(name: string, dims: number[]) {
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } };
}

function initializer(name: string, dims: number[], data: Float32Array) {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function convNode(x: string, w: string, b: string | null, y: string, k: number, group: number) {
  const pad = (k - 1) / 2;
  return {
    input: b ? [x, w, b] : [x, w],
    output: [y],
    name: y,
    opType: 'Conv',
    attribute: [
      { name: 'kernel_shape', ints: [k, k], type: ATTR_INTS },
      { name: 'pads', ints: [pad, pad, pad, pad], type: ATTR_INTS },
      { name: 'group', i: group, type: ATTR_INT },
    ],
  };
}

function onnxModel(nodes: object[], inits: object[], xDims: number[], yDims: number[]): Uint8Array {
  const model = {
    irVersion: 8,
    producerName: 'dac-conv bench',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'layer',
      node: [...nodes, { input: ['pre'], output: ['y'], name: 'relu', opType: 'Relu' }],
      initializer: inits,
      input: [valueInfo('x', xDims)],
      output: [valueInfo('y', yDims)],
    },
  };
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

// ---------- timing ----------

interface Contender {
  key: string;
  run: () => void | Promise<void>;
  wall: number[];
  cpu: number[];
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

async function measure(contenders: Contender[]): Promise<void> {
  for (const c of contenders) {
    await c.run();
    await c.run();
  }
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of contenders) {
      const u0 = process.cpuUsage();
      const t0 = performance.now();
      await c.run();
      const wall = performance.now() - t0;
      const u = process.cpuUsage(u0);
      c.wall.push(wall);
      c.cpu.push((u.user + u.system) / 1000);
    }
  }
}

// ---------- one layer ----------

interface RankRow {
  rank: number;
  theory: number;
  // The dense convs again, timed in the same rounds as this rank's runs, so
  // ratios compare times taken under the same machine load.
  denseOurs: number;
  denseOursCpu: number;
  denseOrt: number;
  denseOrtCpu: number;
  fused: number;
  fusedCpu: number;
  fusedWasm: number | null;
  ortPair: number;
  ortPairCpu: number;
  tfjsPair: number | null;
  tfjsPairCpu: number | null;
}

interface LayerResult {
  layer: Layer;
  threads: number;
  dense: { ours: number; oursCpu: number; ort: number; ortCpu: number; tfjs: number | null; tfjsCpu: number | null; oursWasm: number | null };
  ranks: RankRow[];
  checks: string[];
}

async function benchLayer(layer: Layer, threads: number, native: Backend, wasm: Backend | null): Promise<LayerResult> {
  const { h, c, n, k } = layer;
  const next = signedUniform(h * 1000 + c + n + k);
  const inShape: Nhwc = [1, h, h, c];
  const x = randomArray(h * h * c, next);
  const w = randomArray(n * c * k * k, next, 1 / Math.sqrt(c * k * k));
  const bias = randomArray(n, next, 0.1);
  const shape = { n, c, kh: k, kw: k };
  const opts = { padding: 'same' as const, bias, activation: 'relu' as const, threads };
  const out = new Float32Array(h * h * n);
  const outWasm = new Float32Array(h * h * n);
  const xNchw = nhwcToNchw(x, h, h, c);
  const xOrt = new ort.Tensor('float32', xNchw, [1, c, h, h]);
  // Pool threads that sleep after a run, so they leave the cores to the next contender (see ortSessionOptions).
  const sessionOpts = ortSessionOptions(threads);
  const useTfjs = threads === 1;
  const useWasm = wasm !== null && threads === 1 && !QUICK;
  const checks: string[] = [];

  const denseSession = await ort.InferenceSession.create(
    onnxModel([convNode('x', 'w', 'b', 'pre', k, 1)], [initializer('w', [n, c, k, k], w), initializer('b', [n], bias)], [1, c, h, h], [1, n, h, h]),
    sessionOpts,
  );
  const xTf = tf.tensor4d(x, inShape);
  const wTf = tf.tensor4d(oihwToHwio(w, n, c, k), [k, k, c, n]);
  const bTf = tf.tensor1d(bias);
  const tfDense = () => tf.tidy(() => tf.fused.conv2d({ x: xTf, filter: wTf, strides: 1, pad: 'same', bias: bTf, activation: 'relu' }).dataSync());

  const ours = () => void conv2d(x, inShape, w, shape, { ...opts, output: out, backend: native });
  ours();
  const ortY = (await denseSession.run({ x: xOrt })).y.data as Float32Array;
  checks.push(`dense: ours vs onnxruntime ${nchwVsNhwc(ortY, out, h * h, n).toExponential(1)}`);
  if (useTfjs) checks.push(`dense: ours vs tfjs-wasm ${relDiff(tfDense(), out).toExponential(1)}`);

  const ortDense = async () => void (await denseSession.run({ x: xOrt }));
  const denseC: Contender[] = [
    { key: 'ours', run: ours, wall: [], cpu: [] },
    { key: 'ort', run: ortDense, wall: [], cpu: [] },
  ];
  if (useTfjs) denseC.push({ key: 'tfjs', run: () => void tfDense(), wall: [], cpu: [] });
  if (useWasm) denseC.push({ key: 'oursWasm', run: () => void conv2d(x, inShape, w, shape, { ...opts, threads: 1, output: outWasm, backend: wasm! }), wall: [], cpu: [] });
  await measure(denseC);
  const get = (cs: Contender[], key: string) => cs.find((cc) => cc.key === key);
  const dense = {
    ours: median(get(denseC, 'ours')!.wall),
    oursCpu: median(get(denseC, 'ours')!.cpu),
    ort: median(get(denseC, 'ort')!.wall),
    ortCpu: median(get(denseC, 'ort')!.cpu),
    tfjs: useTfjs ? median(get(denseC, 'tfjs')!.wall) : null,
    tfjsCpu: useTfjs ? median(get(denseC, 'tfjs')!.cpu) : null,
    oursWasm: useWasm ? median(get(denseC, 'oursWasm')!.wall) : null,
  };
  tf.dispose([wTf]);

  const ranks: RankRow[] = [];
  for (const rank of RANKS) {
    const r = rank;
    const dw = randomArray(c * r * k * k, next, 1 / k);
    const pw = randomArray(n * c * r, next, 1 / Math.sqrt(c * r));
    const dwpw = { rank: r, depthwise: dw, pointwise: pw };
    const pairSession = await ort.InferenceSession.create(
      onnxModel(
        [convNode('x', 'dw', null, 'mid', k, c), convNode('mid', 'pw', 'b', 'pre', 1, 1)],
        [initializer('dw', [c * r, 1, k, k], dw), initializer('pw', [n, c * r, 1, 1], pw), initializer('b', [n], bias)],
        [1, c, h, h],
        [1, n, h, h],
      ),
      sessionOpts,
    );
    const sep = toSeparableKernels(dwpw, shape);
    const dkTf = tf.tensor4d(sep.depthwiseKernel, [k, k, c, r]);
    const pkTf = tf.tensor4d(sep.pointwiseKernel, [1, 1, c * r, n]);
    const tfPair = () =>
      tf.tidy(() => {
        const mid = tf.depthwiseConv2d(xTf, dkTf, 1, 'same');
        return tf.fused.conv2d({ x: mid, filter: pkTf, strides: 1, pad: 'valid', bias: bTf, activation: 'relu' }).dataSync();
      });
    const fused = () => void fusedDepthwisePointwise(x, inShape, dwpw, shape, { ...opts, output: out, backend: native });
    fused();
    const pairY = (await pairSession.run({ x: xOrt })).y.data as Float32Array;
    if (r === RANKS[0] || r === 4) {
      checks.push(`rank ${r}: fused vs onnxruntime pair ${nchwVsNhwc(pairY, out, h * h, n).toExponential(1)}`);
      if (useTfjs) checks.push(`rank ${r}: fused vs tfjs-wasm pair ${relDiff(tfPair(), out).toExponential(1)}`);
    }
    const cs: Contender[] = [
      { key: 'fused', run: fused, wall: [], cpu: [] },
      { key: 'ortPair', run: async () => void (await pairSession.run({ x: xOrt })), wall: [], cpu: [] },
      { key: 'ours', run: ours, wall: [], cpu: [] },
      { key: 'ort', run: ortDense, wall: [], cpu: [] },
    ];
    if (useTfjs) cs.push({ key: 'tfjsPair', run: () => void tfPair(), wall: [], cpu: [] });
    if (useWasm) cs.push({ key: 'fusedWasm', run: () => void fusedDepthwisePointwise(x, inShape, dwpw, shape, { ...opts, threads: 1, output: outWasm, backend: wasm! }), wall: [], cpu: [] });
    await measure(cs);
    ranks.push({
      rank: r,
      theory: r / n + r / (k * k),
      denseOurs: median(get(cs, 'ours')!.wall),
      denseOursCpu: median(get(cs, 'ours')!.cpu),
      denseOrt: median(get(cs, 'ort')!.wall),
      denseOrtCpu: median(get(cs, 'ort')!.cpu),
      fused: median(get(cs, 'fused')!.wall),
      fusedCpu: median(get(cs, 'fused')!.cpu),
      fusedWasm: useWasm ? median(get(cs, 'fusedWasm')!.wall) : null,
      ortPair: median(get(cs, 'ortPair')!.wall),
      ortPairCpu: median(get(cs, 'ortPair')!.cpu),
      tfjsPair: useTfjs ? median(get(cs, 'tfjsPair')!.wall) : null,
      tfjsPairCpu: useTfjs ? median(get(cs, 'tfjsPair')!.cpu) : null,
    });
    await pairSession.release();
    tf.dispose([dkTf, pkTf]);
    process.stderr.write('.');
  }
  await denseSession.release();
  tf.dispose([xTf, bTf]);
  return { layer, threads, dense, ranks, checks };
}

// ---------- report ----------

const denseFlops = (l: Layer) => 2 * l.h * l.h * l.n * l.c * l.k * l.k;
const gflops = (flops: number, ms: number) => flops / ms / 1e6;
const f1 = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(1));
const f2 = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(2));
const f3 = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));

/** The fastest original conv for a rank's rounds: ours and ORT timed alongside it, tfjs-wasm from the dense rounds. */
function bestDense(r: LayerResult, x: RankRow): { ms: number; cpu: number; who: string } {
  const all: Array<[string, number | null, number | null]> = [
    ['ours', x.denseOurs, x.denseOursCpu],
    ['onnxruntime', x.denseOrt, x.denseOrtCpu],
    ['tfjs-wasm', r.dense.tfjs, r.dense.tfjsCpu],
  ];
  let best = { ms: Infinity, cpu: Infinity, who: '' };
  for (const [who, ms] of all) if (ms !== null && ms < best.ms) best = { ms, cpu: best.cpu, who };
  for (const [, , cpu] of all) if (cpu !== null) best.cpu = Math.min(best.cpu, cpu);
  return best;
}

function markdown(results: LayerResult[], info: string[], busy: boolean): string {
  const lines: string[] = [];
  lines.push('# Layer benchmark: measured vs theoretical speed-up of DAC', '');
  lines.push(...info, '');
  lines.push(
    "Every layer is NHWC float32, batch 1, stride 1, 'same' padding, bias + ReLU. theory = r/n + r/(kh*kw), the",
    'FLOPs ratio of the decomposed layer. GFLOP/s of decomposed runs count the decomposed FLOPs',
    '(2*pixels*(c*r*kh*kw + n*c*r)). Each rank is timed in the same rounds as our dense conv and onnxruntime\'s',
    '(columns "dense ours / ORT"), and its ratios use those, so a load spike on this shared machine hits both',
    'sides of a ratio alike. "ratio" = fused time / dense time; "vs best" uses the fastest of the three dense',
    'runtimes; "/ theory" divides that by the FLOPs ratio (1.00 = the FLOP saving fully turned into time).',
    'CPU time (in parentheses; process user+system) is the load-robust single-thread measure: it does not count',
    'time the process waited for a core. tfjs-wasm runs single-threaded (no worker threads in Node).',
    'onnxruntime runs with allow_spinning off, so its idle pool threads do not hold the cores while the next contender runs.',
    'Weights: onnxruntime packs them at session creation, XNNPACK per filter tensor; ours pack on the first call',
    'and reuse the packing while the weights are unchanged (checked against a saved copy on every call).',
    '',
  );
  for (const r of results) {
    const L = r.layer;
    lines.push(`## ${L.label}, ${r.threads} thread${r.threads > 1 ? 's' : ''}`, '');
    lines.push('| original conv | ms (median) | GFLOP/s | CPU ms (all threads) |', '|---|---:|---:|---:|');
    lines.push(`| ours (native) | ${f2(r.dense.ours)} | ${f1(gflops(denseFlops(L), r.dense.ours))} | ${f2(r.dense.oursCpu)} |`);
    lines.push(`| onnxruntime-node | ${f2(r.dense.ort)} | ${f1(gflops(denseFlops(L), r.dense.ort))} | ${f2(r.dense.ortCpu)} |`);
    lines.push(`| tfjs-wasm (XNNPACK) | ${f2(r.dense.tfjs)} | ${r.dense.tfjs ? f1(gflops(denseFlops(L), r.dense.tfjs)) : 'n/a'} | ${f2(r.dense.tfjsCpu)} |`);
    if (r.dense.oursWasm !== null) lines.push(`| ours (wasm) | ${f2(r.dense.oursWasm)} | ${f1(gflops(denseFlops(L), r.dense.oursWasm))} | |`);
    lines.push('');
    const wasmCol = r.ranks.some((x) => x.fusedWasm !== null);
    lines.push(
      `| r | theory | fused ms (CPU) | GFLOP/s | dense ours / ORT ms | ratio vs our dense | ratio vs best | / theory (CPU) | ORT pair ms (CPU) | tfjs pair ms (CPU) |${wasmCol ? ' fused (wasm) ms |' : ''}`,
      `|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${wasmCol ? '---:|' : ''}`,
    );
    for (const x of r.ranks) {
      const decFlops = 2 * L.h * L.h * (L.c * x.rank * L.k * L.k + L.n * L.c * x.rank);
      const best = bestDense(r, x);
      const vsBest = x.fused / best.ms;
      const cpuVsTheory = x.fusedCpu / best.cpu / x.theory;
      lines.push(
        `| ${x.rank} | ${f3(x.theory)} | ${f2(x.fused)} (${f2(x.fusedCpu)}) | ${f1(gflops(decFlops, x.fused))} | ${f2(x.denseOurs)} / ${f2(x.denseOrt)} | ${f3(x.fused / x.denseOurs)} | ${f3(vsBest)} | ${f2(vsBest / x.theory)} (${f2(cpuVsTheory)}) | ${f2(x.ortPair)} (${f2(x.ortPairCpu)}) | ${f2(x.tfjsPair)} (${f2(x.tfjsPairCpu)}) |${wasmCol ? ` ${f2(x.fusedWasm)} |` : ''}`,
      );
    }
    lines.push('', `Output checks (max abs difference / max |output|): ${r.checks.join('; ')}.`, '');
  }
  lines.push(...targets(results), '', ...threadScaling(results, busy));
  return lines.join('\n') + '\n';
}

/**
 * The fused kernel at 2 threads against 1, per layer and rank (target: >= 1.7x at 56x56 and 28x28).
 * CPU time says what limits it: 2-thread CPU / 1-thread CPU near 1 means no extra work was added,
 * and CPU / wall at 2 threads is the parallelism the process got (2 = both cores all the time);
 * below 2 with the same work, the threads waited for a core that other processes held.
 */
function threadScaling(results: LayerResult[], busy: boolean): string[] {
  const lines = [
    '## Threads: fused kernel, 2 threads vs 1',
    '',
    'speed-up = 1-thread wall / 2-thread wall (medians); CPU ratio = 2-thread CPU / 1-thread CPU (1.00: parallel',
    'work adds nothing); parallelism = CPU / wall at 2 threads (2.00: both cores busy for the whole call).',
    '',
    '| layer | r | 1 thread ms (CPU) | 2 threads ms (CPU) | speed-up | CPU ratio | parallelism at 2 threads |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  const summary: string[] = [];
  for (const one of results.filter((r) => r.threads === 1)) {
    const two = results.find((r) => r.layer.id === one.layer.id && r.threads === 2);
    if (!two) continue;
    for (const a of one.ranks) {
      const b = two.ranks.find((x) => x.rank === a.rank);
      if (!b) continue;
      lines.push(
        `| ${one.layer.id} | ${a.rank} | ${f2(a.fused)} (${f2(a.fusedCpu)}) | ${f2(b.fused)} (${f2(b.fusedCpu)}) | ${f2(a.fused / b.fused)} | ${f2(b.fusedCpu / a.fusedCpu)} | ${f2(b.fusedCpu / b.fused)} |`,
      );
      if (a.rank === 4 && ['56x56', '28x28'].includes(one.layer.id)) {
        const speedup = a.fused / b.fused;
        summary.push(
          `- ${one.layer.label}, r = 4: 2 threads **${f2(speedup)}x** faster than 1 (target >= 1.7: ${speedup >= 1.7 ? 'met' : 'missed'}); ` +
            `CPU ratio ${f2(b.fusedCpu / a.fusedCpu)}, parallelism ${f2(b.fusedCpu / b.fused)} of 2.`,
        );
      }
    }
  }
  // With other processes on the 2 cores, a second thread mostly waits for one: the speed-up then measures contention.
  const caveat = busy
    ? ['- Load average above 1.5 on this 2-core machine: the speed-ups above measure how much of a second core the run got (parallelism), not the kernel; the CPU ratio (work at 2 threads / at 1) is the load-robust figure.']
    : [];
  return lines.length > 7 ? [...lines, '', ...summary, ...caveat] : [];
}

function targets(results: LayerResult[]): string[] {
  const lines = ['## Targets (single thread)', ''];
  for (const id of ['56x56', '28x28']) {
    const r = results.find((x) => x.layer.id === id && x.threads === 1);
    const row = r?.ranks.find((x) => x.rank === 4);
    if (!r || !row) continue;
    const best = bestDense(r, row);
    const ratio = row.fused / (row.theory * best.ms);
    const cpuRatio = row.fusedCpu / (row.theory * best.cpu);
    const verdict = (v: number) => (v <= 1.25 ? 'met' : `missed by ${f2(v / 1.25)}x`);
    lines.push(
      `- ${r.layer.label}, r = 4: fused ${f2(row.fused)} ms (CPU ${f2(row.fusedCpu)}); theory x fastest dense ` +
        `(${best.who}, ${f2(best.ms)} ms; CPU ${f2(best.cpu)}) = ${f2(row.theory * best.ms)} ms. ` +
        `fused / (theory x fastest dense) = **${f2(ratio)}** on wall clock (target <= 1.25: ${verdict(ratio)}), ` +
        `**${f2(cpuRatio)}** on CPU time (${verdict(cpuRatio)}).`,
    );
  }
  let rows = 0;
  const slower: string[] = [];
  const slowerCpu: string[] = [];
  for (const r of results.filter((x) => x.threads === 1)) {
    for (const x of r.ranks) {
      rows++;
      const worse: string[] = [];
      if (!(x.fused < x.ortPair)) worse.push(`ORT pair ${f2(x.ortPair)} ms`);
      if (x.tfjsPair !== null && !(x.fused < x.tfjsPair)) worse.push(`tfjs pair ${f2(x.tfjsPair)} ms`);
      if (worse.length) slower.push(`${r.layer.id} r=${x.rank}: fused ${f2(x.fused)} ms vs ${worse.join(', ')}`);
      const worseCpu: string[] = [];
      if (!(x.fusedCpu < x.ortPairCpu)) worseCpu.push(`ORT pair ${f2(x.ortPairCpu)} ms`);
      if (x.tfjsPairCpu !== null && !(x.fusedCpu < x.tfjsPairCpu)) worseCpu.push(`tfjs pair ${f2(x.tfjsPairCpu)} ms`);
      if (worseCpu.length) slowerCpu.push(`${r.layer.id} r=${x.rank}: fused ${f2(x.fusedCpu)} ms vs ${worseCpu.join(', ')}`);
    }
  }
  const verdict = (list: string[], clock: string) =>
    list.length === 0
      ? `- ${clock}: fused is faster than both runtimes' decomposed pairs in all ${rows} single-thread (layer, rank) cases.`
      : `- ${clock}: fused is slower than a decomposed pair in ${list.length} of ${rows} single-thread cases: ${list.join('; ')}.`;
  lines.push(verdict(slower, 'Wall clock'), verdict(slowerCpu, 'CPU time'));
  return lines;
}

function svg(results: LayerResult[]): string {
  const W = 640;
  const H = 480;
  const m = { l: 64, r: 200, t: 40, b: 56 };
  // Single thread on CPU time (load robust); two threads on wall clock.
  const pts = results.flatMap((r) =>
    r.ranks.map((x) => {
      const best = bestDense(r, x);
      return { layer: r.layer.id, threads: r.threads, x: x.theory, y: r.threads === 1 ? x.fusedCpu / best.cpu : x.fused / best.ms };
    }),
  );
  const max = Math.max(0.6, ...pts.map((p) => Math.max(p.x, p.y))) * 1.08;
  const sx = (v: number) => +(m.l + (v / max) * (W - m.l - m.r)).toFixed(1);
  const sy = (v: number) => +(H - m.b - (v / max) * (H - m.t - m.b)).toFixed(1);
  const colors = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02'];
  const ids = [...new Set(results.map((r) => r.layer.id))];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="22" text-anchor="middle" font-size="14">DAC fused layer: measured vs theoretical time ratio</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    out.push(`<line x1="${sx(0)}" y1="${sy(v)}" x2="${sx(max)}" y2="${sy(v)}" stroke="#eee"/>`);
    out.push(`<text x="${sx(0) - 6}" y="${sy(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
    out.push(`<text x="${sx(v)}" y="${sy(0) + 16}" text-anchor="middle">${v.toFixed(2)}</text>`);
  }
  out.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(max)}" y2="${sy(0)}" stroke="black"/>`);
  out.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(0)}" y2="${sy(max)}" stroke="black"/>`);
  out.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(max)}" y2="${sy(max)}" stroke="#888" stroke-dasharray="4 3"/>`);
  out.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(max / 1.25)}" y2="${sy(max)}" stroke="#c44" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 18}" text-anchor="middle">theoretical ratio r/n + r/(kh*kw)</text>`);
  out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">fused time / fastest dense conv</text>`);
  for (const p of pts) {
    const col = colors[ids.indexOf(p.layer) % colors.length];
    if (p.threads === 1) out.push(`<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="4" fill="${col}"/>`);
    else out.push(`<rect x="${(sx(p.x) - 3.5).toFixed(1)}" y="${(sy(p.y) - 3.5).toFixed(1)}" width="7" height="7" fill="none" stroke="${col}" stroke-width="1.5"/>`);
  }
  const lx = W - m.r + 16;
  ids.forEach((id, i) => {
    out.push(`<circle cx="${lx}" cy="${m.t + 14 + i * 18}" r="4" fill="${colors[i % colors.length]}"/>`);
    out.push(`<text x="${lx + 10}" y="${m.t + 18 + i * 18}">${id}</text>`);
  });
  const ly = m.t + 24 + ids.length * 18;
  out.push(`<circle cx="${lx}" cy="${ly}" r="4" fill="#444"/><text x="${lx + 10}" y="${ly + 4}">1 thread, CPU time</text>`);
  out.push(`<rect x="${lx - 3.5}" y="${ly + 14.5}" width="7" height="7" fill="none" stroke="#444" stroke-width="1.5"/><text x="${lx + 10}" y="${ly + 22}">2 threads, wall clock</text>`);
  out.push(`<line x1="${lx - 6}" y1="${ly + 38}" x2="${lx + 6}" y2="${ly + 38}" stroke="#888" stroke-dasharray="4 3"/><text x="${lx + 10}" y="${ly + 42}">measured = theory</text>`);
  out.push(`<line x1="${lx - 6}" y1="${ly + 56}" x2="${lx + 6}" y2="${ly + 56}" stroke="#c44" stroke-dasharray="2 3"/><text x="${lx + 10}" y="${ly + 60}">1.25 x theory</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

async function main(): Promise<void> {
  tfwasm.setThreadsCount(1);
  await tf.setBackend('wasm');
  await tf.ready();
  const native = getBackend('native');
  const wasm = availableBackends().find((b) => b.name === 'wasm') ?? null;
  const ni = native.info();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const loadStart = os.loadavg();
  const info = [
    `- Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
    `- Machine: ${cpu}, ${os.cpus().length} hardware threads, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; load average at start ${loadStart.map((v) => v.toFixed(1)).join(' / ')}.`,
    `- Node ${process.version}; onnxruntime-node ${ort.env.versions.common ?? ''}; @tensorflow/tfjs ${tf.version.tfjs} with tfjs-backend-wasm (backend '${tf.getBackend()}').`,
    `- dac-conv ${ni.version}: kernels dwpw=${ni.kernels.dwpw}, conv2d=${ni.kernels.conv2d} (${ni.isa})${wasm ? `; our WASM backend: ${wasm.info().kernels.dwpw}` : ''}.`,
    `- ${REPS} interleaved rounds per contender after 2 warm-up runs; times are medians over the rounds${QUICK ? ' (quick mode)' : ''}.`,
  ];
  const results: LayerResult[] = [];
  for (const layer of LAYERS) {
    for (const threads of THREADS) {
      process.stderr.write(`${layer.label}, ${threads} thread(s) `);
      results.push(await benchLayer(layer, threads, native, wasm));
      process.stderr.write('\n');
    }
  }
  const loadEnd = os.loadavg();
  info.splice(2, 0, `- Load average at the end ${loadEnd.map((v) => v.toFixed(1)).join(' / ')}.`);
  const busy = Math.max(loadStart[0], loadEnd[0]) > 1.5;
  // A quick run does not overwrite the full run's report.
  const base = path.join(OUT_DIR, process.env.BENCH_NAME ?? (QUICK ? 'layers-quick' : 'layers'));
  fs.mkdirSync(OUT_DIR, { recursive: true });
  fs.writeFileSync(`${base}.md`, markdown(results, info, busy));
  fs.writeFileSync(`${base}.svg`, svg(results));
  process.stdout.write([...targets(results), ...threadScaling(results, busy).filter((l) => l.startsWith('- '))].join('\n') + '\n');
  process.stdout.write(`wrote ${base}.md and ${base}.svg\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
