// The DacConv2D TF.js layer: same output as stock TF.js ops / SeparableConv2D
// with the same weights, on every backend; save and load round trips, also
// in a fresh Node process that only imports our module; weight updates are
// picked up; bad configs are rejected.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { availableBackends, DacError } from '../src/index.js';
import { DacConv2D, dacConv2d, fromSeparableKernels, toSeparableKernels } from '../src/tfjs-layer/dac-conv2d-layer.js';
import { signedUniform } from '../src/random.js';

const root = path.resolve(__dirname, '..');

function randomArray(n: number, next: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = next();
  return a;
}

function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1e-20;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
  return got.length === want.length ? worst : Infinity;
}

interface Spec {
  h: number;
  w: number;
  c: number;
  n: number;
  k: [number, number];
  r: number;
  strides: [number, number];
  dilation: [number, number];
  padding: 'same' | 'valid';
  activation: 'linear' | 'relu' | 'relu6';
}

const specs: Spec[] = [
  { h: 9, w: 8, c: 5, n: 6, k: [3, 3], r: 2, strides: [2, 2], dilation: [1, 1], padding: 'same', activation: 'relu' },
  { h: 7, w: 13, c: 3, n: 17, k: [5, 5], r: 4, strides: [1, 1], dilation: [2, 2], padding: 'same', activation: 'linear' },
  { h: 13, w: 7, c: 16, n: 9, k: [1, 3], r: 1, strides: [1, 1], dilation: [1, 1], padding: 'valid', activation: 'relu6' },
];

/** depthwise then pointwise with stock TF.js ops on its CPU backend. */
function stock(x: tf.Tensor4D, dk: tf.Tensor4D, pk: tf.Tensor4D, bias: tf.Tensor1D, s: Spec): tf.Tensor4D {
  return tf.tidy(() => {
    const mid = tf.depthwiseConv2d(x, dk, s.strides, s.padding, 'NHWC', s.dilation);
    let y = tf.add(tf.conv2d(mid, pk, 1, 'valid'), bias) as tf.Tensor4D;
    if (s.activation === 'relu') y = tf.relu(y);
    if (s.activation === 'relu6') y = tf.relu6(y);
    return y;
  });
}

t.before(async () => {
  await tf.setBackend('cpu');
});

t.test('kernel layout conversions are inverse', async (t) => {
  const next = signedUniform(3);
  const shape = { n: 7, c: 4, kh: 3, kw: 2 };
  const depthwiseKernel = randomArray(3 * 2 * 4 * 3, next);
  const pointwiseKernel = randomArray(4 * 3 * 7, next);
  const canon = fromSeparableKernels(depthwiseKernel, pointwiseKernel, shape, 3);
  // Channel i, multiplier j, tap (dh, dw): Keras [dh][dw][i][j] -> [i*r + j][dh*kw + dw].
  t.equal(canon.depthwise[(2 * 3 + 1) * 6 + (1 * 2 + 1)], depthwiseKernel[((1 * 2 + 1) * 4 + 2) * 3 + 1]);
  t.equal(canon.pointwise[5 * 12 + 7], pointwiseKernel[7 * 7 + 5]);
  const back = toSeparableKernels(canon, shape);
  t.same(Array.from(back.depthwiseKernel), Array.from(depthwiseKernel));
  t.same(Array.from(back.pointwiseKernel), Array.from(pointwiseKernel));
});

