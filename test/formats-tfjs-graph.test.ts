// TF.js graph models end to end: reading hand-built GraphDefs (fused ops,
// every padding mode, dilation, depthwise, quantized and shared weights, an
// op without a shape rule, free input sizes), replacing convs by every
// method, writing, and loading the written files into stock
// tf.loadGraphModel, bypassing the package's own reader.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { convCost } from '../src/cost.js';
import { decomposeLoaded } from '../src/decompose-model.js';
import { GraphModel, loadModel, TfjsModel, type LoadedModel } from '../src/formats/index.js';
import { NOMINAL_FREE_SIZE } from '../src/formats/model.js';
import { hwioToOihw } from '../src/geometry.js';
import { parseGraph, protoDims } from '../src/formats/tfjs-graph/graph.js';
import { propagateShapes } from '../src/formats/tfjs-graph/shapes.js';
import { reconstructWeights, relativeError } from '../src/model/reconstruct.js';
import { mulberry32 } from '../src/random.js';
import type { DacReplacement, Method } from '../src/model/types.js';
import { createRunner, loadTf, nhwcToNchw } from '../src/runtime/index.js';
import { svdReplacement } from './fixtures/decompose.js';
import { exactReplacement } from './fixtures/exact.js';
import { freeGraph, fusedGraph, GraphBuilder, nchwGraph, sharedGraph, transposedGraph } from './fixtures/graph-models.js';
import { oneChannelModel, saveModel } from './fixtures/tfjs-models.js';
import { GraphBuilder as OnnxBuilder } from './fixtures/onnx-models.js';
import { hashTree, relErr, root, seededValues, tempDir } from './fixtures/util.js';
import { encodeModel } from '../src/formats/onnx/schema.js';
import { intsAttr } from '../src/formats/onnx/tensors.js';

const METHODS: Method[] = ['dac', 'spatial', 'channel'];
const tmp = tempDir('tfjs-graph');
const fixture = (name: string, build: (dir: string) => string) => {
  const dir = path.join(tmp, name);
  return fs.existsSync(dir) ? dir : build(dir);
};

type Tensor = import('@tensorflow/tfjs').Tensor;

/** Every output of a saved folder run by stock tf.loadGraphModel on files read here, not by the package. */
async function stockOutputs(dir: string, x: Float32Array, shape: number[]): Promise<Float32Array[]> {
  const { tf } = await loadTf();
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  const data = Buffer.concat(json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const net = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
      format: json.format,
      signature: json.signature,
      userDefinedMetadata: json.userDefinedMetadata,
    }),
  );
  const input = tf.tensor(x, shape);
  const ys = net.execute(input, net.outputNodes) as Tensor | Tensor[];
  const list = Array.isArray(ys) ? ys : [ys];
  const out = await Promise.all(list.map(async (y) => Float32Array.from(await y.data())));
  tf.dispose([input, ...list]);
  net.dispose();
  return out;
}

async function runnerOutputs(model: LoadedModel, x: Float32Array, batch: number): Promise<Float32Array> {
  const r = await createRunner(model);
  try {
    return await r.run(x, batch);
  } finally {
    r.dispose();
  }
}

const batchOf = (m: LoadedModel, batch: number) => [batch, ...m.inputShape];
const inputOf = (m: LoadedModel, batch: number, seed = 5) => seededValues(batch * m.inputShape.reduce((a, b) => a * b, 1), seed);

t.test('fused ops, paddings, strides, dilation, depthwise: what the reader sees', async (t) => {
  const dir = fixture('fused', fusedGraph);
  const m = await loadModel(dir);
  t.ok(m instanceof GraphModel);
  t.equal(m.format, 'tfjs-graph');
  t.same(m.inputShape, [12, 10, 3]);
  t.equal(m.freeInput, false);
  t.equal(m.inputLayout, 'NHWC');
  t.same(m.convs.map((c) => c.name), ['c1', 'c2', 'dw', 'c3', 'c4', 'c5', 'c6', 'c7'], 'every conv, in topological order');
  const rows = m.convs.map((c) => [c.name, `${c.c}->${c.n}`, `${c.kh}x${c.kw}`, c.groups, c.strides.join(), c.dilations.join(), c.pads.join(), `${c.inH}x${c.inW}->${c.outH}x${c.outW}`, c.activation]);
  t.same(rows, [
    ['c1', '3->8', '3x3', 1, '1,1', '1,1', '1,1,1,1', '12x10->12x10', 'relu'],
    ['c2', '8->6', '3x3', 1, '2,2', '1,1', '0,0,0,0', '12x10->5x4', 'relu6'],
    ['dw', '6->12', '3x3', 6, '1,1', '1,1', '1,1,1,1', '5x4->5x4', 'linear'],
    ['c3', '12->5', '3x3', 1, '1,1', '1,1', '1,2,2,0', '5x4->6x4', 'linear'],
    ['c4', '5->7', '3x3', 1, '1,1', '2,2', '2,2,2,2', '6x4->6x4', 'elu'],
    ['c5', '7->4', '2x3', 1, '1,1', '1,1', '0,1,1,1', '6x4->6x4', 'leakyrelu'],
    ['c6', '4->4', '3x3', 1, '1,2', '1,1', '1,0,1,1', '6x4->6x2', 'prelu'],
    ['c7', '4->3', '1x1', 1, '1,1', '1,1', '0,0,0,0', '6x2->6x2', 'sigmoid'],
  ]);
  t.same(
    m.convs.filter((c) => c.skipReason).map((c) => [c.name, c.skipReason]),
    [
      ['dw', 'depthwise convolution'],
      ['c7', '1x1 convolution (nothing to decompose)'],
    ],
  );
  t.ok(m.convs.every((c) => c.bnAfter === null && c.bnBefore === null), 'no BatchNorm to read: the converter folded it');
  t.equal(m.foldBatchNorm(), m, 'folding BatchNorm is a no-op');
  t.equal(m.convs[3].bias, null, 'a plain Conv2D has no bias');
  t.equal((m as GraphModel).weightDtype, 'float32+uint16');
  t.same(Array.from(m.convs[0].bias!).length, 8);
  // The output 6x2x3 of the stock runtime confirms the propagated sizes.
  const x = inputOf(m, 2);
  const [y] = await stockOutputs(dir, x, batchOf(m, 2));
  t.equal(y.length, 2 * 6 * 2 * 3, 'TF.js computes the output size the reader propagated');
  t.ok(relErr(y, await runnerOutputs(m, x, 2)) < 1e-6, 'the runner agrees with stock tf.loadGraphModel');
  const macs = m.convs.reduce((a, c) => a + convCost(c).macs, 0);
  t.equal(macs, m.convs.reduce((a, c) => a + c.outH * c.outW * c.n * (c.c / c.groups) * c.kh * c.kw, 0));
  t.equal(m.other.macs, 0);
  t.equal(m.other.params, 4, 'the PReLU alpha is the only weight outside the convs');
});

