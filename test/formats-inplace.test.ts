// Loading without a second copy of the weights: ONNX float32 raw_data
// aligned where it lies in the file's buffer, TF.js conv kernels turned
// HWIO -> OIHW inside the shard buffer. Read values, written files and
// derived models must be those a copying reader gives.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel, parseOnnx } from '../src/formats/index.js';
import { AttrType, create, DataType, decodeModel, encodeModel, type AttributeProto, type TensorProto } from '../src/formats/onnx/schema.js';
import { intAttr, intsAttr, tensorFloats, typedTensor } from '../src/formats/onnx/tensors.js';
import type { OnnxModel } from '../src/formats/onnx/model.js';
import { readArtifacts, serializeArtifacts, type WeightEntry } from '../src/formats/tfjs/manifest.js';
import { encodedEntry } from '../src/formats/tfjs/quantize.js';
import { hwioToOihw } from '../src/geometry.js';
import { svdReplacement } from './fixtures/decompose.js';
import { GraphBuilder } from './fixtures/onnx-models.js';
import { seededValues, tempDir } from './fixtures/util.js';

const tmp = tempDir('inplace');
/** alignBytes' threshold: payloads from here on are aligned in place, smaller ones packed. */
const THRESHOLD = 64 * 1024;

const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** Byte offsets of the raw_data payloads in `file` (decoded from a copy at offset 0), by tensor name. */
function payloadOffsets(file: Uint8Array): Map<string, { offset: number; length: number; type: number }> {
  const copy = new Uint8Array(file);
  const proto = decodeModel(copy);
  const out = new Map<string, { offset: number; length: number; type: number }>();
  const add = (t: TensorProto | null | undefined) => {
    if (t?.raw_data?.length) out.set(t.name!, { offset: t.raw_data.byteOffset - copy.byteOffset, length: t.raw_data.length, type: t.data_type! });
  };
  proto.graph!.initializer.forEach(add);
  for (const n of proto.graph!.node) for (const a of n.attribute) add(a.t);
  return out;
}

/**
 * Parallel 1x1 convs on a 1-channel input whose weights and biases (n
 * floats each, one initializer after the other) straddle the threshold;
 * one weight from a Constant node, one stored as float16 behind a Cast; and
 * a 3x3 conv.
 */
function thresholdModel(big3x3: number, names: string[]): Uint8Array {
  const g = new GraphBuilder();
  const sizes = [1, THRESHOLD / 4 - 1, THRESHOLD / 4, THRESHOLD / 4 + 1, THRESHOLD / 4 + 2, 3, THRESHOLD / 4 + 3, 20000];
  const outs = sizes.map((n, i) => g.conv('x', `${names[i % names.length]}${i}`, n, 1, 1, 1));
  const constant = typedTensor('k.w', [THRESHOLD / 4 + 5, 1, 1, 1], seededValues(THRESHOLD / 4 + 5, 91, 0.5), DataType.FLOAT);
  g.node('Constant', [], 'k.w', [create<AttributeProto>('AttributeProto', { name: 'value', type: AttrType.TENSOR, t: constant })], 'k.const');
  outs.push(g.node('Conv', ['x', 'k.w'], 'k.out', [intsAttr('kernel_shape', [1, 1])], 'k'));
  g.inits.push(typedTensor('h.w16', [40001, 1, 1, 1], seededValues(40001, 92, 0.5), DataType.FLOAT16));
  g.node('Cast', ['h.w16'], 'h.w', [intAttr('to', DataType.FLOAT)], 'h.cast');
  outs.push(g.node('Conv', ['x', 'h.w'], 'h.out', [intsAttr('kernel_shape', [1, 1])], 'h'));
  const big = g.conv('x', 'big', big3x3, 1, 3, 3, [intsAttr('pads', [1, 1, 1, 1])]);
  return encodeModel(g.model([4, 4, 1], big, ['N', big3x3, 4, 4]));
}

