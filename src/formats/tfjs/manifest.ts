// TF.js model.json + binary weight shards: reading (with every path and size
// checked against the folder and the manifest), dequantizing, and packing
// weights back into shards.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DacError, type ErrorContext } from '../../errors.js';
import { oihwToHwio } from '../../geometry.js';
import { ByteBudget, DEFAULT_MAX_MODEL_BYTES, MAX_JSON_BYTES } from '../../io/limits.js';
import { halfToFloat } from '../float16.js';

export interface Quantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  scale?: number;
  min?: number;
  original_dtype?: string;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: Quantization;
  [key: string]: unknown;
}

/** One weight: its manifest entry and its stored bytes (possibly quantized). */
export interface WeightEntry {
  spec: WeightSpec;
  /** Made on each read for a HeldKernel: read once per use, and sized by entryBytes(). */
  readonly bytes: Uint8Array;
}

/**
 * A float32 conv kernel held as the OIHW values the convs are planned from,
 * its stored HWIO bytes made each time they are read: the model keeps one
 * copy of the kernel, not the file's bytes beside it (the OIHW values are the
 * shard buffer's own bytes, turned in place, where the kernel lies aligned in
 * it). The transposition only moves values, so the bytes made are those read.
 */
export class HeldKernel implements WeightEntry {
  constructor(
    readonly spec: WeightSpec,
    readonly oihw: Float32Array,
    /** [outputs, inputs, kh, kw] as oihw holds them (a depthwise kernel: [c*m, 1, kh, kw]). */
    private readonly dims: [number, number, number, number],
  ) {}

  get bytes(): Uint8Array {
    return floatEntry(this.spec.name, this.spec.shape, oihwToHwio(this.oihw, ...this.dims)).bytes;
  }

  /** The same kernel holding a copy of its values (no view of a buffer shared with other weights). */
  copied(): HeldKernel {
    return new HeldKernel(this.spec, this.oihw.slice(), this.dims);
  }
}

/** The size of an entry's stored bytes, without making a HeldKernel's. */
export function entryBytes(w: WeightEntry): number {
  return w instanceof HeldKernel ? w.oihw.byteLength : w.bytes.length;
}

export interface ModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: Record<string, unknown>;
  weightsManifest?: { paths: string[]; weights: WeightSpec[] }[];
  [key: string]: unknown;
}

export interface ModelArtifacts {
  json: ModelJson;
  weights: WeightEntry[];
  /** Files read (model.json and shards), so outputs can be checked against them. */
  files: string[];
}

const LITTLE_ENDIAN = os.endianness() === 'LE';
/** Shard size the TF.js converter uses. */
export const SHARD_BYTES = 4 * 1024 * 1024;

function bytesPerElement(spec: WeightSpec, ctx: ErrorContext): number {
  if (spec.quantization) {
    const q = spec.quantization.dtype;
    if (q === 'uint8') return 1;
    if (q === 'uint16' || q === 'float16') return 2;
    throw new DacError('EFORMAT', `unsupported quantization dtype ${String(q)}`, { ...ctx, field: spec.name });
  }
  switch (spec.dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'bool':
      return 1;
    case 'complex64':
      return 8;
    default:
      throw new DacError('EFORMAT', `unsupported weight dtype ${String(spec.dtype)}`, { ...ctx, field: spec.name });
  }
}