t.test('every method at full rank (SVD and exact) equals the original through stock tf.loadGraphModel', async (t) => {
  const dir = fixture('fused', fusedGraph);
  const m = await loadModel(dir);
  const x = inputOf(m, 3);
  const [y0] = await stockOutputs(dir, x, batchOf(m, 3));
  const hash = hashTree(dir);
  for (const method of METHODS) {
    for (const [kind, make] of [
      ['svd', svdReplacement],
      ['exact', exactReplacement],
    ] as const) {
      const reps = m.convs.filter((c) => !c.skipReason).map((c) => make(c, method));
      for (const [i, rep] of reps.entries()) {
        const conv = m.convs.find((c) => c.name === rep.name)!;
        const e = relativeError(conv.weights, reconstructWeights(rep, conv));
        if (e > 1e-5) t.fail(`${method} ${kind} ${i}: weight error ${e}`);
      }
      const out = path.join(tmp, `fused-${method}-${kind}`);
      const applied = m.apply(reps);
      t.same(
        applied.notes!.map((n) => n.replace(/:.*/, '')),
        kind === 'svd' ? ['layer c5'] : [],
        // The exact factors are the original (uint16) weights and identities: requantized, they lose nothing.
        `${method} ${kind}: ${kind === 'svd' ? 'the uint16 conv says its full-rank factors went float32' : 'uint16 kept, nothing to say'}`,
      );
      await applied.save(out);
      const [y] = await stockOutputs(out, x, batchOf(m, 3));
      t.ok(relErr(y0, y) < 1e-4, `${method} ${kind}: stock TF.js output equal (rel ${relErr(y0, y).toExponential(2)})`);
      const again = await loadModel(out);
      t.equal(again.convs.length, m.convs.length + reps.length, `${method} ${kind}: each replaced conv became two`);
      t.ok(relErr(y0, await runnerOutputs(again, x, 3)) < 1e-4, `${method} ${kind}: reloaded and run by the package`);
    }
  }
  t.equal(hashTree(dir), hash, 'the source model is unchanged');
});

