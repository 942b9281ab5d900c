// ONNX models as exporters write them: constants behind nodes, shared
// weights, shapes through Split/Slice/Shape chains/Pad/ceil-mode pooling/
// Resize, free input sizes, float16 and float64 weights, ops shape inference
// does not cover. Every written file is run in onnxruntime-node.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decomposeLoaded } from '../src/decompose-model.js';
import { loadModel, parseOnnx } from '../src/formats/index.js';
import { NOMINAL_FREE_SIZE, type LoadedModel } from '../src/formats/model.js';
import { create, DataType, decodeModel, encodeModel, toNumber, type ModelProto, type TensorProto } from '../src/formats/onnx/schema.js';
import { inferShapes } from '../src/formats/onnx/shapes.js';
import { floatToHalf, roundToHalf } from '../src/formats/float16.js';
import { tensorDims, typedTensor } from '../src/formats/onnx/tensors.js';
import type { Method } from '../src/model/types.js';
import { createRunner } from '../src/runtime/index.js';
import { svdReplacement } from './fixtures/decompose.js';
import { exactReplacement } from './fixtures/exact.js';
import { dynamicFp16Model, exporterModel, uncoveredOpModel } from './fixtures/onnx-exporter.js';
import { relErr, seededValues, tempDir } from './fixtures/util.js';

const METHODS: Method[] = ['dac', 'spatial', 'channel'];
const tmp = tempDir('onnx-exporter');

function save(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, `${name}.onnx`);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Every output of a file (or bytes) in onnxruntime for NCHW input x: name -> { dims, data }. */
async function ortRun(model: string | Uint8Array, x: Float32Array, dims: number[]) {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, dims) });
    const first = out[session.outputNames[0]];
    return { y: Float32Array.from(first.data as Float32Array), dims: first.dims, all: out };
  } finally {
    await session.release();
  }
}

/** A dim as written: its value, its dim_param, or '?' when it has neither. */
const dimOf = (d: { dim_value?: unknown; dim_param?: string }) =>
  Object.prototype.hasOwnProperty.call(d, 'dim_value') ? toNumber(d.dim_value as number) : d.dim_param ? d.dim_param : '?';

const nodeOutputsUsed = (g: NonNullable<ModelProto['graph']>) => {
  const used = new Set([...g.node.flatMap((n) => n.input), ...g.output.map((o) => o.name)]);
  return g.node.filter((n) => !n.output.some((o) => used.has(o))).map((n) => n.name);
};