t.test('ONNX: unaligned raw_data around the threshold, side by side, is read bit-exact and aligned in place', async (t) => {
  // Names that put the large float32 payloads at every misalignment (1, 2 and 3 bytes).
  const bytes = thresholdModel(8, ['bb', 'e', 'bb']);
  const offsets = payloadOffsets(bytes);
  const shifts = new Set([...offsets.values()].filter((p) => p.type === DataType.FLOAT && p.length >= THRESHOLD).map((p) => p.offset % 4));
  t.same([...shifts].sort(), [0, 1, 2, 3], 'the fixture has large float32 payloads at every offset mod 4');
  t.ok(
    [...offsets.values()].some((p) => p.length === THRESHOLD && p.offset % 4 === 3),
    'one of exactly the threshold moves by 3 bytes (over a 4-byte field header, the least there is)',
  );
  const file = path.join(tmp, 'threshold.onnx');
  fs.writeFileSync(file, bytes);

  const m = (await loadModel(file)) as OnnxModel;
  // The reference: the same file read by a reader that copies (parseOnnx leaves the bytes where they are).
  const ref = parseOnnx(new Uint8Array(bytes), file);
  t.ok(Buffer.from(m.bytes()).equals(Buffer.from(bytes)), 'encoded again: the file, every tensor bit for bit');
  t.same(m.convs.map((c) => c.name), ref.convs.map((c) => c.name));
  m.convs.forEach((c, i) => {
    t.ok(bytesOf(c.weights).equals(bytesOf(ref.convs[i].weights)), `${c.name}: weights bit-exact`);
    t.ok(bytesOf(c.bias ?? new Float32Array(0)).equals(bytesOf(ref.convs[i].bias ?? new Float32Array(0))), `${c.name}: bias bit-exact`);
  });
  const large = m.convs.filter((c) => c.name !== 'h' && c.weights.byteLength >= THRESHOLD).map((c) => c.weights);
  t.equal(new Set(large.map((w) => w.buffer)).size, 1, 'the large float32 weights are views of one buffer');
  t.ok(large[0].buffer.byteLength <= bytes.length + 1, 'that buffer is the file as read, not a copy of the weights');
});

t.test('ONNX: a derived model copies out what it keeps of the file, and writes what a copying reader writes', async (t) => {
  const bytes = thresholdModel(40000, ['p', 'qq']);
  const file = path.join(tmp, 'derived.onnx');
  fs.writeFileSync(file, bytes);
  const m = (await loadModel(file)) as OnnxModel;
  const ref = parseOnnx(new Uint8Array(bytes), file);
  const big = m.convs.findIndex((c) => c.name === 'big');
  t.ok(m.convs[big].weights.byteLength * 2 > bytes.length, 'the replaced conv is most of the file');
  const rep = svdReplacement(m.convs[big], 'dac', 2);
  const out = m.apply([rep]);
  const refOut = ref.apply([rep]);
  t.ok(Buffer.from(out.bytes()).equals(Buffer.from(refOut.bytes())), 'the derived model encodes as the reference');
  const kept = out.convs.filter((c) => c.weights.byteLength >= THRESHOLD && c.name !== 'h');
  t.ok(kept.length > 0);
  const fileBuffer = m.convs[big].weights.buffer;
  t.ok(
    kept.every((c) => c.weights.buffer !== fileBuffer),
    'the kept weights are copies: the derived model does not hold the file buffer',
  );
  m.convs.forEach((c) => {
    const again = kept.find((k) => k.name === c.name);
    if (again) t.ok(bytesOf(again.weights).equals(bytesOf(c.weights)), `${c.name}: kept bit-exact`);
  });
  const target = path.join(tmp, 'derived-out.onnx');
  await out.save(target);
  t.ok(fs.readFileSync(target).equals(Buffer.from(refOut.bytes())), 'the file written');
  t.ok(fs.readFileSync(file).equals(Buffer.from(bytes)), 'the input file is untouched');
  // The float16 weight is decoded from where it lies (unaligned is fine for it).
  const h = m.convs.find((c) => c.name === 'h')!;
  const h16 = decodeModel(new Uint8Array(bytes)).graph!.initializer.find((x) => x.name === 'h.w16')!;
  t.ok(bytesOf(h.weights).equals(bytesOf(tensorFloats(h16, {}))), 'float16 behind a Cast: the same values');
});

