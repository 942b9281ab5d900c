// A loaded backend: the typed, validated API over its raw Binding, and the
// only door to the core (decompositions, kernels, linear algebra). Every
// argument is checked here before it reaches C++, and every error the core
// reports leaves as one DacError (coreError).
import {
  KERNEL_FAMILIES,
  type ActivationCode,
  type Binding,
  type BackendName,
  type KernelFamily,
  type LayoutCode,
  type OpArgs,
  type OpName,
} from './binding.js';
import { DacError, type ErrorContext } from '../errors.js';
import {
  checkInt,
  checkShape,
  convOutputSize,
  MAX_DIM,
  MAX_ELEMENTS,
  maxRank,
  resolvePadding,
  type ConvShape,
  type Padding,
} from '../geometry.js';
import { checkDoubles, checkFloats, checkNoOverlap, checkFloatView } from '../validate.js';
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

export interface DacOptions extends DecomposeOptions {
  /** Force a DAC kernel variant ('ref', 'avx2', ...; see backendInfo().kernels.dacVariants); default: the best for this CPU. */
  variant?: string;
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
  /** Worker threads (native; WASM runs on the calling thread). Default 1. */
  threads?: number;
  /** Where the m x n product goes (e.g. a slice of a batch), instead of a new array; must not overlap a or b. */
  out?: Float64Array;
  context?: ErrorContext;
}

export interface SymmetricEigenvaluesOptions {
  /** Worker threads (native; WASM runs on the calling thread). Default 1. With count > 1 each takes whole matrices. */
  threads?: number;
  /** `a` holds this many m x m matrices one after another; the result, their m values each in turn. Default 1. */
  count?: number;
  /**
   * `a` is the caller's scratch: reduced in place and left undefined, instead of copied first (one m x m
   * matrix less in memory: 19 MiB at m = 1536). Default false: `a` is only read.
   */
  overwrite?: boolean;
}

export interface TriangularSolveOptions {
  /** Solve with the leading k x k block of l (default m). */
  k?: number;
  /** true: each row x of b becomes L^-1 x (forward substitution); false (default): L^-T x. */
  transpose?: boolean;
  context?: ErrorContext;
}

/** A DAC pair as dacPairEnergy reads it: float32, as decompositions make it (widened in the core). */
export interface DacPair {
  rank: number;
  /** [c*rank][kh*kw] */
  depthwise: Float32Array;
  /** [n][c*rank] */
  pointwise: Float32Array;
}

export interface DacPairEnergyOptions extends DecomposeOptions {
  /** [kh*kw] per-tap scales of the energies; null or absent: 1. */
  tapScale?: Float64Array | null;
  /** [c] per-input-channel scales of the energies; null or absent: 1. */
  channelScale?: Float64Array | null;
}

/** Per output channel j, [n] each. */
export interface DacPairEnergy {
  /** sum_{i,t} (channelScale[i] tapScale[t] W[j,i,t])^2 */
  energy: Float64Array;
  /** The same of W'[j,i,:] = sum_k pointwise[j][i*rank+k] depthwise[i*rank+k][:], the conv the pair equals. */
  approxEnergy: Float64Array;
  /** sum_{i,t} (W[j,i,t] - W'[j,i,t])^2, unscaled. */
  residual: Float64Array;
}

/** NHWC: [batch, height, width, channels]. */
export type Nhwc = [number, number, number, number];

export type Activation = 'none' | 'linear' | 'relu' | 'relu6';

export interface KernelCallOptions {
  /** [strideH, strideW] or one value for both. Default 1. */
  strides?: number | readonly [number, number];
  /** [dilationH, dilationW] or one value for both. Default 1. */
  dilations?: number | readonly [number, number];
  /** Default 'valid'. */
  padding?: Padding;
  /** [outChannels], or null/undefined for none. */
  bias?: Float32Array | null;
  /** Applied after the bias. Default 'none'. */
  activation?: Activation;
  /** Worker threads (native; WASM runs on the calling thread). Default 1. */
  threads?: number;
  /** Where to write the result (exactly batch*outH*outW*outC floats); reuse it across calls to avoid allocating. */
  output?: Float32Array;
  /** Force a kernel variant ('ref', 'avx2', ...; see backendInfo().kernels); default: the best for this CPU. */
  variant?: string;
  /** Names used in error messages. */
  context?: ErrorContext;
}

