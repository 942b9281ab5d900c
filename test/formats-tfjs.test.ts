// TF.js Layers models end to end: reading (Sequential, Functional, quantized
// weights), replacing convs by every method, BatchNorm folding, writing, and
// loading the written files back into @tensorflow/tfjs unchanged.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { loadModel, TfjsModel, type LoadedModel } from '../src/formats/index.js';
import { fileHandler } from '../src/formats/tfjs/io.js';
import { normalizeImages, readIdxImages } from '../src/data/idx.js';
import { reconstructWeights, relativeError } from '../src/model/reconstruct.js';
import type { ChannelReplacement, DacReplacement, LayerReplacement, Method, SpatialReplacement } from '../src/model/types.js';
import { createRunner, loadTf } from '../src/runtime/index.js';
import { svdReplacement } from './fixtures/decompose.js';
import { exactReplacement } from './fixtures/exact.js';
import { freeSizeModel, functionalModel, nestedModel, oneChannelModel, saveModel, sequentialModel } from './fixtures/tfjs-models.js';
import { decomposeLoaded } from '../src/decompose-model.js';
import { NOMINAL_FREE_SIZE } from '../src/formats/model.js';
import { settingsFrom } from '../src/cli/settings.js';
import { demoImages, demoModel, hashTree, relErr, root, seededValues, tempDir, vggReference } from './fixtures/util.js';

const METHODS: Method[] = ['dac', 'spatial', 'channel'];
const tmp = tempDir('tfjs');

async function outputs(model: LoadedModel, x: Float32Array, batch: number): Promise<Float32Array> {
  const r = await createRunner(model);
  try {
    return await r.run(x, batch);
  } finally {
    r.dispose();
  }
}

/** Runs a saved folder through plain tf.loadLayersModel, bypassing the package's model class. */
async function tfjsOutputs(dir: string, x: Float32Array, shape: number[], batch: number): Promise<Float32Array> {
  const { tf } = await loadTf();
  const net = await tf.loadLayersModel(fileHandler(dir));
  const input = tf.tensor(x, [batch, ...shape]);
  const y = net.predict(input) as import('@tensorflow/tfjs').Tensor;
  const out = (await y.data()) as Float32Array;
  tf.dispose([input, y]);
  net.dispose();
  return out;
}

async function fixtureDir(name: string, build: () => import('@tensorflow/tfjs').LayersModel): Promise<string> {
  await loadTf();
  const dir = path.join(tmp, name);
  if (!fs.existsSync(dir)) await saveModel(build(), dir);
  return dir;
}

t.test('fashion-vgg (demo copy): layers, exact costs, reference logits', async (t) => {
  const m = await loadModel(demoModel);
  const ref = JSON.parse(fs.readFileSync(vggReference, 'utf8'));
  t.equal(m.format, 'tfjs');
  t.same(m.inputShape, [28, 28, 1]);
  t.equal(m.convs.length, 13);
  t.same(m.convs.map((c) => c.n), [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]);
  t.ok(m.convs.every((c) => c.kh === 3 && c.kw === 3 && c.bnAfter && !c.skipReason && c.pads.join() === '1,1,1,1'));
  t.ok(m.convs.slice(1).every((c) => c.bnBefore), 'every conv but the first reads a BatchNorm output');
  let macs = m.other.macs;
  let params = m.other.params;
  for (const c of m.convs) {
    macs += c.n * c.c * c.kh * c.kw * c.outH * c.outW;
    params += c.weights.length + (c.bias?.length ?? 0);
  }
  t.equal(macs, ref.macs_per_image, 'MACs match the reference');
  t.equal(params, ref.params, 'parameters match the reference');
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 8);
  const y = await outputs(m, x, 8);
  const expected = Float32Array.from(ref.first8_test_logits.flat() as number[]);
  t.ok(relErr(expected, y) < 1e-4, `logits of the first 8 test images match reference.json (rel ${relErr(expected, y).toExponential(2)})`);
});

t.test('fashion-vgg at full rank through every method equals the original', async (t) => {
  const m = await loadModel(demoModel);
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 8);
  const y0 = await outputs(m, x, 8);
  const sourceHash = hashTree(demoModel);
  for (const method of METHODS) {
    const reps = m.convs.map((c) => svdReplacement(c, method));
    for (const [i, rep] of reps.entries()) {
      const e = relativeError(m.convs[i].weights, reconstructWeights(rep, m.convs[i]));
      if (e > 1e-5) t.fail(`${method} ${rep.name}: weight error ${e}`);
    }
    const out = path.join(tmp, `vgg-${method}`);
    await m.apply(reps).save(out);
    const y1 = await tfjsOutputs(out, x, m.inputShape, 8);
    t.ok(relErr(y0, y1) < 1e-4, `${method}: written model loaded by tf.loadLayersModel matches (rel ${relErr(y0, y1).toExponential(2)})`);
    const again = await loadModel(out);
    t.equal(again.convs.length, 26, `${method}: 13 convs became 26`);
    const y2 = await outputs(again, x, 8);
    t.ok(relErr(y0, y2) < 1e-4, `${method}: reloaded model matches`);
  }
  t.equal(hashTree(demoModel), sourceHash, 'the source model is unchanged');
});

