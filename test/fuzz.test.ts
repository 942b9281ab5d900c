// Fuzzing the model readers, writers and the decomposition API with hostile
// input. Every case runs in a worker of the zoo pool, so a crash shows up as
// a lost worker and a hang as a timeout instead of taking the test down; each
// must end either fine or in a DacError (never a RangeError from a typed
// array, a TypeError from a missing field, a stack overflow, a crash or a
// hang). Seeded and bounded: DAC_FUZZ_SEED picks another seed,
// DAC_FUZZ_SCALE multiplies the number of random cases.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { DacError } from '../src/errors.js';
import { decodeModel, encodeModel, type ModelProto, type TensorProto } from '../src/formats/onnx/schema.js';
import { availableBackends } from '../src/index.js';
import type { ModelSettings } from '../src/decompose-model.js';
import { ISOLATED_WORKER, type ProbeRequest } from './helpers/isolated.js';
import { checkDims, readFileBounded, resolveInside } from '../src/io/limits.js';
import { topoOrder } from '../src/model/graph.js';
import { WorkerPool } from '../src/zoo/pool.js';
import { onnxNet, writeOnnxNet, writeTfjsNet, type NetSpec } from '../bench/synthetic.js';
import { mulberry32 } from '../src/random.js';

const SEED = Number(process.env.DAC_FUZZ_SEED ?? 20190107);
const SCALE = Math.max(0.1, Number(process.env.DAC_FUZZ_SCALE ?? 1));
const count = (n: number): number => Math.max(1, Math.round(n * SCALE));
/** Far above what any case needs (each takes well under a second on the small source): past this it hangs. */
const CASE_TIMEOUT_MS = 20_000;
const MAX_MODEL_BYTES = 256 * 1024 * 1024;

const repoRoot = path.resolve(__dirname, '..');
const rand = mulberry32(SEED);
const randInt = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[randInt(xs.length)];

type Outcome =
  | { kind: 'ok'; result: unknown }
  | { kind: 'rejected'; code: string; message: string }
  | { kind: 'untyped'; name: string; message: string }
  | { kind: 'crash' | 'hang'; message: string };

interface FuzzCase {
  name: string;
  group: string;
  request: { kind: 'probe'; payload: ProbeRequest } | { kind: 'call'; payload: { fn: string; args: unknown[] } };
  /** For API calls: what a correct implementation must do with these arguments. */
  expect?: { valid: boolean; lengths?: Record<string, number> };
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-fuzz-'));
// DAC_FUZZ_KEEP=1 keeps the case files, so a failure can be replayed (each failure names its file).
if (!process.env.DAC_FUZZ_KEEP) t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
let caseId = 0;
const caseDir = (): string => {
  const d = path.join(work, `c${caseId++}`);
  fs.mkdirSync(d);
  return d;
};

const decompose: ModelSettings = { method: 'dac', rank: 2 };

/** What a case must end in when that is clear: the input is fine (true) or must be refused (false). */
type Verdict = boolean | undefined;
const REJECT = false;
const ACCEPT = true;

/**
 * Loading `file` in a worker; with `full`, also decomposing, saving and
 * reloading the result (mutations of the small synthetic source get that;
 * those of the real demo model, whose planning takes seconds, only load).
 */
function inspectCase(group: string, name: string, file: string, format: 'tfjs' | 'onnx', valid?: Verdict, full = true): FuzzCase {
  const saveTo = path.join(path.dirname(file), format === 'onnx' ? 'saved.onnx' : 'saved');
  const extra = full ? { decompose, saveTo } : {};
  return {
    group,
    name,
    // Straight to loadModel: the readers themselves must refuse what is wrong.
    request: { kind: 'probe', payload: { path: file, maxModelBytes: MAX_MODEL_BYTES, ...extra } },
    expect: valid === undefined ? undefined : { valid },
  };
}

// ---- source models: synthetic ones (always), plus the repo's demo model when it is there

const smallSpec: NetSpec = {
  name: 'fuzz_small',
  input: [9, 11, 3],
  convs: [
    { filters: 8, kernel: [3, 3], bn: true },
    { filters: 6, kernel: [3, 3], strides: [2, 2], dilation: [1, 1], padding: 'valid' },
    { filters: 5, kernel: [3, 1], dilation: [2, 2], bn: true, pool: true },
  ],
  classes: 4,
};

const srcDir = path.join(work, 'src');
const sources: { tfjs: string[]; onnx: string[] } = {
  tfjs: [writeTfjsNet(path.join(srcDir, 'small-tfjs'), smallSpec, SEED)],
  onnx: [writeOnnxNet(path.join(srcDir, 'small.onnx'), smallSpec, SEED)],
};
// The real fashion-vgg model, in the places the repo keeps it.
const demoTfjs = path.join(repoRoot, 'demo/fashion-vgg/model.json');
const demoOnnx = path.join(repoRoot, 'test/fixtures/fashion-vgg.onnx');
if (fs.existsSync(demoTfjs)) sources.tfjs.push(demoTfjs);
if (fs.existsSync(demoOnnx)) sources.onnx.push(demoOnnx);

function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to); // another file system
  }
}

/**
 * A copy of a TF.js folder (model.json + shards) in a fresh case folder;
 * returns the new model.json. Shards are hard links unless `ownShards`:
 * only cases that mutate a shard need their own copy.
 */
function copyTfjs(modelJson: string, ownShards = false): string {
  const d = caseDir();
  for (const f of fs.readdirSync(path.dirname(modelJson))) {
    const from = path.join(path.dirname(modelJson), f);
    if (!fs.statSync(from).isFile()) continue;
    if (f === 'model.json' || ownShards) fs.copyFileSync(from, path.join(d, f));
    else linkOrCopy(from, path.join(d, f));
  }
  return path.join(d, 'model.json');
}

