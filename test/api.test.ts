// The whole-model API of the package root (src/api.ts): load from a path or
// from bytes, plan, decompose, save to a path or to bytes, report.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DacError,
  decomposeModel,
  detectFormat,
  loadModel,
  loadModelFromBytes,
  modelReport,
  modelToBytes,
  planDecomposition,
  saveModel,
  type LoadedModel,
  type ModelFiles,
} from '../src/index.js';
import { demoModel, tempDir, vggOnnx } from './fixtures/util.js';

const tmp = tempDir('api');

function demoFiles(): ModelFiles {
  const files: ModelFiles = {};
  for (const f of fs.readdirSync(demoModel)) if (f !== 'README.md') files[f] = fs.readFileSync(path.join(demoModel, f));
  return files;
}

function sameConvs(t: tap.Test, a: LoadedModel, b: LoadedModel): void {
  t.same(a.convs.map((c) => [c.name, c.n, c.c, c.kh, c.kw]), b.convs.map((c) => [c.name, c.n, c.c, c.kh, c.kw]));
  t.same(Array.from(a.convs[3].weights), Array.from(b.convs[3].weights), 'same weights');
  t.same(modelReport(a), modelReport(b));
}

function onnxBytes(model: LoadedModel): Uint8Array {
  const b = modelToBytes(model);
  if (!(b instanceof Uint8Array)) throw new Error('expected ONNX bytes');
  return b;
}

function tfjsFiles(model: LoadedModel): ModelFiles {
  const b = modelToBytes(model);
  if (b instanceof Uint8Array) throw new Error('expected TF.js files');
  return b;
}

/** Temporary folders of loadModelFromBytes still present. */
const leftovers = (): string[] => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('dac-conv-'));

t.test('TF.js from its files in memory: the same model as from the folder, no temporary files left', async (t) => {
  const before = new Set(leftovers());
  const fromPath = await loadModel(demoModel);
  const fromBytes = await loadModelFromBytes(demoFiles(), { name: 'vgg-from-memory' });
  t.equal(fromBytes.format, 'tfjs');
  t.equal(fromBytes.name, 'vgg-from-memory');
  sameConvs(t, fromPath, fromBytes);
  t.same(leftovers().filter((f) => !before.has(f)), [], 'temporary folder removed');
  t.same(modelReport(fromPath).total, { macs: 16444928, params: 923898 }, 'the figures demo/README.md gives');
});

t.test('ONNX from bytes; modelToBytes is what saveModel writes, and loads back the same', async (t) => {
  const bytes = fs.readFileSync(vggOnnx);
  const model = await loadModelFromBytes(bytes, { name: 'vgg' });
  t.equal(model.format, 'onnx');
  sameConvs(t, await loadModel(vggOnnx), model);
  const out = path.join(tmp, 'vgg-copy.onnx');
  await saveModel(model, out);
  const encoded = onnxBytes(model);
  t.same(Buffer.from(encoded), fs.readFileSync(out), 'modelToBytes equals the saved file');
  sameConvs(t, model, await loadModelFromBytes(encoded));
  t.equal(detectFormat(out), 'onnx');
});

t.test('TF.js to bytes and back: a fixed point, and the saved folder loads the same', async (t) => {
  const model = await loadModel(demoModel);
  const files = tfjsFiles(model);
  const names = Object.keys(files).sort();
  t.equal(names.length, 2, names.join(', '));
  t.ok(names.includes('model.json'));
  const again = tfjsFiles(await loadModelFromBytes(files));
  t.same(Object.keys(again).sort(), names);
  for (const n of names) t.same(Buffer.from(again[n]), Buffer.from(files[n]), `${n} unchanged`);
  const out = path.join(tmp, 'vgg-copy');
  await saveModel(model, out);
  // Dot files are the writer's own bookkeeping (which folder it owns), not model files.
  t.same(fs.readdirSync(out).filter((f) => !f.startsWith('.')).sort(), names, 'saveModel writes the same model files');
  for (const n of names) t.same(fs.readFileSync(path.join(out, n)), Buffer.from(files[n]), `saved ${n} is modelToBytes'`);
  sameConvs(t, model, await loadModel(out));
});

t.test('plan, decompose (with BatchNorm folded), report', async (t) => {
  const model = await loadModel(demoModel);
  const settings = { method: 'dac' as const, rank: 2, foldBn: true };
  const plan = planDecomposition(model.foldBatchNorm(), settings);
  const result = decomposeModel(model, settings);
  t.same(result.plan.layers.map((l) => [l.name, l.method, l.rank]), plan.layers.map((l) => [l.name, l.method, l.rank]));
  t.equal(result.report.foldedBatchNorm, true);
  t.equal(result.report.input, model.path);
  t.equal(result.report.output, null);
  t.equal(result.report.flops.after, modelReport(result.model).total.macs, 'the report counts what the model holds');
  t.ok(result.report.flops.after < result.report.flops.before / 2);
  t.equal(model.convs.length, 13, 'the input model is untouched');
  t.equal(result.model.convs.length, 26);
  const plain = decomposeModel(model, { method: 'dac', rank: 2 });
  t.equal(plain.report.foldedBatchNorm, false);
});

t.test('bad bytes and names are refused with a reason', async (t) => {
  const files = demoFiles();
  const reject = async (p: Promise<unknown>, code: string, re: RegExp) => {
    const err = await p.then(() => null, (e: unknown) => e);
    t.ok(err instanceof DacError, String(err));
    t.equal((err as DacError).code, code);
    t.match((err as Error).message, re);
  };
  await reject(loadModelFromBytes({} as ModelFiles), 'EINVAL', /ONNX bytes .* or TF\.js files/);
  await reject(loadModelFromBytes({ ...files, '../escape.bin': new Uint8Array(4) }), 'EINVAL', /plain name/);
  await reject(loadModelFromBytes(files, { name: '../up' }), 'EINVAL', /plain file name/);
  await reject(loadModelFromBytes(files, { maxBytes: 1000 }), 'ETOOBIG', /more than maxBytes 1000/);
  await reject(loadModelFromBytes(fs.readFileSync(vggOnnx), { maxBytes: 1000 }), 'ETOOBIG', /more than maxBytes/);
  await reject(loadModelFromBytes({ 'model.json': '{"modelTopology": ' }), 'EFORMAT', /not valid JSON/);
  const garbage = await loadModelFromBytes(new Uint8Array([1, 2, 3, 4, 5])).then(() => null, (e: unknown) => e);
  t.ok(garbage instanceof DacError, 'garbage ONNX bytes: a DacError');
});