t.test('Sequential and Functional models: every method, odd shapes, strides, BN, residuals', async (t) => {
  const cases = [
    { name: 'sequential', build: sequentialModel, convs: ['c1', 'c2', 'c3', 'dw4', 'c5', 'c6'], decomposable: ['c1', 'c2', 'c5'] },
    { name: 'functional', build: functionalModel, convs: ['fa', 'fb', 'fd', 'fe', 'fout'], decomposable: ['fa', 'fb', 'fd', 'fe', 'fout'] },
    { name: 'one-channel', build: oneChannelModel, convs: ['k1', 'k2'], decomposable: ['k1', 'k2'] },
  ];
  for (const cs of cases) {
    const dir = await fixtureDir(cs.name, cs.build);
    const m = await loadModel(dir);
    t.same(m.convs.map((c) => c.name), cs.convs, `${cs.name}: every conv is listed`);
    t.same(m.convs.filter((c) => !c.skipReason).map((c) => c.name), cs.decomposable, `${cs.name}: decomposable ones`);
    const per = m.inputShape.reduce((a, b) => a * b, 1);
    const x = seededValues(3 * per, 99);
    const y0 = await tfjsOutputs(dir, x, m.inputShape, 3);
    t.ok(relErr(y0, await outputs(m, x, 3)) < 1e-6, `${cs.name}: the runner agrees with tf.loadLayersModel`);
    for (const method of METHODS) {
      for (const [kind, make] of [
        ['exact', exactReplacement],
        ['svd', svdReplacement],
      ] as const) {
        const decomposable = m.convs.filter((c) => !c.skipReason);
        const out = path.join(tmp, `${cs.name}-${method}-${kind}`);
        await m.apply(decomposable.map((c) => make(c, method))).save(out);
        const y = await tfjsOutputs(out, x, m.inputShape, 3);
        t.ok(relErr(y0, y) < 1e-4, `${cs.name} ${method} ${kind}: outputs equal (rel ${relErr(y0, y).toExponential(2)})`);
      }
    }
  }
});

t.test('the written topology: layer classes, names, rewired inbound nodes', async (t) => {
  const dir = await fixtureDir('functional', functionalModel);
  const m = await loadModel(dir);
  const fb = m.convs.find((c) => c.name === 'fb')!;
  const fout = m.convs.find((c) => c.name === 'fout')!;
  const out = path.join(tmp, 'functional-topology');
  await m.apply([svdReplacement(fb, 'dac', 3), svdReplacement(fout, 'spatial', 4)]).save(out);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  const layers = json.modelTopology.config.layers as { class_name: string; name: string; config: Record<string, unknown>; inbound_nodes: unknown[] }[];
  const byName = new Map(layers.map((l) => [l.name, l]));
  const dw = byName.get('fb_dw')!;
  t.equal(dw.class_name, 'DepthwiseConv2D');
  t.equal(dw.config.depth_multiplier, 3);
  t.equal(dw.config.use_bias, false);
  t.equal(dw.config.activation, 'linear');
  t.same(dw.inbound_nodes, [[['fa', 0, 0, {}]]], 'the depthwise layer takes the original input');
  t.same(byName.get('fb_pw')!.inbound_nodes, [[['fb_dw', 0, 0, {}]]]);
  t.same(byName.get('fb_pw')!.config.kernel_size, [1, 1]);
  t.same(byName.get('fbn')!.inbound_nodes, [[['fb_pw', 0, 0, {}]]], 'the consumer reads the pointwise layer');
  t.notOk(byName.has('fb'), 'the original layer is gone');
  t.same(json.modelTopology.config.output_layers, [['fout_h', 0, 0]], 'the model output is rewired');
  t.same(byName.get('fout_v')!.config.kernel_size, [3, 1]);
  t.same(byName.get('fout_h')!.config.kernel_size, [1, 3]);
  const names = json.weightsManifest[0].weights.map((w: { name: string }) => w.name);
  t.ok(names.includes('fb_dw/depthwise_kernel') && names.includes('fb_pw/kernel') && names.includes('fb_pw/bias'));
  t.notOk(names.includes('fb/kernel'), 'old weights are dropped');
  t.equal(new Set(names).size, names.length, 'weight names are unique');
  const again = await loadModel(out);
  t.equal(again.convs.find((c) => c.name === 'fb_dw')!.skipReason, 'depthwise convolution');
  t.equal(again.convs.find((c) => c.name === 'fb_pw')!.skipReason, '1x1 convolution (nothing to decompose)');
});

t.test('BatchNorm folding (Sequential and Functional) keeps the outputs', async (t) => {
  for (const [name, build, bn] of [
    ['sequential', sequentialModel, 'bn2'],
    ['functional', functionalModel, 'fbn'],
  ] as const) {
    const dir = await fixtureDir(name, build);
    const m = await loadModel(dir);
    const folded = m.foldBatchNorm();
    t.equal(folded.convs.filter((c) => c.bnAfter).length, 0, `${name}: no BatchNorm left after a conv`);
    t.equal(folded.convs.length, m.convs.length);
    const out = path.join(tmp, `${name}-folded`);
    await folded.save(out);
    const json = fs.readFileSync(path.join(out, 'model.json'), 'utf8');
    t.notOk(json.includes(`"${bn}"`), `${name}: the BatchNormalization layer is removed`);
    const x = seededValues(2 * m.inputShape.reduce((a, b) => a * b, 1), 7);
    const y0 = await tfjsOutputs(dir, x, m.inputShape, 2);
    const y1 = await tfjsOutputs(out, x, m.inputShape, 2);
    t.ok(relErr(y0, y1) < 1e-5, `${name}: outputs equal after folding (rel ${relErr(y0, y1).toExponential(2)})`);
    const decomposed = folded.apply(folded.convs.filter((c) => !c.skipReason).map((c) => svdReplacement(c, 'dac')));
    t.ok(relErr(y0, await outputs(decomposed, x, 2)) < 1e-4, `${name}: fold then decompose at full rank`);
  }
  const vgg = await loadModel(demoModel);
  const folded = vgg.foldBatchNorm();
  t.equal(folded.other.params, 1290, 'fashion-vgg: only the dense layer is left outside the convs');
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 8);
  t.ok(relErr(await outputs(vgg, x, 8), await outputs(folded, x, 8)) < 1e-5, 'fashion-vgg: folding keeps the logits');
});

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp));
  return sign | (exp << 10) | Math.round(mant / 8192);
}