function shardOf(modelJson: string): string {
  const json = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  return path.join(path.dirname(modelJson), json.weightsManifest[0].paths[0]);
}

function flipBytes(buf: Buffer, flips: number): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i < flips; i++) out[randInt(out.length)] ^= 1 << randInt(8);
  return out;
}

const cases: FuzzCase[] = [];

// ---- TF.js: unmodified sources must load (the fuzz is only meaningful if they do)

for (const src of sources.tfjs) cases.push(inspectCase('tfjs-baseline', `baseline ${src}`, copyTfjs(src), 'tfjs', ACCEPT, src === sources.tfjs[0]));
for (const src of sources.onnx) {
  const f = path.join(caseDir(), 'model.onnx');
  fs.copyFileSync(src, f);
  cases.push(inspectCase('onnx-baseline', `baseline ${src}`, f, 'onnx', ACCEPT, src === sources.onnx[0]));
}

// ---- TF.js: random byte flips and truncations of model.json and of the shard

for (const src of sources.tfjs) {
  const text = fs.readFileSync(src);
  for (let i = 0; i < count(30); i++) {
    const f = copyTfjs(src);
    fs.writeFileSync(f, flipBytes(text, 1 + randInt(8)));
    cases.push(inspectCase('tfjs-bytes', `model.json byte flips #${i}`, f, 'tfjs', undefined, src === sources.tfjs[0]));
  }
  for (let i = 0; i < count(8); i++) {
    const f = copyTfjs(src);
    fs.writeFileSync(f, text.subarray(0, randInt(text.length)));
    cases.push(inspectCase('tfjs-bytes', `model.json truncated #${i}`, f, 'tfjs', undefined, src === sources.tfjs[0]));
  }
  for (let i = 0; i < count(8); i++) {
    const f = copyTfjs(src, true);
    const shard = shardOf(f);
    const bytes = fs.readFileSync(shard);
    fs.writeFileSync(shard, i % 2 ? bytes.subarray(0, randInt(bytes.length)) : flipBytes(bytes, 1 + randInt(64)));
    cases.push(inspectCase('tfjs-bytes', `shard ${i % 2 ? 'truncated' : 'byte flips'} #${i}`, f, 'tfjs', undefined, src === sources.tfjs[0]));
  }
}

// ---- TF.js: random JSON field mutations

/**
 * A placeholder for an array nested `depth` deep; `stringify` writes it out.
 * (JSON.stringify itself overflows the stack on such values.)
 */
function deepArray(depth: number): string {
  return `@@deep:${depth}@@`;
}

function stringify(json: unknown): string {
  return JSON.stringify(json).replace(/"@@deep:(\d+)@@"/g, (_, d) => '['.repeat(Number(d)) + '1' + ']'.repeat(Number(d)));
}

const HOSTILE: unknown[] = [
  -1, 0, 1e12, 2 ** 31, 2 ** 53 + 2, -(2 ** 31), 0.5, 'x', '', null, true, [], {}, [1e9, 1e9, 1e9, 1e9], [-3, 3], [0, 0], ['3', '3'],
  [null, 1e9, 1e9, 1], [null, -28, 28, 1],
];

type Json = Record<string, unknown> | unknown[];

/** Every (container, key) pair of a JSON tree, iteratively. */
function slots(root: unknown): Array<[Json, string | number]> {
  const out: Array<[Json, string | number]> = [];
  const stack: unknown[] = [root];
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) v.forEach((c, i) => (out.push([v, i]), stack.push(c)));
    else if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) out.push([v as Json, k]), stack.push(c);
  }
  return out;
}

function mutateJson(json: Record<string, unknown>): string {
  const all = slots(json);
  const [container, key] = pick(all);
  const r = rand();
  if (r < 0.7) (container as Record<string | number, unknown>)[key] = pick(HOSTILE);
  else if (r < 0.8) (container as Record<string | number, unknown>)[key] = deepArray(20_000);
  else if (Array.isArray(container)) container.splice(key as number, 1);
  else delete (container as Record<string, unknown>)[key as string];
  return stringify(json);
}

