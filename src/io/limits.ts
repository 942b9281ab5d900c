// Guards for reading untrusted model files: sizes are checked before
// anything is read whole, declared shapes before anything is allocated, and
// paths a model names before they are opened. Every refusal is a DacError
// naming the model and field, never a RangeError from deep inside a
// typed-array constructor or an out-of-memory abort.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError, type ErrorContext } from '../errors.js';
import { MAX_DIM, MAX_ELEMENTS } from '../geometry.js';

/** A model.json is metadata: anything past this is not a real TF.js topology. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

export const MB = 1024 * 1024;

/**
 * What loadModel reads at most by default: the model's files together
 * (model.json and its shards, or the .onnx file). An .onnx file cannot be
 * larger anyway (protobuf's 2 GiB), and loading takes a few times a model's
 * size in memory, so more is refused before anything is read.
 */
export const DEFAULT_MAX_MODEL_MB = 2048;
export const DEFAULT_MAX_MODEL_BYTES = DEFAULT_MAX_MODEL_MB * MB;

/** A byte limit given by a caller: a positive number (Infinity allowed: no limit). */
export function checkByteLimit(value: unknown, field: string): number {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new DacError('EINVAL', `must be a positive number of bytes, got ${describe(value)}`, { field });
  }
  return value;
}

const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

/** Size of a file, refused if above `maxBytes`, without reading it. */
export function checkFileSize(file: string, maxBytes: number, ctx: ErrorContext = {}): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new DacError('ENOENT', `cannot stat ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, ctx);
  }
  if (!st.isFile()) throw new DacError('EINVAL', `${file} is not a regular file`, ctx);
  if (st.size > maxBytes) throw new DacError('ETOOBIG', `${file} is ${mb(st.size)}, over the limit of ${mb(maxBytes)}`, ctx);
  return st.size;
}

/**
 * The bytes a model's files may take together (model.json and its shards,
 * or the .onnx file): each file is refused by its size, before it is read,
 * when it alone or the running total would pass the limit.
 */
export class ByteBudget {
  used = 0;

  constructor(readonly maxBytes: number) {}

  /** Reads a whole file against the budget; `cap` limits this file alone further (e.g. model.json). */
  read(file: string, ctx: ErrorContext = {}, cap = Infinity): Buffer {
    const size = checkFileSize(file, Math.min(cap, this.maxBytes), ctx);
    if (this.used + size > this.maxBytes) {
      throw new DacError('ETOOBIG', `the model's files add up to ${mb(this.used + size)} with ${file}, over the limit of ${mb(this.maxBytes)}`, ctx);
    }
    const buf = readFileBounded(file, Math.min(cap, this.maxBytes - this.used), ctx);
    this.used += buf.length;
    return buf;
  }

  /**
   * Reads files one after another into one buffer (a TF.js weight group's
   * shards, which weights may straddle), with no second copy of their bytes.
   * Each is refused by its size first, as read() does, and again if it grew
   * since; `ctxOf` names it in errors.
   */
  readConcat(files: string[], ctxOf: (file: string) => ErrorContext): Buffer {
    const sizes: number[] = [];
    let total = 0;
    for (const file of files) {
      const size = checkFileSize(file, this.maxBytes, ctxOf(file));
      if (this.used + total + size > this.maxBytes) {
        throw new DacError('ETOOBIG', `the model's files add up to ${mb(this.used + total + size)} with ${file}, over the limit of ${mb(this.maxBytes)}`, ctxOf(file));
      }
      sizes.push(size);
      total += size;
    }
    // One spare byte: each file is read one byte past its size (into the next one's place, or this byte) to see it did not grow.
    const buf = Buffer.allocUnsafe(total + 1);
    let offset = 0;
    files.forEach((file, i) => {
      const got = readInto(file, buf, offset, sizes[i], ctxOf(file));
      offset += got;
      this.used += got;
    });
    return buf.subarray(0, offset);
  }
}

/**
 * Reads a whole file of at most `maxBytes`. The read itself is bounded too,
 * so a file that grows between the stat and the read cannot exceed it.
 */
export function readFileBounded(file: string, maxBytes: number, ctx: ErrorContext = {}): Buffer {
  const size = checkFileSize(file, maxBytes, ctx);
  const buf = Buffer.allocUnsafe(Math.min(size + 1, maxBytes + 1));
  return buf.subarray(0, readInto(file, buf, 0, maxBytes, ctx));
}

/**
 * Reads a whole file into `buf` at `offset`, refused if it has more than
 * `maxBytes` (one byte past them must fit in `buf`); the number of bytes read.
 */
export function readInto(file: string, buf: Buffer, offset: number, maxBytes: number, ctx: ErrorContext = {}): number {
  const ioError = (err: unknown): DacError => {
    const code = (err as NodeJS.ErrnoException).code;
    return new DacError(code === 'ENOENT' ? 'ENOENT' : 'EIO', `cannot read ${file}: ${code ?? (err as Error).message}`, ctx);
  };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw ioError(err);
  }
  try {
    const end = Math.min(buf.length, offset + maxBytes + 1);
    let got = 0;
    while (offset + got < end) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, offset + got, end - offset - got, got);
      } catch (err) {
        throw ioError(err);
      }
      if (n === 0) break;
      got += n;
    }
    if (got > maxBytes) {
      throw new DacError('ETOOBIG', `${file} grew past the limit of ${mb(maxBytes)} while being read`, ctx);
    }
    return got;
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
  const maxElements = opts.maxElements ?? MAX_ELEMENTS;
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
 * Declared sizes of a loaded model's convs: every spatial size, channel count
 * and activation (H x W x C of one image) within what any real network has.
 * Loading never allocates activations, so absurd sizes (an input declared
 * 10^9 x 10^9) pass the readers, but cost accounting and planning walk them;
 * refusing them here keeps a hostile model from hanging a worker.
 *
 * With a free input size (`freeInput`) the sizes are not the model's: they
 * are NOMINAL_FREE_SIZE's stand-in, which a 4x upscaler turns into 4096 x
 * 4096 x its channels, past 2^31 elements and no less real for it (nothing
 * allocates them; the latency bench asks for a stated size). Each dimension
 * stays bounded, not their product.
 */
export function checkConvSizes(
  convs: ReadonlyArray<{ name: string; n: number; c: number; inH: number; inW: number; outH: number; outW: number }>,
  model: string,
  freeInput = false,
): void {
  const opts = freeInput ? { maxElements: Infinity } : {};
  for (const conv of convs) {
    const ctx = { model, layer: conv.name };
    checkDims([conv.inH, conv.inW, conv.c], { ...ctx, field: 'input size' }, opts);
    checkDims([conv.outH, conv.outW, conv.n], { ...ctx, field: 'output size' }, opts);
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
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '...' : v}'`;
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}