t.test('the written graph: node ops and attributes, names kept, other nodes and metadata untouched', async (t) => {
  const dir = fixture('fused', fusedGraph);
  const m = await loadModel(dir);
  const byName = new Map(m.convs.map((c) => [c.name, c]));
  const out = path.join(tmp, 'fused-topology');
  await m
    .apply([
      svdReplacement(byName.get('c4')!, 'dac', 3),
      svdReplacement(byName.get('c3')!, 'spatial', 4),
      svdReplacement(byName.get('c6')!, 'channel', 2),
      svdReplacement(byName.get('c2')!, 'dac', 2),
    ])
    .save(out);
  const src = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  for (const key of ['format', 'generatedBy', 'convertedBy', 'signature', 'userDefinedMetadata']) t.same(json[key], src[key], `${key} kept`);
  t.same(json.modelTopology.versions, src.modelTopology.versions, 'versions kept');
  const nodes = new Map<string, { op: string; input: string[]; attr: Record<string, { s?: string; list?: { i?: string[]; s?: string[] }; i?: string; f?: number }> }>(
    json.modelTopology.node.map((n: { name: string }) => [n.name, n]),
  );
  const str = (v?: { s?: string }) => Buffer.from(v?.s ?? '', 'base64').toString();
  const ints = (v?: { list?: { i?: string[] } }) => (v?.list?.i ?? []).map(Number);
  const fused = (v?: { list?: { s?: string[] } }) => (v?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString());
  // c4: dilated 3x3 + ELU, DAC rank 3.
  const dw = nodes.get('c4_dw')!;
  t.equal(dw.op, 'DepthwiseConv2dNative');
  t.same(dw.input, ['c3', 'c4_dw/filter'], 'the depthwise stage reads the original input');
  t.same(ints(dw.attr.dilations), [1, 2, 2, 1], 'dilations kept on the depthwise stage');
  t.equal(str(dw.attr.padding), 'SAME');
  const pw = nodes.get('c4')!;
  t.equal(pw.op, '_FusedConv2D', 'the pointwise stage takes the original name');
  t.same(pw.input, ['c4_dw', 'c4_pw/filter', 'c4/bias'], 'it carries the original bias, unchanged');
  t.same(fused(pw.attr.fused_ops), ['BiasAdd', 'Elu'], 'and the fused activation');
  t.same(ints(pw.attr.dilations), [1, 1, 1, 1]);
  t.same(ints(pw.attr.strides), [1, 1, 1, 1]);
  const w = new Map(json.weightsManifest.flatMap((g: { weights: { name: string; shape: number[] }[] }) => g.weights).map((s: { name: string; shape: number[] }) => [s.name, s]));
  t.same((w.get('c4_dw/filter') as { shape: number[] }).shape, [3, 3, 5, 3], 'depthwise filter [kh, kw, c, r]');
  t.same((w.get('c4_pw/filter') as { shape: number[] }).shape, [1, 1, 15, 7]);
  t.notOk(w.has('c4/filter') || nodes.has('c4/filter'), 'the replaced filter is gone from nodes and manifest');
  // c3: EXPLICIT padding [1, 2 | 2, 0] split by axis between the two spatial stages; plain Conv2D stays plain.
  t.same(ints(nodes.get('c3_v')!.attr.explicit_paddings), [0, 0, 1, 2, 0, 0, 0, 0]);
  t.same(ints(nodes.get('c3')!.attr.explicit_paddings), [0, 0, 0, 0, 2, 0, 0, 0]);
  t.equal(nodes.get('c3')!.op, 'Conv2D', 'no bias, no activation: a plain Conv2D');
  t.same((w.get('c3_v/filter') as { shape: number[] }).shape, [3, 1, 12, 4]);
  t.same((w.get('c3_h/filter') as { shape: number[] }).shape, [1, 3, 4, 5]);
  // c6: stride [1, 2] and PReLU, channel width 2: the alpha input moves to the second stage.
  t.same(ints(nodes.get('c6_c1')!.attr.strides), [1, 1, 2, 1]);
  t.same(nodes.get('c6')!.input, ['c6_c1', 'c6_c2/filter', 'c6/bias', 'c6/alpha']);
  t.equal(nodes.get('c6')!.attr.num_args!.i, '2');
  // c2: VALID stride 2 + Relu6.
  t.equal(str(nodes.get('c2_dw')!.attr.padding), 'VALID');
  t.same(ints(nodes.get('c2_dw')!.attr.strides), [1, 2, 2, 1]);
  t.same(fused(nodes.get('c2')!.attr.fused_ops), ['BiasAdd', 'Relu6']);
  // Nodes that were not replaced are byte-identical.
  for (const n of src.modelTopology.node as { name: string }[]) {
    if (['c2', 'c3', 'c4', 'c6', 'c2/filter', 'c3/filter', 'c4/filter', 'c6/filter'].includes(n.name)) continue;
    if (JSON.stringify(nodes.get(n.name)) !== JSON.stringify(n)) t.fail(`node ${n.name} changed`);
  }
  t.equal(new Set(json.modelTopology.node.map((n: { name: string }) => n.name)).size, json.modelTopology.node.length, 'node names are unique');
  const again = await loadModel(out);
  t.equal(again.convs.find((c) => c.name === 'c4_dw')!.skipReason, 'depthwise convolution');
  t.equal(again.convs.find((c) => c.name === 'c4')!.skipReason, '1x1 convolution (nothing to decompose)');
  const x = inputOf(m, 2);
  const [y0] = await stockOutputs(dir, x, batchOf(m, 2));
  const [y1] = await stockOutputs(out, x, batchOf(m, 2));
  t.ok(relErr(y0, y1) < 0.5 && relErr(y0, y1) > 0, `low ranks: close, not equal (rel ${relErr(y0, y1).toExponential(2)})`);
});