/** Replaces one number in the text by a token JSON.parse turns into Infinity, -0, a huge integer, or that is not JSON at all. */
function mutateNumberToken(text: string): string {
  const nums = [...text.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
  if (nums.length === 0) return text;
  const m = pick(nums);
  const token = pick(['1e400', '-1e400', '1e-400', '-0', '9007199254740993', '4294967296', '-1', '0', '0.5', 'NaN', 'Infinity']);
  return text.slice(0, m.index!) + token + text.slice(m.index! + m[0].length);
}

for (const src of sources.tfjs) {
  const original = JSON.parse(fs.readFileSync(src, 'utf8'));
  for (let i = 0; i < count(60); i++) {
    const f = copyTfjs(src);
    fs.writeFileSync(f, mutateJson(JSON.parse(JSON.stringify(original))));
    cases.push(inspectCase('tfjs-json', `json field mutation #${i}`, f, 'tfjs', undefined, src === sources.tfjs[0]));
  }
  for (let i = 0; i < count(20); i++) {
    const f = copyTfjs(src);
    fs.writeFileSync(f, mutateNumberToken(fs.readFileSync(src, 'utf8')));
    cases.push(inspectCase('tfjs-json', `number token mutation #${i}`, f, 'tfjs', undefined, src === sources.tfjs[0]));
  }
}

// ---- TF.js: targeted mutations (sizes, shapes, paths, graphs)

function tfjsTargeted(name: string, valid: Verdict, edit: (json: any, dir: string) => void): void {
  const f = copyTfjs(sources.tfjs[0], true);
  const json = JSON.parse(fs.readFileSync(f, 'utf8'));
  edit(json, path.dirname(f));
  fs.writeFileSync(f, stringify(json));
  cases.push(inspectCase('tfjs-targeted', name, f, 'tfjs', valid));
}

const firstConv = (json: any): any => json.modelTopology.config.layers.find((l: any) => l.class_name === 'Conv2D');
const kernelSpec = (json: any): any => json.weightsManifest[0].weights[0];

for (const shape of [[1e6, 1e6, 1e6, 1e6], [-3, 3, 3, 8], [0, 3, 3, 8], [3.5, 3, 3, 8], ['3', 3, 3, 8], [2 ** 53, 2 ** 53], Array(100).fill(2), [], null, 'abc']) {
  tfjsTargeted(`weight shape ${JSON.stringify(shape).slice(0, 40)}`, REJECT, (j) => (kernelSpec(j).shape = shape));
}
for (const dtype of ['float64', 'complex64', 'string', 'int32', 'bool', 7]) tfjsTargeted(`weight dtype ${dtype}`, REJECT, (j) => (kernelSpec(j).dtype = dtype));
for (const q of [{ dtype: 'uint8', scale: null, min: 0 }, { dtype: 'uint8' }, { dtype: 'int4', scale: 1, min: 0 }, { dtype: 'float16' }, 'yes']) {
  tfjsTargeted(`quantization ${JSON.stringify(q)}`, REJECT, (j) => (kernelSpec(j).quantization = q));
}
for (const p of ['../../../../../../etc/passwd', '/etc/passwd', 'sub/../../x.bin', '', 'missing.bin', 'file:///etc/passwd', '.', 'C:\\x.bin']) {
  tfjsTargeted(`shard path ${p}`, REJECT, (j) => (j.weightsManifest[0].paths = [p]));
}
tfjsTargeted('shard symlinked outside the model folder', REJECT, (j, dir) => {
  const outside = path.join(work, `outside-${caseId}.bin`);
  fs.writeFileSync(outside, fs.readFileSync(path.join(dir, j.weightsManifest[0].paths[0])));
  fs.symlinkSync(outside, path.join(dir, 'link.bin'));
  j.weightsManifest[0].paths = ['link.bin'];
});
tfjsTargeted('shard is a folder', REJECT, (j, dir) => {
  fs.mkdirSync(path.join(dir, 'dir.bin'));
  j.weightsManifest[0].paths = ['dir.bin'];
});
tfjsTargeted('shard listed twice', undefined, (j) => j.weightsManifest[0].paths.push(j.weightsManifest[0].paths[0]));
tfjsTargeted('weights listed twice', REJECT, (j) => j.weightsManifest[0].weights.push(kernelSpec(j)));
tfjsTargeted('shard one byte short', REJECT, (j, dir) => {
  const s = path.join(dir, j.weightsManifest[0].paths[0]);
  const b = fs.readFileSync(s);
  fs.writeFileSync(s, b.subarray(0, b.length - 1));
});
tfjsTargeted('shard with extra bytes', undefined, (j, dir) => fs.appendFileSync(path.join(dir, j.weightsManifest[0].paths[0]), Buffer.alloc(4)));
tfjsTargeted('manifest is an object', REJECT, (j) => (j.weightsManifest = { paths: [] }));
// [field, values that must be refused, values that may be legal (huge strides, defaults)]
const convFields: Array<[string, unknown[], unknown[]]> = [
  ['filters', [1e9, -1, 0, 'abc', 2.5, null], []],
  ['kernel_size', [[1e9, 1e9], [0, 0], [-1, 3], 3.5, 'x', [2 ** 31, 1]], [[3]]],
  ['strides', [[0, 0], [-1, -1]], [[1e9, 1e9], null]],
  ['dilation_rate', [[0, 0], [-2, 1]], [[1e6, 1e6]]],
  ['padding', ['causal', 7], [null]],
  ['groups', [0, -1, 3, 1e9], []],
  ['data_format', ['channels_first'], []],
  ['activation', [], [{}, 7]],
];
for (const [field, refused, maybe] of convFields) {
  for (const v of refused) tfjsTargeted(`Conv2D ${field} = ${JSON.stringify(v)}`, REJECT, (j) => (firstConv(j).config[field] = v));
  for (const v of maybe) tfjsTargeted(`Conv2D ${field} = ${JSON.stringify(v)}`, undefined, (j) => (firstConv(j).config[field] = v));
}
for (const shape of [[null, -28, 28, 3], [null, 0, 11, 3], [null, 9.5, 11, 3], [null, 9, 11, 1e9], 'x']) {
  tfjsTargeted(`input shape ${JSON.stringify(shape)}`, REJECT, (j) => (j.modelTopology.config.layers[0].config.batch_input_shape = shape));
}
for (const shape of [[null, 1e9, 1e9, 3], [9, 11, 3]]) {
  tfjsTargeted(`input shape ${JSON.stringify(shape)}`, undefined, (j) => (j.modelTopology.config.layers[0].config.batch_input_shape = shape));
}
for (const [name, v] of [['null', null], ['object', {}], ['empty', []], ['number', 3]] as const) {
  tfjsTargeted(`layers ${name}`, REJECT, (j) => (j.modelTopology.config.layers = v));
}
tfjsTargeted('modelTopology null', REJECT, (j) => (j.modelTopology = null));
tfjsTargeted('deep array in a conv config', REJECT, (j) => (firstConv(j).config.kernel_size = deepArray(50_000)));
tfjsTargeted('deep array in an unused field', undefined, (j) => (firstConv(j).config.extra = deepArray(50_000)));

// Functional (inbound_nodes) versions, then cycles and dangling references in them.
function toFunctional(j: any): void {
  const layers = j.modelTopology.config.layers;
  let prev: string | null = null;
  for (const l of layers) {
    l.name = l.config.name;
    l.inbound_nodes = prev ? [[[prev, 0, 0, {}]]] : [];
    prev = l.config.name;
  }
  j.modelTopology.class_name = 'Functional';
  j.modelTopology.config.input_layers = [[layers[0].config.name, 0, 0]];
  j.modelTopology.config.output_layers = [[prev, 0, 0]];
}
const functionalEdits: Array<[string, Verdict, (layers: any[], j: any) => void]> = [
  ['unchanged', ACCEPT, () => undefined],
  ['layers listed in reverse order', ACCEPT, (ls) => ls.reverse()],
  ['cycle through the first conv', REJECT, (ls) => (ls[1].inbound_nodes = [[[ls[ls.length - 1].name, 0, 0, {}]]])],
  ['self loop', REJECT, (ls) => (ls[2].inbound_nodes = [[[ls[2].name, 0, 0, {}]]])],
  ['two-layer cycle', REJECT, (ls) => ((ls[1].inbound_nodes = [[[ls[2].name, 0, 0, {}]]]), (ls[2].inbound_nodes = [[[ls[1].name, 0, 0, {}]]]))],
  ['unknown inbound layer', REJECT, (ls) => (ls[2].inbound_nodes = [[['nope', 0, 0, {}]]])],
  ['node index out of range', REJECT, (ls) => (ls[2].inbound_nodes = [[[ls[1].name, 5, 0, {}]]])],
  ['tensor index out of range', REJECT, (ls) => (ls[2].inbound_nodes = [[[ls[1].name, 0, 7, {}]]])],
  ['negative node index', REJECT, (ls) => (ls[2].inbound_nodes = [[[ls[1].name, -1, 0, {}]]])],
  ['deep inbound reference', REJECT, (ls) => (ls[2].inbound_nodes = [[deepArray(50_000)]])],
  ['inbound_nodes an object', REJECT, (ls) => (ls[2].inbound_nodes = { a: 1 })],
  ['no outputs', REJECT, (_, j) => (j.modelTopology.config.output_layers = [])],
  ['output is unknown', REJECT, (_, j) => (j.modelTopology.config.output_layers = [['nope', 0, 0]])],
  ['input is a conv', undefined, (ls, j) => (j.modelTopology.config.input_layers = [[ls[1].name, 0, 0]])],
  ['two calls of one conv', undefined, (ls) => ls[1].inbound_nodes.push(ls[1].inbound_nodes[0])],
  [
    'chain of 5000 linear activations',
    ACCEPT,
    (ls, j) => {
      let prev = ls[ls.length - 1].name;
      for (let i = 0; i < 5000; i++) {
        ls.push({ class_name: 'Activation', name: `act_${i}`, config: { name: `act_${i}`, activation: 'linear' }, inbound_nodes: [[[prev, 0, 0, {}]]] });
        prev = `act_${i}`;
      }
      j.modelTopology.config.output_layers = [[prev, 0, 0]];
    },
  ],
];
for (const [name, valid, edit] of functionalEdits) {
  tfjsTargeted(`functional: ${name}`, valid, (j) => {
    toFunctional(j);
    edit(j.modelTopology.config.layers, j);
  });
}

// Whole-file oddities.
for (const [name, content] of [
  ['empty file', ''],
  ['deeply nested arrays', '['.repeat(200_000) + ']'.repeat(200_000)],
  ['deeply nested objects', '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000)],
  ['a JSON string', '"model"'],
  ['binary garbage', Buffer.from(Array.from({ length: 4096 }, () => randInt(256)))],
  ['UTF-16 with BOM', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"format":"layers-model"}', 'utf16le')])],
  ['graph-model format', JSON.stringify({ format: 'graph-model', modelTopology: {} })],
] as const) {
  const d = caseDir();
  const f = path.join(d, 'model.json');
  fs.writeFileSync(f, content);
  cases.push(inspectCase('tfjs-targeted', `model.json: ${name}`, f, 'tfjs', REJECT));
}

// ---- ONNX: random byte flips and truncations

for (const src of sources.onnx) {
  const bytes = fs.readFileSync(src);
  for (let i = 0; i < count(30); i++) {
    const f = path.join(caseDir(), 'model.onnx');
    fs.writeFileSync(f, flipBytes(bytes, 1 + randInt(8)));
    cases.push(inspectCase('onnx-bytes', `byte flips #${i}`, f, 'onnx', undefined, src === sources.onnx[0]));
  }
  for (let i = 0; i < count(10); i++) {
    const f = path.join(caseDir(), 'model.onnx');
    fs.writeFileSync(f, bytes.subarray(0, randInt(bytes.length)));
    cases.push(inspectCase('onnx-bytes', `truncated #${i}`, f, 'onnx', undefined, src === sources.onnx[0]));
  }
}

// ---- ONNX: protobuf field mutations (decoded with the reader's schema, mutated, re-encoded)

function onnxCase(group: string, name: string, bytes: Uint8Array, valid?: Verdict): void {
  const f = path.join(caseDir(), 'model.onnx');
  fs.writeFileSync(f, bytes);
  cases.push(inspectCase(group, name, f, 'onnx', valid));
}

function onnxEdit(name: string, valid: Verdict, edit: (m: ModelProto) => void, base: Uint8Array = fs.readFileSync(sources.onnx[0])): void {
  const m = decodeModel(base);
  edit(m);
  onnxCase('onnx-fields', name, encodeModel(m), valid);
}

const convNodes = (m: ModelProto) => m.graph!.node.filter((n) => n.op_type === 'Conv');
const weightOf = (m: ModelProto): TensorProto => m.graph!.initializer.find((t) => t.name === convNodes(m)[0].input[1])!;
const setAttr = (m: ModelProto, attr: string, value: unknown): void => {
  const a = convNodes(m)[0].attribute.find((x) => x.name === attr);
  if (!a) throw new Error(`the source conv has no ${attr}`);
  Object.assign(a, value);
};

for (const dims of [[1e6, 1e6, 1e6, 1e6], [-8, 3, 3, 3], [0, 3, 3, 3], Array(100).fill(2), [2 ** 50, 2 ** 50]]) {
  onnxEdit(`initializer dims ${JSON.stringify(dims).slice(0, 40)}`, REJECT, (m) => (weightOf(m).dims = dims));
}
// A 3-D weight makes the node a 1-D conv, which the reader counts with the other ops and never reads.
onnxEdit('conv weight dims [8,3,3]', undefined, (m) => (weightOf(m).dims = [8, 3, 3]));
onnxEdit('raw_data half missing', REJECT, (m) => (weightOf(m).raw_data = weightOf(m).raw_data!.subarray(0, weightOf(m).raw_data!.length >> 1)));
onnxEdit('raw_data empty, no float_data', REJECT, (m) => (weightOf(m).raw_data = new Uint8Array(0)));
onnxEdit('raw_data with extra bytes', REJECT, (m) => (weightOf(m).raw_data = Buffer.concat([weightOf(m).raw_data!, Buffer.alloc(8)])));
onnxEdit('raw_data length not a multiple of 4', REJECT, (m) => (weightOf(m).raw_data = weightOf(m).raw_data!.subarray(0, 7)));
onnxEdit('float_data count wrong', REJECT, (m) => {
  const w = weightOf(m);
  w.raw_data = new Uint8Array(0);
  (w as any).float_data = [1, 2, 3];
});
for (const dt of [11, 8, 999, -1, 0, 10]) onnxEdit(`initializer data_type ${dt}`, REJECT, (m) => (weightOf(m).data_type = dt));
onnxEdit('external data escaping the folder', REJECT, (m) => {
  const w = weightOf(m) as any;
  w.raw_data = new Uint8Array(0);
  w.data_location = 1;
  w.external_data = [{ key: 'location', value: '../../../../etc/passwd' }, { key: 'length', value: '4096' }];
});
onnxEdit('weight initializer missing', REJECT, (m) => (m.graph!.initializer = m.graph!.initializer.filter((t) => t !== weightOf(m))));
const attrEdits: Array<[string, unknown, Verdict]> = [
  ['kernel_shape', { ints: [1e9, 1e9] }, REJECT],
  ['kernel_shape', { ints: [0, 0] }, REJECT],
  ['kernel_shape', { ints: [-3, -3] }, REJECT],
  ['kernel_shape', { ints: [3] }, REJECT],
  ['strides', { ints: [0, 0] }, REJECT],
  ['strides', { ints: [-1, -1] }, REJECT],
  ['strides', { ints: [] }, REJECT],
  ['strides', { ints: [1] }, REJECT],
  ['strides', { ints: [2 ** 40, 1] }, undefined],
  ['dilations', { ints: [0, 0] }, REJECT],
  ['dilations', { ints: [0] }, REJECT],
  ['dilations', { ints: [1e9, 1e9] }, undefined],
  ['pads', { ints: [-5, -5, -5, -5] }, REJECT],
  ['pads', { ints: [1e9, 1e9, 1e9, 1e9] }, undefined],
  ['pads', { ints: [1, 1] }, REJECT],
  ['group', { i: 0 }, REJECT],
  ['group', { i: -1 }, REJECT],
  ['group', { i: 7 }, REJECT],
  ['group', { i: 2 ** 40 }, REJECT],
];
for (const [attr, v, valid] of attrEdits) onnxEdit(`Conv ${attr} ${JSON.stringify(v)}`, valid, (m) => setAttr(m, attr, v));
onnxEdit('Conv auto_pad SAME_LOWER', undefined, (m) => convNodes(m)[0].attribute.push({ name: 'auto_pad', type: 3, s: Buffer.from('SAME_LOWER') } as any));
onnxEdit('Conv auto_pad bogus', REJECT, (m) => convNodes(m)[0].attribute.push({ name: 'auto_pad', type: 3, s: Buffer.from('WHATEVER') } as any));
for (const [dims, valid] of [[[1, 3, 1e9, 1e9], undefined], [[1, 3, -9, 11], REJECT], [[1, 3, 0, 11], REJECT], [[1, 1e9, 9, 11], REJECT], [[1, 3, 9], REJECT]] as Array<[number[], Verdict]>) {
  onnxEdit(`graph input dims ${JSON.stringify(dims)}`, valid, (m) => {
    m.graph!.input[0].type!.tensor_type!.shape!.dim = dims.map((d) => ({ dim_value: d }));
  });
}
onnxEdit('graph input dim_param only', undefined, (m) => {
  m.graph!.input[0].type!.tensor_type!.shape!.dim = [{ dim_param: 'N' }, { dim_param: 'C' }, { dim_param: 'H' }, { dim_param: 'W' }];
});
onnxEdit('graph input without a type', undefined, (m) => delete m.graph!.input[0].type);
onnxEdit('cycle: first conv reads the last output', REJECT, (m) => (convNodes(m)[0].input[0] = m.graph!.output[0].name!));
onnxEdit('self loop: a node reads its own output', REJECT, (m) => (m.graph!.node[1].input[0] = m.graph!.node[1].output[0]));
onnxEdit('node reads an unknown tensor', REJECT, (m) => (m.graph!.node[1].input[0] = 'nowhere'));
onnxEdit('two nodes write one tensor', REJECT, (m) => (m.graph!.node[2].output[0] = m.graph!.node[1].output[0]));
onnxEdit('node without op_type', REJECT, (m) => delete m.graph!.node[1].op_type);
onnxEdit('unknown op', undefined, (m) => (m.graph!.node[1].op_type = 'FrobnicateV9'));
onnxEdit('no graph', REJECT, (m) => delete m.graph);
onnxEdit('ir_version 99', undefined, (m) => (m.ir_version = 99));
onnxEdit('chain of 20000 Relu nodes', ACCEPT, (m) => {
  const g = m.graph!;
  let prev = g.output[0].name!;
  for (let i = 0; i < 20_000; i++) {
    g.node.push({ op_type: 'Relu', input: [prev], output: [`chain_${i}`], name: `chain_${i}`, attribute: [] } as any);
    prev = `chain_${i}`;
  }
  g.output[0].name = prev;
});

// Random field mutations: pick a tensor or attribute and give a field a hostile value.
const baseOnnx = decodeModel(fs.readFileSync(sources.onnx[0]));
for (let i = 0; i < count(40); i++) {
  onnxEdit(`random field mutation #${i}`, undefined, (m) => {
    const g = m.graph!;
    const r = rand();
    const hostileInts = pick([[1e9], [-1], [0], [2 ** 40, 2 ** 40], [], [3, 3, 3, 3, 3, 3, 3, 3, 3]]);
    if (r < 0.35) {
      const tensor = pick(g.initializer);
      if (rand() < 0.5) tensor.dims = tensor.dims.map((d) => (rand() < 0.5 ? pick([0, -1, 1e9, 2 ** 40]) : d));
      else tensor.raw_data = tensor.raw_data?.subarray(0, randInt((tensor.raw_data?.length ?? 0) + 1));
    } else if (r < 0.7) {
      const node = pick(g.node);
      if (node.attribute.length) {
        const a = pick(node.attribute);
        if (a.ints?.length) a.ints = hostileInts;
        else (a as any).i = pick([0, -1, 1e9, 2 ** 40]);
      } else node.input = node.input.map((x) => (rand() < 0.5 ? pick(g.node).output[0] : x));
    } else {
      const node = pick(g.node);
      node.input[0] = pick([...g.node.map((n) => n.output[0]), 'nowhere', '']);
    }
  }, encodeModel(baseOnnx));
}

// Raw protobuf: absurd declared lengths, bad wire types, endless varints, deep nesting.
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const good = fs.readFileSync(sources.onnx[0]);
onnxCase('onnx-wire', 'trailing graph field declaring 4 GB', Buffer.concat([good, Buffer.from([0x3a, ...varint(2 ** 32 - 1), 1, 2, 3])]), REJECT);
onnxCase('onnx-wire', 'trailing field declaring 2^53 bytes', Buffer.concat([good, Buffer.from([0x3a, ...varint(2 ** 53 - 1), 1])]), REJECT);
onnxCase('onnx-wire', 'wire type 7', Buffer.concat([good, Buffer.from([0x3f, 0, 0])]), REJECT);
onnxCase('onnx-wire', 'endless varint', Buffer.concat([good, Buffer.from([0x08, ...Array(64).fill(0xff)])]), REJECT);
onnxCase('onnx-wire', 'group start without end', Buffer.concat([good, Buffer.from([0x3b])]), REJECT);
onnxCase('onnx-wire', 'empty file', Buffer.alloc(0), REJECT);
onnxCase('onnx-wire', 'zeros', Buffer.alloc(4096), REJECT);

/** ModelProto whose graph holds an If node whose branch holds an If node ... `depth` levels deep. */
function nestedGraphs(depth: number): Buffer {
  const name = Buffer.from('then_branch');
  const sizes = new Array<number>(depth + 1);
  const vl = (n: number) => varint(n).length;
  sizes[depth] = 0; // innermost graph: empty
  const attrSize = (g: number) => 2 + name.length + 3 + 1 + vl(g) + g;
  const nodeSize = (a: number) => 4 + 1 + vl(a) + a;
  for (let k = depth - 1; k >= 0; k--) {
    const n = nodeSize(attrSize(sizes[k + 1]));
    sizes[k] = 1 + vl(n) + n;
  }
  const head = [0x08, 8, 0x42, 2, 0x10, 13]; // ir_version 8, opset_import { version 13 }
  const body: number[] = [0x3a, ...varint(sizes[0])];
  for (let k = 0; k < depth; k++) {
    const a = attrSize(sizes[k + 1]);
    const n = nodeSize(a);
    body.push(0x0a, ...varint(n)); // GraphProto.node
    body.push(0x22, 2, 0x49, 0x66); // NodeProto.op_type = 'If'
    body.push(0x2a, ...varint(a)); // NodeProto.attribute
    body.push(0x0a, name.length, ...name); // AttributeProto.name
    body.push(0xa0, 0x01, 5); // AttributeProto.type = GRAPH
    body.push(0x32, ...varint(sizes[k + 1])); // AttributeProto.g
  }
  return Buffer.from([...head, ...body]);
}
onnxCase('onnx-wire', 'subgraphs nested 200 deep', nestedGraphs(200));
onnxCase('onnx-wire', 'subgraphs nested 30000 deep', nestedGraphs(30_000));

// ---- the public API: random shapes, ranks, lengths and options

type Fn = 'decomposeDac' | 'decomposeSpatial' | 'decomposeChannel';
const maxRankOf = (fn: Fn, s: { n: number; c: number; kh: number; kw: number }): number =>
  fn === 'decomposeDac' ? Math.min(s.n, s.kh * s.kw) : fn === 'decomposeSpatial' ? Math.min(s.c * s.kh, s.n * s.kw) : Math.min(s.n, s.c * s.kh * s.kw);

function outputLengths(fn: Fn, s: { n: number; c: number; kh: number; kw: number }, r: number): Record<string, number> {
  if (fn === 'decomposeDac') return { depthwise: s.c * r * s.kh * s.kw, pointwise: s.n * s.c * r };
  if (fn === 'decomposeSpatial') return { vertical: r * s.c * s.kh, horizontal: s.n * r * s.kw };
  return { first: r * s.c * s.kh * s.kw, second: s.n * r };
}

const isDim = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max;

// Every backend that loads here (native and/or WASM) gets the same kinds of calls.
const backendNames = availableBackends().map((b) => b.name);
for (let i = 0; i < count(220); i++) {
  const backend = backendNames[i % Math.max(1, backendNames.length)];
  const fn = pick<Fn>(['decomposeDac', 'decomposeSpatial', 'decomposeChannel']);
  const shape: Record<string, unknown> = { n: 1 + randInt(17), c: 1 + randInt(17), kh: 1 + randInt(5), kw: 1 + randInt(5) };
  const base = { n: shape.n as number, c: shape.c as number, kh: shape.kh as number, kw: shape.kw as number };
  let rank: unknown = 1 + randInt(maxRankOf(fn, base));
  let length = base.n * base.c * base.kh * base.kw;
  let weights: unknown = null;
  const opts: Record<string, unknown> = {};
  const corrupt = rand() < 0.75 ? randInt(8) : -1;
  if (corrupt === 0) shape[pick(['n', 'c', 'kh', 'kw'])] = pick([0, -1, 1.5, NaN, Infinity, 2 ** 31, 2 ** 53, '3', null, undefined]);
  if (corrupt === 1) rank = pick([0, -1, 1.5, NaN, 1e9, maxRankOf(fn, base) + 1, '2', null]);
  if (corrupt === 2) length += pick([-1, 1, -length, 7]);
  if (corrupt === 3) weights = pick([new Float64Array(length), Array.from({ length }, () => 0), new Uint8Array(length * 4), 'weights', null]);
  if (corrupt === 4) opts.layout = pick(['NCHW', 'oihw', 3, null]);
  if (corrupt === 5) opts.threads = pick([0, -1, 1.5, 1e6, '2']);
  if (corrupt === 6) Object.assign(shape, pick([{ n: 2 ** 20, c: 2 ** 20 }, { kh: 5000 }, { n: 2 ** 16, c: 2 ** 16, kh: 1, kw: 1 }]));
  if (weights === null && corrupt !== 3) {
    const w = new Float32Array(Math.max(0, length));
    for (let k = 0; k < w.length; k++) w[k] = rand() * 2 - 1;
    if (corrupt === 7 && w.length) w[randInt(w.length)] = pick([NaN, Infinity, -Infinity]);
    weights = w;
  }
  if (rand() < 0.5 && opts.layout === undefined) opts.layout = pick(['OIHW', 'HWIO']);
  const s = shape as { n: number; c: number; kh: number; kw: number };
  const shapeOk =
    isDim(s.n, 2 ** 20) && isDim(s.c, 2 ** 20) && isDim(s.kh, 4096) && isDim(s.kw, 4096) && s.n * s.c * s.kh * s.kw <= 2 ** 31 - 1;
  const valid =
    shapeOk &&
    isDim(rank, maxRankOf(fn, s)) &&
    weights instanceof Float32Array &&
    weights.length === s.n * s.c * s.kh * s.kw &&
    weights.every(Number.isFinite) &&
    (opts.layout === undefined || opts.layout === 'OIHW' || opts.layout === 'HWIO') &&
    (opts.threads === undefined || isDim(opts.threads, 1024));
  cases.push({
    group: 'api',
    name: `${backend} ${fn} #${i} shape=${JSON.stringify(shape)} rank=${String(rank)} len=${(weights as { length?: number })?.length} opts=${JSON.stringify(opts)}`,
    request: { kind: 'call', payload: { fn, args: [weights, shape, rank, { ...opts, backend }] } },
    expect: { valid, lengths: valid ? outputLengths(fn, s, rank as number) : undefined },
  });
}
// A batch with one bad layer among good ones fails as a whole, naming it.
for (let i = 0; i < count(10); i++) {
  const layers = Array.from({ length: 2 + randInt(4) }, (_, k) => {
    const shape = { n: 1 + randInt(9), c: 1 + randInt(9), kh: 3, kw: 3 };
    return { name: `l${k}`, shape, rank: 1, weights: new Float32Array(shape.n * shape.c * 9).fill(0.5) };
  });
  const bad = randInt(layers.length);
  if (i % 2) layers[bad].weights = new Float32Array(3);
  else layers[bad].rank = 99;
  cases.push({
    group: 'api',
    name: `decomposeDacBatch #${i} with bad layer l${bad}`,
    request: { kind: 'call', payload: { fn: 'decomposeDacBatch', args: [layers, { threads: 1 + randInt(3), backend: backendNames[i % Math.max(1, backendNames.length)] }] } },
    expect: { valid: false },
  });
}

// ---- run everything in the pool and judge


t.test('fuzz: every case ends fine or in a DacError, never a crash, hang or untyped error', { skip: backendNames.length === 0 ? 'no backend built' : false }, async (tt) => {
  const pool = new WorkerPool({ size: Math.min(2, os.availableParallelism()), timeoutMs: CASE_TIMEOUT_MS }, ISOLATED_WORKER);
  const outcomes = new Map<FuzzCase, Outcome>();
  try {
    await Promise.all(
      cases.map(async (c) => {
        let o: Outcome;
        try {
          o = { kind: 'ok', result: await pool.run(c.request.kind, c.request.payload) };
        } catch (err) {
          const e = err as Error & { code?: string };
          if (e instanceof DacError && e.code === 'ETIMEOUT') o = { kind: 'hang', message: e.message };
          else if (e instanceof DacError && e.code === 'EWORKER') o = { kind: 'crash', message: e.message };
          else if (e instanceof DacError) o = { kind: 'rejected', code: e.code, message: e.message };
          else o = { kind: 'untyped', name: e.name, message: process.env.DAC_FUZZ_KEEP ? `${e.message}\n${e.stack}` : e.message };
        }
        outcomes.set(c, o);
      }),
    );
  } finally {
    await pool.close();
  }

  const groups = [...new Set(cases.map((c) => c.group))];
  for (const group of groups) {
    const mine = cases.filter((c) => c.group === group);
    const bad: string[] = [];
    const tally = { ok: 0, rejected: 0 };
    for (const c of mine) {
      const o = outcomes.get(c)!;
      if (o.kind === 'ok' || o.kind === 'rejected') tally[o.kind]++;
      const show = o.kind === 'ok' ? 'ok' : o.kind === 'untyped' ? `${o.name}: ${o.message}` : `${o.kind}: ${o.message}`;
      const where = c.request.kind === 'probe' ? ` [${path.relative(work, c.request.payload.path)}]` : '';
      if (o.kind === 'crash' || o.kind === 'hang' || o.kind === 'untyped') bad.push(`${c.name}${where} -> ${show.slice(0, 300)}`);
      else if (c.expect?.valid === true && o.kind !== 'ok') bad.push(`${c.name} -> should work, got ${show.slice(0, 300)}`);
      else if (c.expect?.valid === false && o.kind === 'ok') bad.push(`${c.name} -> should be rejected, but worked`);
      else if (c.expect?.lengths && o.kind === 'ok') {
        for (const [field, len] of Object.entries(c.expect.lengths)) {
          const arr = (o.result as Record<string, unknown>)[field];
          if (!(arr instanceof Float32Array) || arr.length !== len || !arr.every(Number.isFinite)) {
            bad.push(`${c.name} -> ${field} should be ${len} finite floats`);
          }
        }
      }
    }
    if (process.env.DAC_FUZZ_KEEP && bad.length) fs.appendFileSync(path.join(work, 'failures.txt'), bad.map((b) => `${group}: ${b}\n`).join(''));
    tt.same(bad, [], `${group}: ${mine.length} cases (${tally.ok} fine, ${tally.rejected} DacError), seed ${SEED}`);
  }
  // The mutations must reach the checks at all: each family gets some rejected and (except raw wire) some fine.
  const kinds = (g: string) => new Set(cases.filter((c) => c.group === g).map((c) => outcomes.get(c)!.kind));
  for (const g of ['tfjs-bytes', 'tfjs-json', 'tfjs-targeted', 'onnx-bytes', 'onnx-fields', 'onnx-wire', 'api']) {
    tt.ok(kinds(g).has('rejected'), `${g} cases include rejected inputs`);
  }
  for (const g of ['tfjs-baseline', 'onnx-baseline', 'tfjs-json', 'onnx-fields', 'api']) tt.ok(kinds(g).has('ok'), `${g} cases include accepted inputs`);
});

t.test('fuzz sources are self-consistent', async (tt) => {
  // The synthetic ONNX source is what onnxNet builds; re-encoding it must be lossless, or field mutations would test the encoder.
  const proto = onnxNet(smallSpec, SEED);
  tt.same(Buffer.from(encodeModel(decodeModel(encodeModel(proto)))), Buffer.from(encodeModel(proto)));
  tt.ok(sources.tfjs.length >= 1 && sources.onnx.length >= 1);
});

t.test('the guards of src/io/limits.ts refuse what the fuzzing found, with DacErrors', async (tt) => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
      return undefined;
    } catch (err) {
      return err instanceof DacError ? err.code : `not a DacError: ${(err as Error).name}`;
    }
  };
  tt.equal(checkDims([3, 3, 16, 32]), 4608);
  for (const bad of [[1e6, 1e6, 1e6, 1e6], [-3, 3], [0, 3], [3.5], ['3'], [2 ** 53], Array(9).fill(2), 'x', null]) {
    tt.equal(code(() => checkDims(bad)), 'ESHAPE', `dims ${JSON.stringify(bad)}`);
  }
  tt.equal(checkDims([0, 5], {}, { allowZero: true }), 0);
  tt.equal(checkDims([2n, 3n]), 6, 'int64 dims as BigInt');
  const folder = fs.mkdtempSync(path.join(work, 'guard-'));
  fs.writeFileSync(path.join(folder, 'a.bin'), 'x');
  fs.symlinkSync(path.join(work, 'src'), path.join(folder, 'out'));
  fs.symlinkSync(path.join(folder, 'a.bin'), path.join(folder, 'in.bin'));
  tt.equal(resolveInside(folder, 'a.bin'), path.join(folder, 'a.bin'));
  tt.equal(resolveInside(folder, 'in.bin'), path.join(folder, 'in.bin'), 'a link inside the folder is fine');
  for (const bad of ['../x', '/etc/passwd', 'C:\\x', 'out/small.onnx', '', 'a\0b', 7]) {
    tt.equal(code(() => resolveInside(folder, bad)), 'EPATH', `path ${JSON.stringify(bad)}`);
  }
  const chain = new Map<string, string[]>([['in', []]]);
  for (let i = 0; i < 100_000; i++) chain.set(`n${i}`, [i ? `n${i - 1}` : 'in']);
  tt.equal(topoOrder(chain).length, 100_001, 'a 100000-long chain, without recursion');
  tt.equal(code(() => topoOrder(new Map([['a', ['b']], ['b', ['a']], ['c', []]]))), 'EGRAPH', 'cycle');
  tt.equal(code(() => topoOrder(new Map([['a', ['a']]]))), 'EGRAPH', 'self loop');
  tt.equal(code(() => topoOrder(new Map([['a', ['nowhere']]]))), 'EGRAPH', 'dangling input');
  tt.same(topoOrder(new Map([['c', ['b']], ['b', ['a', 'a']], ['a', []]])), ['a', 'b', 'c'], 'listed backwards, an input read twice');
  // The cycle is named, not what merely comes after it (listed first here).
  tt.throws(() => topoOrder(new Map([['out', ['b']], ['b', ['a']], ['a', ['in', 'b']], ['in', []]]), { model: 'm' }), {
    code: 'EGRAPH',
    context: { model: 'm', layer: 'b' },
    message: /cycle through 'b', 'a'$/,
  });
  const big = path.join(folder, 'big.bin');
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 10 * 1024 * 1024);
  tt.equal(code(() => readFileBounded(big, 1024 * 1024)), 'ETOOBIG', 'refused by size, nothing read');
  tt.equal(readFileBounded(path.join(folder, 'a.bin'), 10).toString(), 'x');
});
