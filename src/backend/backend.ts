// A loaded backend with the typed, validated decomposition API on top of its
// raw Binding. Every argument is checked here before it reaches C++.
import type { Binding, BackendName, LayoutCode, RawBackendInfo } from './binding.js';
import { DacError, type ErrorContext } from '../errors.js';
import { checkFloats, checkInt, checkShape, type ConvShape } from '../validate.js';
import { matchingWidth } from '../cost.js';

export type WeightLayout = 'OIHW' | 'HWIO';

export interface DecomposeOptions {
  /** Layout of the weights: OIHW [n][c][kh][kw] (ONNX, PyTorch; default) or HWIO [kh][kw][c][n] (TF.js, Keras). */
  layout?: WeightLayout;
  /** Threads for this call (native only; WASM runs on the calling thread). Default 1. */
  threads?: number;
  /** Names used in error messages. */
  context?: ErrorContext;
}

export interface DacResult {
  rank: number;
  /** [c*rank][kh*kw]: channel i's filters at rows i*rank .. i*rank+rank-1 */
  depthwise: Float32Array;
  /** [n][c*rank] */
  pointwise: Float32Array;
  /** [c][min(n, kh*kw)]: every singular value of every channel slice, descending */
  singular: Float32Array;
}

export interface SpatialResult {
  width: number;
  /** [width][c][kh]: a kh x 1 conv, c -> width */
  vertical: Float32Array;
  /** [n][width][kw]: a 1 x kw conv, width -> n */
  horizontal: Float32Array;
  /** [min(c*kh, n*kw)] */
  singular: Float32Array;
}

export interface ChannelResult {
  width: number;
  /** [width][c][kh][kw]: a kh x kw conv, c -> width */
  first: Float32Array;
  /** [n][width]: a 1x1 conv, width -> n */
  second: Float32Array;
  /** [min(n, c*kh*kw)] */
  singular: Float32Array;
}

export interface BatchLayer {
  weights: Float32Array;
  shape: ConvShape;
  rank: number;
  layout?: WeightLayout;
  /** Layer name for error messages. */
  name?: string;
}

export interface MatmulOptions {
  /** Use a^T (a is then stored k x m). */
  transA?: boolean;
  /** Use b^T (b is then stored n x k). */
  transB?: boolean;
  context?: ErrorContext;
}

export interface TriangularSolveOptions {
  /** Solve with the leading k x k block of l (default m). */
  k?: number;
  /** true: each row x of b becomes L^-1 x (forward substitution); false (default): L^-T x. */
  transpose?: boolean;
  context?: ErrorContext;
}

/** Largest matrix the linear algebra takes, in values (WASM's 32-bit lengths, 8 bytes each). */
const MAX_MATRIX = 2 ** 28;

/**
 * A Float64Array of exactly `length` values. Values are not scanned: NaN and
 * infinity propagate through products and solves as IEEE arithmetic says, and
 * the Cholesky factorisation reports a non-finite factor as an error.
 */
function checkDoubles(value: unknown, length: number, field: string, ctx: ErrorContext): Float64Array {
  if (!(value instanceof Float64Array)) throw new DacError('EINVAL', `${field} must be a Float64Array`, { ...ctx, field });
  if (value.length !== length) {
    throw new DacError('ESHAPE', `${field} has ${value.length} values, expected ${length}`, { ...ctx, field });
  }
  return value;
}

function checkDims(dims: Record<string, unknown>, ctx: ErrorContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(dims)) out[name] = checkInt(v, name, 0, MAX_MATRIX, ctx);
  return out;
}

function checkSize(values: number, field: string, ctx: ErrorContext): void {
  if (values > MAX_MATRIX) throw new DacError('ERANGE', `${field} would have ${values} values, more than ${MAX_MATRIX}`, { ...ctx, field });
}

export interface BackendInfo {
  backend: BackendName;
  version: string;
  isa: string;
  kernels: { dwpw: string; conv2d: string; dwpwVariants: string[]; conv2dVariants: string[] };
  hardwareThreads: number;
}

function layoutCode(layout: unknown, ctx: ErrorContext): LayoutCode {
  if (layout === undefined || layout === 'OIHW') return 0;
  if (layout === 'HWIO') return 1;
  throw new DacError('EINVAL', `layout must be 'OIHW' or 'HWIO', got ${String(layout)}`, { ...ctx, field: 'layout' });
}

function threadsOf(opts: DecomposeOptions | undefined, ctx: ErrorContext): number {
  return opts?.threads === undefined ? 1 : checkInt(opts.threads, 'threads', 1, 1024, ctx);
}

/** Largest DAC rank of a layer: min(n, kh*kw). */
export function maxDacRank(shape: ConvShape): number {
  return Math.min(shape.n, shape.kh * shape.kw);
}

/** Largest spatial width: min(c*kh, n*kw). */
export function maxSpatialWidth(shape: ConvShape): number {
  return Math.min(shape.c * shape.kh, shape.n * shape.kw);
}