export interface KernelResult {
  /** NHWC [batch][outH][outW][outC]. */
  output: Float32Array;
  shape: Nhwc;
}

/** DAC weights of one layer, as decomposeDac returns them. */
export interface DwPwWeights {
  rank: number;
  /** [c*rank][kh*kw]: channel i's filters at rows i*rank .. i*rank+rank-1 */
  depthwise: Float32Array;
  /** [n][c*rank] */
  pointwise: Float32Array;
}

/** The kernel variants a backend runs on this CPU, per family: "ref" first, the default (the best) last. */
export type KernelVariants = Record<KernelFamily, string[]>;

export interface BackendInfo {
  backend: BackendName;
  version: string;
  isa: string;
  kernels: {
    dwpw: string;
    conv2d: string;
    dac: string;
    dwpwVariants: string[];
    conv2dVariants: string[];
    dacVariants: string[];
  };
  hardwareThreads: number;
}

/** Largest matrix the linear algebra takes, in values (WASM's 32-bit lengths, 8 bytes each). */
const MAX_MATRIX = 2 ** 28;

function checkDims(dims: Record<string, unknown>, ctx: ErrorContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(dims)) out[name] = checkInt(v, name, 0, MAX_MATRIX, ctx);
  return out;
}

function checkSize(values: number, field: string, ctx: ErrorContext): void {
  if (values > MAX_MATRIX) throw new DacError('ERANGE', `${field} would have ${values} values, more than ${MAX_MATRIX}`, { ...ctx, field });
}

function layoutCode(layout: unknown, ctx: ErrorContext): LayoutCode {
  if (layout === undefined || layout === 'OIHW') return 0;
  if (layout === 'HWIO') return 1;
  throw new DacError('EINVAL', `layout must be 'OIHW' or 'HWIO', got ${String(layout)}`, { ...ctx, field: 'layout' });
}

function threadsOf(threads: unknown, ctx: ErrorContext): number {
  return threads === undefined ? 1 : checkInt(threads, 'threads', 1, 1024, ctx);
}

function activationCode(a: unknown, ctx: ErrorContext): ActivationCode {
  if (a === undefined || a === 'none' || a === 'linear') return 0;
  if (a === 'relu') return 1;
  if (a === 'relu6') return 2;
  throw new DacError('EINVAL', `activation must be 'none', 'linear', 'relu' or 'relu6', got ${String(a)}`, {
    ...ctx,
    field: 'activation',
  });
}

function pair(value: unknown, field: string, ctx: ErrorContext): [number, number] {
  if (value === undefined) return [1, 1];
  if (typeof value === 'number') {
    const v = checkInt(value, field, 1, MAX_DIM, ctx);
    return [v, v];
  }
  if (Array.isArray(value) && value.length === 2) {
    return [checkInt(value[0], `${field}[0]`, 1, MAX_DIM, ctx), checkInt(value[1], `${field}[1]`, 1, MAX_DIM, ctx)];
  }
  throw new DacError('EINVAL', `${field} must be a positive integer or a pair of them`, { ...ctx, field });
}

/** Largest DAC rank of a layer: min(n, kh*kw). */
export function maxDacRank(shape: ConvShape): number {
  return maxRank(shape, 'dac');
}

/** Largest spatial width: min(c*kh, n*kw). */
export function maxSpatialWidth(shape: ConvShape): number {
  return maxRank(shape, 'spatial');
}