function checkSpec(spec: unknown, ctx: ErrorContext): WeightSpec {
  const s = spec as WeightSpec;
  if (!s || typeof s !== 'object' || typeof s.name !== 'string') {
    throw new DacError('EFORMAT', 'a weightsManifest entry has no name', { ...ctx, field: 'weightsManifest' });
  }
  if (!Array.isArray(s.shape) || !s.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new DacError('EFORMAT', 'shape must be an array of non-negative integers', { ...ctx, field: s.name });
  }
  if (s.quantization) {
    const q = s.quantization;
    if ((q.dtype === 'uint8' || q.dtype === 'uint16') && !(Number.isFinite(q.scale) && Number.isFinite(q.min))) {
      throw new DacError('EFORMAT', `${q.dtype} quantization needs finite scale and min`, { ...ctx, field: s.name });
    }
  }
  return s;
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Size in bytes a weight takes in the shards. */
export function storedBytes(spec: WeightSpec, ctx: ErrorContext = {}): number {
  return elementCount(spec.shape) * bytesPerElement(spec, ctx);
}

/** A shard path from the manifest, resolved inside the model folder (anything escaping it is refused). */
function shardPath(dir: string, p: unknown, ctx: ErrorContext): string {
  if (typeof p !== 'string' || p.length === 0) {
    throw new DacError('EFORMAT', 'a shard path is not a non-empty string', { ...ctx, field: 'weightsManifest.paths' });
  }
  if (path.isAbsolute(p) || /^[a-z][a-z0-9+.-]*:/i.test(p)) {
    throw new DacError('EFORMAT', `shard path ${p} must be relative to the model folder`, { ...ctx, field: 'weightsManifest.paths' });
  }
  const full = path.resolve(dir, p);
  const rel = path.relative(dir, full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new DacError('EFORMAT', `shard path ${p} escapes the model folder`, { ...ctx, field: 'weightsManifest.paths' });
  }
  return full;
}

/**
 * A weight's values as float32, dequantized (uint8/uint16: q*scale + min;
 * float16 decoded). Aligned little-endian float32 comes back as a view of
 * the entry's bytes: writing to the result writes the weight.
 */
export function weightFloats(entry: WeightEntry, ctx: ErrorContext = {}): Float32Array {
  const { spec, bytes } = entry;
  const count = elementCount(spec.shape);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const q = spec.quantization;
  if (q) {
    const out = new Float32Array(count);
    if (q.dtype === 'uint8') for (let i = 0; i < count; i++) out[i] = bytes[i] * q.scale! + q.min!;
    else if (q.dtype === 'uint16') for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true) * q.scale! + q.min!;
    else for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    return out;
  }
  if (spec.dtype !== 'float32') {
    throw new DacError('EFORMAT', `weight has dtype ${spec.dtype}, expected float32`, { ...ctx, field: spec.name });
  }
  // A view of the shard's bytes where they are aligned (no copy of the weights); a copy where not.
  if (LITTLE_ENDIAN) return bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Float32Array(new Uint8Array(bytes).buffer, 0, count);
  return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
}

/** A float32 weight entry from values (on a little-endian machine, `values` themselves: a view, not a copy). */
export function floatEntry(name: string, shape: number[], values: Float32Array): WeightEntry {
  if (LITTLE_ENDIAN) return { spec: { name, shape, dtype: 'float32' }, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
  return { spec: { name, shape, dtype: 'float32' }, bytes };
}

/** Keras configs nest a dozen levels at most; anything far deeper is hostile and would overflow recursive code. */
export const MAX_JSON_DEPTH = 100;

function checkDepth(json: unknown, ctx: ErrorContext): void {
  const stack: [unknown, number][] = [[json, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (depth > MAX_JSON_DEPTH) {
      throw new DacError('EFORMAT', `model.json nests deeper than ${MAX_JSON_DEPTH} levels`, ctx);
    }
    if (v && typeof v === 'object') for (const child of Object.values(v)) if (child && typeof child === 'object') stack.push([child, depth + 1]);
  }
}

/**
 * Parses model.json and reads its weight shards from its folder. Every file
 * is refused by its size before it is read once model.json (at most
 * MAX_JSON_BYTES) and the shards together would pass `maxBytes`.
 */
export function readArtifacts(jsonPath: string, maxBytes = DEFAULT_MAX_MODEL_BYTES, formats: readonly string[] = ['layers-model']): ModelArtifacts {
  const ctx: ErrorContext = { model: jsonPath };
  const budget = new ByteBudget(maxBytes);
  const text = budget.read(jsonPath, { ...ctx, field: 'model.json' }, MAX_JSON_BYTES).toString('utf8');
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (err) {
    throw new DacError('EFORMAT', `model.json is not valid JSON (truncated?): ${(err as Error).message}`, ctx);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new DacError('EFORMAT', 'model.json must hold an object', ctx);
  }
  checkDepth(json, ctx);
  // A missing format means a Layers model (older converters); the graph-model reader passes its own list.
  if (json.format === undefined ? !formats.includes('layers-model') : !formats.includes(json.format)) {
    throw new DacError('EFORMAT', `format '${String(json.format)}' is not supported; only TF.js Layers models ('layers-model') are`, {
      ...ctx,
      field: 'format',
    });
  }
  if (!json.modelTopology || typeof json.modelTopology !== 'object') {
    throw new DacError('EFORMAT', 'model.json has no modelTopology', { ...ctx, field: 'modelTopology' });
  }
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) {
    throw new DacError('EFORMAT', 'weightsManifest must be an array', { ...ctx, field: 'weightsManifest' });
  }
  const dir = path.dirname(path.resolve(jsonPath));
  const realDir = fs.realpathSync(dir);
  const weights: WeightEntry[] = [];
  const files = [path.resolve(jsonPath)];
  for (const group of manifest) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new DacError('EFORMAT', 'each weightsManifest group needs paths and weights arrays', { ...ctx, field: 'weightsManifest' });
    }
    const shards: string[] = [];
    for (const p of group.paths) {
      const full = shardPath(dir, p, ctx);
      let real: string;
      try {
        real = fs.realpathSync(full);
      } catch (err) {
        throw new DacError('ENOENT', `cannot read weight shard ${p}: ${(err as Error).message}`, { ...ctx, field: 'weightsManifest.paths' });
      }
      // The lexical check above is not enough with symlinks: the real file must be inside too.
      const rel = path.relative(realDir, real);
      if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
        throw new DacError('EFORMAT', `shard path ${p} resolves outside the model folder`, { ...ctx, field: 'weightsManifest.paths' });
      }
      shards.push(full);
    }
    // The group's shards end to end in one buffer; the weights are views of it.
    const data = budget.readConcat(shards, () => ({ ...ctx, field: 'weightsManifest.paths' }));
    files.push(...shards);
    const specs = group.weights.map((s) => checkSpec(s, ctx));
    const need = specs.reduce((a, s) => a + storedBytes(s, ctx), 0);
    if (data.length < need) {
      throw new DacError(
        'EFORMAT',
        `weight shards [${group.paths.join(', ')}] hold ${data.length} bytes, the manifest needs ${need} (truncated shard?)`,
        { ...ctx, field: 'weightsManifest' },
      );
    }
    let offset = 0;
    for (const spec of specs) {
      const size = storedBytes(spec, ctx);
      weights.push({ spec, bytes: new Uint8Array(data.buffer, data.byteOffset + offset, size) });
      offset += size;
    }
  }
  const seen = new Set<string>();
  for (const w of weights) {
    if (seen.has(w.spec.name)) throw new DacError('EFORMAT', 'weight name appears twice in the manifest', { ...ctx, field: w.spec.name });
    seen.add(w.spec.name);
  }
  return { json, weights, files };
}