for (const backend of availableBackends()) {
  t.test(`${backend.name}: DacConv2D matches stock TF.js ops and SeparableConv2D`, async (t) => {
    let seed = 10;
    for (const s of specs) {
      const next = signedUniform(seed++);
      const x = tf.tensor4d(randomArray(2 * s.h * s.w * s.c, next), [2, s.h, s.w, s.c]);
      const dk = tf.tensor4d(randomArray(s.k[0] * s.k[1] * s.c * s.r, next), [s.k[0], s.k[1], s.c, s.r]);
      const pk = tf.tensor4d(randomArray(s.c * s.r * s.n, next), [1, 1, s.c * s.r, s.n]);
      const bias = tf.tensor1d(randomArray(s.n, next));
      const layer = dacConv2d({
        filters: s.n,
        kernelSize: s.k,
        depthMultiplier: s.r,
        strides: s.strides,
        dilationRate: s.dilation,
        padding: s.padding,
        activation: s.activation,
        backend: backend.name,
        threads: 2,
      });
      layer.build([null, s.h, s.w, s.c]);
      layer.setWeights([dk, pk, bias]);
      const y = layer.apply(x) as tf.Tensor4D;
      const want = stock(x, dk, pk, bias, s);
      const label = `${s.h}x${s.w}x${s.c}->${s.n} k${s.k.join('x')} r${s.r} ${s.padding} s${s.strides.join(',')} d${s.dilation.join(',')}`;
      t.same(y.shape, want.shape, `shape ${label}`);
      t.same(layer.computeOutputShape([null, s.h, s.w, s.c]), [null, ...want.shape.slice(1)], `computeOutputShape ${label}`);
      t.ok(maxRelError(y.dataSync(), want.dataSync()) < 1e-4, `values vs stock ops ${label}`);
      if (s.strides[0] === 1 || s.dilation[0] === 1) {
        const sep = tf.layers.separableConv2d({
          filters: s.n,
          kernelSize: s.k,
          depthMultiplier: s.r,
          strides: s.strides,
          dilationRate: s.dilation,
          padding: s.padding,
          activation: s.activation,
        });
        sep.build([null, s.h, s.w, s.c]);
        sep.setWeights([dk, pk, bias]);
        const ySep = sep.apply(x) as tf.Tensor4D;
        t.ok(maxRelError(y.dataSync(), ySep.dataSync()) < 1e-4, `values vs SeparableConv2D ${label}`);
      }
      tf.dispose([x, dk, pk, bias, y, want]);
    }
  });

  t.test(`${backend.name}: setWeights is picked up by the next call`, async (t) => {
    const next = signedUniform(42);
    const s = specs[0];
    const layer = new DacConv2D({ filters: s.n, kernelSize: 3, depthMultiplier: 2, padding: 'same', backend: backend.name });
    const x = tf.tensor4d(randomArray(s.h * s.w * s.c, next), [1, s.h, s.w, s.c]);
    layer.apply(x);
    const weights = [
      tf.tensor4d(randomArray(9 * s.c * 2, next), [3, 3, s.c, 2]),
      tf.tensor4d(randomArray(s.c * 2 * s.n, next), [1, 1, s.c * 2, s.n]),
      tf.tensor1d(randomArray(s.n, next)),
    ];
    layer.setWeights(weights);
    const y = layer.apply(x) as tf.Tensor4D;
    const want = stock(x, weights[0] as tf.Tensor4D, weights[1] as tf.Tensor4D, weights[2] as tf.Tensor1D, {
      ...s,
      strides: [1, 1],
      activation: 'linear',
    });
    t.ok(maxRelError(y.dataSync(), want.dataSync()) < 1e-4);
  });
}

/** A small model: conv -> DacConv2D -> global pooling. */
function model(seed: number): tf.LayersModel {
  const next = signedUniform(seed);
  const input = tf.input({ shape: [10, 9, 3] });
  const conv = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' });
  const dac = dacConv2d({ filters: 12, kernelSize: 3, depthMultiplier: 3, padding: 'same', strides: 2, activation: 'relu', name: 'dac_block2' });
  const out = tf.layers.globalAveragePooling2d({}).apply(dac.apply(conv.apply(input))) as tf.SymbolicTensor;
  const m = tf.model({ inputs: input, outputs: out });
  m.setWeights(m.getWeights().map((w) => tf.tensor(randomArray(w.size, next), w.shape)));
  return m;
}

async function artifactsOf(m: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | null = null;
  await m.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return saved!;
}