t.test('quantized weights (uint8, uint16, float16) are read, and kept as they are when untouched', async (t) => {
  const dir = await fixtureDir('one-channel', oneChannelModel);
  const qdir = path.join(tmp, 'quantized');
  fs.mkdirSync(qdir, { recursive: true });
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const orig = await loadModel(dir);
  const raw = (orig as TfjsModel).artifacts();
  const data = new Float32Array(raw.weightData);
  const parts: Buffer[] = [];
  let offset = 0;
  const specs = raw.weightSpecs.map((spec) => {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const v = data.subarray(offset, offset + count);
    offset += count;
    const s = { ...spec };
    const min = Math.min(...v);
    const max = Math.max(...v);
    if (spec.name === 'k1/kernel' || spec.name === 'k2/kernel') {
      const bits = spec.name === 'k1/kernel' ? 8 : 16;
      const scale = (max - min) / (2 ** bits - 1);
      const buf = Buffer.alloc(count * (bits / 8));
      v.forEach((x, i) => (bits === 8 ? buf.writeUInt8(Math.round((x - min) / scale), i) : buf.writeUInt16LE(Math.round((x - min) / scale), 2 * i)));
      s.quantization = { dtype: bits === 8 ? 'uint8' : 'uint16', scale, min };
      parts.push(buf);
    } else {
      const buf = Buffer.alloc(count * 2);
      v.forEach((x, i) => buf.writeUInt16LE(toHalf(x), 2 * i));
      s.quantization = { dtype: 'float16' };
      parts.push(buf);
    }
    return s;
  });
  json.weightsManifest = [{ paths: ['q.bin'], weights: specs }];
  fs.writeFileSync(path.join(qdir, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(qdir, 'q.bin'), Buffer.concat(parts));

  const q = await loadModel(qdir);
  for (const [i, c] of q.convs.entries()) {
    const e = relativeError(orig.convs[i].weights, c.weights);
    t.ok(e > 0 && e < (c.name === 'k1' ? 1e-2 : 1e-3), `${c.name}: dequantized weights are close to the float ones (rel ${e.toExponential(2)})`);
    t.ok(relativeError(orig.convs[i].bias!, c.bias!) < 1e-3, `${c.name}: float16 bias decoded`);
  }
  const x = seededValues(2 * 13 * 13, 4);
  const yTf = await tfjsOutputs(qdir, x, q.inputShape, 2);
  t.ok(relErr(yTf, await outputs(q, x, 2)) < 1e-5, 'the runner matches TF.js decoding the same quantized file');

  const out = path.join(tmp, 'quantized-k2');
  await q.apply([exactReplacement(q.convs[1], 'channel')]).save(out);
  const written = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  const k1 = written.weightsManifest[0].weights.find((w: { name: string }) => w.name === 'k1/kernel');
  t.same(k1.quantization, specs[0].quantization, 'the untouched kernel keeps its quantization');
  t.equal(written.weightsManifest[0].weights.find((w: { name: string }) => w.name === 'k2_c1/kernel').dtype, 'float32');
  t.ok(relErr(yTf, await tfjsOutputs(out, x, q.inputShape, 2)) < 1e-4, 'the decomposed quantized model runs in TF.js and matches');
});

t.test('bad input gives clear errors', async (t) => {
  const good = await fixtureDir('one-channel', oneChannelModel);
  const variant = (name: string, edit: (dir: string) => void) => {
    const dir = path.join(tmp, `bad-${name}`);
    fs.cpSync(good, dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const jsonOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const writeJson = (dir: string, j: unknown) => fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
  const shard = (dir: string) => path.join(dir, jsonOf(dir).weightsManifest[0].paths[0]);
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['truncated-json', (d) => fs.writeFileSync(path.join(d, 'model.json'), fs.readFileSync(path.join(d, 'model.json')).subarray(0, 100)), /not valid JSON/],
    ['short-shard', (d) => fs.writeFileSync(shard(d), fs.readFileSync(shard(d)).subarray(0, 50)), /hold 50 bytes, the manifest needs \d+/],
    ['missing-shard', (d) => fs.rmSync(shard(d)), /cannot read weight shard/],
    ['escaping-path', (d) => { const j = jsonOf(d); j.weightsManifest[0].paths = ['../../etc/passwd']; writeJson(d, j); }, /escapes the model folder/],
    ['absolute-path', (d) => { const j = jsonOf(d); j.weightsManifest[0].paths = ['/etc/passwd']; writeJson(d, j); }, /must be relative/],
    ['nan-weight', (d) => { const b = fs.readFileSync(shard(d)); b.writeFloatLE(NaN, 8); fs.writeFileSync(shard(d), b); }, /layer k1, field k1\/kernel: value \[2\] is NaN/],
    ['inf-weight', (d) => { const b = fs.readFileSync(shard(d)); b.writeFloatLE(-Infinity, 0); fs.writeFileSync(shard(d), b); }, /is -Infinity/],
    // The last stored value of the second kernel (the check rides on its turn to OIHW, and names the stored index).
    ['inf-last-of-k2', (d) => {
      const specs: { name: string; shape: number[] }[] = jsonOf(d).weightsManifest[0].weights;
      const count = (s: { shape: number[] }) => s.shape.reduce((a, b) => a * b, 1);
      const k2 = specs.findIndex((s) => s.name === 'k2/kernel');
      const b = fs.readFileSync(shard(d));
      b.writeFloatLE(Infinity, 4 * (specs.slice(0, k2 + 1).reduce((a, s) => a + count(s), 0) - 1));
      fs.writeFileSync(shard(d), b);
    }, /layer k2, field k2\/kernel: value \[1295\] is Infinity/],
    ['graph-model', (d) => { const j = jsonOf(d); j.format = 'graph-model'; writeJson(d, j); }, /field format: modelTopology is a Keras config, not GraphDef nodes: a Layers model labelled 'graph-model'/],
    ['no-topology', (d) => { const j = jsonOf(d); delete j.modelTopology; writeJson(d, j); }, /no modelTopology/],
    ['unknown-layer', (d) => { const j = jsonOf(d); j.modelTopology.config.layers[2].class_name = 'MysteryLayer'; writeJson(d, j); }, /layer k2: cannot infer shapes through layer class MysteryLayer/],
    ['bad-shape', (d) => { const j = jsonOf(d); j.weightsManifest[0].weights[0].shape = [3, 3, 'x']; writeJson(d, j); }, /shape must be an array of non-negative integers/],
  ];
  for (const [name, edit, re] of cases) {
    const dir = variant(name, edit);
    await t.rejects(loadModel(dir), re, name);
  }
  await t.rejects(loadModel(path.join(tmp, 'does-not-exist')), /no such file/);
  const shardFile = fs.readdirSync(path.join(tmp, 'bad-truncated-json')).find((f) => f.endsWith('.bin'))!;
  await t.rejects(loadModel(path.join(tmp, 'bad-truncated-json', shardFile)), /unknown model format/);
});

t.test('Functional layer order: any listing order reads the same, a cycle is refused naming a layer on it', async (t) => {
  const good = await fixtureDir('functional', functionalModel);
  const variant = (name: string, edit: (layers: { name: string; inbound_nodes: unknown[] }[]) => void) => {
    const dir = path.join(tmp, `order-${name}`);
    fs.cpSync(good, dir, { recursive: true });
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    edit(j.modelTopology.config.layers);
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
    return dir;
  };
  const summary = (m: LoadedModel) =>
    m.convs.map((c) => `${c.name} ${c.c}->${c.n} ${c.inH}x${c.inW}->${c.outH}x${c.outW} bnBefore=${!!c.bnBefore}`).sort();
  const m = await loadModel(good);
  const reversed = await loadModel(variant('reversed', (ls) => ls.reverse()));
  t.same(summary(reversed), summary(m), 'the same convs, sizes and BatchNorm links');
  t.same(reversed.other, m.other);
  // fb now reads sum, which reads fbn, which reads fb: fd, fe, cat and fout only follow the cycle.
  const cyclic = variant('cycle', (ls) => {
    ls.reverse();
    ls.find((l) => l.name === 'fb')!.inbound_nodes = [[['sum', 0, 0, {}]]];
  });
  const err = await loadModel(cyclic).then(
    () => null,
    (e: unknown) => e as { code: string; context: Record<string, string>; message: string },
  );
  t.equal(err?.code, 'EGRAPH');
  t.ok(['fb', 'fbn', 'sum'].includes(err?.context.layer ?? ''), `names a layer on the cycle: ${err?.message}`);
  t.match(err?.message, /graph has a cycle through '(fb|fbn|sum)', '(fb|fbn|sum)', '(fb|fbn|sum)'$/);
});

t.test('apply and save: inputs untouched, bad replacements and outputs refused', async (t) => {
  const dir = await fixtureDir('one-channel', oneChannelModel);
  const m = await loadModel(dir);
  const before = Float32Array.from(m.convs[0].weights);
  const rep = svdReplacement(m.convs[0], 'dac', 2) as DacReplacement;
  const m2 = m.apply([rep]);
  t.same(m.convs[0].weights, before, 'the input model object is unchanged');
  t.equal(m.convs.length, 2);
  t.equal(m2.convs.length, 3);
  t.throws(() => m.apply([{ ...rep, name: 'nope' }]), /no conv named 'nope'/);
  t.throws(() => m.apply([rep, rep]), /replaced twice/);
  t.throws(() => m.apply([{ ...rep, depthwise: rep.depthwise.subarray(1) } as typeof rep]), /depthwise has \d+ values, expected \d+/);
  const nan = Float32Array.from(rep.pointwise);
  nan[3] = NaN;
  t.throws(() => m.apply([{ ...rep, pointwise: nan } as typeof rep]), /field pointwise: value \[3\] is NaN/);
  // Each array is checked as it is turned to HWIO (or alone: the bias, a DacConv2D's factors), to its last value.
  const last = (a: Float32Array, v: number) => Object.assign(Float32Array.from(a), { [a.length - 1]: v });
  const dwInf = { ...rep, depthwise: last(rep.depthwise, Infinity) };
  t.throws(() => m.apply([dwInf]), new RegExp(`layer k1, field depthwise: value \\[${rep.depthwise.length - 1}\\] is Infinity`));
  t.throws(() => (m as TfjsModel).withTfjsLayer('dac').apply([dwInf]), /field depthwise: value \[\d+\] is Infinity/, 'DacConv2D: depthwise checked');
  t.throws(() => m.apply([{ ...rep, bias: last(rep.bias!, NaN) }]), /layer k1, field bias: value \[15\] is NaN/);
  t.throws(() => (m as TfjsModel).withTfjsLayer('dac').apply([{ ...rep, bias: last(rep.bias!, NaN) }]), /field bias: value \[15\] is NaN/, 'DacConv2D: bias checked');
  for (const method of ['spatial', 'channel'] as const) {
    const r = svdReplacement(m.convs[0], method, 1) as SpatialReplacement | ChannelReplacement;
    const [a, b] = method === 'spatial' ? (['vertical', 'horizontal'] as const) : (['first', 'second'] as const);
    for (const field of [a, b]) {
      const arr = (r as unknown as Record<string, Float32Array>)[field];
      t.throws(() => m.apply([{ ...r, [field]: last(arr, -Infinity) } as LayerReplacement]), new RegExp(`field ${field}: value \\[${arr.length - 1}\\] is -Infinity`));
    }
  }
  const hash = hashTree(dir);
  await t.rejects(m2.save(dir), /refusing/, 'saving over the input folder is refused');
  await t.rejects(m2.save(path.dirname(dir)), /refusing/, 'saving over a folder containing the input is refused');
  await t.rejects(m2.save(path.join(dir, 'model.json')), /written to a folder/);
  t.equal(hashTree(dir), hash, 'the input files are unchanged');
  const foreign = path.join(tmp, 'foreign');
  fs.mkdirSync(foreign, { recursive: true });
  fs.writeFileSync(path.join(foreign, 'notes.txt'), 'keep me');
  await t.rejects(m2.save(foreign), /is a non-empty folder \(notes.txt\); refusing to replace it/);
  t.equal(fs.readFileSync(path.join(foreign, 'notes.txt'), 'utf8'), 'keep me');
  const out = path.join(tmp, 'replace-me');
  await m2.save(out);
  await m.save(out);
  t.equal((await loadModel(out)).convs.length, 2, 'an earlier output folder is replaced as a whole');
  t.same(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-') || f.includes('.old-')), [], 'no temp folders are left');
});

t.test('the pure-JS CPU backend gives the same outputs as the default one', async (t) => {
  const dir = await fixtureDir('functional', functionalModel);
  const m = await loadModel(dir);
  const x = seededValues(2 * m.inputShape.reduce((a, b) => a * b, 1), 12);
  const dflt = await createRunner(m);
  const y0 = await dflt.run(x, 2);
  dflt.dispose();
  const cpu = await createRunner(m, { tfjsBackend: 'cpu' });
  t.equal(cpu.engine, 'tfjs-cpu');
  const y1 = await cpu.run(x, 2);
  cpu.dispose();
  t.ok(relErr(y0, y1) < 1e-5);
  await loadTf(dflt.engine.replace('tfjs-', '') as 'wasm' | 'cpu' | 'tensorflow');
  await t.rejects(createRunner(m, { tfjsBackend: 'bogus' as 'cpu' }), /must be tensorflow, cpu or wasm/);
});

t.test('size limits: files over the limit are refused by their size, before they are read', async (t) => {
  const copy = (name: string): string => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(demoModel)) fs.copyFileSync(path.join(demoModel, f), path.join(dir, f));
    return dir;
  };
  const shardOf = (dir: string): string => path.join(dir, JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).weightsManifest[0].paths[0]);
  const refused = async (p: Promise<unknown>, code: string, field: RegExp, what: string) => {
    const err = await p.then(
      () => null,
      (e: { name: string; code: string; context: { model?: string; field?: string } }) => e,
    );
    t.match(err, { name: 'DacError', code }, what);
    t.match(err?.context.field, field, `${what}: names the field`);
    if (code !== 'EINVAL') t.ok(err?.context.model, `${what}: names the model`);
  };
  // A 3 GB shard, sparse: no disk or memory is used, so it can only pass if it is read.
  const huge = copy('size-huge');
  fs.truncateSync(shardOf(huge), 3 * 1024 ** 3);
  await refused(loadModel(huge), 'ETOOBIG', /weightsManifest/, 'a 3 GB shard under the default limit');
  // A small model under a smaller limit: model.json fits, the shard takes the total over.
  const small = copy('size-small');
  const shardBytes = fs.statSync(shardOf(small)).size;
  await refused(loadModel(small, { maxBytes: shardBytes }), 'ETOOBIG', /weightsManifest/, 'model.json + shard over the total');
  await refused(loadModel(small, { maxBytes: 100 }), 'ETOOBIG', /model\.json/, 'model.json itself over the limit');
  t.ok((await loadModel(small, { maxBytes: shardBytes + 1024 ** 2 })).convs.length > 0, 'loads within the limit');
  for (const bad of [0, -1, NaN, '5' as unknown as number]) await refused(loadModel(small, { maxBytes: bad }), 'EINVAL', /maxBytes/, `maxBytes ${String(bad)}`);
  // A shard that is not a regular file (a FIFO would block a plain read forever).
  const fifo = copy('size-fifo');
  fs.rmSync(shardOf(fifo));
  let made = true;
  try {
    execFileSync('mkfifo', [shardOf(fifo)]);
  } catch {
    made = false;
  }
  if (made) await refused(loadModel(fifo), 'EINVAL', /weightsManifest/, 'a FIFO as shard');
});

