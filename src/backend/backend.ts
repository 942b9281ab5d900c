// A loaded backend with the typed, validated decomposition API on top of its
// raw Binding. Every argument is checked here before it reaches C++.
import type { Binding, BackendName, LayoutCode, RawBackendInfo } from './binding.js';
import { DacError, type ErrorContext } from '../errors.js';
import { checkFloats, checkInt, checkShape, type ConvShape } from '../validate.js';

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
    return { width: w, first: args.first, second: args.second, singular: args.singular };
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
 * The paper's intermediate widths that match the FLOPs of DAC at rank r:
 * channel c' = r*c*(n + kh*kw)/(c*kh*kw + n), spatial c' = r*c*(n + kh*kw)/(c*kw + n*kh),
 * rounded and clamped to each method's valid range.
 */
export function matchingWidths(shape: ConvShape, rank: number): { channel: number; spatial: number } {
  const { n, c, kh, kw } = shape;
  const k = kh * kw;
  const clamp = (v: number, max: number) => Math.max(1, Math.min(max, Math.round(v)));
  return {
    channel: clamp((rank * c * (n + k)) / (c * k + n), maxChannelWidth(shape)),
    spatial: clamp((rank * c * (n + k)) / (c * kw + n * kh), maxSpatialWidth(shape)),
  };
}
