// The format-neutral model handle every command works on, and the checks
// every reader and writer shares (geometry itself is src/geometry.ts).
import { DacError, type ErrorContext } from '../errors.js';
import { checkRank, maxReplacementRank } from '../geometry.js';
import { allFinite } from '../validate.js';
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
  /**
   * A new model with the named convs replaced; this one is untouched. The
   * new model may hold the replacements' arrays themselves (not copies):
   * they must not change afterwards.
   */
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

/** Every value finite, in one branch-free pass; the first bad index is looked up only on failure. */
export function checkFinite(values: Float32Array, ctx: ErrorContext): void {
  if (allFinite(values)) return;
  const i = values.findIndex((v) => !Number.isFinite(v));
  throw new DacError('ENONFINITE', `value [${i}] is ${values[i]} (weights must be finite)`, ctx);
}

/**
 * The weights of a model (and of the models derived from it) whose values are
 * known finite, so that each is checked once: when first read, or when
 * written from checked values. `all`: every one is, as in a model this
 * package has just written and reads back to check its structure.
 */
export class FiniteValues<T extends object> {
  private readonly known = new WeakSet<T>();

  constructor(readonly all = false) {}

  has(t: T): boolean {
    return this.all || this.known.has(t);
  }

  add(t: T): void {
    this.known.add(t);
  }
}

/** `base`, or `base_2`, `base_3`, ... whichever is not taken yet; the result is added to `taken`. */
export function uniqueName(base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * The replacement's weights in the canonical layouts, checked against the
 * conv they replace, and finite unless `values` is false: a format that
 * copies every array into its own layout then checks each as it copies it
 * (checkFinite names the same field and index), not in a pass of its own.
 */
export function checkReplacement(rep: LayerReplacement, conv: ConvLayerInfo, model: string, values = true): void {
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
    if (values) checkFinite(arr, { ...ctx, field });
  };
  switch (rep.method) {
    case 'dac':
      checkRank(rep.rank, 'dac', maxReplacementRank(conv, 'dac'), ctx);
      expect('depthwise', rep.depthwise, c * rep.rank * kh * kw);
      expect('pointwise', rep.pointwise, n * c * rep.rank);
      break;
    case 'spatial':
      checkRank(rep.width, 'spatial', maxReplacementRank(conv, 'spatial'), ctx);
      expect('vertical', rep.vertical, rep.width * c * kh);
      expect('horizontal', rep.horizontal, n * rep.width * kw);
      break;
    case 'channel':
      checkRank(rep.width, 'channel', maxReplacementRank(conv, 'channel'), ctx);
      expect('first', rep.first, rep.width * c * kh * kw);
      expect('second', rep.second, n * rep.width);
      break;
    default:
      throw new DacError('EINVAL', `unknown method ${String((rep as { method: unknown }).method)}`, ctx);
  }
  if (rep.bias !== null) expect('bias', rep.bias, n);
}

/**
 * The format's own records of the convs that `replacements` name, in model
 * order, each with its checked replacement (`values`: see checkReplacement):
 * what every apply() walks. Unknown or duplicate names are errors.
 */
export function matchReplacements<T extends { info: ConvLayerInfo }>(
  convs: readonly T[],
  replacements: LayerReplacement[],
  model: string,
  values = true,
): Array<{ conv: T; rep: LayerReplacement }> {
  if (!Array.isArray(replacements)) throw new DacError('EINVAL', 'replacements must be an array', { model });
  const byName = new Map(convs.map((c) => [c.info.name, c]));
  const reps = new Map<string, LayerReplacement>();
  for (const rep of replacements) {
    const conv = byName.get(rep?.name);
    if (!conv) throw new DacError('EINVAL', `no conv named '${String(rep?.name)}'`, { model, field: 'name' });
    if (reps.has(rep.name)) throw new DacError('EINVAL', 'replaced twice', { model, layer: rep.name });
    checkReplacement(rep, conv.info, model, values);
    reps.set(rep.name, rep);
  }
  return convs.flatMap((conv) => {
    const rep = reps.get(conv.info.name);
    return rep ? [{ conv, rep }] : [];
  });
}