/** Largest channel width: min(n, c*kh*kw). */
export function maxChannelWidth(shape: ConvShape): number {
  return Math.min(shape.n, shape.c * shape.kh * shape.kw);
}

/**
 * The decompositions run in double, so weights near the float32 limit do
 * not overflow inside; but a singular value or a factor scaled by one can
 * exceed float32 (e.g. every weight 1e38: sigma ~ 1e38 * sqrt(n*kh*kw)).
 * No rescaling can represent such a result in float32, so it is refused by
 * name instead of returned as Infinity.
 */
function checkResult(fields: Array<[string, Float32Array]>, ctx: ErrorContext): void {
  for (const [field, values] of fields) {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        throw new DacError('ERANGE', `${field} [${i}] overflows float32: the weights are too large to decompose in float32 (scale them down)`, { ...ctx, field });
      }
    }
  }
}

export class Backend {
  constructor(readonly binding: Binding) {}

  get name(): BackendName {
    return this.binding.name;
  }

  info(): BackendInfo {
    const raw: RawBackendInfo = this.binding.info();
    const list = (s: string): string[] => s.split(',').filter(Boolean);
    return {
      backend: this.binding.name,
      version: raw.version,
      isa: raw.isa,
      kernels: {
        dwpw: raw.dwpwVariant,
        conv2d: raw.conv2dVariant,
        dwpwVariants: list(raw.dwpwVariants),
        conv2dVariants: list(raw.conv2dVariants),
      },
      hardwareThreads: raw.hardwareThreads,
    };
  }

  /** DAC: per input channel, a rank-r SVD of its n x (kh*kw) slice. */
  decomposeDac(weights: Float32Array, shape: ConvShape, rank: number, opts: DecomposeOptions = {}): DacResult {
    const args = this.dacArgs({ weights, shape, rank, layout: opts.layout }, opts.context ?? {}, threadsOf(opts, opts.context ?? {}));
    this.binding.decomposeDac(args);
    checkResult([['singular', args.singular!], ['depthwise', args.depthwise], ['pointwise', args.pointwise]], opts.context ?? {});
    return { rank: args.rank, depthwise: args.depthwise, pointwise: args.pointwise, singular: args.singular! };
  }

  /** Many layers in one call: a whole model's convs, spread over `threads` (native). */
  decomposeDacBatch(layers: BatchLayer[], opts: Omit<DecomposeOptions, 'layout'> = {}): DacResult[] {
    const ctx = opts.context ?? {};
    if (!Array.isArray(layers)) throw new DacError('EINVAL', 'layers must be an array', { ...ctx, field: 'layers' });
    const threads = threadsOf(opts, ctx);
    const args = layers.map((layer, i) =>
      this.dacArgs(layer, { ...ctx, layer: layer?.name ?? `#${i}` }, 1),
    );
    if (args.length > 0) this.binding.decomposeDacBatch(args, threads);
    args.forEach((a, i) => checkResult([['singular', a.singular!], ['depthwise', a.depthwise], ['pointwise', a.pointwise]], { ...ctx, layer: layers[i]?.name ?? `#${i}` }));
    return args.map((a) => ({ rank: a.rank, depthwise: a.depthwise, pointwise: a.pointwise, singular: a.singular! }));
  }

  /** Jaderberg-style spatial decomposition: kh x 1 (width filters) then 1 x kw. */
  decomposeSpatial(weights: Float32Array, shape: ConvShape, width: number, opts: DecomposeOptions = {}): SpatialResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    const w = checkInt(width, 'width', 1, maxSpatialWidth(s), ctx);
    const args = {
      weights: checkFloats(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(opts.layout, ctx),
      ...s,
      width: w,
      vertical: new Float32Array(w * s.c * s.kh),
      horizontal: new Float32Array(s.n * w * s.kw),
      singular: new Float32Array(maxSpatialWidth(s)),
      threads: threadsOf(opts, ctx),
    };
    this.binding.decomposeSpatial(args);
    checkResult([['singular', args.singular], ['vertical', args.vertical], ['horizontal', args.horizontal]], ctx);
    return { width: w, vertical: args.vertical, horizontal: args.horizontal, singular: args.singular };
  }

  /** Zhang-style channel decomposition: kh x kw (width filters) then 1x1. */
  decomposeChannel(weights: Float32Array, shape: ConvShape, width: number, opts: DecomposeOptions = {}): ChannelResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    const w = checkInt(width, 'width', 1, maxChannelWidth(s), ctx);
    const args = {
      weights: checkFloats(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(opts.layout, ctx),
      ...s,
      width: w,
      first: new Float32Array(w * s.c * s.kh * s.kw),
      second: new Float32Array(s.n * w),
      singular: new Float32Array(maxChannelWidth(s)),
      threads: threadsOf(opts, ctx),
    };
    this.binding.decomposeChannel(args);
    checkResult([['singular', args.singular], ['first', args.first], ['second', args.second]], ctx);
    return { width: w, first: args.first, second: args.second, singular: args.singular };
  }

