// Inference kernels on a backend: the fused depthwise(multiplier r) +
// pointwise convolution that DAC produces, and a dense convolution in the
// same engine (so original and decomposed layers are timed alike). NHWC
// float32 activations; every argument is checked here before C++ sees it.
import type { ActivationCode, BackendName, Conv2DArgs, ConvGeometry, DwPwArgs } from './backend/binding.js';
import type { Backend } from './backend/backend.js';
import { getBackend } from './backend/loader.js';
import { DacError, type ErrorContext } from './errors.js';
import { checkInt, checkShape, type ConvShape } from './validate.js';

/** NHWC: [batch, height, width, channels]. */
export type Nhwc = [number, number, number, number];

/**
 * 'same' (TF/Keras: output = ceil(in / stride), the extra pixel of an odd
 * total padding at the bottom/right), 'valid' (no padding), or explicit
 * [top, left, bottom, right].
 */
export type Padding = 'same' | 'valid' | readonly [number, number, number, number];

export type Activation = 'none' | 'linear' | 'relu' | 'relu6';

export interface KernelOptions {
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
  /** Backend name or object; default: getBackend(). */
  backend?: BackendName | Backend;
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

const MAX_DIM = 1 << 24;

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

/** TF/Keras 'same' padding of one axis: [before, after]. */
export function samePadding(inSize: number, kernel: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - inSize, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** Output size of one axis: floor((in + padA + padB - dilation*(kernel-1) - 1) / stride) + 1 (0 if the kernel does not fit). */
export function convOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBefore: number,
  padAfter: number,
): number {
  const span = inSize + padBefore + padAfter - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : Math.floor(span / stride) + 1;
}

/** Resolves a padding spec into [top, left, bottom, right]. */
export function resolvePadding(
  padding: Padding | undefined,
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  strides: readonly [number, number] = [1, 1],
  dilations: readonly [number, number] = [1, 1],
  ctx: ErrorContext = {},
): [number, number, number, number] {
  if (padding === undefined || padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') {
    const [top, bottom] = samePadding(inH, kh, strides[0], dilations[0]);
    const [left, right] = samePadding(inW, kw, strides[1], dilations[1]);
    return [top, left, bottom, right];
  }
  if (Array.isArray(padding) && padding.length === 4) {
    const names = ['top', 'left', 'bottom', 'right'];
    return padding.map((p, i) => checkInt(p, `padding.${names[i]}`, 0, MAX_DIM, ctx)) as [number, number, number, number];
  }
  throw new DacError('EINVAL', `padding must be 'same', 'valid' or [top, left, bottom, right], got ${JSON.stringify(padding)}`, {
    ...ctx,
    field: 'padding',
  });
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

function checkArray(value: unknown, length: number, field: string, ctx: ErrorContext): Float32Array {
  if (!(value instanceof Float32Array)) throw new DacError('EINVAL', `${field} must be a Float32Array`, { ...ctx, field });
  if (value.length !== length) {
    throw new DacError('ESHAPE', `${field} has ${value.length} values, expected ${length}`, { ...ctx, field });
  }
  return value;
}

function overlaps(a: Float32Array, b: Float32Array | null): boolean {
  if (!b || a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function backendOf(opts: KernelOptions): Backend {
  const b = opts.backend;
  return typeof b === 'object' && b !== null ? b : getBackend(b);
}

const variantLists = new WeakMap<Backend, { dwpw: string[]; conv2d: string[] }>();

/** The kernel variants a backend can run on this CPU, "ref" first and the default last. */
export function kernelVariants(backend: BackendName | Backend = getBackend()): { dwpw: string[]; conv2d: string[] } {
  const b = typeof backend === 'object' ? backend : getBackend(backend);
  let lists = variantLists.get(b);
  if (!lists) {
    const k = b.info().kernels;
    lists = { dwpw: k.dwpwVariants, conv2d: k.conv2dVariants };
    variantLists.set(b, lists);
  }
  return lists;
}

function variantOf(backend: Backend, kind: 'dwpw' | 'conv2d', variant: unknown, ctx: ErrorContext): string | null {
  if (variant === undefined || variant === null) return null;
  const list = kernelVariants(backend)[kind];
  if (typeof variant !== 'string' || !list.includes(variant)) {
    throw new DacError(
      'EINVAL',
      `variant must be one of ${list.join(', ')} on the ${backend.name} backend, got ${String(variant)}`,
      { ...ctx, field: 'variant' },
    );
  }
  return variant;
}

interface Common {
  geometry: ConvGeometry;
  input: Float32Array;
  bias: Float32Array | null;
  output: Float32Array;
  activation: ActivationCode;
  threads: number;
  shape: Nhwc;
}

/** Checks everything a conv call shares and computes its geometry. */
function common(input: unknown, inputShape: unknown, s: ConvShape, opts: KernelOptions, ctx: ErrorContext): Common {
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
  if (inLength > 2 ** 31 - 1 || outLength > 2 ** 31 - 1) {
    throw new DacError('ERANGE', 'tensors over 2^31-1 elements are not supported', { ...ctx, field: 'inputShape' });
  }
  const x = checkArray(input, inLength, 'input', ctx);
  const bias = opts.bias === undefined || opts.bias === null ? null : checkArray(opts.bias, s.n, 'bias', ctx);
  const output = opts.output === undefined ? new Float32Array(outLength) : checkArray(opts.output, outLength, 'output', ctx);
  const threads = opts.threads === undefined ? 1 : checkInt(opts.threads, 'threads', 1, 1024, ctx);
  return {
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
    input: x,
    bias,
    output,
    activation: activationCode(opts.activation, ctx),
    threads,
    shape: [batch, outH, outW, s.n],
  };
}

function noAliasing(output: Float32Array, others: Array<[Float32Array | null, string]>, ctx: ErrorContext): void {
  for (const [a, name] of others) {
    if (overlaps(output, a)) {
      throw new DacError('EINVAL', `output must not share memory with ${name}`, { ...ctx, field: 'output' });
    }
  }
}

function run(call: () => void, ctx: ErrorContext): void {
  try {
    call();
  } catch (err) {
    if (err instanceof DacError) throw err;
    throw new DacError('EKERNEL', err instanceof Error ? err.message : String(err), ctx);
  }
}

/**
 * The decomposed layer in one pass: a depthwise conv with depth multiplier
 * `weights.rank` (same strides/dilations/padding as the original) followed
 * by a 1x1 conv with `shape.n` outputs, the bias and the activation, fused by
 * tiles so the c*rank intermediate channels never leave the cache.
 * `shape` is the original layer's {n, c, kh, kw}.
 */
export function fusedDepthwisePointwise(
  input: Float32Array,
  inputShape: Nhwc,
  weights: DwPwWeights,
  shape: ConvShape,
  opts: KernelOptions = {},
): KernelResult {
  const ctx = opts.context ?? {};
  const s = checkShape(shape, ctx);
  if (typeof weights !== 'object' || weights === null) {
    throw new DacError('EINVAL', 'weights must be {rank, depthwise, pointwise}', { ...ctx, field: 'weights' });
  }
  const rank = checkInt(weights.rank, 'rank', 1, 1 << 16, ctx);
  const depthwise = checkArray(weights.depthwise, s.c * rank * s.kh * s.kw, 'depthwise', ctx);
  const pointwise = checkArray(weights.pointwise, s.n * s.c * rank, 'pointwise', ctx);
  const c = common(input, inputShape, s, opts, ctx);
  noAliasing(
    c.output,
    [
      [c.input, 'the input'],
      [depthwise, 'the depthwise weights'],
      [pointwise, 'the pointwise weights'],
      [c.bias, 'the bias'],
    ],
    ctx,
  );
  const backend = backendOf(opts);
  const variant = variantOf(backend, 'dwpw', opts.variant, ctx);
  const args: DwPwArgs = {
    geometry: c.geometry,
    rank,
    input: c.input,
    depthwise,
    pointwise,
    bias: c.bias,
    output: c.output,
    activation: c.activation,
    threads: c.threads,
  };
  run(() => backend.binding.dwpw(args, variant), ctx);
  return { output: c.output, shape: c.shape };
}

/** A dense convolution; `weights` is OIHW [n][c][kh][kw] with `shape` = {n, c, kh, kw}. */
export function conv2d(
  input: Float32Array,
  inputShape: Nhwc,
  weights: Float32Array,
  shape: ConvShape,
  opts: KernelOptions = {},
): KernelResult {
  const ctx = opts.context ?? {};
  const s = checkShape(shape, ctx);
  const w = checkArray(weights, s.n * s.c * s.kh * s.kw, 'weights', ctx);
  const c = common(input, inputShape, s, opts, ctx);
  noAliasing(
    c.output,
    [
      [c.input, 'the input'],
      [w, 'the weights'],
      [c.bias, 'the bias'],
    ],
    ctx,
  );
  const backend = backendOf(opts);
  const variant = variantOf(backend, 'conv2d', opts.variant, ctx);
  const args: Conv2DArgs = {
    geometry: c.geometry,
    input: c.input,
    weights: w,
    bias: c.bias,
    output: c.output,
    activation: c.activation,
    threads: c.threads,
  };
  run(() => backend.binding.conv2d(args, variant), ctx);
  return { output: c.output, shape: c.shape };
}