t.test('a model with DacConv2D saves and loads back', async (t) => {
  const m = model(7);
  const x = tf.tensor4d(randomArray(2 * 10 * 9 * 3, signedUniform(8)), [2, 10, 9, 3]);
  const y = (m.predict(x) as tf.Tensor).dataSync();
  const art = await artifactsOf(m);
  const topology = JSON.stringify(art.modelTopology);
  t.match(topology, /"class_name":"DacConv2D"/, 'saved under its registered class name');
  t.match(topology, /"depth_multiplier":3/, 'config serialized');
  t.same(
    art.weightSpecs!.filter((w) => w.name.startsWith('dac_block2')).map((w) => [w.name, w.shape]),
    [
      ['dac_block2/depthwise_kernel', [3, 3, 8, 3]],
      ['dac_block2/pointwise_kernel', [1, 1, 24, 12]],
      ['dac_block2/bias', [12]],
    ],
    'SeparableConv2D weight names and layouts',
  );
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(art));
  t.ok(loaded.layers.some((l) => l instanceof DacConv2D), 'loads as DacConv2D');
  t.ok(maxRelError((loaded.predict(x) as tf.Tensor).dataSync(), y) < 1e-6, 'same predictions after the round trip');
});

t.test('a fresh Node program that imports us loads the saved model', async (t) => {
  const m = model(11);
  const xData = randomArray(1 * 10 * 9 * 3, signedUniform(12));
  const y = (m.predict(tf.tensor4d(xData, [1, 10, 9, 3])) as tf.Tensor).dataSync();
  const art = await artifactsOf(m);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-tfjs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ modelTopology: art.modelTopology, weightSpecs: art.weightSpecs }));
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(art.weightData as ArrayBuffer));
  fs.writeFileSync(path.join(dir, 'x.json'), JSON.stringify(Array.from(xData)));
  const program = (importUs: boolean) => `
    const fs = require('node:fs'); const path = require('node:path');
    const tf = require('@tensorflow/tfjs');
    ${importUs ? "require('./src/tfjs-layer/dac-conv2d-layer.ts');" : ''}
    (async () => {
      const dir = ${JSON.stringify(dir)};
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const b = fs.readFileSync(path.join(dir, 'weights.bin'));
      const w = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      const m = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: j.modelTopology, weightSpecs: j.weightSpecs, weightData: w }));
      const x = tf.tensor4d(JSON.parse(fs.readFileSync(path.join(dir, 'x.json'), 'utf8')), [1, 10, 9, 3]);
      process.stdout.write(JSON.stringify(Array.from(m.predict(x).dataSync())));
    })().catch((e) => { process.stderr.write(String(e && e.message)); process.exit(3); });`;
  const run = (importUs: boolean) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', program(importUs)], { cwd: root, encoding: 'utf8' });
  const ok = run(true);
  t.equal(ok.status, 0, ok.stderr);
  if (ok.status === 0) t.ok(maxRelError(JSON.parse(ok.stdout) as number[], y) < 1e-6, 'same predictions in the new process');
  const without = run(false);
  t.not(without.status, 0, 'without importing us, TF.js does not know the layer');
  t.match(without.stderr, /DacConv2D/);
});

t.test('bad configs and inputs are rejected', async (t) => {
  const bad = (args: object, re: RegExp, what: string) => {
    try {
      new DacConv2D({ filters: 4, kernelSize: 3, depthMultiplier: 2, ...args });
      t.fail(`${what}: accepted`);
    } catch (e) {
      t.ok(e instanceof DacError && re.test((e as Error).message), `${what}: ${(e as Error).message}`);
    }
  };
  bad({ filters: 0 }, /filters/, 'filters 0');
  bad({ depthMultiplier: 1.5 }, /depthMultiplier/, 'fractional rank');
  bad({ padding: 'causal' }, /padding must be/, 'unknown padding');
  bad({ kernelSize: [3] }, /kernelSize/, 'one-element kernel size');
  bad({ activation: 'tanh' }, /activation must be/, 'unsupported activation');
  const layer = new DacConv2D({ filters: 4, kernelSize: 3, depthMultiplier: 2, padding: 'same' });
  layer.apply(tf.zeros([1, 5, 5, 3]));
  t.throws(() => layer.call(tf.zeros([1, 5, 5, 6])), /input has 6 channels/, 'channel count different from the built one');
});

