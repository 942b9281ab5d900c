// ONNX models end to end: reading (shape inference, pads, auto_pad, grouped
// and 1x1 convs, BatchNorm), replacing convs by every method, folding BN,
// writing, and loading the written files in onnxruntime-node unchanged.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, parseOnnx, type LoadedModel } from '../src/formats/index.js';
import { create, decodeModel, encodeModel, toNumber, type TensorProto } from '../src/formats/onnx/schema.js';
import { normalizeImages, readIdxImages } from '../src/data/idx.js';
import { reconstructWeights, relativeError } from '../src/model/reconstruct.js';
import type { DacReplacement, Method } from '../src/model/types.js';
import { createRunner, nhwcToNchw } from '../src/runtime/index.js';
import { svdReplacement } from './fixtures/decompose.js';
import { exactReplacement } from './fixtures/exact.js';
import { branchModel, oddModel } from './fixtures/onnx-models.js';
import { demoImages, hashTree, relErr, seededValues, tempDir, vggOnnx, vggReference } from './fixtures/util.js';

const METHODS: Method[] = ['dac', 'spatial', 'channel'];
const tmp = tempDir('onnx');

async function outputs(model: LoadedModel, x: Float32Array, batch: number): Promise<Float32Array> {
  const r = await createRunner(model);
  try {
    return await r.run(x, batch);
  } finally {
    r.dispose();
  }
}

/** Runs a written file straight through onnxruntime (NCHW input), bypassing the package. */
async function ortOutputs(file: string, x: Float32Array, shape: number[], batch: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  const [h, w, c] = shape;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', nhwcToNchw(x, batch, h, w, c), [batch, c, h, w]) };
  const out = await session.run(feeds);
  await session.release();
  return Float32Array.from(out[session.outputNames[0]].data as Float32Array);
}

function fixtureFile(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, `${name}.onnx`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, bytes);
  return file;
}

t.test('fashion-vgg.onnx: convs, exact costs, reference logits, same weights as the TF.js copy', async (t) => {
  const m = await loadModel(vggOnnx);
  const ref = JSON.parse(fs.readFileSync(vggReference, 'utf8'));
  t.equal(m.format, 'onnx');
  t.equal(m.inputLayout, 'NCHW');
  t.same(m.inputShape, [28, 28, 1]);
  t.equal(m.convs.length, 13);
  t.ok(m.convs.every((c) => c.bnAfter && !c.skipReason));
  let macs = m.other.macs;
  let params = m.other.params;
  for (const c of m.convs) {
    macs += c.n * c.c * c.kh * c.kw * c.outH * c.outW;
    params += c.weights.length + (c.bias?.length ?? 0);
  }
  t.equal(macs, ref.macs_per_image);
  t.equal(params, ref.params);
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 8);
  const y = await outputs(m, x, 8);
  const expected = Float32Array.from(ref.first8_test_logits.flat() as number[]);
  t.ok(relErr(expected, y) < 1e-4, `logits match reference.json (rel ${relErr(expected, y).toExponential(2)})`);
  const tfjs = await loadModel(path.join(__dirname, '..', 'demo', 'fashion-vgg'));
  t.ok(m.convs.every((c, i) => relativeError(tfjs.convs[i].weights, c.weights) === 0), 'OIHW weights equal those read from TF.js (HWIO)');
});

t.test('fashion-vgg.onnx at full rank through every method equals the original', async (t) => {
  const m = await loadModel(vggOnnx);
  const hash = hashTree(vggOnnx);
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 16);
  const y0 = await ortOutputs(vggOnnx, x, m.inputShape, 16);
  for (const method of METHODS) {
    const reps = m.convs.map((c) => svdReplacement(c, method));
    for (const [i, rep] of reps.entries()) {
      const e = relativeError(m.convs[i].weights, reconstructWeights(rep, m.convs[i]));
      if (e > 1e-5) t.fail(`${method} ${rep.name}: weight error ${e}`);
    }
    const out = path.join(tmp, `vgg-${method}.onnx`);
    await m.apply(reps).save(out);
    const y1 = await ortOutputs(out, x, m.inputShape, 16);
    t.ok(relErr(y0, y1) < 1e-4, `${method}: onnxruntime loads the file, outputs match (rel ${relErr(y0, y1).toExponential(2)})`);
    const again = await loadModel(out);
    t.equal(again.convs.length, 26);
    const proto = decodeModel(fs.readFileSync(out));
    t.same(proto.opset_import.map((o) => toNumber(o.version)), [13], `${method}: opset kept`);
    t.same(proto.graph!.output.map((o) => o.name), ['logits'], `${method}: graph output kept`);
    const used = new Set(proto.graph!.node.flatMap((n) => n.input));
    t.ok(proto.graph!.initializer.every((i) => used.has(i.name!)), `${method}: no orphan initializers`);
  }
  t.equal(hashTree(vggOnnx), hash, 'the source file is unchanged');
});