/** A piece of a weight's stored bytes, [from, to). */
interface ShardPiece {
  weight: WeightEntry;
  from: number;
  to: number;
}

/**
 * Packs weights into shards of at most SHARD_BYTES, named as the TF.js
 * converter names them; each shard is the list of pieces of the weights'
 * bytes it holds.
 */
export function packShards(weights: WeightEntry[]): { paths: string[]; shards: ShardPiece[][] } {
  const sizes = weights.map(entryBytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  const count = Math.max(1, Math.ceil(total / SHARD_BYTES));
  const paths: string[] = [];
  const shards: ShardPiece[][] = [];
  for (let i = 0; i < count; i++) {
    paths.push(`group1-shard${i + 1}of${count}.bin`);
    shards.push([]);
  }
  let offset = 0;
  weights.forEach((weight, k) => {
    // A weight may straddle shards: its bytes are cut at their boundaries.
    for (let at = 0; at < sizes[k]; ) {
      const shard = Math.floor((offset + at) / SHARD_BYTES);
      const take = Math.min(sizes[k] - at, (shard + 1) * SHARD_BYTES - (offset + at));
      shards[shard].push({ weight, from: at, to: at + take });
      at += take;
    }
    offset += sizes[k];
  });
  return { paths, shards };
}

/**
 * model.json text and the shard files for a model, each shard as the chunks
 * it is written from: views of the weights' bytes, a HeldKernel's made as
 * its first piece is written and kept only until its last; keys of the input
 * JSON other than the manifest are kept.
 */
export function artifactFiles(json: ModelJson, weights: WeightEntry[]): Map<string, string | { chunks(): Iterable<Uint8Array> }> {
  const { paths, shards } = packShards(weights);
  const out: ModelJson = { ...json, weightsManifest: [{ paths, weights: weights.map((w) => w.spec) }] };
  if (out.format === undefined) out.format = 'layers-model';
  const files = new Map<string, string | { chunks(): Iterable<Uint8Array> }>([['model.json', JSON.stringify(out)]]);
  // The bytes of a weight straddling shards, made once for all its pieces.
  let open: { weight: WeightEntry; bytes: Uint8Array } | null = null;
  function* chunks(pieces: ShardPiece[]): Iterable<Uint8Array> {
    for (const { weight, from, to } of pieces) {
      const bytes = open?.weight === weight ? open.bytes : weight.bytes;
      open = to < bytes.length ? { weight, bytes } : null;
      yield bytes.subarray(from, to);
    }
  }
  paths.forEach((p, i) => files.set(p, { chunks: () => chunks(shards[i]) }));
  return files;
}

/** model.json text and shard files for a model, in memory (artifactFiles with each shard's bytes joined). */
export function serializeArtifacts(json: ModelJson, weights: WeightEntry[]): Map<string, Uint8Array | string> {
  const files = new Map<string, Uint8Array | string>();
  for (const [name, data] of artifactFiles(json, weights)) files.set(name, typeof data === 'string' ? data : Buffer.concat([...data.chunks()]));
  return files;
}
