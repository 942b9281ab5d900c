// `dac compare`: run two models on the same inputs and say how far apart
// their outputs are (max abs diff, relative error, top-1 agreement).
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { DacError } from '../errors.js';
import { loadModel, type LoadedModel } from '../formats/index.js';
import { normalizeImages, readIdxImages, readIdxLabels } from '../data/idx.js';
import { createRunner, type Runner, type TfjsBackendName } from '../runtime/index.js';
import { argmax, floatOption, intOption, parse, seededNormal, UsageError, type Options } from './common.js';
import { inputShapeFlag, inputShapeFrom } from './settings.js';

/** Height and width compare runs models with free input sizes at, unless --input-shape says otherwise. */
export const COMPARE_FREE_SIZE = 64;

export const compareOptions: Options = {
  inputs: { type: 'string', short: 'n' },
  seed: { type: 'string' },
  input: { type: 'string', short: 'i' },
  labels: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  'tfjs-backend': { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
  ...inputShapeFlag,
};

export const compareHelp = `Usage: dac-conv compare <a> <b> [--inputs N] [--input FILE] [options]

Runs models a and b (TF.js or ONNX, in any mix, same input size) on the same
inputs and prints, per input set: the largest absolute output difference,
the relative error ||y_a - y_b|| / ||y_a||, and how often the top-1 class agrees.

Options:
  -n, --inputs N        N seeded random N(0,1) images (default 8; 0 with --input for none)
  --seed S              seed of the random images (default 1)
  -i, --input FILE      also compare on FILE: an IDX images file (.gz or plain; pixels
                        normalized (p/255 - mean)/std) or raw float32 NHWC images
  --labels FILE         IDX labels for --input: also print each model's accuracy
  --mean M, --std S     normalization of IDX pixels (default 0.286, 0.353: Fashion-MNIST)
  --tfjs-backend B      TF.js backend: tensorflow, wasm or cpu (default: the fastest installed)
  --threads N           onnxruntime threads
  --input-shape HxW[xC] the input size for models that leave it free (default 64x64)
  --json                machine-readable output
  -h, --help            this help
`;

export interface Comparison {
  set: string;
  count: number;
  maxAbsDiff: number;
  relError: number;
  top1Agreement: number;
  accuracy?: { a: number; b: number };
}

function isIdx(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) {
      const inflated = zlib.gunzipSync(fs.readFileSync(file)).subarray(0, 4);
      return inflated[0] === 0 && inflated[1] === 0 && inflated[2] === 0x08;
    }
    return head[0] === 0 && head[1] === 0 && head[2] === 0x08;
  } finally {
    fs.closeSync(fd);
  }
}

/** Images from a file as NHWC float32 for a model taking [H, W, C]. */
export function readInputFile(file: string, shape: number[], mean: number, std: number): { data: Float32Array; count: number } {
  if (!fs.existsSync(file)) throw new DacError('ENOENT', 'input file does not exist', { field: 'input', model: file });
  const per = shape[0] * shape[1] * shape[2];
  if (isIdx(file)) {
    const images = readIdxImages(file);
    if (images.rows !== shape[0] || images.cols !== shape[1] || shape[2] !== 1) {
      throw new DacError('ESHAPE', `IDX images are ${images.rows}x${images.cols}x1, the model takes ${shape.join('x')}`, { model: file });
    }
    return { data: normalizeImages(images, mean, std), count: images.count };
  }
  const buf = fs.readFileSync(file);
  if (buf.length === 0 || buf.length % (per * 4) !== 0) {
    throw new DacError('ESHAPE', `raw input has ${buf.length} bytes, not a multiple of one float32 image (${per * 4} bytes)`, { model: file });
  }
  const data = new Float32Array(buf.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(4 * i);
  return { data, count: data.length / per };
}

export function compareOutputs(set: string, ya: Float32Array, yb: Float32Array, count: number, labels?: Uint8Array): Comparison {
  if (ya.length !== yb.length) {
    throw new DacError('ESHAPE', `the models' outputs differ in size (${ya.length / count} vs ${yb.length / count} per input)`, {});
  }
  const classes = ya.length / count;
  let maxAbsDiff = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ya.length; i++) {
    const d = Math.abs(ya[i] - yb[i]);
    if (!(d <= maxAbsDiff)) maxAbsDiff = d;
    num += d * d;
    den += ya[i] * ya[i];
  }
  let agree = 0;
  let accA = 0;
  let accB = 0;
  for (let i = 0; i < count; i++) {
    const a = argmax(ya, i, classes);
    const b = argmax(yb, i, classes);
    if (a === b) agree++;
    if (labels) {
      if (a === labels[i]) accA++;
      if (b === labels[i]) accB++;
    }
  }
  const out: Comparison = {
    set,
    count,
    maxAbsDiff,
    relError: den > 0 ? Math.sqrt(num / den) : Math.sqrt(num),
    top1Agreement: agree / count,
  };
  if (labels) out.accuracy = { a: accA / count, b: accB / count };
  return out;
}