/** Largest channel width: min(n, c*kh*kw). */
export function maxChannelWidth(shape: ConvShape): number {
  return maxRank(shape, 'channel');
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

/**
 * The one mapping from what the core throws to what callers see: arguments
 * are checked before every call, so an error from C++ (or a WASM trap) is a
 * failure of the core itself, EKERNEL, with the caller's context.
 */
function coreError(err: unknown, ctx: ErrorContext): DacError {
  if (err instanceof DacError) return err;
  return new DacError('EKERNEL', err instanceof Error ? err.message : String(err), ctx);
}

export class Backend {
  private variantLists: KernelVariants | null = null;

  /** The raw binding: for tests of the C++ checks behind it and for benchmarks; library code goes through the methods. */
  constructor(readonly binding: Binding) {}

  get name(): BackendName {
    return this.binding.name;
  }

  info(): BackendInfo {
    const raw = this.binding.info();
    const v = this.variants();
    return {
      backend: this.binding.name,
      version: raw.version,
      isa: raw.isa,
      kernels: {
        dwpw: v.dwpw[v.dwpw.length - 1],
        conv2d: v.conv2d[v.conv2d.length - 1],
        dac: v.dac[v.dac.length - 1],
        dwpwVariants: v.dwpw,
        conv2dVariants: v.conv2d,
        dacVariants: v.dac,
      },
      hardwareThreads: raw.hardwareThreads,
    };
  }

  /** The kernel variants this backend runs on this CPU, per family: "ref" first, the default last. */
  variants(): KernelVariants {
    if (!this.variantLists) {
      // "dwpw=ref,avx2;conv2d=ref,avx2;dac=ref,avx2"
      const families = new Map(this.binding.info().variants.split(';').map((f) => f.split('=') as [string, string]));
      const lists = {} as KernelVariants;
      for (const family of KERNEL_FAMILIES) lists[family] = (families.get(family) ?? '').split(',').filter(Boolean);
      this.variantLists = lists;
    }
    return this.variantLists;
  }

  /**
   * Process-wide, for an application that owns its process (the zoo command
   * calls it; the library never does): from now on, blocks of at least
   * `bytes` get mappings of their own, given back to the system when freed.
   * glibc's own threshold slides up to 32 MiB after the first large free,
   * and model-sized buffers then stay in its heaps. False where the C
   * library has no such setting (musl, macOS, Windows) and on WASM.
   */
  mapLargeAllocations(bytes: number): boolean {
    return this.binding.mapLargeAllocations(checkInt(bytes, 'bytes', 0, 2 ** 31 - 1, {}));
  }

  /** DAC: per input channel, a rank-r SVD of its n x (kh*kw) slice. */
  decomposeDac(weights: Float32Array, shape: ConvShape, rank: number, opts: DacOptions = {}): DacResult {
    const ctx = opts.context ?? {};
    const args = this.dacArgs({ weights, shape, rank, layout: opts.layout }, ctx, threadsOf(opts.threads, ctx), opts.variant);
    this.call('decomposeDac', args, ctx, (err) => this.dacFailure(err, [args], ctx, () => ctx));
    return this.dacResult(args, ctx);
  }

  /** Many layers in one call: a whole model's convs, spread over `threads` (native). */
  decomposeDacBatch(layers: BatchLayer[], opts: Omit<DacOptions, 'layout'> = {}): DacResult[] {
    const ctx = opts.context ?? {};
    if (!Array.isArray(layers)) throw new DacError('EINVAL', 'layers must be an array', { ...ctx, field: 'layers' });
    const threads = threadsOf(opts.threads, ctx);
    const where = (i: number): ErrorContext => ({ ...ctx, layer: layers[i]?.name ?? `#${i}` });
    const args = layers.map((layer, i) => this.dacArgs(layer, where(i), 1, opts.variant));
    if (args.length > 0) {
      try {
        this.binding.decomposeDacBatch(args, threads);
      } catch (err) {
        throw this.dacFailure(err, args, ctx, where);
      }
    }
    return args.map((a, i) => this.dacResult(a, where(i)));
  }

  /** Jaderberg-style spatial decomposition: kh x 1 (width filters) then 1 x kw. */
  decomposeSpatial(weights: Float32Array, shape: ConvShape, width: number, opts: DecomposeOptions = {}): SpatialResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    const w = checkInt(width, 'width', 1, maxRank(s, 'spatial'), ctx);
    const args = {
      weights: checkFloats(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(opts.layout, ctx),
      ...s,
      width: w,
      vertical: new Float32Array(w * s.c * s.kh),
      horizontal: new Float32Array(s.n * w * s.kw),
      singular: new Float32Array(maxRank(s, 'spatial')),
      threads: threadsOf(opts.threads, ctx),
    };
    this.call('decomposeSpatial', args, ctx);
    checkResult([['singular', args.singular], ['vertical', args.vertical], ['horizontal', args.horizontal]], ctx);
    return { width: w, vertical: args.vertical, horizontal: args.horizontal, singular: args.singular };
  }

  /** Zhang-style channel decomposition: kh x kw (width filters) then 1x1. */
  decomposeChannel(weights: Float32Array, shape: ConvShape, width: number, opts: DecomposeOptions = {}): ChannelResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    const w = checkInt(width, 'width', 1, maxRank(s, 'channel'), ctx);
    const args = {
      weights: checkFloats(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(opts.layout, ctx),
      ...s,
      width: w,
      first: new Float32Array(w * s.c * s.kh * s.kw),
      second: new Float32Array(s.n * w),
      singular: new Float32Array(maxRank(s, 'channel')),
      threads: threadsOf(opts.threads, ctx),
    };
    this.call('decomposeChannel', args, ctx);
    checkResult([['singular', args.singular], ['first', args.first], ['second', args.second]], ctx);
    return { width: w, first: args.first, second: args.second, singular: args.singular };
  }

  /**
   * A DAC pair against the conv it replaces, per output channel, in one
   * pass in double: the conv's and the pair's energies under diagonal
   * scales and their unscaled squared difference. Values are not scanned
   * (NaN propagates, as in matmul).
   */
  dacPairEnergy(weights: Float32Array, shape: ConvShape, pair: DacPair, opts: DacPairEnergyOptions = {}): DacPairEnergy {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    if (typeof pair !== 'object' || pair === null) {
      throw new DacError('EINVAL', 'pair must be {rank, depthwise, pointwise}', { ...ctx, field: 'pair' });
    }
    const rank = checkInt(pair.rank, 'rank', 1, maxRank(s, 'dac'), ctx);
    const K = s.kh * s.kw;
    checkSize(s.c * rank * K, 'depthwise', ctx);
    checkSize(s.n * s.c * rank, 'pointwise', ctx);
    const scale = (v: Float64Array | null | undefined, length: number, field: string) =>
      v === undefined || v === null ? new Float64Array(length).fill(1) : checkDoubles(v, length, field, ctx);
    const args = {
      weights: checkFloatView(weights, s.n * s.c * K, 'weights', ctx),
      layout: layoutCode(opts.layout, ctx),
      ...s,
      rank,
      depthwise: checkFloatView(pair.depthwise, s.c * rank * K, 'depthwise', ctx),
      pointwise: checkFloatView(pair.pointwise, s.n * s.c * rank, 'pointwise', ctx),
      tapScale: scale(opts.tapScale, K, 'tapScale'),
      channelScale: scale(opts.channelScale, s.c, 'channelScale'),
      energy: new Float64Array(s.n),
      approxEnergy: new Float64Array(s.n),
      residual: new Float64Array(s.n),
      threads: threadsOf(opts.threads, ctx),
    };
    this.call('dacPairEnergy', args, ctx);
    return { energy: args.energy, approxEnergy: args.approxEnergy, residual: args.residual };
  }

  /**
   * The decomposed layer in one pass: a depthwise conv with depth multiplier
   * `weights.rank` (same strides/dilations/padding as the original) followed
   * by a 1x1 conv with `shape.n` outputs, the bias and the activation, fused by
   * tiles so the c*rank intermediate channels never leave the cache.
   * `shape` is the original layer's {n, c, kh, kw}.
   */
  fusedDepthwisePointwise(
    input: Float32Array,
    inputShape: Nhwc,
    weights: DwPwWeights,
    shape: ConvShape,
    opts: KernelCallOptions = {},
  ): KernelResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    if (typeof weights !== 'object' || weights === null) {
      throw new DacError('EINVAL', 'weights must be {rank, depthwise, pointwise}', { ...ctx, field: 'weights' });
    }
    const rank = checkInt(weights.rank, 'rank', 1, 1 << 16, ctx);
    const depthwise = checkFloatView(weights.depthwise, s.c * rank * s.kh * s.kw, 'depthwise', ctx);
    const pointwise = checkFloatView(weights.pointwise, s.n * s.c * rank, 'pointwise', ctx);
    const conv = this.convArgs(input, inputShape, s, opts, ctx);
    checkNoOverlap(conv.args.output, 'output', [
      [conv.args.input, 'the input'],
      [depthwise, 'the depthwise weights'],
      [pointwise, 'the pointwise weights'],
      [conv.args.bias, 'the bias'],
    ], ctx);
    const variant = this.variantOf('dwpw', opts.variant, ctx);
    this.call('dwpw', { ...conv.args, rank, depthwise, pointwise, variant }, ctx);
    return { output: conv.args.output, shape: conv.shape };
  }

  /** A dense convolution; `weights` is OIHW [n][c][kh][kw] with `shape` = {n, c, kh, kw}. */
  conv2d(input: Float32Array, inputShape: Nhwc, weights: Float32Array, shape: ConvShape, opts: KernelCallOptions = {}): KernelResult {
    const ctx = opts.context ?? {};
    const s = checkShape(shape, ctx);
    const w = checkFloatView(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx);
    const conv = this.convArgs(input, inputShape, s, opts, ctx);
    checkNoOverlap(conv.args.output, 'output', [
      [conv.args.input, 'the input'],
      [w, 'the weights'],
      [conv.args.bias, 'the bias'],
    ], ctx);
    const variant = this.variantOf('conv2d', opts.variant, ctx);
    this.call('conv2d', { ...conv.args, weights: w, variant }, ctx);
    return { output: conv.args.output, shape: conv.shape };
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
      c: opts.out === undefined ? new Float64Array(d.m * d.n) : checkDoubles(opts.out, d.m * d.n, 'out', ctx),
      threads: threadsOf(opts.threads, ctx),
    };
    checkNoOverlap(args.c, 'out', [[args.a, 'a'], [args.b, 'b']], ctx);
    this.call('gemm', args, ctx);
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
    this.call('cholesky', args, context);
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
    this.call('triangularSolve', args, ctx);
    return args.b;
  }

  /** Eigenvalues (descending) of a symmetric m x m matrix; only its lower triangle is read. */
  symmetricEigenvalues(a: Float64Array, m: number, context: ErrorContext = {}, opts: SymmetricEigenvaluesOptions = {}): Float64Array {
    const d = checkDims({ m, count: opts.count ?? 1 }, context);
    checkSize(d.count * d.m * d.m, 'a', context);
    const args = {
      m: d.m,
      count: d.count,
      a: checkDoubles(a, d.count * d.m * d.m, 'a', context),
      values: new Float64Array(d.count * d.m),
      threads: threadsOf(opts.threads, context),
      overwrite: opts.overwrite === true,
    };
    this.call('symmetricEigenvalues', args, context);
    return args.values;
  }

  /** Runs one op of the binding (every op but the batched DAC call); a failure becomes `failure`'s error (the core's, by default). */
  private call<N extends OpName>(op: N, args: OpArgs<N>, ctx: ErrorContext, failure = (err: unknown): DacError => coreError(err, ctx)): void {
    try {
      (this.binding[op] as (a: OpArgs<N>) => void)(args);
    } catch (err) {
      throw failure(err);
    }
  }

  /** A variant name this backend runs for `family`, or null (the best) when none is asked for. */
  private variantOf(family: KernelFamily, variant: unknown, ctx: ErrorContext): string | null {
    if (variant === undefined || variant === null) return null;
    const list = this.variants()[family];
    if (typeof variant !== 'string' || !list.includes(variant)) {
      throw new DacError('EINVAL', `variant must be one of ${list.join(', ')} on the ${this.name} backend, got ${String(variant)}`, {
        ...ctx,
        field: 'variant',
      });
    }
    return variant;
  }

  private dacArgs(layer: BatchLayer, ctx: ErrorContext, threads: number, variant: unknown): OpArgs<'decomposeDac'> & { singular: Float32Array } {
    if (typeof layer !== 'object' || layer === null) throw new DacError('EINVAL', 'layer must be an object', ctx);
    const s = checkShape(layer.shape, ctx);
    const rank = checkInt(layer.rank, 'rank', 1, maxRank(s, 'dac'), ctx);
    return {
      // Not scanned here: the core refuses a NaN or infinity on every route (dacFailure names it).
      weights: checkFloatView(layer.weights, s.n * s.c * s.kh * s.kw, 'weights', ctx),
      layout: layoutCode(layer.layout, ctx),
      ...s,
      rank,
      depthwise: new Float32Array(s.c * rank * s.kh * s.kw),
      pointwise: new Float32Array(s.n * s.c * rank),
      singular: new Float32Array(s.c * maxRank(s, 'dac')),
      threads,
      variant: this.variantOf('dac', variant, ctx),
    };
  }

  /**
   * A DAC call's error: the first non-finite weight by layer and index when there is one (the core
   * finds them in its own pass over the weights, so they are scanned only after it failed), else the core's.
   */
  private dacFailure(err: unknown, args: OpArgs<'decomposeDac'>[], ctx: ErrorContext, where: (i: number) => ErrorContext): DacError {
    args.forEach((a, i) => checkFloats(a.weights, a.weights.length, 'weights', where(i)));
    return coreError(err, ctx);
  }

  private dacResult(a: OpArgs<'decomposeDac'> & { singular: Float32Array }, ctx: ErrorContext): DacResult {
    checkResult([['singular', a.singular], ['depthwise', a.depthwise], ['pointwise', a.pointwise]], ctx);
    return { rank: a.rank, depthwise: a.depthwise, pointwise: a.pointwise, singular: a.singular };
  }

  /** Checks everything a conv call shares and computes its geometry (geometry.ts's output size and padding). */
  private convArgs(input: unknown, inputShape: unknown, s: ConvShape, opts: KernelCallOptions, ctx: ErrorContext) {
    if (!Array.isArray(inputShape) || inputShape.length !== 4) {
      throw new DacError('EINVAL', 'inputShape must be [batch, height, width, channels]', { ...ctx, field: 'inputShape' });
    }
    const batch = checkInt(inputShape[0], 'inputShape[0] (batch)', 1, MAX_DIM, ctx);
    const inH = checkInt(inputShape[1], 'inputShape[1] (height)', 1, MAX_DIM, ctx);
    const inW = checkInt(inputShape[2], 'inputShape[2] (width)', 1, MAX_DIM, ctx);
    const inC = checkInt(inputShape[3], 'inputShape[3] (channels)', 1, MAX_DIM, ctx);
    if (inC !== s.c) {
      throw new DacError('ESHAPE', `input has ${inC} channels but the layer expects ${s.c}`, { ...ctx, field: 'inputShape' });
    }
    const strides = pair(opts.strides, 'strides', ctx);
    const dilations = pair(opts.dilations, 'dilations', ctx);
    const [pt, pl, pb, pr] = resolvePadding(opts.padding, inH, inW, s.kh, s.kw, strides, dilations, ctx);
    const outH = convOutputSize(inH, s.kh, strides[0], dilations[0], pt, pb);
    const outW = convOutputSize(inW, s.kw, strides[1], dilations[1], pl, pr);
    if (outH < 1 || outW < 1) {
      throw new DacError(
        'ESHAPE',
        `a ${s.kh}x${s.kw} kernel with dilation ${dilations.join('x')} does not fit the padded ${inH}x${inW} input`,
        { ...ctx, field: 'padding' },
      );
    }
    const inLength = batch * inH * inW * inC;
    const outLength = batch * outH * outW * s.n;
    if (inLength > MAX_ELEMENTS || outLength > MAX_ELEMENTS) {
      throw new DacError('ERANGE', 'tensors over 2^31-1 elements are not supported', { ...ctx, field: 'inputShape' });
    }
    const args = {
      geometry: {
        batch,
        inH,
        inW,
        inC,
        kh: s.kh,
        kw: s.kw,
        strideH: strides[0],
        strideW: strides[1],
        dilationH: dilations[0],
        dilationW: dilations[1],
        padTop: pt,
        padLeft: pl,
        padBottom: pb,
        padRight: pr,
        outH,
        outW,
        outC: s.n,
      },
      input: checkFloatView(input, inLength, 'input', ctx),
      bias: opts.bias === undefined || opts.bias === null ? null : checkFloatView(opts.bias, s.n, 'bias', ctx),
      output: opts.output === undefined ? new Float32Array(outLength) : checkFloatView(opts.output, outLength, 'output', ctx),
      activation: activationCode(opts.activation, ctx),
      threads: threadsOf(opts.threads, ctx),
    };
    return { args, shape: [batch, outH, outW, s.n] as Nhwc };
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