/** A copy of a saved model with every weight stored as float16 (TF.js quantization dtype float16). */
function toFloat16Copy(dir: string, model: LoadedModel, dest: string): void {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const raw = (model as TfjsModel).artifacts();
  const data = new Float32Array(raw.weightData);
  const parts: Buffer[] = [];
  let offset = 0;
  const specs = raw.weightSpecs.map((spec) => {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const buf = Buffer.alloc(count * 2);
    data.subarray(offset, offset + count).forEach((x, i) => buf.writeUInt16LE(toHalf(x), 2 * i));
    offset += count;
    parts.push(buf);
    return { ...spec, quantization: { dtype: 'float16' } };
  });
  json.weightsManifest = [{ paths: ['h.bin'], weights: specs }];
  fs.mkdirSync(dest, { recursive: true });
  fs.writeFileSync(path.join(dest, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dest, 'h.bin'), Buffer.concat(parts));
}

t.test('float16 manifests: decomposed in float32, factors written as float16; a permuted manifest shape is refused', async (t) => {
  const dir = await fixtureDir('functional', functionalModel);
  const hdir = path.join(tmp, 'half');
  toFloat16Copy(dir, await loadModel(dir), hdir);
  const h = await loadModel(hdir);
  t.equal(h.weightDtype, 'float16');
  const x = seededValues(2 * 8 * 7 * 2, 6);
  const y0 = await tfjsOutputs(hdir, x, h.inputShape, 2);
  const r = decomposeLoaded(h, { method: 'dac', ranks: Object.fromEntries(h.convs.map((c) => [c.name, Math.min(c.n, c.kh * c.kw)])) });
  t.equal(r.report.weightDtype, 'float16', 'the report says the weights are float16');
  t.ok(r.report.layers.every((l) => l.method !== 'keep'), 'every conv replaced at full rank');
  const out = path.join(tmp, 'half-out');
  await r.model.save(out);
  const written = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')).weightsManifest[0].weights as { name: string; quantization?: { dtype: string } }[];
  const added = written.filter((w) => /_(dw|pw)\//.test(w.name));
  t.ok(added.length >= 10 && added.every((w) => w.quantization?.dtype === 'float16'), `the ${added.length} new weights are float16`);
  const y = await tfjsOutputs(out, x, h.inputShape, 2);
  // Full rank is exact in float32; storing the factors in float16 rounds them (2^-11 relative each).
  t.ok(relErr(y0, y) < 5e-3, `full rank matches the float16 original within float16 rounding (rel ${relErr(y0, y).toExponential(2)})`);
  t.ok(relErr(y0, y) > 0, 'and really was rounded to float16');

  // Same element count, axes permuted: the kernel would be read scrambled.
  const pdir = path.join(tmp, 'permuted');
  fs.cpSync(dir, pdir, { recursive: true });
  const json = JSON.parse(fs.readFileSync(path.join(pdir, 'model.json'), 'utf8'));
  const spec = json.weightsManifest[0].weights.find((w: { name: string }) => w.name === 'fb/kernel');
  spec.shape = [3, 3, 6, 6].map((_, i, a) => a[[0, 1, 3, 2][i]]).reverse();
  fs.writeFileSync(path.join(pdir, 'model.json'), JSON.stringify(json));
  await t.rejects(loadModel(pdir), { code: 'ESHAPE', context: { layer: 'fb', field: 'fb/kernel' } }, 'a permuted kernel shape is refused by name');
});

t.test('nested models (Functional in Sequential in Functional) and a shared layer load, decompose and run', async (t) => {
  const dir = await fixtureDir('nested', nestedModel);
  const m = await loadModel(dir);
  t.same(m.convs.map((c) => c.name), ['stem', 'backbone_head', 'reduce', 'twice', 'head_conv'], 'every conv of the nested models, names made unique');
  t.match(m.convs.find((c) => c.name === 'twice')!.skipReason, /shared/, 'the shared conv is kept with a reason');
  t.ok(m.convs.find((c) => c.name === 'stem')!.bnAfter, 'a nested conv sees its BatchNorm');
  t.same(m.convs.map((c) => c.inputConv), [null, 'stem', null, null, null], 'the conv each reads through BN/ReLU (not through an Add or a shared layer)');
  const x = seededValues(3 * 10 * 9 * 3, 8);
  const y0 = await tfjsOutputs(dir, x, m.inputShape, 3);
  t.ok(relErr(y0, await outputs(m, x, 3)) < 1e-6, 'the flattened model computes what TF.js computes with the nested one');
  const out = path.join(tmp, 'nested-exact');
  await m.apply(m.convs.filter((c) => !c.skipReason).map((c) => exactReplacement(c, 'dac'))).save(out);
  t.ok(relErr(y0, await tfjsOutputs(out, x, m.inputShape, 3)) < 1e-5, 'exact replacements: the written model equals the original in TF.js');
  const r = decomposeLoaded(m, { method: 'auto', flopsSaved: 0.3 });
  const budget = path.join(tmp, 'nested-budget');
  await r.model.save(budget);
  const y = await tfjsOutputs(budget, x, m.inputShape, 3);
  t.equal(y.length, y0.length, 'the 30% model loads and runs in TF.js');
});

t.test('free input sizes: null H/W evaluated at the nominal size or a stated one, kept free in what is written', async (t) => {
  const dir = await fixtureDir('free-size', freeSizeModel);
  const m = await loadModel(dir);
  t.equal(m.freeInput, true);
  t.same(m.inputShape, [NOMINAL_FREE_SIZE, NOMINAL_FREE_SIZE, 3]);
  const res = m.convs.map((c) => [c.name, c.inH / NOMINAL_FREE_SIZE, c.outH / NOMINAL_FREE_SIZE]);
  t.same(res, [['head', 1, 1], ['down', 1, 0.5], ['body', 0.5, 0.5], ['mid', 0.5, 0.5], ['tail', 1, 1]], 'each layer at its resolution relative to the input');
  const stated = await loadModel(dir, { inputShape: [20, 12] });
  t.equal(stated.freeInput, false);
  t.same(stated.convs.map((c) => [c.inH, c.inW, c.outH, c.outW]), [[20, 12, 20, 12], [20, 12, 10, 6], [10, 6, 10, 6], [10, 6, 10, 6], [20, 12, 20, 12]]);
  await t.rejects(loadModel(dir, { inputShape: [20, 12, 4] }), { code: 'EINVAL', context: { field: 'inputShape' } }, 'a stated channel count must agree');
  await t.rejects(loadModel(dir, { inputShape: [0, 12] }), { code: 'EINVAL', context: { field: 'inputShape' } });

  // Per input pixel, the cost (and so every ratio and plan) is the same at any size.
  const r = decomposeLoaded(m, { method: 'auto', flopsSaved: 0.3 });
  t.equal(r.report.freeInput, true);
  t.same(r.report.inputShape, [NOMINAL_FREE_SIZE, NOMINAL_FREE_SIZE, 3]);
  const big = await loadModel(dir, { inputShape: [64, 64] });
  const rBig = decomposeLoaded(big, { method: 'auto', flopsSaved: 0.3 });
  t.equal(r.report.flopsPerInputPixel!.before, rBig.report.flops.before / (64 * 64), 'MACs per input pixel = MACs at 64x64 / 64^2');
  t.equal(r.report.flopsPerInputPixel!.after, rBig.report.flops.after / (64 * 64));
  t.same(r.plan.layers.map((l) => l.method + l.rank), rBig.plan.layers.map((l) => l.method + l.rank), 'the same plan at either size');

  for (const [label, result] of [
    ['full rank', decomposeLoaded(m, { method: 'dac', ranks: Object.fromEntries(m.convs.map((c) => [c.name, Math.min(c.n, c.kh * c.kw)])) })],
    ['30% saved', r],
  ] as const) {
    const out = path.join(tmp, `free-${label.replace(/\W+/g, '-')}`);
    await result.model.save(out);
    const written = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    t.same(written.modelTopology.config.layers[0].config.batch_input_shape, [null, null, null, 3], `${label}: the input stays free`);
    for (const [h, w] of [
      [16, 24],
      [36, 20],
    ]) {
      const x = seededValues(2 * h * w * 3, h + w);
      const y0 = await tfjsOutputs(dir, x, [h, w, 3], 2);
      const y = await tfjsOutputs(out, x, [h, w, 3], 2);
      t.equal(y.length, 2 * h * w * 3, `${label}: runs at ${h}x${w}`);
      if (label === 'full rank') t.ok(relErr(y0, y) < 1e-4, `full rank equals the original at ${h}x${w} (rel ${relErr(y0, y).toExponential(2)})`);
    }
  }
});

t.test('CLI --input-shape: inspect and decompose say which input size costs are counted at', async (t) => {
  const dir = await fixtureDir('free-size', freeSizeModel);
  const dac = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8' });
  const free = dac('inspect', dir, '--json');
  t.equal(free.status, 0, free.stderr);
  const ins = JSON.parse(free.stdout);
  t.equal(ins.freeInput, true);
  t.equal(ins.totals.macsPerInputPixel, ins.totals.macs / NOMINAL_FREE_SIZE ** 2, 'MACs per input pixel');
  const text = dac('inspect', dir);
  t.match(text.stdout, /input free: HxWx3 .*MACs per input pixel/, 'the table says costs are per input pixel');
  const stated = JSON.parse(dac('inspect', dir, '--input-shape', '20x12', '--json').stdout);
  t.same([stated.freeInput, stated.inputShape], [false, [20, 12, 3]]);
  const out = path.join(tmp, 'cli-free');
  const d = dac('decompose', dir, '-o', out, '--flops-saved', '0.3', '--input-shape', '40x24x3', '-q');
  t.equal(d.status, 0, d.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  t.same([report.inputShape, report.freeInput, report.flopsPerInputPixel], [[40, 24, 3], false, undefined], 'report.json names the stated size');
  const cmp = dac('compare', dir, out, '--inputs', '1');
  t.equal(cmp.status, 0, cmp.stderr);
  t.match(cmp.stdout, /^input 64x64x3 \(the models leave the size free/, 'compare runs free-size models at a small size and says so');
  // zoo takes it with the decompose settings (hashed into its resume markers, passed to loadModel).
  t.same(settingsFrom({ 'flops-saved': '0.3', 'input-shape': '20x12' }, 'zoo').inputShape, [20, 12]);
  t.equal('inputShape' in settingsFrom({ 'flops-saved': '0.3' }, 'zoo'), false, 'absent when not given');
  const bad = dac('inspect', dir, '--input-shape', '20');
  t.equal(bad.status, 2, 'a malformed --input-shape is a usage error');
  t.match(bad.stderr, /--input-shape must be HxW or HxWxC/);
});

t.test('shards: weights straddling 4 MB shards are written as pieces of their own bytes and read back whole', async (t) => {
  const { artifactFiles, readArtifacts, SHARD_BYTES, weightFloats } = await import('../src/formats/tfjs/manifest.js');
  const sizes = [3_000_000, 7, 1_500_000, 1_000_000];
  const weights = sizes.map((n, i) => ({ spec: { name: `w${i}`, shape: [n], dtype: 'float32' }, bytes: new Uint8Array(seededValues(n, i + 1).buffer) }));
  const files = artifactFiles({ format: 'layers-model', modelTopology: {} }, weights);
  const dir = path.join(tmp, 'straddle');
  fs.mkdirSync(dir, { recursive: true });
  const all = new Set(weights.map((w) => w.bytes.buffer));
  for (const [name, data] of files) {
    if (typeof data === 'string') fs.writeFileSync(path.join(dir, name), data);
    else {
      const pieces = [...data.chunks()];
      t.ok(pieces.every((p) => all.has(p.buffer)), `${name}: pieces of the weights' own buffers`);
      const joined = Buffer.concat(pieces);
      t.ok(joined.length <= SHARD_BYTES, `${name} holds at most SHARD_BYTES`);
      fs.writeFileSync(path.join(dir, name), joined);
    }
  }
  t.equal(files.size, 1 + Math.ceil((4 * sizes.reduce((a, b) => a + b, 0)) / SHARD_BYTES), 'model.json and the shards');
  const back = readArtifacts(path.join(dir, 'model.json'));
  t.same(
    back.weights.map((w) => w.spec.name),
    weights.map((w) => w.spec.name),
  );
  // Compared as bytes: tap's deep comparison of millions of floats takes a minute.
  back.weights.forEach((w, i) => t.ok(Buffer.from(weightFloats(w).buffer, weightFloats(w).byteOffset, w.bytes.length).equals(weights[i].bytes), `${w.spec.name} read back whole`));
});

t.test('streamed writing: the folder written holds what outputFiles() says, shards named by their content', async (t) => {
  const { prepareWrite, writeDecomposed } = await import('../src/write.js');
  const m = await loadModel(demoModel);
  const out = m.apply([svdReplacement(m.convs[1], 'dac', 2)]) as TfjsModel;
  const target = path.join(tmp, 'streamed-folder');
  const written = await writeDecomposed(prepareWrite({ input: demoModel, output: target, kind: 'folder', report: null }), out, null);
  const want = out.outputFiles();
  t.same(fs.readdirSync(target).filter((n) => !n.startsWith('.')).sort(), [...want.keys()].sort(), 'the same file names');
  for (const [name, data] of want) t.ok(fs.readFileSync(path.join(target, name)).equals(Buffer.from(data)), `${name}: the same bytes`);
  t.equal(written.files.length, want.size, 'every file reported, with its hash');
});

t.test('held kernels: read, the other weights keep no view of the shards; kept weights are written back bit-exact', async (t) => {
  const { readArtifacts, HeldKernel } = await import('../src/formats/tfjs/manifest.js');
  const dir = await fixtureDir('sequential', sequentialModel);
  const m = (await loadModel(dir)) as TfjsModel;
  const weights = (m as unknown as { weights: import('../src/formats/tfjs/manifest.js').WeightEntry[] }).weights;
  const held = weights.filter((w) => w instanceof HeldKernel).map((w) => w.spec.name);
  t.same(held, ['c1/kernel', 'c2/kernel', 'c3/kernel', 'dw4/depthwise_kernel', 'c5/kernel', 'c6/kernel'], 'every float32 conv kernel, depthwise too, is held as OIHW values');
  t.ok(
    weights.every((w) => w instanceof HeldKernel || w.bytes.byteLength === w.bytes.buffer.byteLength),
    'the other weights are copied out of the shard buffer',
  );
  const out = path.join(tmp, 'held-kept');
  await m.apply([svdReplacement(m.convs[0], 'dac', 2)]).save(out);
  const before = new Map(readArtifacts(path.join(dir, 'model.json')).weights.map((w) => [w.spec.name, w.bytes]));
  const after = readArtifacts(path.join(out, 'model.json')).weights.filter((w) => before.has(w.spec.name));
  t.same(after.map((w) => w.spec.name), [...before.keys()].filter((n) => !n.startsWith('c1/')), 'every weight but the replaced conv\'s is kept');
  for (const w of after) t.ok(Buffer.from(w.bytes).equals(before.get(w.spec.name)!), `${w.spec.name}: the bytes read`);
});