export function formatComparison(c: Comparison): string {
  const acc = c.accuracy ? `, accuracy a ${(c.accuracy.a * 100).toFixed(2)}% b ${(c.accuracy.b * 100).toFixed(2)}%` : '';
  return `${c.set} (${c.count} inputs): max abs diff ${c.maxAbsDiff.toExponential(3)}, relative error ${c.relError.toExponential(3)}, top-1 agreement ${(c.top1Agreement * 100).toFixed(2)}%${acc}`;
}

export async function runCompare(args: string[]): Promise<number> {
  const { values, positionals } = parse('compare', args, compareOptions);
  if (values.help) {
    process.stdout.write(compareHelp);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError('compare takes exactly two model paths', 'compare');
  const n = intOption(values.inputs, '--inputs', 0, 100000) ?? 8;
  const seed = intOption(values.seed, '--seed', 0, 2 ** 32 - 1) ?? 1;
  const mean = floatOption(values.mean, '--mean') ?? 0.286;
  const std = floatOption(values.std, '--std') ?? 0.353;
  if (!(std > 0)) throw new UsageError('--std must be > 0', 'compare');
  const backend = values['tfjs-backend'] as TfjsBackendName | undefined;
  const threads = intOption(values.threads, '--threads', 1, 1024);
  if (n === 0 && values.input === undefined) throw new UsageError('--inputs 0 needs --input FILE', 'compare');
  if (values.labels !== undefined && values.input === undefined) throw new UsageError('--labels needs --input', 'compare');

  const inputShape = inputShapeFrom(values, 'compare');
  let [a, b]: LoadedModel[] = [await loadModel(positionals[0], { inputShape }), await loadModel(positionals[1], { inputShape })];
  let sizeNote = '';
  if (a.freeInput && b.freeInput) {
    // Free sizes would run at the nominal 1024x1024: a small size shows the same agreement far faster.
    const small = { inputShape: [COMPARE_FREE_SIZE, COMPARE_FREE_SIZE] };
    [a, b] = [await loadModel(positionals[0], small), await loadModel(positionals[1], small)];
    sizeNote = `input ${a.inputShape.join('x')} (the models leave the size free; --input-shape to choose)\n`;
  }
  if (a.inputShape.join('x') !== b.inputShape.join('x')) {
    throw new DacError('ESHAPE', `the models take different inputs (${a.inputShape.join('x')} vs ${b.inputShape.join('x')})`, {});
  }
  const per = a.inputShape.reduce((p, d) => p * d, 1);
  const sets: { name: string; data: Float32Array; count: number; labels?: Uint8Array }[] = [];
  if (n > 0) sets.push({ name: `random (seed ${seed})`, data: seededNormal(n * per, seed), count: n });
  if (values.input !== undefined) {
    const file = String(values.input);
    const { data, count } = readInputFile(file, a.inputShape, mean, std);
    let labels: Uint8Array | undefined;
    if (values.labels !== undefined) {
      labels = readIdxLabels(String(values.labels));
      if (labels.length < count) throw new DacError('ESHAPE', `${labels.length} labels for ${count} images`, { model: String(values.labels) });
    }
    sets.push({ name: file, data, count, labels });
  }
  const runners: Runner[] = [];
  try {
    runners.push(await createRunner(a, { tfjsBackend: backend, threads }));
    runners.push(await createRunner(b, { tfjsBackend: backend, threads }));
    const results: Comparison[] = [];
    for (const s of sets) {
      const ya = await runners[0].run(s.data, s.count);
      const yb = await runners[1].run(s.data, s.count);
      results.push(compareOutputs(s.name, ya, yb, s.count, s.labels));
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ a: a.path, b: b.path, engines: runners.map((r) => r.engine), results }, null, 2)}\n`);
    } else {
      process.stdout.write(`${sizeNote}a: ${a.path} (${runners[0].engine})\nb: ${b.path} (${runners[1].engine})\n`);
      for (const r of results) process.stdout.write(`${formatComparison(r)}\n`);
    }
  } finally {
    runners.forEach((r) => r.dispose());
  }
  return 0;
}