/**
 * A Sequential TF.js model written by hand: conv kernels (float32) at shard
 * offsets 0, 1, 3, 2 (mod 4) after uint8 biases of odd sizes, then a
 * depthwise and a plain conv aligned again; a float16 bias last.
 */
function tfjsFixture(dir: string): { kernels: Map<string, { hwio: Float32Array; dims: [number, number, number, number]; offset: number }>; shard: Buffer } {
  const conv = (name: string, filters: number, kernel: [number, number]) => ({
    class_name: 'Conv2D',
    config: { name, filters, kernel_size: kernel, strides: [1, 1], padding: 'same', dilation_rate: [1, 1], activation: 'linear', use_bias: true },
  });
  const layers = [
    { class_name: 'InputLayer', config: { batch_input_shape: [null, 6, 5, 3], dtype: 'float32', name: 'input' } },
    conv('c1', 5, [3, 3]),
    conv('c2', 6, [3, 3]),
    conv('c3', 7, [2, 3]),
    conv('c4', 6, [3, 3]),
    { class_name: 'DepthwiseConv2D', config: { name: 'd5', kernel_size: [3, 3], strides: [1, 1], padding: 'same', depth_multiplier: 2, use_bias: true } },
    conv('c6', 4, [3, 3]),
  ];
  // [layer, cin, filters, kh, kw, bias encoding]
  const shapes: Array<[string, number, number, number, number, 'uint8' | 'float16' | undefined]> = [
    ['c1', 3, 5, 3, 3, 'uint8'],
    ['c2', 5, 6, 3, 3, 'uint8'],
    ['c3', 6, 7, 2, 3, 'uint8'],
    ['c4', 7, 6, 3, 3, 'uint8'],
    ['d5', 6, 12, 3, 3, undefined],
    ['c6', 12, 4, 3, 3, 'float16'],
  ];
  const weights: WeightEntry[] = [];
  const kernels = new Map<string, { hwio: Float32Array; dims: [number, number, number, number]; offset: number }>();
  let offset = 0;
  shapes.forEach(([name, cin, filters, kh, kw, biasEncoding], i) => {
    const depthwise = name.startsWith('d');
    const shape = depthwise ? [kh, kw, cin, filters / cin] : [kh, kw, cin, filters];
    const hwio = seededValues(shape.reduce((a, b) => a * b, 1), 100 + i, 0.5);
    const kernel = encodedEntry(`${name}/${depthwise ? 'depthwise_kernel' : 'kernel'}`, shape, hwio, undefined);
    kernels.set(name, { hwio, dims: [filters, depthwise ? 1 : cin, kh, kw], offset });
    const bias = encodedEntry(`${name}/bias`, [filters], seededValues(filters, 200 + i, 0.5), biasEncoding ? { dtype: biasEncoding } : undefined);
    weights.push(kernel, bias);
    offset += kernel.bytes.length + bias.bytes.length;
  });
  const json = {
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { name: 'inplace', layers }, keras_version: '2.15.0', backend: 'tensorflow' },
  };
  fs.mkdirSync(dir, { recursive: true });
  let shard = Buffer.alloc(0);
  for (const [name, data] of serializeArtifacts(json, weights)) {
    fs.writeFileSync(path.join(dir, name), data);
    if (name.endsWith('.bin')) shard = Buffer.from(data);
  }
  return { kernels, shard };
}

const shardOf = (dir: string) => {
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.bin'));
  return names.length === 1 ? fs.readFileSync(path.join(dir, names[0])) : null;
};