t.test('shared and quantized weights, an op without a shape rule', async (t) => {
  const dir = fixture('shared', sharedGraph);
  const m = await loadModel(dir);
  t.same(m.inputShape, [9, 9, 4]);
  t.same(m.convs.map((c) => c.name), ['sa', 'sb', 'sf', 'su']);
  t.same(m.convs[0].weights, m.convs[1].weights, 'both convs read the shared filter');
  t.equal((m as GraphModel).weightDtype, 'float16+float32+uint8');
  const su = m.convs[3];
  t.match(su.skipReason, /input size unknown \(op Tile has no shape rule at node tile \(Tile\)\)/, 'the conv after Tile says why');
  t.same([su.n, su.c, su.kh, su.kw], [5, 6, 3, 3], 'its kernel is still known');
  t.match(m.notes!.join('\n'), /conv su is kept as is/);
  t.same(m.convs.slice(0, 3).map((c) => c.skipReason), [null, null, null]);
  const x = inputOf(m, 2);
  const [y0] = await stockOutputs(dir, x, batchOf(m, 2));
  t.ok(relErr(y0, await runnerOutputs(m, x, 2)) < 1e-6, 'the runner matches TF.js decoding the same quantized file');

  // One of the two readers replaced: the shared filter stays for the other.
  const one = path.join(tmp, 'shared-one');
  await m.apply([svdReplacement(m.convs[0], 'dac')]).save(one);
  let json = JSON.parse(fs.readFileSync(path.join(one, 'model.json'), 'utf8'));
  let specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights) as { name: string; dtype: string; quantization?: { dtype: string } }[];
  t.ok(specs.some((s) => s.name === 'shared/filter'), 'the shared filter is kept while sb reads it');
  t.same(specs.find((s) => s.name === 'shared/filter')!.quantization?.dtype, 'uint8', 'untouched weights keep their encoding');
  t.ok(relErr(y0, (await stockOutputs(one, x, batchOf(m, 2)))[0]) < 1e-4, 'one of two replaced: outputs equal');

  // Both replaced at full rank: requantizing would swamp the (zero) decomposition error, so float32 and a note per layer.
  const both = path.join(tmp, 'shared-both');
  const applied = m.apply(m.convs.slice(0, 3).map((c) => svdReplacement(c, 'channel')));
  t.equal(applied.notes!.filter((n) => /stored as float32, not (uint8|float16)/.test(n)).length, 3, 'each quantized layer says it went float32');
  await applied.save(both);
  json = JSON.parse(fs.readFileSync(path.join(both, 'model.json'), 'utf8'));
  specs = json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
  t.notOk(specs.some((s) => s.name === 'shared/filter'), 'no reader left: the shared filter is dropped');
  t.notOk(json.modelTopology.node.some((n: { name: string }) => n.name === 'shared/filter'));
  t.notOk(JSON.stringify(json.modelTopology).includes('sf/filter'), 'the dropped sf filter: no node, no control edge onto it');
  t.ok(specs.filter((s) => /_c[12]\/filter$/.test(s.name)).every((s) => !s.quantization), 'new filters are float32');
  t.ok(relErr(y0, (await stockOutputs(both, x, batchOf(m, 2)))[0]) < 1e-4, 'both replaced: outputs equal');

  const report = decomposeLoaded(m, { method: 'dac', rank: 4, layers: ['sa'] }).report;
  t.match(report.warnings?.join('\n'), /layer sa: new weights stored as float32, not uint8/, 'report.json says so too');

  // At a low rank requantizing adds little to the decomposition error: the encoding is kept.
  const low = m.apply([svdReplacement(m.convs[0], 'dac', 2), svdReplacement(m.convs[2], 'dac', 2)]) as GraphModel;
  t.same(low.notes.filter((n) => /stored as float32/.test(n)), []);
  const lowDir = path.join(tmp, 'shared-low');
  await low.save(lowDir);
  specs = JSON.parse(fs.readFileSync(path.join(lowDir, 'model.json'), 'utf8')).weightsManifest[0].weights;
  t.same(
    specs.filter((s) => /_(dw|pw)\/filter$/.test(s.name)).map((s) => `${s.name}:${s.quantization?.dtype}`),
    ['sa_dw/filter:uint8', 'sa_pw/filter:uint8', 'sf_dw/filter:float16', 'sf_pw/filter:float16'],
    'quantized in, quantized out, in the same encoding',
  );
  const yLow = (await stockOutputs(lowDir, x, batchOf(m, 2)))[0];
  const yMem = await runnerOutputs(low, x, 2);
  t.ok(relErr(yMem, yLow) < 1e-5, 'stock TF.js decodes the requantized file as the package does');
  await t.rejects(async () => m.apply([svdReplacement(m.convs[0], 'dac'), { ...svdReplacement(m.convs[2], 'dac'), name: 'su' } as DacReplacement]), /cannot replace this conv: input size unknown/);
});

