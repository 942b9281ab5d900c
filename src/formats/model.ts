// The format-neutral model handle every command works on, and the geometry
// helpers both readers share.
import { DacError, type ErrorContext } from '../errors.js';
import type { ConvLayerInfo, LayerReplacement, ModelFormat, OtherCost } from '../model/types.js';

export interface LoadedModel {
  readonly format: ModelFormat;
  /** Where it was loaded from (a model.json file, or an .onnx file). */
  readonly path: string;
  readonly name: string;
  /** Every 2-D convolution in topological order, the non-decomposable ones with skipReason set. */
  readonly convs: ConvLayerInfo[];
  /** Cost of everything that is not a 2-D convolution. */
  readonly other: OtherCost;
  /** One image: [H, W, C]. */
  readonly inputShape: number[];
  /**
   * True when the model declares free input height/width and no size was
   * stated: shapes were evaluated at NOMINAL_FREE_SIZE, and costs are
   * reported per input pixel.
   */
  readonly freeInput: boolean;
  /**
   * How the convs' weights are stored ('float32', 'float16', ...; several joined
   * by '+'): weights are decomposed in float32 and written back in this dtype.
   */
  readonly weightDtype?: string;
  /**
   * What the reader wants the user to know, one line each: convs kept as they
   * are and why (e.g. an input size it cannot infer), weight types converted.
   */
  readonly notes?: string[];
  /** How the model itself takes its input; runners always take NHWC and transpose where needed. */
  readonly inputLayout: 'NHWC' | 'NCHW';
  /** A new model with every BatchNormalization that directly follows a linear conv folded into it. */
  foldBatchNorm(): LoadedModel;
  /** A new model with the named convs replaced; this one is untouched. */
  apply(replacements: LayerReplacement[]): LoadedModel;
  /** Writes the model atomically (TF.js: a folder with model.json; ONNX: one file). */
  save(outPath: string): Promise<void>;
}

/**
 * Height and width at which a model with free input sizes is evaluated when
 * the user states none: a multiple of every usual total stride, so the
 * resolution of each layer relative to the input comes out exact for
 * SAME-padded nets, and MACs / (H*W) is the cost per input pixel.
 */
export const NOMINAL_FREE_SIZE = 1024;

/** Output length of one spatial axis. */
export function convOutSize(size: number, k: number, stride: number, dilation: number, before: number, after: number): number {
  return Math.floor((size + before + after - ((k - 1) * dilation + 1)) / stride) + 1;
}

/** TensorFlow 'same' padding of one axis: [before, after] (the extra pixel goes after). */
export function samePads(size: number, k: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** HWIO [kh][kw][cin][cout] -> OIHW [cout][cin][kh][kw]. */
export function hwioToOihw(w: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++) {
        const src = ((y * kw + x) * cin + i) * cout;
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = w[src + o];
      }
  return out;
}

/** OIHW [cout][cin][kh][kw] -> HWIO [kh][kw][cin][cout]. */
export function oihwToHwio(w: Float32Array, cout: number, cin: number, kh: number, kw: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) out[((y * kw + x) * cin + i) * cout + o] = w[((o * cin + i) * kh + y) * kw + x];
  return out;
}

export function checkFinite(values: Float32Array, ctx: ErrorContext): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new DacError('ENONFINITE', `value [${i}] is ${values[i]} (weights must be finite)`, ctx);
    }
  }
}

/** `base`, or `base_2`, `base_3`, ... whichever is not taken yet; the result is added to `taken`. */
export function uniqueName(base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/** The replacement's weights in the canonical layouts, checked against the conv they replace. */
export function checkReplacement(rep: LayerReplacement, conv: ConvLayerInfo, model: string): void {
  const ctx = { model, layer: conv.name };
  if (conv.skipReason) {
    throw new DacError('EINVAL', `cannot replace this conv: ${conv.skipReason}`, ctx);
  }
  const { n, c, kh, kw } = conv;
  const expect = (field: string, arr: Float32Array | null, len: number) => {
    if (!(arr instanceof Float32Array)) throw new DacError('EINVAL', `${field} must be a Float32Array`, { ...ctx, field });
    if (arr.length !== len) {
      throw new DacError('ESHAPE', `${field} has ${arr.length} values, expected ${len}`, { ...ctx, field });
    }
    checkFinite(arr, { ...ctx, field });
  };
  const positive = (field: string, v: number, max: number) => {
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new DacError('ERANGE', `${field} must be an integer in 1..${max}, got ${v}`, { ...ctx, field });
    }
  };
  switch (rep.method) {
    case 'dac':
      positive('rank', rep.rank, n * kh * kw);
      expect('depthwise', rep.depthwise, c * rep.rank * kh * kw);
      expect('pointwise', rep.pointwise, n * c * rep.rank);
      break;
    case 'spatial':
      positive('width', rep.width, n * c * kh * kw);
      expect('vertical', rep.vertical, rep.width * c * kh);
      expect('horizontal', rep.horizontal, n * rep.width * kw);
      break;
    case 'channel':
      positive('width', rep.width, n * c * kh * kw);
      expect('first', rep.first, rep.width * c * kh * kw);
      expect('second', rep.second, n * rep.width);
      break;
    default:
      throw new DacError('EINVAL', `unknown method ${String((rep as { method: unknown }).method)}`, ctx);
  }
  if (rep.bias !== null) expect('bias', rep.bias, n);
}

/** Looks up each replacement's conv; unknown or duplicate names are errors. */
export function matchReplacements(
  convs: ConvLayerInfo[],
  replacements: LayerReplacement[],
  model: string,
): Map<string, { rep: LayerReplacement; conv: ConvLayerInfo }> {
  if (!Array.isArray(replacements)) throw new DacError('EINVAL', 'replacements must be an array', { model });
  const byName = new Map(convs.map((c) => [c.name, c]));
  const out = new Map<string, { rep: LayerReplacement; conv: ConvLayerInfo }>();
  for (const rep of replacements) {
    const conv = byName.get(rep?.name);
    if (!conv) throw new DacError('EINVAL', `no conv named '${String(rep?.name)}'`, { model, field: 'name' });
    if (out.has(rep.name)) throw new DacError('EINVAL', 'replaced twice', { model, layer: rep.name });
    checkReplacement(rep, conv, model);
    out.set(rep.name, { rep, conv });
  }
  return out;
}