// ---------- `dac decompose --tfjs-layer dac` ----------

/** A child program that loads model.json + shards with plain fs and stock tf.loadLayersModel, and predicts. */
function loaderProgram(dir: string, xFile: string, shape: number[], importUs: boolean): string {
  return `
    const fs = require('node:fs'); const path = require('node:path');
    const tf = require('@tensorflow/tfjs');
    ${importUs ? "require('./src/tfjs-layer/dac-conv2d-layer.ts');" : ''}
    (async () => {
      const dir = ${JSON.stringify(dir)};
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const groups = j.weightsManifest;
      const bufs = groups.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
      const b = Buffer.concat(bufs);
      const m = await tf.loadLayersModel(tf.io.fromMemory({
        modelTopology: j.modelTopology,
        weightSpecs: groups.flatMap((g) => g.weights),
        weightData: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength),
      }));
      const x = tf.tensor4d(JSON.parse(fs.readFileSync(${JSON.stringify(xFile)}, 'utf8')), ${JSON.stringify(shape)});
      const y = m.predict(x);
      process.stdout.write(JSON.stringify({ y: Array.from(y.dataSync()), classes: m.layers.map((l) => l.getClassName()) }));
    })().catch((e) => { process.stderr.write(String(e && e.message)); process.exit(3); });`;
}

function runLoader(dir: string, xFile: string, shape: number[], importUs = true) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', loaderProgram(dir, xFile, shape, importUs)], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, out: r.status === 0 ? (JSON.parse(r.stdout) as { y: number[]; classes: string[] }) : null };
}

t.test('dac decompose --tfjs-layer dac: DacConv2D layers that stock tf.loadLayersModel loads; full rank equals the original', async (t) => {
  const { main } = await import('../src/cli/main.js');
  const { sequentialModel, functionalModel, saveModel } = await import('./fixtures/tfjs-models.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-tfjs-layer-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases = [
    // c1 relu same, c2 valid stride 2 (BN after), c5 2x3 stride 2 without bias, c6 dilated: full rank = min(n, kh*kw).
    { name: 'sequential', model: sequentialModel(), shape: [2, 9, 11, 3], ranks: 'c1=5,c2=7,c5=4,c6=6', dac: ['c1_dac', 'c2_dac', 'c5_dac', 'c6_dac'] },
    { name: 'functional', model: functionalModel(), shape: [2, 8, 7, 2], ranks: 'fa=6,fb=6,fd=5,fe=3,fout=4', dac: ['fa_dac', 'fb_dac', 'fd_dac', 'fe_dac', 'fout_dac'] },
  ];
  for (const c of cases) {
    const src = path.join(dir, `${c.name}-in`);
    await saveModel(c.model, src);
    const xData = randomArray(c.shape.reduce((a, b) => a * b, 1), signedUniform(77));
    const xFile = path.join(dir, `${c.name}-x.json`);
    fs.writeFileSync(xFile, JSON.stringify(Array.from(xData)));
    const want = (c.model.predict(tf.tensor4d(xData, c.shape as [number, number, number, number])) as tf.Tensor).dataSync();
    const out = path.join(dir, `${c.name}-dac`);
    const stockOut = path.join(dir, `${c.name}-stock`);
    t.equal(await main(['decompose', src, '-o', out, '--ranks', c.ranks, '--tfjs-layer', 'dac', '--no-bias-correction', '-q']), 0);
    t.equal(await main(['decompose', src, '-o', stockOut, '--ranks', c.ranks, '--no-bias-correction', '-q']), 0);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    const text = JSON.stringify(json.modelTopology);
    for (const name of c.dac) t.match(text, new RegExp(`"class_name":"DacConv2D"[^}]*"name":"${name}"`), `${c.name}: ${name} is a DacConv2D`);
    t.notMatch(JSON.stringify(JSON.parse(fs.readFileSync(path.join(stockOut, 'model.json'), 'utf8')).modelTopology), /DacConv2D/, `${c.name}: default stays stock`);
    const got = runLoader(out, xFile, c.shape);
    t.equal(got.status, 0, got.status === 0 ? `${c.name}: loads` : got.stderr);
    if (got.out) {
      t.ok(got.out.classes.filter((k) => k === 'DacConv2D').length === c.dac.length, `${c.name}: loaded as DacConv2D`);
      const err = maxRelError(got.out.y, want);
      t.ok(err < 1e-4, `${c.name}: full-rank output equals the original (max rel error ${err.toExponential(1)})`);
    }
    const without = runLoader(out, xFile, c.shape, false);
    t.not(without.status, 0, `${c.name}: stock TF.js alone does not know DacConv2D`);
  }
  // The dilated conv is decomposable only when written as DacConv2D.
  const seq = path.join(dir, 'sequential-in');
  t.equal(await main(['decompose', seq, '-o', path.join(dir, 'x'), '--ranks', 'c6=6', '-q']), 0);
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'x', 'report.json'), 'utf8')) as { layers: { name: string; method: string; reason?: string }[] };
  const c6 = report.layers.find((l) => l.name === 'c6');
  t.ok(c6?.method === 'keep' && /dilated/.test(c6.reason ?? ''), 'stock: the dilated conv is kept, saying why');
  t.equal(await main(['decompose', seq, '-o', path.join(dir, 'x'), '--rank', '2', '--tfjs-layer', 'tf', '-q']), 2, 'unknown --tfjs-layer value');
});