t.test('TF.js: kernels turned HWIO -> OIHW in the shard buffer where aligned, copied where not; the same values and files', async (t) => {
  const dir = path.join(tmp, 'tfjs-in');
  const { kernels, shard } = tfjsFixture(dir);
  t.same(
    [...kernels.values()].map((k) => k.offset % 4),
    [0, 1, 3, 2, 0, 0],
    'the kernels lie at every offset mod 4',
  );
  const m = await loadModel(dir);
  t.same(m.convs.map((c) => c.name), [...kernels.keys()]);
  for (const c of m.convs) {
    const k = kernels.get(c.name)!;
    const [o, i, kh, kw] = k.dims;
    t.ok(bytesOf(c.weights).equals(bytesOf(hwioToOihw(k.hwio, kh, kw, i, o))), `${c.name}: the OIHW values, bit-exact`);
  }
  const aligned = m.convs.filter((c) => kernels.get(c.name)!.offset % 4 === 0).map((c) => c.weights);
  t.equal(new Set(aligned.map((w) => w.buffer)).size, 1, 'the aligned kernels are views of one buffer');
  t.ok(aligned[0].buffer.byteLength <= shard.length + 1, 'that buffer is the shard as read, not a copy');
  t.ok(
    m.convs.filter((c) => kernels.get(c.name)!.offset % 4 !== 0).every((c) => c.weights.byteLength === c.weights.buffer.byteLength),
    'the unaligned ones are copies',
  );
  t.ok(shardOf(dir)!.equals(shard), 'the input shard is untouched');

  const same = path.join(tmp, 'tfjs-same');
  await m.save(same);
  t.ok(shardOf(same)!.equals(shard), 'written unchanged: the same shard bytes');
  const back = await loadModel(same);
  back.convs.forEach((c, i) => t.ok(bytesOf(c.weights).equals(bytesOf(m.convs[i].weights)), `${c.name}: read back, the same OIHW values`));

  // Replacing c4 (unaligned) and c6 (aligned): every other weight is written as read.
  const reps = ['c4', 'c6'].map((n) => svdReplacement(m.convs.find((c) => c.name === n)!, 'dac', 2));
  const out = m.apply(reps);
  const target = path.join(tmp, 'tfjs-out');
  await out.save(target);
  const before = new Map(readArtifacts(path.join(dir, 'model.json')).weights.map((w) => [w.spec.name, w.bytes]));
  const after = readArtifacts(path.join(target, 'model.json')).weights.filter((w) => before.has(w.spec.name));
  t.same(
    after.map((w) => w.spec.name),
    [...before.keys()].filter((n) => !/^c[46]\//.test(n)),
    'every weight but the replaced convs\' is kept',
  );
  for (const w of after) t.ok(Buffer.from(w.bytes).equals(before.get(w.spec.name)!), `${w.spec.name}: the bytes read`);
});

t.test('TF.js: a derived model copies out the kernels it keeps of a shard buffer it fills less than half of', async (t) => {
  const { kernels } = tfjsFixture(path.join(tmp, 'tfjs-derived'));
  const m = await loadModel(path.join(tmp, 'tfjs-derived'));
  const shardBuffer = m.convs.find((c) => c.name === 'c1')!.weights.buffer;
  // d5 (depthwise) and c1 are kept; the replaced convs are most of the shard.
  const out = m.apply(['c2', 'c3', 'c4', 'c6'].map((n) => svdReplacement(m.convs.find((c) => c.name === n)!, 'dac', 2)));
  const kept = out.convs.filter((c) => c.name === 'c1' || c.name === 'd5');
  t.equal(kept.length, 2);
  t.ok(kept.every((c) => c.weights.buffer !== shardBuffer), 'kept kernels no longer view the shard buffer');
  for (const c of kept) {
    const [o, i, kh, kw] = kernels.get(c.name)!.dims;
    t.ok(bytesOf(c.weights).equals(bytesOf(hwioToOihw(kernels.get(c.name)!.hwio, kh, kw, i, o))), `${c.name}: the same values`);
  }
});