t.test('small graphs: odd shapes, asymmetric pads, auto_pad, dilation, groups, residuals, float_data, IR 3', async (t) => {
  const cases = [
    { name: 'odd', bytes: oddModel(), decomposable: ['convA', 'convB', 'convE', 'convF', 'convG', 'convH'] },
    { name: 'odd-float-data-ir3', bytes: oddModel(true, true), decomposable: ['convA', 'convB', 'convE', 'convF', 'convG', 'convH'] },
    { name: 'branch', bytes: branchModel(), decomposable: ['ra', 'rb', 'rout'] },
  ];
  for (const cs of cases) {
    const file = fixtureFile(cs.name, cs.bytes);
    const m = await loadModel(file);
    t.same(m.convs.filter((c) => !c.skipReason).map((c) => c.name), cs.decomposable, `${cs.name}: decomposable convs`);
    const x = seededValues(3 * m.inputShape.reduce((a, b) => a * b, 1), 31);
    const y0 = await ortOutputs(file, x, m.inputShape, 3);
    t.ok(relErr(y0, await outputs(m, x, 3)) < 1e-6, `${cs.name}: runner (NHWC in, transposed) agrees with onnxruntime`);
    for (const method of METHODS) {
      for (const [kind, make] of [
        ['exact', exactReplacement],
        ['svd', svdReplacement],
      ] as const) {
        const out = path.join(tmp, `${cs.name}-${method}-${kind}.onnx`);
        await m.apply(m.convs.filter((c) => !c.skipReason).map((c) => make(c, method))).save(out);
        const y = await ortOutputs(out, x, m.inputShape, 3);
        t.ok(relErr(y0, y) < 1e-4, `${cs.name} ${method} ${kind}: outputs equal (rel ${relErr(y0, y).toExponential(2)})`);
      }
    }
  }
  const odd = await loadModel(fixtureFile('odd', oddModel()));
  const byName = new Map(odd.convs.map((c) => [c.name, c]));
  t.same(byName.get('convB')!.pads, [0, 1, 1, 0], 'explicit asymmetric pads');
  t.same([byName.get('convB')!.outH, byName.get('convB')!.outW], [4, 5]);
  t.same(byName.get('convE')!.pads, [0, 1, 0, 1], 'SAME_UPPER puts the extra pixel after');
  t.same(byName.get('convG')!.pads, [1, 1, 0, 0], 'SAME_LOWER puts the extra pixel before');
  t.equal(byName.get('convC')!.skipReason, '1x1 convolution (nothing to decompose)');
  t.equal(byName.get('convD')!.skipReason, 'depthwise convolution (groups = channels)');
  t.ok(byName.get('convB')!.bnAfter && byName.get('convC')!.bnBefore, 'BatchNorm after convB, and before convC through a Relu');
  const branch = await loadModel(fixtureFile('branch', branchModel()));
  t.equal(branch.convs.find((c) => c.name === 'rg')!.skipReason, 'grouped convolution (groups=2)');
});