t.test('float16 conversion: exact on every half value, ties to even, overflow to infinity', async (t) => {
  let bad = 0;
  for (let h = 0; h < 0x10000; h++) {
    const v = roundToHalf(halfValue(h));
    if (Number.isNaN(v) ? (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0 : floatToHalf(v) !== h && !(v === 0 && (h & 0x7fff) === 0)) bad++;
  }
  t.equal(bad, 0, 'float16 -> float32 -> float16 is the identity');
  t.equal(floatToHalf(1 + 2 ** -11), floatToHalf(1), 'a tie rounds to the even neighbour (down)');
  t.equal(floatToHalf(1 + 3 * 2 ** -11), floatToHalf(1 + 2 ** -9), 'a tie rounds to the even neighbour (up)');
  t.equal(floatToHalf(65520), 0x7c00, 'beyond the largest half: infinity');
  t.equal(floatToHalf(-(2 ** -25) * 1.5), 0x8001, 'subnormals round too');
});

/** The value of half bits h, independently of the code under test. */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

t.test('exporter-style graph: constants behind nodes, shared weights, Split/Slice, shuffle, Pad, ceil pooling, Resize', async (t) => {
  const file = save('exporter', exporterModel());
  const m = await loadModel(file);
  const by = new Map(m.convs.map((c) => [c.name, c]));
  t.same(
    m.convs.filter((c) => !c.skipReason).map((c) => c.name),
    ['conv1', 'convS', 'convT', 'convR', 'conv4', 'conv5'],
    'every conv is decomposable: weights via Identity, Reshape, Cast, Unsqueeze; biases via Constant, Squeeze',
  );
  t.same(m.notes, []);
  t.ok(by.get('conv1')!.bias, 'a bias from a Constant node is read');
  t.same(Array.from(by.get('convS')!.weights), Array.from(by.get('convT')!.weights), 'the shared weight is read for both convs');
  t.not(by.get('convS')!.weights, by.get('convT')!.weights, 'each conv has its own copy, safe to edit');
  t.not(by.get('convS')!.bias, by.get('convT')!.bias);
  t.same([by.get('conv4')!.inH, by.get('conv4')!.outH], [14, 12], 'explicit Pad and the shuffle are sized');
  t.same([by.get('conv5')!.inH, by.get('conv5')!.inW, by.get('conv5')!.kh, by.get('conv5')!.kw], [12, 12, 3, 1], 'ceil-mode pooling drops the window in the padding; Resize x2');
  t.equal(m.other.params, 3 * 5 + 3 + 2 * 4, 'other parameters: the Gemm and the BatchNorm, no conv weight twice, no Resize scales');

  const x = seededValues(2 * 3 * 12 * 12, 5);
  const y0 = await ortRun(file, x, [2, 3, 12, 12]);
  const runner = await createRunner(m);
  const nhwc = new Float32Array(x.length);
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let i = 0; i < 144; i++) nhwc[(b * 144 + i) * 3 + c] = x[(b * 3 + c) * 144 + i];
  t.ok(relErr(y0.y, await runner.run(nhwc, 2)) < 1e-6, 'the runner agrees with onnxruntime');
  runner.dispose();

  for (const method of METHODS) {
    for (const [kind, make] of [
      ['exact', exactReplacement],
      ['svd', svdReplacement],
    ] as const) {
      const out = path.join(tmp, `exporter-${method}-${kind}.onnx`);
      await m.apply(m.convs.map((c) => make(c, method))).save(out);
      const e = relErr(y0.y, (await ortRun(out, x, [2, 3, 12, 12])).y);
      t.ok(e < 1e-4, `${method} ${kind}, all convs: outputs equal (rel ${e.toExponential(2)})`);
      const g = decodeModel(fs.readFileSync(out)).graph!;
      t.same(nodeOutputsUsed(g), [], `${method} ${kind}: no dead nodes left (the Identity/Reshape/Cast/Unsqueeze of replaced weights go)`);
      if (kind === 'svd') {
        const mid = g.value_info.find((v) => v.name === `conv4.out_${method}`);
        const width = { dac: 12 * 6, spatial: 6 * 3, channel: 6 }[method]; // full ranks of a 3x3 conv 12 -> 6
        const spatialDims = method === 'spatial' ? [12, 14] : [12, 12];
        t.same(mid?.type?.tensor_type?.shape?.dim.map(dimOf), ['N', width, ...spatialDims], `${method}: the added tensor's value_info, fixed sizes`);
      }
    }
  }

  const original = decodeModel(fs.readFileSync(file)).graph!.initializer.find((i) => i.name === 'shared.w')!;
  for (const names of [['convS'], ['convT'], ['convS', 'convT']]) {
    const out = path.join(tmp, `exporter-shared-${names.join('-')}.onnx`);
    await m.apply(names.map((n) => svdReplacement(by.get(n)!, 'dac'))).save(out);
    const e = relErr(y0.y, (await ortRun(out, x, [2, 3, 12, 12])).y);
    t.ok(e < 1e-4, `shared weight, ${names.join(' and ')} replaced: outputs equal (rel ${e.toExponential(2)})`);
    const g = decodeModel(fs.readFileSync(out)).graph!;
    const shared = g.initializer.find((i) => i.name === 'shared.w');
    if (names.length === 1) t.same(Buffer.from(shared!.raw_data!), Buffer.from(original.raw_data!), 'the shared initializer is kept unchanged for the other conv');
    else t.notOk(shared, 'the shared initializer goes when no conv reads it');
  }

  const folded = m.foldBatchNorm();
  const out = path.join(tmp, 'exporter-folded.onnx');
  await folded.save(out);
  t.notOk(decodeModel(fs.readFileSync(out)).graph!.node.some((n) => n.op_type === 'BatchNormalization'), 'the BatchNorm after convT is folded');
  t.same(Array.from(folded.convs.find((c) => c.name === 'convS')!.weights), Array.from(by.get('convS')!.weights), 'convS keeps the shared weight');
  const e = relErr(y0.y, (await ortRun(out, x, [2, 3, 12, 12])).y);
  t.ok(e < 1e-5, `folding into one of two convs sharing a weight keeps the outputs (rel ${e.toExponential(2)})`);
});