t.test('free input sizes: nominal size, a stated size, free sizes kept in what is written', async (t) => {
  const dir = fixture('free', freeGraph);
  const m = await loadModel(dir);
  t.equal(m.freeInput, true);
  t.same(m.inputShape, [NOMINAL_FREE_SIZE, NOMINAL_FREE_SIZE, 3]);
  t.same(m.other, { macs: 8 * 3, params: 8 * 3 }, 'the MatMul is costed outside the convs');
  const f2 = m.convs[1];
  // 1024 padded to 1026, a 3x3 VALID stride-2 conv to 512, a 2x2 pool to 256.
  t.same([f2.inH, f2.inW], [256, 256], 'Pad, stride 2 VALID and a 2x2 pool propagated');
  const stated = await loadModel(dir, { inputShape: [21, 14] });
  t.equal(stated.freeInput, false);
  t.same(stated.inputShape, [21, 14, 3]);
  t.same(stated.convs.map((c) => `${c.inH}x${c.inW}->${c.outH}x${c.outW}`), ['23x16->11x7', '6x4->6x4']);
  await t.rejects(loadModel(dir, { inputShape: [21, 14, 4] }), /disagrees with the model's input/);
  await t.rejects(loadModel(dir, { inputShape: [0, 14] }), /field inputShape: inputShape must be/);
  const out = path.join(tmp, 'free-dac');
  await stated.apply(stated.convs.map((c) => svdReplacement(c, 'dac'))).save(out);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  t.same(json.signature.inputs['x:0'].tensorShape.dim.map((d: { size: string }) => d.size), ['-1', '-1', '-1', '3'], 'the written model leaves H and W free');
  const x = inputOf(stated, 2);
  const [y0] = await stockOutputs(dir, x, batchOf(stated, 2));
  const [y1] = await stockOutputs(out, x, batchOf(stated, 2));
  t.ok(relErr(y0, y1) < 1e-4, `full rank on a free-size model: equal (rel ${relErr(y0, y1).toExponential(2)})`);
  const x2 = seededValues(2 * 16 * 16 * 3, 3);
  t.ok(relErr((await stockOutputs(dir, x2, [2, 16, 16, 3]))[0], (await stockOutputs(out, x2, [2, 16, 16, 3]))[0]) < 1e-4, 'and at another input size');
});

t.test('an NCHW input transposed to NHWC (PyTorch exports), a StridedSlice crop', async (t) => {
  const dir = fixture('transposed', transposedGraph);
  const m = await loadModel(dir);
  t.equal(m.inputLayout, 'NCHW', 'the input is NCHW: the graph transposes it');
  t.same(m.inputShape, [10, 12, 3]);
  const c = m.convs[0];
  t.same([c.inH, c.inW, c.outH, c.outW, c.skipReason], [10, 14, 8, 12, null], 'Pad, Transpose and the masked StridedSlice propagated');
  const x = inputOf(m, 1);
  const nchw = nhwcToNchw(x, 1, 10, 12, 3);
  const [y0] = await stockOutputs(dir, nchw, [1, 3, 10, 12]);
  t.equal(y0.length, 8 * 12 * 4, 'TF.js computes the size propagated');
  t.ok(relErr(y0, await runnerOutputs(m, x, 1)) < 1e-6, 'the runner transposes NHWC images for it');
  const out = path.join(tmp, 'transposed-spatial');
  await m.apply([svdReplacement(c, 'spatial')]).save(out);
  const [y1] = await stockOutputs(out, nchw, [1, 3, 10, 12]);
  t.ok(relErr(y0, y1) < 1e-4, `full rank spatial: equal (rel ${relErr(y0, y1).toExponential(2)})`);
});

t.test('NCHW convs are read and costed, not rewritten', async (t) => {
  const m = await loadModel(fixture('nchw', nchwGraph));
  t.equal(m.inputLayout, 'NCHW');
  t.same(m.inputShape, [8, 8, 3]);
  const c = m.convs[0];
  t.same([c.c, c.n, c.inH, c.inW, c.outH, c.outW, c.strides.join()], [3, 4, 8, 8, 4, 4, '2,2']);
  t.match(c.skipReason, /NCHW layout/);
});

t.test('bad input gives errors naming the model, the node and the field', async (t) => {
  const good = fixture('fused', fusedGraph);
  const variant = (name: string, edit: (j: { modelTopology: { node: Record<string, unknown>[] }; [k: string]: unknown }) => void) => {
    const dir = path.join(tmp, `bad-${name}`);
    fs.cpSync(good, dir, { recursive: true });
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    edit(j);
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
    return dir;
  };
  const node = (j: { modelTopology: { node: Record<string, unknown>[] } }, name: string) => j.modelTopology.node.find((n) => n.name === name) as { input: string[]; attr: Record<string, unknown>; op: string };
  const spec = (j: Record<string, unknown>, name: string) =>
    (j.weightsManifest as { weights: { name: string; shape: number[] }[] }[]).flatMap((g) => g.weights).find((s) => s.name === name)!;
  const cases: [string, Parameters<typeof variant>[1], RegExp][] = [
    ['missing-input', (j) => (node(j, 'c2').input[0] = 'nowhere'), /layer c2, field input: input nowhere names no node/],
    ['no-nodes', (j) => (j.modelTopology.node = 'x' as never), /field modelTopology.node: modelTopology.node must be an array/],
    ['duplicate', (j) => (node(j, 'c2') as { name?: string }).name = 'c1', /layer c1: two nodes have this name/],
    ['cycle', (j) => (node(j, 'c1').input[0] = 'c3'), /layer c1: the graph has a cycle/],
    ['explicit', (j) => (node(j, 'c3').attr.explicit_paddings = { list: { i: ['1', '2'] } }), /layer c3, field padding: explicit_paddings must be 8/],
    ['strides', (j) => (node(j, 'c1').attr.strides = { list: { i: ['1', '0', '1', '1'] } }), /layer c1, field strides: strides must be 4 positive integers/],
    ['filter-rank', (j) => (spec(j, 'c1/filter').shape = [9, 3, 8]), /layer c1, field c1\/filter: filter must be 4-D/],
    ['bias-size', (j) => (spec(j, 'c1/bias').shape = [4]), /layer c1, field c1\/bias: bias has 4 values, expected 8/],
    ['two-inputs', (j) => { (j.signature as { inputs: Record<string, unknown> }).inputs.extra = { name: 'c1/bias' }; }, /field signature.inputs: expected one model input/],
    ['format', (j) => (j.format = 'mystery-model'), /field format: format 'mystery-model' is not supported/],
  ];
  for (const [name, edit, re] of cases) {
    const err = await loadModel(variant(name, edit)).then(
      () => null,
      (e: Error) => e,
    );
    t.match(err?.message, re, name);
    if (err) t.match(err.message, /^model .*model\.json/, `${name}: names the model`);
  }
  // A non-finite weight names the node and the weight.
  const dir = path.join(tmp, 'bad-nan');
  fs.cpSync(good, dir, { recursive: true });
  const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const shard = path.join(dir, j.weightsManifest[0].paths[0]);
  const b = fs.readFileSync(shard);
  b.writeFloatLE(NaN, 4);
  fs.writeFileSync(shard, b);
  await t.rejects(loadModel(dir), /layer c1, field c1\/filter: value \[1\] is NaN/);
  // The filter is checked as it is turned to OIHW: to its last stored value (c1/filter is stored first, 3x3x3x8).
  t.equal(j.weightsManifest[0].weights[0].name, 'c1/filter');
  const shards = j.weightsManifest[0].paths.map((p: string) => path.join(dir, p));
  const whole = Buffer.concat(shards.map((f: string) => fs.readFileSync(path.join(good, path.basename(f)))));
  whole.writeFloatLE(-Infinity, 4 * (3 * 3 * 3 * 8 - 1));
  let at = 0;
  for (const f of shards) {
    const size = fs.statSync(f).size;
    fs.writeFileSync(f, whole.subarray(at, at + size));
    at += size;
  }
  await t.rejects(loadModel(dir), /layer c1, field c1\/filter: value \[215\] is -Infinity/);
  // A graph model with control flow or several inputs elsewhere still loads by its signature's one input.
  const g = new GraphBuilder();
  g.placeholder('a', [1, 4, 4, 1]);
  g.placeholder('b', [1, 4, 4, 1]);
  await t.rejects(loadModel(g.write(path.join(tmp, 'two-placeholders'))), /expected one model input \(an image batch\), found 2/);
});

t.test('apply and save refuse what they must, and never touch the input', async (t) => {
  const dir = fixture('fused', fusedGraph);
  const m = await loadModel(dir);
  const c1 = m.convs[0];
  const rep = svdReplacement(c1, 'dac', 2) as DacReplacement;
  t.throws(() => m.apply([{ ...rep, name: 'dw' }]), /cannot replace this conv: depthwise convolution/);
  t.throws(() => m.apply([rep, rep]), /replaced twice/);
  t.throws(() => m.apply([{ ...rep, pointwise: rep.pointwise.subarray(1) }]), /pointwise has \d+ values, expected \d+/);
  const m2 = m.apply([rep]);
  t.equal(m.convs.length, 8, 'the model applied to is unchanged');
  t.equal(m2.convs.length, 9);
  const hash = hashTree(dir);
  await t.rejects(m2.save(dir), /refusing|input/, 'saving over the input folder is refused');
  await t.rejects(m2.save(path.join(tmp, 'x', 'model.json')), /written to a folder/);
  t.equal(hashTree(dir), hash, 'the input folder is untouched');
});

function dac(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The Layers fixture oneChannelModel's weights by name (HWIO kernels). */
async function oneChannelWeights(layersDir: string): Promise<Map<string, Float32Array>> {
  const layers = (await loadModel(layersDir)) as TfjsModel;
  const raw = layers.artifacts();
  const data = new Float32Array(raw.weightData);
  const byName = new Map<string, Float32Array>();
  let offset = 0;
  for (const spec of raw.weightSpecs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    byName.set(spec.name, data.slice(offset, offset + count));
    offset += count;
  }
  return byName;
}

/**
 * oneChannelModel as a graph model with the same weights (the converter's node pattern); `pooled`
 * appends a spatial Mean so that the output ([N, 9]) has no layout, for comparing with ONNX.
 */
async function oneChannelAsGraph(layersDir: string, dir: string, pooled = false): Promise<string> {
  const byName = await oneChannelWeights(layersDir);
  const g = new GraphBuilder();
  const x = g.placeholder('in', [-1, 13, 13, 1]);
  g.constant('k1/filter', [3, 3, 1, 16], byName.get('k1/kernel'));
  g.constant('k1/bias', [16], byName.get('k1/bias'));
  g.constant('k2/filter', [3, 3, 16, 9], byName.get('k2/kernel'));
  g.constant('k2/bias', [9], byName.get('k2/bias'));
  const k1 = g.conv('k1', x, { shape: [3, 3, 1, 16], filter: 'k1/filter', padding: 'VALID', bias: true, biasConst: 'k1/bias', activation: 'Relu' });
  const k2 = g.conv('k2', k1, { shape: [3, 3, 16, 9], filter: 'k2/filter', strides: [2, 2], bias: true, biasConst: 'k2/bias' });
  const out = pooled ? g.op('gap', 'Mean', [k2, g.intConstant('gap/axes', [1, 2])], { keep_dims: { b: false }, Tidx: { type: 'DT_INT32' } }) : k2;
  g.op('Identity', 'Identity', [out]);
  return g.write(dir);
}

/** The same pooled net as an ONNX file (NCHW, OIHW weights; TF's SAME for k2 is pads 1,1,1,1 here). */
async function oneChannelAsOnnx(layersDir: string, file: string): Promise<string> {
  const byName = await oneChannelWeights(layersDir);
  const g = new OnnxBuilder();
  const k1 = g.node('Conv', ['x', g.init('k1.w', [16, 1, 3, 3], hwioToOihw(byName.get('k1/kernel')!, 3, 3, 1, 16)), g.init('k1.b', [16], byName.get('k1/bias'))], 'k1', [intsAttr('kernel_shape', [3, 3])]);
  const r1 = g.node('Relu', [k1], 'r1');
  const k2 = g.node('Conv', [r1, g.init('k2.w', [9, 16, 3, 3], hwioToOihw(byName.get('k2/kernel')!, 3, 3, 16, 9)), g.init('k2.b', [9], byName.get('k2/bias'))], 'k2', [
    intsAttr('kernel_shape', [3, 3]),
    intsAttr('strides', [2, 2]),
    intsAttr('pads', [1, 1, 1, 1]),
  ]);
  const flat = g.node('Flatten', [g.node('GlobalAveragePool', [k2], 'gap')], 'flat');
  fs.writeFileSync(file, encodeModel(g.model([13, 13, 1], flat, ['N', 9])));
  return file;
}

t.test('the CLI end to end: inspect, decompose, compare (graph vs graph, graph vs Layers), zoo with resume', async (t) => {
  const fused = fixture('fused', fusedGraph);
  const ins = dac('inspect', fused, '--json');
  t.equal(ins.status, 0, ins.stderr);
  const inspected = JSON.parse(ins.stdout);
  t.equal(inspected.format, 'tfjs-graph');
  t.equal(inspected.convs.length, 8);
  const plan = dac('inspect', fused, '--flops-saved', '0.3', '--method', 'auto');
  t.equal(plan.status, 0, plan.stderr);
  t.match(plan.stdout, /c4/);

  const out = path.join(tmp, 'cli-fused');
  const dec = dac('decompose', fused, '-o', out, '--flops-saved', '0.3', '--method', 'auto');
  t.equal(dec.status, 0, dec.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  t.equal(report.format, 'tfjs-graph');
  t.ok(1 - report.flops.after / report.flops.before >= 0.3, 'the report says 30% saved');
  const cmp = dac('compare', fused, out, '--json', '--inputs', '4');
  t.equal(cmp.status, 0, cmp.stderr);
  const res = JSON.parse(cmp.stdout).results[0];
  t.ok(res.relError > 0 && res.relError < 1, `graph vs decomposed graph: rel err ${res.relError}`);

  const layersDir = path.join(tmp, 'one-channel-layers');
  await loadTf();
  await saveModel(oneChannelModel(), layersDir);
  const graphDir = await oneChannelAsGraph(layersDir, path.join(tmp, 'one-channel-graph'));
  const cross = dac('compare', layersDir, graphDir, '--json', '--inputs', '4');
  t.equal(cross.status, 0, cross.stderr);
  const c = JSON.parse(cross.stdout).results[0];
  t.ok(c.relError < 1e-6, `Layers vs the same net as a graph model: rel err ${c.relError}`);
  const pooledGraph = await oneChannelAsGraph(layersDir, path.join(tmp, 'one-channel-graph-pooled'), true);
  const onnx = await oneChannelAsOnnx(layersDir, path.join(tmp, 'one-channel.onnx'));
  const vsOnnx = dac('compare', onnx, pooledGraph, '--json', '--inputs', '4');
  t.equal(vsOnnx.status, 0, vsOnnx.stderr);
  const o = JSON.parse(vsOnnx.stdout);
  t.ok(o.results[0].relError < 1e-5, `ONNX (${o.engines[0]}) vs the same net as a graph model (${o.engines[1]}): rel err ${o.results[0].relError}`);

  const zooIn = path.join(tmp, 'zoo-in');
  fs.cpSync(fused, path.join(zooIn, 'fused'), { recursive: true });
  fs.cpSync(graphDir, path.join(zooIn, 'one-channel'), { recursive: true });
  const zooOut = path.join(tmp, 'zoo-out');
  const z1 = dac('zoo', zooIn, '-o', zooOut, '--rank', '2');
  t.equal(z1.status, 0, z1.stderr);
  t.match(z1.stdout, /2 models: 2 ok/);
  t.ok(fs.existsSync(path.join(zooOut, 'fused', 'model.json')) && fs.existsSync(path.join(zooOut, 'one-channel', 'report.json')));
  const z2 = dac('zoo', zooIn, '-o', zooOut, '--rank', '2');
  t.match(z2.stdout, /2 skipped/, 'a second run resumes: nothing to redo');
});

t.test('mutated model.json: every variant loads or is refused with a DacError, never a crash', async (t) => {
  const good = fixture('fused', fusedGraph);
  const src = JSON.parse(fs.readFileSync(path.join(good, 'model.json'), 'utf8'));
  const next = mulberry32(2024);
  const pick = <T>(a: T[]): T => a[Math.floor(next() * a.length)];
  const junk = () => pick<unknown>([null, -1, 0, 1.5, 1e9, 'x', 'U0FNRQ==', [], {}, ['1'], { list: { i: ['9', 'x'] } }, true]);
  /** Every object/array slot under the node list, the signature and the manifest. */
  const slots = (v: unknown, out: [Record<string, unknown>, string][] = []) => {
    if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
        out.push([v as Record<string, unknown>, k]);
        slots(child, out);
      }
    }
    return out;
  };
  let refused = 0;
  const crashes: string[] = [];
  for (let i = 0; i < 60; i++) {
    const j = JSON.parse(JSON.stringify(src));
    for (let k = 0; k < 1 + Math.floor(next() * 3); k++) {
      const [obj, key] = pick(slots(pick([j.modelTopology, j.signature, j.weightsManifest, j])));
      if (next() < 0.2) delete obj[key];
      else obj[key] = junk();
    }
    const dir = path.join(tmp, `fuzz-${i}`);
    fs.cpSync(good, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
    try {
      const m = await loadModel(dir);
      m.apply(m.convs.filter((c) => !c.skipReason).map((c) => svdReplacement(c, 'dac', 1)));
    } catch (e) {
      if ((e as Error).name === 'DacError') refused++;
      else crashes.push(`#${i}: ${(e as Error).stack?.split('\n').slice(0, 4).join(' | ')}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.same(crashes, [], `60 variants, ${refused} refused with a DacError, none crashed`);
});

t.test('shape rules, op by op (the sizes TensorFlow gives)', async (t) => {
  const ints = new Map<string, number[]>();
  const nodes: { name: string; op: string; input?: string[]; attr?: Record<string, unknown> }[] = [
    { name: 'x', op: 'Placeholder' },
  ];
  const k = (name: string, values: number[]) => {
    ints.set(name, values);
    nodes.push({ name, op: 'Const', attr: { value: { tensor: { tensorShape: { dim: [{ size: String(values.length) }] } } } } });
    return name;
  };
  const list = (v: number[]) => ({ list: { i: v.map(String) } });
  const op = (name: string, o: string, input: string[], attr: Record<string, unknown> = {}) => nodes.push({ name, op: o, input, attr });
  op('concat', 'ConcatV2', ['x', 'x', k('c/axis', [3])]);
  op('mean', 'Mean', ['x', k('m/axes', [1, 2])], { keep_dims: { b: true } });
  op('sum', 'Sum', ['x', k('s/axes', [1, -2])]);
  op('reshape', 'Reshape', ['x', k('r/shape', [-1, 48])]);
  op('resize', 'ResizeBilinear', ['x', k('rs/size', [16, 12])]);
  op('transpose', 'Transpose', ['x', k('t/perm', [0, 3, 1, 2])]);
  op('expand', 'ExpandDims', ['x', k('e/axis', [-1])]);
  op('squeeze', 'Squeeze', ['x'], { squeeze_dims: list([0]) });
  op('unpack', 'Unpack', ['x'], { axis: { i: '0' }, num: { i: '1' } });
  op('pack', 'Pack', ['squeeze', 'unpack'], { axis: { i: '0' } });
  op('gather', 'GatherV2', ['x', k('g/indices', [0, 3]), k('g/axis', [3])]);
  nodes.push({ name: 'nd/indices', op: 'Const', attr: { value: { tensor: { tensorShape: { dim: [{ size: '5' }, { size: '2' }] } } } } });
  op('gathernd', 'GatherNd', ['x', 'nd/indices']);
  nodes.push({ name: 'w', op: 'Const', attr: { value: { tensor: { tensorShape: { dim: [{ size: '4' }, { size: '3' }] } } } } });
  op('bmm', 'BatchMatMulV2', ['x', 'w']);
  op('shrink', 'StridedSlice', ['x', k('ss/b', [0, 2]), k('ss/e', [0, 3]), k('ss/s', [1, 1])], { begin_mask: { i: '1' }, end_mask: { i: '1' }, shrink_axis_mask: { i: '2' } });
  op('reverse', 'StridedSlice', ['x', k('rv/b', [0, 0]), k('rv/e', [0, 0]), k('rv/s', [1, -3])], { begin_mask: { i: '3' }, end_mask: { i: '3' } });
  op('mirror', 'MirrorPad', ['x', k('mp/p', [0, 0, 2, 1, 0, 3, 0, 0])]);
  op('pool', 'AvgPool', ['x'], { ksize: list([1, 3, 3, 1]), strides: list([1, 2, 2, 1]), padding: { s: Buffer.from('VALID').toString('base64') } });
  op('stack', 'TensorListStack', ['x', k('ts/shape', [3, 3])], { num_elements: { i: '2' } });
  op('d2s', 'DepthToSpace', ['x'], { block_size: { i: '2' } });
  // Sizes computed from tf.shape(x) at run time: pad H by 10 - h and W by c (= 4) after, via Shape,
  // StridedSlice, Sub, Unpack, Pack and Reshape.
  op('shape', 'Shape', ['x']);
  op('h', 'StridedSlice', ['shape', k('h/b', [1]), k('h/e', [2]), k('h/s', [1])], { shrink_axis_mask: { i: '1' } });
  op('need', 'Sub', [k('ten', [10]), 'h']);
  op('dims', 'Unpack', ['shape'], { axis: { i: '0' }, num: { i: '4' } });
  op('padlist', 'Pack', [k('z0', [0]), k('z1', [0]), k('z2', [0]), 'need', k('z4', [0]), 'dims:3', k('z6', [0]), k('z7', [0])], { axis: { i: '0' } });
  op('paddings', 'Reshape', ['padlist', k('pl/shape', [4, 2])]);
  op('padded', 'Pad', ['x', 'paddings']);
  op('fill', 'Fill', ['shape', k('one', [1])]);
  op('mystery', 'Mystery', ['x']);
  op('after', 'Relu', ['mystery']);
  op('bcast', 'AddV2', ['x', 'mean']);
  op('bad', 'Mul', ['x', 'concat']);
  const graph = parseGraph({ node: nodes }, {});
  const shapes = propagateShapes(
    { graph, inputs: new Map([['x', [1, 8, 6, 4]]]), constInts: (r) => ints.get(r.node) ?? null },
    (n) => protoDims(n.attr?.value?.tensor?.tensorShape),
  );
  const got = (name: string) => shapes.get(`${name}:0`);
  const expected: Record<string, number[]> = {
    concat: [1, 8, 6, 8],
    mean: [1, 1, 1, 4],
    sum: [1, 4],
    reshape: [4, 48],
    resize: [1, 16, 12, 4],
    transpose: [1, 4, 8, 6],
    expand: [1, 8, 6, 4, 1],
    squeeze: [8, 6, 4],
    unpack: [8, 6, 4],
    pack: [2, 8, 6, 4],
    gather: [1, 8, 6, 2],
    gathernd: [5, 6, 4],
    bmm: [1, 8, 6, 3],
    shrink: [1, 6, 4],
    reverse: [1, 3, 6, 4],
    mirror: [1, 11, 9, 4],
    pool: [1, 3, 2, 4],
    stack: [2, 3, 3],
    bcast: [1, 8, 6, 4],
    d2s: [1, 16, 12, 1],
    h: [],
    paddings: [4, 2],
    padded: [1, 10, 10, 4],
    fill: [1, 8, 6, 4],
  };
  for (const [name, dims] of Object.entries(expected)) t.same(got(name), dims, name);
  t.equal(got('mystery'), 'op Mystery has no shape rule at node mystery (Mystery)');
  t.equal(got('after'), got('mystery'), 'downstream nodes inherit the reason');
  t.match(got('bad'), /cannot broadcast \[1, 8, 6, 4\] with \[1, 8, 6, 8\]/);
});

t.test('a conv whose filter is computed at run time is kept, costed and named in the notes', async (t) => {
  const g = new GraphBuilder();
  const x = g.placeholder('x', [1, 6, 6, 2]);
  g.op('wid', 'Identity', [g.constant('wf', [3, 3, 2, 3])]);
  g.op('Identity', 'Identity', [g.conv('cc', x, { shape: [3, 3, 2, 3], filter: 'wid' })]);
  const m = await loadModel(g.write(path.join(tmp, 'computed-filter')));
  t.same(m.convs, [], 'not listed: there are no weights to decompose');
  t.equal(m.other.macs, 6 * 6 * 3 * 3 * 3 * 2, 'its MACs are counted with the other ops');
  t.match(m.notes!.join('\n'), /conv cc is kept as is: its filter is computed at run time/);
});