t.test('--tfjs-layer dac keeps the original weight encoding (uint8, uint16, float16)', async (t) => {
  const { main } = await import('../src/cli/main.js');
  const { oneChannelModel, saveModel } = await import('./fixtures/tfjs-models.js');
  const { readArtifacts, serializeArtifacts, weightFloats } = await import('../src/formats/tfjs/manifest.js');
  const { encodedEntry } = await import('../src/formats/tfjs/quantize.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-tfjs-quant-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // float16 encoding decodes back through the reader to the nearest half.
  const probe = new Float32Array([0, -0, 1, -2.5, 65504, 1e-7, 6.1e-5, 3.14159, 1e6, -1e-9]);
  const half = weightFloats(encodedEntry('p', [probe.length], probe, { dtype: 'float16' }));
  t.same(Array.from(half), [0, -0, 1, -2.5, 65504, 1.1920928955078125e-7, 0.00006097555160522461, 3.140625, Infinity, -0], 'float16 round to nearest');
  const m = oneChannelModel();
  const src = path.join(dir, 'float');
  await saveModel(m, src);
  const xData = randomArray(13 * 13, signedUniform(5));
  const xFile = path.join(dir, 'x.json');
  fs.writeFileSync(xFile, JSON.stringify(Array.from(xData)));
  const floatOut = runLoader(src, xFile, [1, 13, 13, 1]);
  for (const dtype of ['uint8', 'uint16', 'float16'] as const) {
    const art = readArtifacts(path.join(src, 'model.json'));
    const weights = art.weights.map((w) =>
      /kernel|bias/.test(w.spec.name) ? encodedEntry(w.spec.name, w.spec.shape, weightFloats(w), { dtype }) : w,
    );
    const qdir = path.join(dir, `q-${dtype}`);
    fs.mkdirSync(qdir);
    for (const [name, data] of serializeArtifacts(art.json, weights)) fs.writeFileSync(path.join(qdir, name), data);
    const want = runLoader(qdir, xFile, [1, 13, 13, 1]);
    t.equal(want.status, 0, want.status === 0 ? `${dtype}: quantized original loads` : want.stderr);
    const out = path.join(dir, `dac-${dtype}`);
    // k1: 16 filters, 3x3 -> full rank 9; k2: 9 filters -> 9.
    t.equal(await main(['decompose', qdir, '-o', out, '--rank', '9', '--tfjs-layer', 'dac', '--no-bias-correction', '-q']), 0);
    const specs = (JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')).weightsManifest as { weights: { name: string; quantization?: { dtype: string } }[] }[])
      .flatMap((g) => g.weights)
      .filter((w) => /_dac\//.test(w.name));
    t.equal(specs.length, 6, `${dtype}: depthwise, pointwise and bias of both layers`);
    t.ok(specs.every((s) => s.quantization?.dtype === dtype), `${dtype}: replacement weights stored as ${dtype}`);
    const got = runLoader(out, xFile, [1, 13, 13, 1]);
    t.equal(got.status, 0, got.status === 0 ? `${dtype}: decomposed model loads` : got.stderr);
    if (got.out && want.out && floatOut.out) {
      // Re-quantizing the factors adds about one more quantization error: compare with the original's own.
      const own = maxRelError(want.out.y, floatOut.out.y);
      const err = maxRelError(got.out.y, floatOut.out.y);
      t.ok(err < 3 * own + 1e-5, `${dtype}: error vs float ${err.toExponential(1)}, the quantized original's ${own.toExponential(1)}`);
    }
  }
});

// ---------- `dac decompose --tfjs-layer dac` on TF.js graph models ----------

/** A child program that runs a graph model folder with stock tf.loadGraphModel on files read with plain fs. */
function graphProgram(dir: string, xFile: string, shape: number[], importUs: boolean): string {
  return `
    const fs = require('node:fs'); const path = require('node:path');
    const tf = require('@tensorflow/tfjs');
    ${importUs ? "require('./src/tfjs-layer/dac-conv2d-layer.ts');" : ''}
    (async () => {
      await tf.setBackend('cpu');
      const dir = ${JSON.stringify(dir)};
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const b = Buffer.concat(j.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
      const net = await tf.loadGraphModel(tf.io.fromMemory({
        modelTopology: j.modelTopology, format: j.format, signature: j.signature,
        weightSpecs: j.weightsManifest.flatMap((g) => g.weights),
        weightData: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength),
      }));
      const x = tf.tensor4d(JSON.parse(fs.readFileSync(${JSON.stringify(xFile)}, 'utf8')), ${JSON.stringify(shape)});
      const y = net.execute(x, net.outputNodes[0]);
      process.stdout.write(JSON.stringify(Array.from(y.dataSync())));
    })().catch((e) => { process.stderr.write(String(e && e.message)); process.exit(3); });`;
}

function runGraph(dir: string, xFile: string, shape: number[], importUs = true) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', graphProgram(dir, xFile, shape, importUs)], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, y: r.status === 0 ? (JSON.parse(r.stdout) as number[]) : null };
}

t.test('dac decompose --tfjs-layer dac on graph models: DacConv2D op nodes that stock tf.loadGraphModel runs after importing us', async (t) => {
  const { main } = await import('../src/cli/main.js');
  const { fusedGraph, sharedGraph } = await import('./fixtures/graph-models.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-tfjs-graph-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases = [
    // fused: c1 Relu SAME, c2 Relu6 stride 2 VALID, c3 EXPLICIT without bias, c6 PReLU (stays a stock pair), all float32.
    { name: 'fused', build: fusedGraph, shape: [2, 12, 10, 3], ranks: 'c1=3,c2=4,c3=2,c6=2', dac: ['c1', 'c2', 'c3'], stock: ['c6'], tol: 1e-4 },
    // shared: a uint8 filter read by two convs (no activation, Relu), a float16 conv (su, after an op without a shape rule, is kept).
    { name: 'shared', build: sharedGraph, shape: [1, 9, 9, 4], ranks: 'sa=2,sb=3,sf=4', dac: ['sa', 'sb', 'sf'], stock: [], tol: null },
  ];
  for (const c of cases) {
    const src = c.build(path.join(dir, `${c.name}-in`));
    const xData = randomArray(c.shape.reduce((a, b) => a * b, 1), signedUniform(31));
    const xFile = path.join(dir, `${c.name}-x.json`);
    fs.writeFileSync(xFile, JSON.stringify(Array.from(xData)));
    const out = path.join(dir, `${c.name}-dac`);
    const stockOut = path.join(dir, `${c.name}-stock`);
    t.equal(await main(['decompose', src, '-o', out, '--ranks', c.ranks, '--tfjs-layer', 'dac', '--no-bias-correction', '-q']), 0);
    t.equal(await main(['decompose', src, '-o', stockOut, '--ranks', c.ranks, '--no-bias-correction', '-q']), 0);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    const nodes = new Map<string, { op: string; input: string[] }>(json.modelTopology.node.map((n: { name: string }) => [n.name, n]));
    for (const name of c.dac) t.equal(nodes.get(name)?.op, 'DacConv2D', `${c.name}: ${name} is one DacConv2D node under the original name`);
    for (const name of c.stock) t.ok(nodes.has(`${name}_c1`) || nodes.has(`${name}_dw`), `${c.name}: ${name} (an activation the op does not run) stays a stock pair`);
    const stockText = fs.readFileSync(path.join(stockOut, 'model.json'), 'utf8');
    t.notMatch(stockText, /DacConv2D/, `${c.name}: default stays stock`);
    const want = runGraph(stockOut, xFile, c.shape);
    const got = runGraph(out, xFile, c.shape);
    t.equal(got.status, 0, got.status === 0 ? `${c.name}: runs` : got.stderr);
    if (got.y && want.y) {
      const err = maxRelError(got.y, want.y);
      if (c.tol !== null) t.ok(err < c.tol, `${c.name}: same output as the stock decomposition (max rel error ${err.toExponential(1)})`);
      else t.ok(err < 0.05, `${c.name}: close to the stock decomposition, whose factors are quantized without balancing (max rel error ${err.toExponential(1)})`);
    }
    const without = runGraph(out, xFile, c.shape, false);
    t.not(without.status, 0, `${c.name}: stock TF.js alone does not run DacConv2D`);
    t.match(without.stderr, /DacConv2D/, `${c.name}: TF.js names the op it lacks`);
  }
  // Quantized originals stay quantized where the error allows it, as for the Layers writer.
  const specs = (JSON.parse(fs.readFileSync(path.join(dir, 'shared-dac', 'model.json'), 'utf8')).weightsManifest as { weights: { name: string; quantization?: { dtype: string } }[] }[])
    .flatMap((g) => g.weights)
    .filter((w) => /_dac\//.test(w.name));
  const dtypeOf = (prefix: string) => [...new Set(specs.filter((w) => w.name.startsWith(`${prefix}_dac/`) && !/bias/.test(w.name)).map((w) => w.quantization?.dtype ?? 'float32'))];
  t.same(dtypeOf('sf'), ['float16'], 'the float16 conv: factors in float16');
  t.ok(['uint8', 'float32'].includes(dtypeOf('sa')[0]), `the uint8 conv: factors in uint8 or, noted, float32 (${dtypeOf('sa').join()})`);
});

t.test('our runners (compare, bench, demo) run graph models with DacConv2D nodes: they register the op themselves', async (t) => {
  const { main } = await import('../src/cli/main.js');
  const { fusedGraph } = await import('./fixtures/graph-models.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-tfjs-graph-runner-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'dac');
  t.equal(await main(['decompose', fusedGraph(path.join(dir, 'in')), '-o', out, '--rank', '2', '--tfjs-layer', 'dac', '-q']), 0);
  const program = `
    const { createRunner } = require('./src/runtime/index.ts');
    createRunner(${JSON.stringify(out)}, { tfjsBackend: 'cpu' })
      .then((r) => r.run(new Float32Array(12 * 10 * 3), 1))
      .then(() => process.exit(0), (e) => { process.stderr.write(String(e && e.message)); process.exit(3); });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', program], { cwd: root, encoding: 'utf8' });
  t.equal(r.status, 0, `runs without the caller importing dac-conv/tfjs: ${r.stderr}`);
});