  /** op(a) * op(b) in double precision: op(a) is m x k, op(b) k x n; a new m x n row-major array. */
  matmul(a: Float64Array, b: Float64Array, m: number, n: number, k: number, opts: MatmulOptions = {}): Float64Array {
    const ctx = opts.context ?? {};
    const d = checkDims({ m, n, k }, ctx);
    for (const [field, size] of [['a', d.m * d.k], ['b', d.k * d.n], ['result', d.m * d.n]] as const) checkSize(size, field, ctx);
    const args = {
      m: d.m,
      n: d.n,
      k: d.k,
      a: checkDoubles(a, d.m * d.k, 'a', ctx),
      transA: opts.transA === true,
      b: checkDoubles(b, d.k * d.n, 'b', ctx),
      transB: opts.transB === true,
      c: new Float64Array(d.m * d.n),
    };
    this.binding.gemm(args);
    return args.c;
  }

  /**
   * Lower Cholesky factor (m x m, row-major) of a symmetric positive
   * semi-definite matrix (its lower triangle is read), after adding
   * ridge * (mean diagonal, or 1 when that is not positive) to the diagonal,
   * so singular matrices still factor. A pivot below 1e-6 of that amount (the
   * matrix is not positive semi-definite there) is set to it and its column
   * below the diagonal to zero, so the factor stays bounded. `a` is not
   * modified; a non-finite factor is an error.
   */
  cholesky(a: Float64Array, m: number, ridge: number, context: ErrorContext = {}): Float64Array {
    const d = checkDims({ m }, context);
    checkSize(d.m * d.m, 'a', context);
    if (typeof ridge !== 'number' || !Number.isFinite(ridge) || ridge < 0) {
      throw new DacError('EINVAL', `ridge must be a finite number >= 0, got ${String(ridge)}`, { ...context, field: 'ridge' });
    }
    const args = { m: d.m, a: Float64Array.from(checkDoubles(a, d.m * d.m, 'a', context)), ridge };
    this.binding.cholesky(args);
    return args.a;
  }

  /**
   * b * op(L_k)^-1 for the leading k x k block L_k of a lower triangular m x m
   * matrix l (a Cholesky factor) and b of `rows` rows of k values; a new array.
   */
  solveTriangular(l: Float64Array, m: number, b: Float64Array, rows: number, opts: TriangularSolveOptions = {}): Float64Array {
    const ctx = opts.context ?? {};
    const d = checkDims({ m, rows }, ctx);
    const k = opts.k === undefined ? d.m : checkInt(opts.k, 'k', 0, d.m, ctx);
    checkSize(d.m * d.m, 'l', ctx);
    checkSize(d.rows * k, 'b', ctx);
    checkDoubles(l, d.m * d.m, 'l', ctx);
    for (let i = 0; i < k; i++) {
      if (!(l[i * d.m + i] !== 0 && Number.isFinite(l[i * d.m + i]))) {
        throw new DacError('EINVAL', `l[${i}][${i}] is ${l[i * d.m + i]}: the diagonal must be non-zero and finite`, { ...ctx, field: 'l' });
      }
    }
    const args = { m: d.m, l, k, rows: d.rows, b: Float64Array.from(checkDoubles(b, d.rows * k, 'b', ctx)), transpose: opts.transpose === true };
    this.binding.triangularSolve(args);
    return args.b;
  }

  /** Eigenvalues (descending) of a symmetric m x m matrix; only its lower triangle is read. */
  symmetricEigenvalues(a: Float64Array, m: number, context: ErrorContext = {}): Float64Array {
    const d = checkDims({ m }, context);
    checkSize(d.m * d.m, 'a', context);
    const args = { m: d.m, a: checkDoubles(a, d.m * d.m, 'a', context), values: new Float64Array(d.m) };
    this.binding.symmetricEigenvalues(args);
    return args.values;
  }

  private dacArgs(layer: BatchLayer, ctx: ErrorContext, threads: number) {
    if (typeof layer !== 'object' || layer === null) throw new DacError('EINVAL', 'layer must be an object', ctx);
    const s = checkShape(layer.shape, ctx);
    const rank = checkInt(layer.rank, 'rank', 1, maxDacRank(s), ctx);
    return {
      weights: checkFloats(layer.weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(layer.layout, ctx),
      ...s,
      rank,
      depthwise: new Float32Array(s.c * rank * s.kh * s.kw),
      pointwise: new Float32Array(s.n * s.c * rank),
      singular: new Float32Array(s.c * maxDacRank(s)) as Float32Array | null,
      threads,
    };
  }
}

/**
 * The paper's intermediate widths that match the MACs of DAC at rank r per
 * output pixel (src/cost.ts matchingWidth: channel c*kh*kw + n, spatial
 * c*kh + n*kw per unit of width), rounded and clamped to each method's range.
 */
export function matchingWidths(shape: ConvShape, rank: number): { channel: number; spatial: number } {
  const s = checkShape(shape);
  const r = checkInt(rank, 'rank', 1, s.kh * s.kw);
  return { channel: matchingWidth(s, 'channel', r), spatial: matchingWidth(s, 'spatial', r) };
}
