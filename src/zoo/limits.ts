// Guards for reading untrusted model files: sizes are checked before
// anything is read whole, declared shapes before anything is allocated, and
// paths a model names before they are opened. Every refusal is a DacError
// naming the model and field, never a RangeError from deep inside a
// typed-array constructor or an out-of-memory abort.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError, type ErrorContext } from '../errors.js';

/** A model.json is metadata: anything past this is not a real TF.js topology. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;
/** Nesting deeper than this is no model topology; stops stack overflows in recursive walkers. */
export const MAX_JSON_DEPTH = 256;
/** One tensor may hold at most this many elements (2^31-1, what the native side indexes). */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
/** No real conv has a dimension this large; larger is a corrupt field. */
export const MAX_DIM = 1 << 24;

export const MB = 1024 * 1024;

/** Size of a file, refused if above `maxBytes`, without reading it. */
export function checkFileSize(file: string, maxBytes: number, ctx: ErrorContext = {}): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new DacError('ENOENT', `cannot stat ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, ctx);
  }
  if (!st.isFile()) throw new DacError('EINVAL', `${file} is not a regular file`, ctx);
  if (st.size > maxBytes) {
    throw new DacError(
      'ETOOBIG',
      `${file} is ${(st.size / MB).toFixed(1)} MB, over the limit of ${(maxBytes / MB).toFixed(1)} MB`,
      ctx,
    );
  }
  return st.size;
}

/**
 * Reads a whole file of at most `maxBytes`. The read itself is bounded too,
 * so a file that grows between the stat and the read cannot exceed it.
 */
export function readFileBounded(file: string, maxBytes: number, ctx: ErrorContext = {}): Buffer {
  const size = checkFileSize(file, maxBytes, ctx);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(size + 1, maxBytes + 1));
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    if (got > maxBytes) {
      throw new DacError('ETOOBIG', `${file} grew past the limit of ${(maxBytes / MB).toFixed(1)} MB while being read`, ctx);
    }
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks a declared tensor shape and returns its element count. Every dim
 * must be an integer in 1..MAX_DIM (0 allowed only with `allowZero`), and
 * the product is checked as it grows, so a shape like [2^40, 2^40] is
 * refused instead of overflowing to a small or non-integer number.
 */
export function checkDims(
  dims: unknown,
  ctx: ErrorContext = {},
  opts: { allowZero?: boolean; maxElements?: number } = {},
): number {
  const field = ctx.field ?? 'shape';
  if (!Array.isArray(dims)) {
    throw new DacError('ESHAPE', `shape must be an array, got ${describe(dims)}`, { ...ctx, field });
  }
  if (dims.length > 8) throw new DacError('ESHAPE', `shape has ${dims.length} dimensions (at most 8)`, { ...ctx, field });
  const maxElements = opts.maxElements ?? MAX_TENSOR_ELEMENTS;
  let count = 1;
  for (let i = 0; i < dims.length; i++) {
    let d: unknown = dims[i];
    if (typeof d === 'bigint' && d >= BigInt(Number.MIN_SAFE_INTEGER) && d <= BigInt(Number.MAX_SAFE_INTEGER)) d = Number(d);
    if (typeof d !== 'number' || !Number.isInteger(d)) {
      throw new DacError('ESHAPE', `dimension ${i} must be an integer, got ${describe(d)}`, { ...ctx, field });
    }
    if (d < (opts.allowZero ? 0 : 1) || d > MAX_DIM) {
      throw new DacError('ESHAPE', `dimension ${i} is ${d}, outside ${opts.allowZero ? 0 : 1}..${MAX_DIM}`, { ...ctx, field });
    }
    count *= d;
    if (count > maxElements) {
      throw new DacError('ESHAPE', `shape [${dims.join(', ')}] has more than ${maxElements} elements`, { ...ctx, field });
    }
  }
  return count;
}

/**
 * A list of integers from a model file (strides, dilations, pads,
 * kernel_shape): exactly `length` entries, each an integer in min..max.
 * Int64 values may arrive as protobufjs Longs; they are converted first.
 */
export function checkIntList(
  values: unknown,
  spec: { length: number; min: number; max?: number },
  ctx: ErrorContext = {},
): number[] {
  const field = ctx.field ?? 'value';
  if (!Array.isArray(values)) throw new DacError('EINVAL', `must be a list of ${spec.length} integers, got ${describe(values)}`, { ...ctx, field });
  if (values.length !== spec.length) {
    throw new DacError('EINVAL', `must have ${spec.length} entries, got ${values.length}`, { ...ctx, field });
  }
  const max = spec.max ?? MAX_DIM;
  return values.map((raw, i) => {
    const v = raw !== null && typeof raw === 'object' && typeof (raw as { toNumber?: unknown }).toNumber === 'function'
      ? (raw as { toNumber(): number }).toNumber()
      : raw;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < spec.min || v > max) {
      throw new DacError('EINVAL', `entry ${i} must be an integer in ${spec.min}..${max}, got ${describe(v)}`, { ...ctx, field });
    }
    return v;
  });
}

/**
 * Declared sizes of a loaded model's convs: every spatial size, channel count
 * and activation (H x W x C of one image) within what any real network has.
 * Loading never allocates activations, so absurd sizes (an input declared
 * 10^9 x 10^9) pass the readers, but cost accounting and planning walk them;
 * refusing them here keeps a hostile model from hanging a worker.
 */
export function checkConvSizes(
  convs: ReadonlyArray<{ name: string; n: number; c: number; inH: number; inW: number; outH: number; outW: number }>,
  model: string,
): void {
  for (const conv of convs) {
    const ctx = { model, layer: conv.name };
    checkDims([conv.inH, conv.inW, conv.c], { ...ctx, field: 'input size' });
    checkDims([conv.outH, conv.outW, conv.n], { ...ctx, field: 'output size' });
  }
}

/** The byte length a shape needs must be exactly what the file provides. */
export function checkByteLength(elements: number, bytesPerElement: number, actualBytes: number, ctx: ErrorContext = {}): void {
  const want = elements * bytesPerElement;
  if (want !== actualBytes) {
    throw new DacError('ESHAPE', `shape needs ${want} bytes of data, found ${actualBytes}`, ctx);
  }
}

/**
 * Resolves a path a model file names (a TF.js shard, ONNX external data)
 * against the model's folder and refuses anything outside it: absolute
 * paths, '..' escapes, and symlinks whose target leaves the folder.
 */
export function resolveInside(folder: string, rel: unknown, ctx: ErrorContext = {}): string {
  const field = ctx.field ?? 'path';
  if (typeof rel !== 'string' || rel.length === 0 || rel.length > 4096 || rel.includes('\0')) {
    throw new DacError('EPATH', `path must be a non-empty string, got ${describe(rel)}`, { ...ctx, field });
  }
  if (path.isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) {
    throw new DacError('EPATH', `path '${rel}' is absolute; model files must be inside the model folder`, { ...ctx, field });
  }
  const base = path.resolve(folder);
  const full = path.resolve(base, rel);
  if (!isInside(base, full)) {
    throw new DacError('EPATH', `path '${rel}' leaves the model folder`, { ...ctx, field });
  }
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    // Missing files are the reader's error to report; the lexical check above already held.
    return full;
  }
  if (!isInside(fs.realpathSync(base), real)) {
    throw new DacError('EPATH', `path '${rel}' is a link to ${real}, outside the model folder`, { ...ctx, field });
  }
  return full;
}

/** Is `p` equal to or below `dir` (both absolute, normalized)? */
export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Nesting depth of a parsed JSON value, walked without recursion so a
 * hostile document cannot overflow the stack here; refused past `maxDepth`.
 */
export function checkJsonDepth(value: unknown, maxDepth = MAX_JSON_DEPTH, ctx: ErrorContext = {}): void {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > maxDepth) throw new DacError('EDEPTH', `JSON is nested deeper than ${maxDepth} levels`, ctx);
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
}

/**
 * Topological order of a graph given as node -> predecessors. Unknown
 * predecessors and cycles are errors (a cyclic "feed-forward" net would make
 * a recursive walker loop forever). Iterative (Kahn), so long chains are fine.
 */
export function topoOrder(preds: Map<string, string[]>, ctx: ErrorContext = {}): string[] {
  const indegree = new Map<string, number>();
  const succs = new Map<string, string[]>();
  for (const [node, ps] of preds) {
    indegree.set(node, ps.length);
    for (const p of ps) {
      if (!preds.has(p)) throw new DacError('EGRAPH', `node '${node}' reads '${p}', which no node produces`, { ...ctx, layer: node });
      let s = succs.get(p);
      if (!s) succs.set(p, (s = []));
      s.push(node);
    }
  }
  const ready = [...preds.keys()].filter((n) => indegree.get(n) === 0);
  const order: string[] = [];
  for (let head = 0; head < ready.length; head++) {
    const n = ready[head];
    order.push(n);
    for (const s of succs.get(n) ?? []) {
      const d = indegree.get(s)! - 1;
      indegree.set(s, d);
      if (d === 0) ready.push(s);
    }
  }
  if (order.length !== preds.size) {
    const stuck = [...preds.keys()].filter((n) => indegree.get(n)! > 0);
    throw new DacError('EGRAPH', `graph has a cycle through ${stuck.slice(0, 5).map((s) => `'${s}'`).join(', ')}`, {
      ...ctx,
      layer: stuck[0],
    });
  }
  return order;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '...' : v}'`;
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}