t.test('shape inference agrees with onnxruntime on every tensor', async (t) => {
  const cases: [string, Uint8Array, number[]][] = [
    ['exporter', exporterModel(), [1, 3, 12, 12]],
    ['dynamic-fp16', dynamicFp16Model(), [1, 3, 21, 26]],
    ['uncovered-declared', uncoveredOpModel(true), [1, 2, 10, 9]],
  ];
  for (const [name, bytes, nchw] of cases) {
    const proto = decodeModel(bytes);
    const g = proto.graph!;
    const inferred = inferShapes({
      graph: g,
      initializers: new Map(g.initializer.map((i: TensorProto) => [i.name!, i])),
      ctx: {},
      inputs: new Map([['x', nchw]]),
    });
    for (const n of g.node) for (const o of n.output) if (o && !g.output.some((v) => v.name === o)) g.output.push(create('ValueInfoProto', { name: o }));
    const { all } = await ortRun(encodeModel(proto), seededValues(nchw.reduce((a, b) => a * b, 1), 2), nchw);
    const wrong: string[] = [];
    let valued = 0;
    for (const [tensor, value] of Object.entries(all)) {
      const ours = inferred.shapes.get(tensor);
      if (!ours || ours.join('x') !== value.dims.join('x')) wrong.push(`${tensor}: ours ${ours?.join('x')}, onnxruntime ${value.dims.join('x')}`);
      const v = inferred.values.get(tensor);
      if (v) {
        valued++;
        const theirs = Array.from(value.data as ArrayLike<number | bigint>, Number);
        if (v.data.some((d, i) => Math.abs(d - theirs[i]) > 1e-6 * Math.max(1, Math.abs(d)))) wrong.push(`${tensor}: values ${v.data} vs ${theirs}`);
      }
    }
    t.same(wrong, [], `${name}: ${Object.keys(all).length} tensors, shapes and ${valued} evaluated values agree`);
  }
});