t.test('the written graph: node order, names, attributes, bias on the second conv', async (t) => {
  const m = await loadModel(fixtureFile('odd', oddModel()));
  const convE = m.convs.find((c) => c.name === 'convE')!;
  const convB = m.convs.find((c) => c.name === 'convB')!;
  const convF = m.convs.find((c) => c.name === 'convF')!;
  const out = path.join(tmp, 'odd-structure.onnx');
  await m.apply([svdReplacement(convE, 'dac', 2), svdReplacement(convB, 'spatial', 4), svdReplacement(convF, 'channel', 3)]).save(out);
  const g = decodeModel(fs.readFileSync(out)).graph!;
  const names = g.node.map((n) => n.name);
  t.ok(names.indexOf('convE_dw') === names.indexOf('convE_pw') - 1, 'the pair sits where the conv was');
  const dw = g.node.find((n) => n.name === 'convE_dw')!;
  const pw = g.node.find((n) => n.name === 'convE_pw')!;
  const attr = (n: typeof dw, k: string) => n.attribute.find((a) => a.name === k);
  t.equal(toNumber(attr(dw, 'group')!.i), 17, 'depthwise: group = input channels');
  t.equal(Buffer.from(attr(dw, 'auto_pad')!.s!).toString(), 'SAME_UPPER', 'auto_pad carried over');
  t.same(attr(dw, 'strides')!.ints.map(toNumber), [2, 2]);
  const dims = (name: string) => g.initializer.find((i: TensorProto) => i.name === name)!.dims.map(toNumber);
  t.same(dims(dw.input[1]), [34, 1, 2, 3], 'depthwise weight [c*r, 1, kh, kw]');
  t.same(dims(pw.input[1]), [4, 34, 1, 1], 'pointwise weight [n, c*r, 1, 1]');
  t.equal(pw.input.length, 3, 'the pointwise conv takes the bias');
  t.equal(dw.input.length, 2, 'the depthwise conv has no bias');
  t.equal(pw.output[0], 'convE.out', 'the pair writes the original output tensor');
  const v = g.node.find((n) => n.name === 'convB_v')!;
  const h = g.node.find((n) => n.name === 'convB_h')!;
  t.same(attr(v, 'pads')!.ints.map(toNumber), [0, 0, 1, 0], 'vertical stage pads rows only');
  t.same(attr(h, 'pads')!.ints.map(toNumber), [0, 1, 0, 0], 'horizontal stage pads columns only');
  t.same(attr(v, 'strides')!.ints.map(toNumber), [2, 1]);
  t.same(attr(h, 'strides')!.ints.map(toNumber), [1, 2]);
  t.equal(h.input.length, 2, 'convB had no bias, nor has its replacement');
  const c1 = g.node.find((n) => n.name === 'convF_c1')!;
  t.same(attr(c1, 'dilations')!.ints.map(toNumber), [2, 2]);
  t.same(attr(c1, 'pads')!.ints.map(toNumber), [2, 1, 2, 3]);
  t.notOk(g.initializer.some((i) => i.name === 'convE.w'), 'the replaced weight is dropped');
});

t.test('BatchNorm folding keeps the outputs and removes the BN nodes', async (t) => {
  for (const [name, bytes, count] of [
    ['odd', oddModel(), 1],
    ['branch', branchModel(), 1],
  ] as const) {
    const file = fixtureFile(name, bytes);
    const m = await loadModel(file);
    t.equal(m.convs.filter((c) => c.bnAfter).length, count);
    const folded = m.foldBatchNorm();
    t.equal(folded.convs.filter((c) => c.bnAfter).length, 0, `${name}: no BN after a conv`);
    const out = path.join(tmp, `${name}-folded.onnx`);
    await folded.save(out);
    const g = decodeModel(fs.readFileSync(out)).graph!;
    t.notOk(g.node.some((n) => n.op_type === 'BatchNormalization'), `${name}: BN node removed`);
    const x = seededValues(2 * m.inputShape.reduce((a, b) => a * b, 1), 8);
    const y0 = await ortOutputs(file, x, m.inputShape, 2);
    const y1 = await ortOutputs(out, x, m.inputShape, 2);
    t.ok(relErr(y0, y1) < 1e-5, `${name}: outputs equal (rel ${relErr(y0, y1).toExponential(2)})`);
  }
  const vgg = await loadModel(vggOnnx);
  const folded = vgg.foldBatchNorm();
  t.equal(folded.other.params, 1290);
  const x = normalizeImages(readIdxImages(demoImages), 0.286, 0.353, 8);
  t.ok(relErr(await outputs(vgg, x, 8), await outputs(folded, x, 8)) < 1e-5, 'fashion-vgg: folding keeps the logits');
});

t.test('bad input gives clear errors', async (t) => {
  const good = fs.readFileSync(fixtureFile('odd', oddModel()));
  const write = (name: string, bytes: Uint8Array) => {
    const f = path.join(tmp, `bad-${name}.onnx`);
    fs.writeFileSync(f, bytes);
    return f;
  };
  const edit = (fn: (m: ReturnType<typeof decodeModel>) => void) => {
    const m = decodeModel(good);
    fn(m);
    return encodeModel(m);
  };
  const nanWeights = edit((m) => {
    const w = m.graph!.initializer.find((i) => i.name === 'convA.w')!;
    const raw = Buffer.from(w.raw_data!);
    raw.writeFloatLE(NaN, 4);
    w.raw_data = raw;
  });
  const external = edit((m) => {
    const w = m.graph!.initializer.find((i) => i.name === 'convB.w')!;
    w.raw_data = new Uint8Array(0);
    w.data_location = 1;
    w.external_data = [create('StringStringEntryProto', { key: 'location', value: 'weights.bin' })];
  });
  const shortRaw = edit((m) => {
    const w = m.graph!.initializer.find((i) => i.name === 'convA.w')!;
    w.raw_data = w.raw_data!.subarray(0, 12);
  });
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated', good.subarray(0, Math.floor(good.length / 2)), /cannot parse ONNX protobuf \(truncated or not an ONNX file\)/],
    ['garbage', Buffer.from('this is not a model at all'), /cannot parse ONNX|not an ONNX model/],
    ['empty', new Uint8Array(0), /not an ONNX model: no graph/],
    ['nan', nanWeights, /layer convA, field convA.w: value \[1\] is NaN/],
    ['external', external, /initializer convB.w uses external data/],
    ['short-raw', shortRaw, /initializer convA.w has 12 bytes of raw_data, its dims \[5, 3, 3, 3\] need 540/],
  ];
  for (const [name, bytes, re] of cases) {
    await t.rejects(loadModel(write(name, bytes)), re, name);
  }
  t.throws(() => parseOnnx(good.subarray(0, 10)), /cannot parse ONNX protobuf|not an ONNX model/);
});