t.test('free height/width: nominal size, stated sizes, free dims kept, float16 factors, two input sizes', async (t) => {
  const file = save('dynamic', dynamicFp16Model());
  const nominal = await loadModel(file);
  t.equal(nominal.freeInput, true);
  t.same(nominal.inputShape, [NOMINAL_FREE_SIZE, NOMINAL_FREE_SIZE, 3]);
  t.same(
    nominal.convs.map((c) => [c.name, c.inH, c.outH]),
    [
      ['convA', 1024, 1024],
      ['convB', 1024, 512],
      ['convC', 512, 512],
      ['convD', 1024, 1024],
    ],
    'shapes at the nominal size, through the Resize to the computed input size',
  );
  t.equal(nominal.weightDtype, 'float16');
  t.match(
    nominal.notes,
    [/stored as float16 and cast to float32 in the graph: decomposed in float32, the factors are written as float16 behind the same Cast/, /stored and computed in float16/],
    'notes say which weights are float16 and how they are written',
  );

  const m = await loadModel(file, { inputShape: [21, 26] });
  t.equal(m.freeInput, false);
  t.same(m.convs.map((c) => [c.inH, c.inW, c.outH, c.outW]), [[21, 26, 21, 26], [21, 26, 11, 13], [11, 13, 11, 13], [21, 26, 21, 26]]);
  await t.rejects(loadModel(save('exporter', exporterModel()), { inputShape: [16, 16] }), /inputShape 16x16 disagrees with the model's input 12x12x3/);
  await t.rejects(loadModel(file, { inputShape: [0, 5] }), /inputShape must be \[H, W\] or \[H, W, C\]/);
  await t.rejects(loadModel(file, { inputShape: [8, 8, 4] }), /disagrees/);

  const full = path.join(tmp, 'dynamic-full.onnx');
  await nominal.apply(nominal.convs.map((c) => svdReplacement(c, 'dac'))).save(full);
  const g = decodeModel(fs.readFileSync(full)).graph!;
  const dims = (v: (typeof g.input)[number]) => v.type!.tensor_type!.shape!.dim.map(dimOf);
  t.same(dims(g.input[0]), ['N', 3, 'H', 'W'], 'the written input keeps its free dims');
  const added = g.node.filter((n) => /_dac$|_cast$/.test(n.output[0]));
  t.equal(added.length, 4 + 3 * 3, 'four intermediate tensors, three Casts per float-stored conv');
  const infos = new Map(g.value_info.map((v) => [v.name, v]));
  const missing = added.filter((n) => !infos.has(n.output[0])).map((n) => n.output[0]);
  t.same(missing, [], 'every tensor the writer adds has value_info');
  const mid = infos.get('convB.out_dac')!.type!.tensor_type!;
  t.equal(mid.elem_type, DataType.FLOAT, 'an intermediate tensor has the conv\'s type');
  t.same(mid.shape!.dim.map(dimOf), ['N', 8 * 8, 'Hb', 'Wb'], 'channels fixed, height/width as symbolic as the conv output declares them');
  t.same(infos.get('convA.out_dac')!.type!.tensor_type!.shape!.dim.map(dimOf), ['N', 3 * 8, '?', '?'], 'else left free');
  t.equal(infos.get('convC.out_dac')!.type!.tensor_type!.elem_type, DataType.FLOAT16, 'inside the float16 region: float16');
  const newWeights = g.initializer.filter((i) => /_(dw|pw)_weight|_bias$/.test(i.name!));
  t.ok(newWeights.length === 12 && newWeights.every((i) => i.data_type === DataType.FLOAT16), 'all factors are stored as float16');

  const again = await loadModel(full);
  t.equal(again.convs.length, 8, 'the written model loads again at the nominal size');
  for (const [h, w] of [
    [21, 26],
    [40, 17],
  ]) {
    const x = seededValues(2 * 3 * h * w, h);
    const y0 = await ortRun(file, x, [2, 3, h, w]);
    const y1 = await ortRun(full, x, [2, 3, h, w]);
    t.same(y1.dims, [2, 4, h, w]);
    const e = relErr(y0.y, y1.y);
    t.ok(e < 2e-3, `${h}x${w} full rank: equal within float16 rounding (rel ${e.toExponential(2)})`);
  }

  // Decomposed twice: the channel method leaves a KxK conv, which the second pass decomposes again.
  const once = path.join(tmp, 'dynamic-channel.onnx');
  await nominal.apply(nominal.convs.map((c) => svdReplacement(c, 'channel'))).save(once);
  const reloaded = await loadModel(once);
  const twice = path.join(tmp, 'dynamic-channel-dac.onnx');
  const kxk = reloaded.convs.filter((c) => !c.skipReason);
  t.equal(kxk.length, 4, 'the KxK stages of the first pass are decomposable again');
  await reloaded.apply(kxk.map((c) => svdReplacement(c, 'dac'))).save(twice);
  const x = seededValues(3 * 16 * 20, 9);
  const e = relErr((await ortRun(file, x, [1, 3, 16, 20])).y, (await ortRun(twice, x, [1, 3, 16, 20])).y);
  t.ok(e < 2e-3, `decomposed twice: equal within float16 rounding (rel ${e.toExponential(2)})`);

  const res = decomposeLoaded(nominal, { method: 'dac', flopsSaved: 0.3 });
  t.equal(res.warnings.filter((w) => /float16/.test(w)).length, 2, 'decompose says so, once per kind');
  const budget = path.join(tmp, 'dynamic-budget.onnx');
  await res.model.save(budget);
  for (const [h, w] of [
    [24, 24],
    [13, 31],
  ]) {
    const y = await ortRun(budget, seededValues(3 * h * w, 4), [1, 3, h, w]);
    t.ok(y.dims.join('x') === `1x4x${h}x${w}` && y.y.every(Number.isFinite), `the 30% model runs at ${h}x${w}`);
  }
});

t.test('float64 weights, an op shape inference does not cover, value_info', async (t) => {
  const file = save('uncovered', uncoveredOpModel(false));
  const m = await loadModel(file);
  const reason = /^input size unknown \(shape inference stops at the CumSum node cum: .*\); its MACs are counted as for a 1x1 output$/;
  t.match(
    m.convs.map((c) => [c.name, c.skipReason, c.outH, c.outW]),
    [['conv1', null, 10, 9], ['conv2', reason, 1, 1]],
    'the conv after the uncovered op is kept, with the reason',
  );
  t.match(m.notes, [/^conv conv2 is kept as is: input size unknown/, /float64/], 'and the notes say so');
  t.equal(m.weightDtype, 'float32+float64', 'conv1 stores float64, conv2 float32');
  const out = path.join(tmp, 'uncovered-dac.onnx');
  const res = decomposeLoaded(m, { method: 'dac', rank: 2 });
  t.match(res.warnings, [/conv conv2 is kept as is/, /float64/], 'decompose warns about both');
  t.same(res.plan.layers.map((l) => l.method), ['dac', 'keep']);
  await m.apply([svdReplacement(m.convs[0], 'dac')]).save(out);
  const x = seededValues(3 * 2 * 10 * 9, 6);
  const e = relErr((await ortRun(file, x, [3, 2, 10, 9])).y, (await ortRun(out, x, [3, 2, 10, 9])).y);
  t.ok(e < 1e-5, `the model loads, its other conv is decomposed exactly (rel ${e.toExponential(2)})`);
  const g = decodeModel(fs.readFileSync(out)).graph!;
  t.ok(g.initializer.filter((i) => /conv1_/.test(i.name!)).every((i) => i.data_type === DataType.DOUBLE), 'factors stored as float64, behind Casts');

  const declared = await loadModel(save('uncovered-declared', uncoveredOpModel(true)));
  t.same(declared.convs.map((c) => [c.name, c.inH, c.inW, c.outH, c.outW]), [['conv1', 10, 9, 10, 9], ['conv2', 10, 9, 8, 7]], 'value_info sizes the conv after it');
});

t.test('a conv computing in float16 or float64 gets factors of that type', async (t) => {
  const m = parseOnnx(dynamicFp16Model(), 'dyn', { inputShape: [8, 8] });
  const convC = m.convs.find((c) => c.name === 'convC')!;
  const rep = svdReplacement(convC, 'dac');
  const g = decodeModel(m.apply([rep]).bytes()).graph!;
  const dw = g.initializer.find((i) => i.name === 'convC_dw_weight')!;
  t.equal(dw.data_type, DataType.FLOAT16);
  t.same(tensorDims(dw), [8 * 8, 1, 3, 3], 'rank min(n, kh*kw) = 8 per input channel');
  const expected = typedTensor('x', tensorDims(dw), (rep as { depthwise: Float32Array }).depthwise, DataType.FLOAT16);
  t.same(Buffer.from(dw.raw_data!), Buffer.from(expected.raw_data!), 'the depthwise factor, rounded to float16');
  t.notOk(g.node.some((n) => n.input.includes('convC_dw_weight') && n.op_type === 'Cast'), 'no Cast: the conv reads float16 directly');
});

t.test('two initializers of one name are refused by name', async (t) => {
  const proto = decodeModel(exporterModel());
  const dup = proto.graph!.initializer.find((i) => i.name === 'shared.w')!;
  proto.graph!.initializer.push(typedTensor('shared.w', tensorDims(dup), seededValues(144, 3), DataType.FLOAT));
  await t.rejects(loadModel(save('duplicate', encodeModel(proto))), { code: 'EFORMAT', message: /two initializers are named shared.w/ });
});

t.test('free sizes in every form: dim_param, dims with no value, no shape at all', async (t) => {
  const base = decodeModel(dynamicFp16Model());
  const variants: [string, (p: ModelProto) => void][] = [
    ['dim_param', () => undefined],
    ['missing dims', (p) => p.graph!.input[0].type!.tensor_type!.shape!.dim.forEach((d, i) => i !== 1 && (delete d.dim_param, delete d.dim_value))],
    ['no shape', (p) => delete p.graph!.input[0].type!.tensor_type!.shape],
  ];
  for (const [name, edit] of variants) {
    const p = decodeModel(encodeModel(base));
    edit(p);
    const m: LoadedModel = parseOnnx(encodeModel(p), name);
    t.same([m.freeInput, ...m.inputShape], [true, 1024, 1024, 3], `${name}: free, evaluated at the nominal size`);
  }
});