t.test('apply and save: inputs untouched, outputs checked', async (t) => {
  const file = fixtureFile('branch', branchModel());
  const hash = hashTree(file);
  const m = await loadModel(file);
  const rep = svdReplacement(m.convs[0], 'dac', 2) as DacReplacement;
  const m2 = m.apply([rep]);
  t.equal(m.convs.length, 4, 'the input model object is unchanged');
  t.equal(m2.convs.length, 5);
  t.throws(() => m.apply([{ ...rep, rank: 0 }]), /rank must be an integer in 1/);
  t.throws(() => m.apply([svdReplacement(m.convs[0], 'dac', 2), { ...rep, name: 'rg' }]), /grouped convolution/);
  await t.rejects(m2.save(file), /refusing to (overwrite the|write over an) input/);
  await t.rejects(m2.save(path.dirname(file)), /contains the input/);
  const folder = path.join(tmp, 'a-folder');
  fs.mkdirSync(folder, { recursive: true });
  await t.rejects(m2.save(folder), /is a folder/);
  t.equal(hashTree(file), hash, 'the input file is unchanged');
  t.same(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temp files are left');
});

t.test('size limits: a file over the limit is refused by its size, before it is read', async (t) => {
  const refused = async (p: Promise<unknown>, code: string, what: string) => {
    const err = await p.then(
      () => null,
      (e: { name: string; code: string; context: { model?: string; field?: string } }) => e,
    );
    t.match(err, { name: 'DacError', code, context: { field: code === 'EINVAL' ? 'maxBytes' : 'file' } }, what);
    if (code !== 'EINVAL') t.ok(err?.context.model, `${what}: names the model`);
  };
  // 3 GB, sparse: no disk or memory is used, so it can only pass if it is read.
  const huge = path.join(tmp, 'huge.onnx');
  fs.writeFileSync(huge, '');
  fs.truncateSync(huge, 3 * 1024 ** 3);
  await refused(loadModel(huge), 'ETOOBIG', 'a 3 GB .onnx under the default limit');
  const size = fs.statSync(vggOnnx).size;
  await refused(loadModel(vggOnnx, { maxBytes: size - 1 }), 'ETOOBIG', 'one byte over a given limit');
  t.ok((await loadModel(vggOnnx, { maxBytes: size })).convs.length > 0, 'loads at exactly the limit');
  await refused(loadModel(vggOnnx, { maxBytes: 0 }), 'EINVAL', 'a limit of 0');
});

t.test('streamed writing: the chunks are the encoding, weights handed out as they are, and the file holds them', async (t) => {
  const { encodeModelChunks } = await import('../src/formats/onnx/schema.js');
  const { prepareWrite, writeDecomposed } = await import('../src/write.js');
  const file = fs.readFileSync(vggOnnx);
  const proto = decodeModel(file);
  const chunks = encodeModelChunks(proto);
  t.ok(Buffer.concat(chunks).equals(Buffer.from(encodeModel(proto))), 'the chunks joined are encodeModel’s bytes');
  const big = proto.graph!.initializer.reduce((a, x) => (x.raw_data!.length > a.raw_data!.length ? x : a));
  t.ok(chunks.includes(big.raw_data!), 'a weight is a chunk of its own, not a copy');

  // Loading aligns the bytes the file has unaligned (large ones where they lie, small ones packed): the same model.
  const m = await loadModel(vggOnnx);
  t.ok(Buffer.from((m as unknown as { bytes(): Uint8Array }).bytes()).equals(file), 'loaded and encoded again: the file');
  const rep = svdReplacement(m.convs[1], 'dac', 2);
  const out = m.apply([rep]);
  const target = path.join(tmp, 'streamed.onnx');
  await writeDecomposed(prepareWrite({ input: vggOnnx, output: target, kind: 'file', report: null }), out, null);
  t.ok(fs.readFileSync(target).equals(Buffer.from((out as unknown as { bytes(): Uint8Array }).bytes())), 'the file written is bytes()');
});
