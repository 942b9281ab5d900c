// TF.js Layers models: the convs of a Sequential or Functional Keras graph,
// replacing them by decomposed layer pairs, folding BatchNormalization, and
// writing model.json + shards back.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DacError, type ErrorContext } from '../../errors.js';
import { hwioToOihw, hwioToOihwFinite, oihwToHwioFinite, samePadding } from '../../geometry.js';
import { foldBatchNorm as foldBn, lastAxisChannel } from '../../model/batchnorm.js';
import type { BatchNormParams, ConvLayerInfo, DacReplacement, LayerReplacement, OtherCost } from '../../model/types.js';
import { toSeparableKernels } from '../../tfjs-layer/kernel-layout.js';
import { checkFinite, FiniteValues, matchReplacements, NOMINAL_FREE_SIZE, uniqueName, type LoadedModel } from '../model.js';
import { TfjsFolderModel } from './folder.js';
import {
  elementCount,
  HeldKernel,
  readArtifacts,
  weightFloats,
  type ModelJson,
  type WeightEntry,
  type WeightSpec,
} from './manifest.js';
import { flattenNested } from './nested.js';
import { encodedEntry } from './quantize.js';
import {
  declaredInput,
  inferShapes,
  inputShapes,
  layerName,
  parseGraph,
  type GraphLayer,
  type LayerGraph,
  type LayerJson,
  type Ref,
  type Shape,
} from './topology.js';

const CONV_CLASSES = new Set(['Conv2D', 'Convolution2D', 'DepthwiseConv2D']);
/** Layers a BatchNormalization's output may pass through and still count as the input statistics of a conv. */
const PASS_THROUGH = new Set(['Activation', 'ReLU', 'LeakyReLU', 'MaxPooling2D', 'AveragePooling2D', 'MaxPool2D', 'AvgPool2D', 'Dropout']);

/** The stored kernel of a conv layer. */
function kernelName(g: GraphLayer): string {
  return g.className === 'DepthwiseConv2D' ? 'depthwise_kernel' : 'kernel';
}

/** A kernel's OIHW values from its stored HWIO ones, made when first asked for. */
function oihwOf(entry: WeightEntry, [o, i, kh, kw]: [number, number, number, number]): () => Float32Array {
  return () => hwioToOihw(weightFloats(entry), kh, kw, i, o);
}

/**
 * A kernel's OIHW values from its stored HWIO ones, checked finite as they
 * are turned (the one pass over them; ENONFINITE names the first bad stored
 * value, as checkFinite on the stored values would).
 *
 * With `scratch` (at least as long), a held kernel's are made where its HWIO
 * ones lie (`hwio`, a view of the shard buffer): the model then keeps one
 * copy of it, not the file's bytes beside a copy. The buffer is our own read
 * buffer, never the file, and these HWIO bytes are read nowhere after: no
 * other entry views them, the entry is replaced by its HeldKernel (written
 * from the OIHW values), and a kernel already held is never turned again
 * (TfjsModel.findConvs, `kept`). Without it, into a new array.
 */
function turnChecked(hwio: Float32Array, [o, i, kh, kw]: [number, number, number, number], scratch: Float32Array | null, ctx: ErrorContext): Float32Array {
  const from = scratch ? scratch.subarray(0, hwio.length) : hwio;
  if (scratch) from.set(hwio);
  const out = scratch ? hwio : new Float32Array(hwio.length);
  if (!hwioToOihwFinite(from, kh, kw, i, o, out)) checkFinite(from, ctx);
  return out;
}

function kernelSpecQuantized(spec: WeightSpec | undefined): boolean {
  return spec?.quantization?.dtype === 'uint8' || spec?.quantization?.dtype === 'uint16';
}

/**
 * The same DAC factors with each depthwise filter and the pointwise column it
 * feeds scaled to equal largest magnitudes (the product is unchanged), so
 * one per-tensor uint8/uint16 grid fits both factors about equally well.
 */
export function balanced(rep: DacReplacement, n: number, c: number, taps: number): DacReplacement {
  const depthwise = rep.depthwise.slice();
  const pointwise = rep.pointwise.slice();
  const cr = c * rep.rank;
  for (let q = 0; q < cr; q++) {
    let a = 0;
    let b = 0;
    for (let t = 0; t < taps; t++) a = Math.max(a, Math.abs(depthwise[q * taps + t]));
    for (let o = 0; o < n; o++) b = Math.max(b, Math.abs(pointwise[o * cr + q]));
    if (a === 0 || b === 0) continue;
    const f = Math.sqrt(b / a);
    for (let t = 0; t < taps; t++) depthwise[q * taps + t] *= f;
    for (let o = 0; o < n; o++) pointwise[o * cr + q] /= f;
  }
  return { ...rep, depthwise, pointwise };
}

/** How DAC replacements are written: stock layers (loadable anywhere) or DacConv2D (needs `dac-conv/tfjs`). */
export type TfjsLayerKind = 'stock' | 'dac';
const DAC_LAYER_ACTIVATIONS = new Set(['linear', 'relu', 'relu6']);

/** In-memory artifacts in the shape tf.io handlers return. */
export interface TfjsArtifacts {
  modelTopology: Record<string, unknown>;
  weightSpecs: WeightSpec[];
  weightData: ArrayBuffer;
  format: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

interface ConvLayer {
  info: ConvLayerInfo;
  layer: GraphLayer;
  kernel: string;
  bias: string | null;
  /** The BatchNormalization layer that can be folded into this conv, or null. */
  foldableBn: string | null;
}

function pair(v: unknown, fallback: number): [number, number] {
  if (v === undefined || v === null) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  return [Number((v as number[])[0]), Number((v as number[])[1] ?? (v as number[])[0])];
}

function activationOf(config: Record<string, unknown>): string {
  const a = config.activation;
  if (a === undefined || a === null) return 'linear';
  if (typeof a === 'string') return a;
  const named = a as { class_name?: string; config?: { name?: string } };
  return named.config?.name ?? named.class_name ?? 'linear';
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * Loads a TF.js Layers model (model.json or its folder); its files together
 * may take at most `maxBytes`. `inputShape` ([H, W] or [H, W, C]) fixes the
 * sizes a model leaves free (null); see resolveInput.
 */
export async function loadTfjs(file: string, maxBytes?: number, inputShape?: number[], finite = new FiniteValues<WeightEntry>()): Promise<TfjsModel> {
  let jsonPath = file;
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) jsonPath = nodePath.join(file, 'model.json');
  const { json, weights, files } = readArtifacts(jsonPath, maxBytes);
  const flat = flattenNested(json.modelTopology, weights, { model: jsonPath });
  return new TfjsModel(jsonPath, { ...json, modelTopology: flat.topology }, flat.weights, files, 'stock', inputShape, finite);
}

/**
 * The [H, W, C] shapes are evaluated at: the declared one, with free (null)
 * sizes taken from `stated` when given, else NOMINAL_FREE_SIZE (free: true).
 * A stated size must agree with every size the model fixes.
 */
function resolveInput(declared: Shape, stated: number[] | undefined, ctx: ErrorContext): { shape: Shape; free: boolean } {
  if (declared.length !== 3) {
    throw new DacError('EFORMAT', `the input must be an image [H, W, C], got [${declared.map((d) => (d < 0 ? 'null' : d)).join(', ')}]`, ctx);
  }
  if (stated !== undefined) {
    const ok = Array.isArray(stated) && (stated.length === 2 || stated.length === 3) && stated.every((d) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1);
    if (!ok) throw new DacError('EINVAL', `inputShape must be [H, W] or [H, W, C] of positive integers, got ${JSON.stringify(stated)}`, { ...ctx, field: 'inputShape' });
    const shape = declared.map((d, i) => stated[i] ?? d);
    declared.forEach((d, i) => {
      if (d > 0 && i < stated.length && stated[i] !== d) {
        throw new DacError('EINVAL', `inputShape ${stated.join('x')} disagrees with the model's input ${declared.map((x) => (x < 0 ? 'null' : x)).join('x')}`, {
          ...ctx,
          field: 'inputShape',
        });
      }
    });
    if (shape[2] < 1) throw new DacError('EINVAL', 'the model leaves its channel count free: state it as inputShape [H, W, C]', { ...ctx, field: 'inputShape' });
    return { shape, free: false };
  }
  if (declared[2] < 1) throw new DacError('EFORMAT', 'the model leaves its channel count free: state the input as [H, W, C]', { ...ctx, field: 'batch_input_shape' });
  const free = declared[0] < 1 || declared[1] < 1;
  return { shape: declared.map((d) => (d < 1 ? NOMINAL_FREE_SIZE : d)), free };
}

export class TfjsModel extends TfjsFolderModel implements LoadedModel {
  readonly format = 'tfjs' as const;
  readonly inputLayout = 'NHWC' as const;
  readonly name: string;
  readonly convs: ConvLayerInfo[];
  readonly other: OtherCost;
  readonly inputShape: number[];
  readonly freeInput: boolean;
  readonly weightDtype: string;
  private readonly graph: LayerGraph;
  private readonly shapes: Map<string, Shape>;
  private readonly byWeight: Map<string, WeightEntry>;
  private readonly convLayers: ConvLayer[];

  constructor(
    path: string,
    json: ModelJson,
    weights: WeightEntry[],
    sources: string[],
    /** What a DAC replacement is written as: stock DepthwiseConv2D + Conv2D, or one DacConv2D layer (src/tfjs). */
    readonly tfjsLayer: TfjsLayerKind = 'stock',
    /** The input size the user stated for free sizes (LoadOptions.inputShape), kept by derived models. */
    private readonly statedInput?: number[],
    /**
     * Weights known finite: checked by the model this one derives from, or
     * written by apply() from checked replacements. Not checked again.
     */
    private readonly finite = new FiniteValues<WeightEntry>(),
  ) {
    super(path, json, weights, sources);
    this.name = nodePath.basename(nodePath.dirname(nodePath.resolve(path)));
    this.graph = parseGraph(json.modelTopology, this.ctx);
    const input = resolveInput(declaredInput(this.graph, this.ctx).shape, statedInput, this.ctx);
    this.shapes = inferShapes(this.graph, this.ctx, input.shape);
    this.byWeight = new Map(weights.map((w) => [w.spec.name, w]));
    this.inputShape = input.shape;
    this.freeInput = input.free;
    // Float32 kernels read from a file are held as their OIHW values (turned in place in the shard buffer where they lie
    // aligned); the other weights sharing their buffer are copied out of it.
    const hold = new Set<WeightEntry>();
    for (const g of this.graph.layers) {
      const w = CONV_CLASSES.has(g.className) ? this.weight(g.name, kernelName(g)) : undefined;
      if (w && !(w instanceof HeldKernel) && !w.spec.quantization && w.spec.dtype === 'float32' && !this.finite.has(w)) hold.add(w);
    }
    this.weights = this.ownBytes(weights, hold);
    this.byWeight = new Map(this.weights.map((w) => [w.spec.name, w]));
    const held = new Map<WeightEntry, HeldKernel>();
    this.convLayers = this.findConvs(hold, held);
    if (held.size > 0) {
      this.weights = this.weights.map((w) => held.get(w) ?? w);
      this.byWeight = new Map(this.weights.map((w) => [w.spec.name, w]));
    }
    this.convs = this.convLayers.map((c) => c.info);
    const dtypes = new Set(this.convLayers.map((c) => this.byWeight.get(c.kernel)!.spec).map((s) => s.quantization?.dtype ?? s.dtype));
    this.weightDtype = [...dtypes].sort().join('+') || 'float32';
    this.other = this.otherCost();
  }

  /** The stored weight of a layer (`kernel`, `bias`, ...), matched as layer/name, possibly under a scope prefix. */
  private weight(layer: string, name: string): WeightEntry | undefined {
    const exact = this.byWeight.get(`${layer}/${name}`);
    if (exact) return exact;
    const suffix = `/${layer}/${name}`;
    return this.weights.find((w) => w.spec.name.endsWith(suffix));
  }

  /** A weight's float32 values (weightFloats), checked finite once per weight unless `check` is false (the caller checks them). */
  private floats(layer: string, name: string, check = true): Float32Array {
    const w = this.weight(layer, name);
    if (!w) throw new DacError('EFORMAT', `weight ${layer}/${name} is missing from the manifest`, { ...this.ctx, layer, field: name });
    const values = weightFloats(w, { ...this.ctx, layer });
    if (check && !this.finite.has(w)) {
      checkFinite(values, { ...this.ctx, layer, field: w.spec.name });
      this.finite.add(w);
    }
    return values;
  }

  /** Layers that read the output of (layer, node). */
  private consumers(layer: string, node: number): { g: GraphLayer; call: number }[] {
    const out: { g: GraphLayer; call: number }[] = [];
    for (const g of this.graph.layers) {
      g.calls.forEach((call, i) => {
        if (call.some(([src, n]) => src === layer && n === node)) out.push({ g, call: i });
      });
    }
    return out;
  }

  private isOutput(layer: string): boolean {
    return this.graph.outputs.some(([src]) => src === layer);
  }

  private bnParams(g: GraphLayer): BatchNormParams | null {
    const c = g.config;
    const axis = Array.isArray(c.axis) ? c.axis : [c.axis ?? -1];
    if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) return null;
    const mean = this.floats(g.name, 'moving_mean');
    const ones = () => new Float32Array(mean.length).fill(1);
    return {
      gamma: c.scale === false ? ones() : this.floats(g.name, 'gamma'),
      beta: c.center === false ? new Float32Array(mean.length) : this.floats(g.name, 'beta'),
      mean,
      variance: this.floats(g.name, 'moving_variance'),
      epsilon: Number(c.epsilon ?? 1e-3),
    };
  }

  /**
   * The convs, their kernels as OIHW values: for a kernel in `hold`,
   * converted now and recorded in `held` (the entry that replaces it).
   */
  private findConvs(hold: Set<WeightEntry>, held: Map<WeightEntry, HeldKernel>): ConvLayer[] {
    const out: ConvLayer[] = [];
    // turnChecked's room, made once for the largest held kernel. No closure refers to it, so the layers' weight getters
    // (which close over this scope) do not keep it.
    let scratch: Float32Array | null = null;
    for (const g of this.graph.layers) {
      if (!CONV_CLASSES.has(g.className)) continue;
      const where = { ...this.ctx, layer: g.name };
      const c = g.config;
      const x = inputShapes(g, 0, this.shapes, this.ctx)[0];
      const y = this.shapes.get(`${g.name}#0`)!;
      if (x.some((d) => d < 1)) throw new DacError('EFORMAT', `input size [${x.join(', ')}] is not fixed`, where);
      const [kh, kw] = pair(c.kernel_size, 1);
      const strides = pair(c.strides, 1);
      const dilations = pair(c.dilation_rate, 1);
      const cin = x[2];
      const depthwise = g.className === 'DepthwiseConv2D';
      const kernelEntry = this.weight(g.name, kernelName(g));
      // A held kernel is its OIHW values already; so is one an earlier layer here resolved to (its bytes are OIHW now): a copy.
      const heldBefore = kernelEntry && held.get(kernelEntry);
      const kept = kernelEntry instanceof HeldKernel ? kernelEntry.oihw : heldBefore ? heldBefore.oihw.slice() : null;
      // Known finite (one read back after writing): converted to OIHW only when asked for.
      const lazy = !kept && !!kernelEntry && this.finite.has(kernelEntry);
      // Not checked here: a kernel turned now is checked as it is turned (turnChecked), a lazy one is known finite.
      const kernelHwio = kept ? null : this.floats(g.name, kernelName(g), false);
      const count = kept?.length ?? kernelHwio!.length;
      const groups = depthwise ? cin : Number(c.groups ?? 1);
      const n = depthwise ? cin * Number(c.depth_multiplier ?? 1) : Number(c.filters);
      const expected = depthwise ? kh * kw * n : kh * kw * (cin / groups) * n;
      if (count !== expected) {
        throw new DacError('ESHAPE', `kernel has ${count} values, expected ${expected}`, { ...where, field: kernelEntry!.spec.name });
      }
      // Same count in another order (a permuted shape) would read the weights scrambled.
      const kernelShape = depthwise ? [kh, kw, cin, n / cin] : [kh, kw, cin / groups, n];
      if (kernelEntry!.spec.shape.join() !== kernelShape.join()) {
        throw new DacError('ESHAPE', `the manifest gives shape [${kernelEntry!.spec.shape.join(', ')}], the layer needs [${kernelShape.join(', ')}]`, {
          ...where,
          field: kernelEntry!.spec.name,
        });
      }
      // depthwise: [kh][kw][c][m] is [kh][kw][1][c*m] with channel i*m+k
      const dims: [number, number, number, number] = [n, depthwise ? 1 : cin / groups, kh, kw];
      let weights = kept;
      if (!weights && !lazy) {
        // A held kernel that is a view of the shard buffer (aligned) is turned in place; any other is copied.
        const inPlace = hold.has(kernelEntry!) && kernelHwio!.buffer === kernelEntry!.bytes.buffer;
        if (inPlace) scratch ??= new Float32Array([...hold].reduce((a, w) => Math.max(a, elementCount(w.spec.shape)), 0));
        weights = turnChecked(kernelHwio!, dims, inPlace ? scratch : null, { ...where, field: kernelEntry!.spec.name });
        this.finite.add(kernelEntry!);
      }
      // Made apart so that no closure here holds the stored values (the file's bytes) once converted.
      const load = weights ? null : oihwOf(kernelEntry!, dims);
      if (weights && !kept && hold.has(kernelEntry!)) {
        const h = new HeldKernel(kernelEntry!.spec, weights, dims);
        this.finite.add(h);
        held.set(kernelEntry!, h);
      }
      const useBias = c.use_bias !== false;
      const bias = useBias ? this.floats(g.name, 'bias') : null;
      const biasSpec = useBias ? this.weight(g.name, 'bias')!.spec : null;
      if (biasSpec && biasSpec.shape.join() !== String(n)) {
        throw new DacError('ESHAPE', `the manifest gives shape [${biasSpec.shape.join(', ')}], the layer needs [${n}]`, { ...where, field: biasSpec.name });
      }
      const padding = String(c.padding ?? 'valid');
      let pads: [number, number, number, number] = [0, 0, 0, 0];
      if (padding === 'same') {
        const [t, b] = samePadding(x[0], kh, strides[0], dilations[0]);
        const [l, r] = samePadding(x[1], kw, strides[1], dilations[1]);
        pads = [t, l, b, r];
      }
      const activation = activationOf(c);

      let skipReason: string | null = null;
      if (g.calls.length > 1) skipReason = `layer is shared (called ${g.calls.length} times)`;
      else if (depthwise) skipReason = 'depthwise convolution';
      else if (groups > 1) skipReason = `grouped convolution (groups=${groups})`;
      else if (kh * kw === 1) skipReason = '1x1 convolution (nothing to decompose)';
      else if ((dilations[0] > 1 || dilations[1] > 1) && !this.writesDacLayer(activation)) {
        skipReason = 'dilated convolution (TF.js DepthwiseConv2D ignores dilation_rate; --tfjs-layer dac handles it)';
      }

      let bnAfter: BatchNormParams | null = null;
      let foldableBn: string | null = null;
      const users = this.consumers(g.name, 0);
      if (activation === 'linear' && g.calls.length === 1 && users.length === 1 && users[0].g.className === 'BatchNormalization') {
        const bn = users[0].g;
        bnAfter = this.bnParams(bn);
        if (bnAfter && bn.calls.length === 1 && !this.isOutput(g.name)) foldableBn = bn.name;
      }
      let bnBefore: BatchNormParams | null = null;
      let ref: Ref | undefined = g.calls[0]?.[0];
      for (let hops = 0; ref && hops < 16; hops++) {
        const prev: GraphLayer = this.graph.byName.get(ref[0])!;
        if (prev.className === 'BatchNormalization') {
          bnBefore = this.bnParams(prev);
          break;
        }
        if (!PASS_THROUGH.has(prev.className) || prev.calls[ref[1]]?.length !== 1) break;
        ref = prev.calls[ref[1]][0];
      }
      // The conv read through BatchNorm, ReLU, pooling or dropout only: planning tells hidden layers from the image by it.
      let inputConv: string | null = null;
      ref = g.calls.length === 1 ? g.calls[0]?.[0] : undefined;
      for (let hops = 0; ref && hops < 16; hops++) {
        const prev: GraphLayer = this.graph.byName.get(ref[0])!;
        if (CONV_CLASSES.has(prev.className)) {
          if (prev.calls.length === 1) inputConv = prev.name;
          break;
        }
        const relu = prev.className === 'ReLU' || (prev.className === 'Activation' && activationOf(prev.config) === 'relu');
        const passes = relu || prev.className === 'BatchNormalization' || (PASS_THROUGH.has(prev.className) && !['Activation', 'ReLU', 'LeakyReLU'].includes(prev.className));
        if (!passes || prev.calls[ref[1]]?.length !== 1) break;
        ref = prev.calls[ref[1]][0];
      }

      out.push({
        layer: g,
        kernel: kernelEntry!.spec.name,
        bias: useBias ? this.weight(g.name, 'bias')!.spec.name : null,
        foldableBn,
        info: {
          name: g.name,
          index: out.length,
          n,
          c: cin,
          kh,
          kw,
          groups,
          strides,
          dilations,
          pads,
          inH: x[0],
          inW: x[1],
          outH: y[0],
          outW: y[1],
          get weights(): Float32Array {
            return (weights ??= load!());
          },
          set weights(w: Float32Array) {
            weights = w;
          },
          bias,
          activation,
          bnAfter,
          bnBefore,
          inputConv,
          skipReason,
        },
      });
    }
    return out;
  }

  private otherCost(): OtherCost {
    let macs = 0;
    let params = 0;
    const convs = new Set(this.convLayers.map((c) => c.layer.name));
    for (const g of this.graph.layers) {
      if (convs.has(g.name)) continue;
      for (const w of this.weights) {
        const n = w.spec.name;
        const own = n.startsWith(`${g.name}/`) || n.includes(`/${g.name}/`);
        if (!own) continue;
        if (g.className === 'BatchNormalization' && /moving_(mean|variance)$/.test(n)) continue;
        params += elementCount(w.spec.shape);
      }
      g.calls.forEach((_, node) => {
        const x = inputShapes(g, node, this.shapes, this.ctx)[0];
        const y = this.shapes.get(`${g.name}#${node}`)!;
        const c = g.config;
        const [kh, kw] = pair(c.kernel_size, 1);
        if (g.className === 'Dense') macs += elementCount(x) * Number(c.units);
        else if (g.className === 'SeparableConv2D' || g.className === 'SeparableConvolution2D' || g.className === 'DacConv2D') {
          const mid = x[2] * Number(c.depth_multiplier ?? 1);
          macs += y[0] * y[1] * mid * (kh * kw + Number(c.filters));
        } else if (g.className === 'Conv2DTranspose') macs += x[0] * x[1] * x[2] * kh * kw * Number(c.filters);
      });
    }
    return { macs, params };
  }

  /** The model as tf.io artifacts (one weight buffer), for loading into TF.js. */
  artifacts(): TfjsArtifacts {
    return {
      modelTopology: this.json.modelTopology,
      weightSpecs: this.weights.map((w) => w.spec),
      weightData: this.weightData(),
      format: this.json.format ?? 'layers-model',
      generatedBy: this.json.generatedBy,
      convertedBy: this.json.convertedBy,
    };
  }

  /** A copy of the JSON and weight list, with the layer graph parsed from the copy so it can be edited in place. */
  private editable(): { json: ModelJson; graph: LayerGraph; weights: WeightEntry[]; taken: Set<string> } {
    const json = { ...this.json, modelTopology: clone(this.json.modelTopology) };
    const graph = parseGraph(json.modelTopology, this.ctx);
    const taken = new Set<string>([...graph.layers.map((l) => l.name), ...this.weights.map((w) => w.spec.name)]);
    return { json, graph, weights: this.weights.slice(), taken };
  }

  /** Replaces every reference to `from` by `to` (inbound nodes and model outputs). */
  private static rewire(graph: LayerGraph, from: string, to: string): void {
    const fix = (r: unknown) => {
      if (Array.isArray(r) && r[0] === from) r[0] = to;
    };
    for (const raw of graph.rawLayers) {
      for (const node of (raw.inbound_nodes ?? []) as unknown[][]) {
        if (Array.isArray(node)) node.forEach(fix);
      }
    }
    const config = graph.modelConfig.config as Record<string, unknown>;
    const outs = config.output_layers as unknown[];
    if (Array.isArray(outs)) {
      if (typeof outs[0] === 'string') fix(outs);
      else outs.forEach(fix);
    }
  }

  /** Puts `entries` where weight `at` was and removes the weights named in `remove`. */
  private static spliceWeights(weights: WeightEntry[], at: string, remove: (string | null)[], entries: WeightEntry[]): WeightEntry[] {
    const gone = new Set(remove.filter((r): r is string => !!r));
    return weights.flatMap((w) => (w.spec.name === at ? entries : gone.has(w.spec.name) ? [] : [w]));
  }

  /** The same model, writing DAC replacements as `kind` layers. */
  withTfjsLayer(kind: TfjsLayerKind): TfjsModel {
    if (kind !== 'stock' && kind !== 'dac') {
      throw new DacError('EINVAL', `the TF.js layer kind must be stock or dac, got ${String(kind)}`, { ...this.ctx, field: 'tfjsLayer' });
    }
    return kind === this.tfjsLayer ? this : new TfjsModel(this.path, this.json, this.weights, this.sources, kind, this.statedInput, this.finite);
  }

  /** DacConv2D fuses linear, relu and relu6 only; other activations keep the stock pair. */
  private writesDacLayer(activation: string): boolean {
    return this.tfjsLayer === 'dac' && DAC_LAYER_ACTIVATIONS.has(activation);
  }

  apply(replacements: LayerReplacement[]): TfjsModel {
    // The values are checked finite in replacementLayers, each array as it is turned to HWIO.
    const matched = matchReplacements(this.convLayers, replacements, this.path, false);
    const edit = this.editable();
    let weights = edit.weights;
    for (const { conv: cl, rep } of matched) {
      const idx = edit.graph.rawLayers.findIndex((l) => layerName(l) === cl.info.name);
      const raw = edit.graph.rawLayers[idx];
      const { layers, entries } = this.replacementLayers(raw, cl.info, rep, edit.taken, edit.graph.kind === 'Functional');
      // Made from replacements checked finite: still so, unless float16 storage overflowed.
      for (const e of entries) {
        if (e.spec.quantization?.dtype === 'float16') checkFinite(weightFloats(e), { ...this.ctx, layer: cl.info.name, field: e.spec.name });
        this.finite.add(e);
      }
      edit.graph.rawLayers.splice(idx, 1, ...layers);
      if (edit.graph.kind === 'Functional') TfjsModel.rewire(edit.graph, cl.info.name, layerName(layers[layers.length - 1]));
      weights = TfjsModel.spliceWeights(weights, cl.kernel, [cl.bias], entries);
    }
    return new TfjsModel(this.path, edit.json, weights, this.sources, this.tfjsLayer, this.statedInput, this.finite);
  }

  /**
   * The weights, with those that are views of a buffer they fill less than
   * half of copied out, so that the model does not keep the file's bytes
   * alive: the other weights once the kernels in `hold` are held apart (the
   * shards as read; a kernel turned in place stays in them), and a held
   * kernel once the convs sharing its buffer were replaced (by apply).
   */
  private ownBytes(weights: WeightEntry[], hold: Set<WeightEntry>): WeightEntry[] {
    const viewOf = (w: WeightEntry) => (w instanceof HeldKernel ? w.oihw : w.bytes);
    const isKernel = (w: WeightEntry) => w instanceof HeldKernel || hold.has(w);
    const add = (m: Map<ArrayBufferLike, number>, v: ArrayBufferView) => m.set(v.buffer, (m.get(v.buffer) ?? 0) + v.byteLength);
    const sparse = (m: Map<ArrayBufferLike, number>, v: ArrayBufferView) => 2 * m.get(v.buffer)! < v.buffer.byteLength;
    const others = new Map<ArrayBufferLike, number>();
    const all = new Map<ArrayBufferLike, number>();
    for (const w of weights) {
      add(all, viewOf(w));
      if (!isKernel(w)) add(others, w.bytes);
    }
    return weights.map((w) => {
      let copy = w;
      if (w instanceof HeldKernel) copy = sparse(all, w.oihw) ? w.copied() : w;
      else if (!hold.has(w) && sparse(others, w.bytes)) copy = { spec: w.spec, bytes: new Uint8Array(w.bytes) };
      if (copy !== w && this.finite.has(w)) this.finite.add(copy);
      return copy;
    });
  }

  private replacementLayers(
    raw: LayerJson,
    conv: ConvLayerInfo,
    rep: LayerReplacement,
    taken: Set<string>,
    functional: boolean,
  ): { layers: LayerJson[]; entries: WeightEntry[] } {
    const orig = raw.config;
    const { n, c, kh, kw } = conv;
    const [sh, sw] = conv.strides;
    const padding = String(orig.padding ?? 'valid');
    const suffixes = rep.method === 'dac' ? ['dw', 'pw'] : rep.method === 'spatial' ? ['v', 'h'] : ['c1', 'c2'];
    const nameA = uniqueName(`${conv.name}_${suffixes[0]}`, taken);
    const nameB = uniqueName(`${conv.name}_${suffixes[1]}`, taken);
    const keepInput: Record<string, unknown> = {};
    for (const k of ['batch_input_shape', 'batch_size']) if (orig[k] !== undefined) keepInput[k] = orig[k];
    // Factors are computed in float32 and stored in the conv's own dtype: float16 stays float16.
    const half = (w: WeightEntry | undefined) => (w?.spec.quantization?.dtype === 'float16' ? w.spec.quantization : undefined);
    const kernelEnc = half(this.weight(conv.name, 'kernel'));
    const biasEnc = conv.bias ? half(this.weight(conv.name, 'bias')) : kernelEnc;
    const factor = (name: string, shape: number[], values: Float32Array) => encodedEntry(name, shape, values, kernelEnc);
    // A replacement array turned OIHW -> HWIO, checked finite on the way (apply() leaves that check to the turn).
    const hwio = (field: string, values: Float32Array, cout: number, cin: number, h: number, w: number): Float32Array => {
      const out = new Float32Array(values.length);
      if (!oihwToHwioFinite(values, cout, cin, h, w, out)) checkFinite(values, { ...this.ctx, layer: conv.name, field });
      return out;
    };
    const conv2d = (name: string, filters: number, kernel: [number, number], strides: [number, number], pad: string, last: boolean) => {
      const cfg: Record<string, unknown> = { ...clone(orig), name, filters, kernel_size: kernel, strides, padding: pad };
      delete cfg.batch_input_shape;
      delete cfg.batch_size;
      if (!last) {
        Object.assign(cfg, { activation: 'linear', use_bias: false, activity_regularizer: null, bias_regularizer: null, bias_constraint: null });
      } else {
        cfg.use_bias = rep.bias !== null;
      }
      return cfg;
    };
    if (rep.method === 'dac' && this.writesDacLayer(conv.activation)) {
      for (const [field, values] of [['depthwise', rep.depthwise], ['pointwise', rep.pointwise], ['bias', rep.bias]] as const) {
        if (values) checkFinite(values, { ...this.ctx, layer: conv.name, field });
      }
      return this.dacLayer(raw, conv, rep, taken, functional);
    }
    const entriesB: WeightEntry[] = [];
    let cfgA: Record<string, unknown>;
    let cfgB: Record<string, unknown>;
    let classA = 'Conv2D';
    const entries: WeightEntry[] = [];
    if (rep.method === 'dac') {
      const r = rep.rank;
      classA = 'DepthwiseConv2D';
      cfgA = {
        name: nameA,
        trainable: orig.trainable ?? true,
        dtype: orig.dtype ?? 'float32',
        kernel_size: [kh, kw],
        strides: [sh, sw],
        padding,
        data_format: 'channels_last',
        dilation_rate: [1, 1],
        depth_multiplier: r,
        activation: 'linear',
        use_bias: false,
        depthwise_initializer: orig.kernel_initializer ?? null,
        bias_initializer: orig.bias_initializer ?? null,
        depthwise_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        depthwise_constraint: null,
        bias_constraint: null,
      };
      // depthwise [c*r][kh*kw] is OIHW with c*r outputs of one input: its HWIO is [kh][kw][c][r]
      entries.push(factor(`${nameA}/depthwise_kernel`, [kh, kw, c, r], hwio('depthwise', rep.depthwise, c * r, 1, kh, kw)));
      cfgB = conv2d(nameB, n, [1, 1], [1, 1], 'valid', true);
      cfgB.dilation_rate = [1, 1];
      entriesB.push(factor(`${nameB}/kernel`, [1, 1, c * r, n], hwio('pointwise', rep.pointwise, n, c * r, 1, 1)));
    } else if (rep.method === 'spatial') {
      const w = rep.width;
      const [dh, dwl] = conv.dilations;
      cfgA = conv2d(nameA, w, [kh, 1], [sh, 1], padding, false);
      cfgA.dilation_rate = [dh, 1];
      entries.push(factor(`${nameA}/kernel`, [kh, 1, c, w], hwio('vertical', rep.vertical, w, c, kh, 1)));
      cfgB = conv2d(nameB, n, [1, kw], [1, sw], padding, true);
      cfgB.dilation_rate = [1, dwl];
      entriesB.push(factor(`${nameB}/kernel`, [1, kw, w, n], hwio('horizontal', rep.horizontal, n, w, 1, kw)));
    } else {
      const w = rep.width;
      cfgA = conv2d(nameA, w, [kh, kw], [sh, sw], padding, false);
      entries.push(factor(`${nameA}/kernel`, [kh, kw, c, w], hwio('first', rep.first, w, c, kh, kw)));
      cfgB = conv2d(nameB, n, [1, 1], [1, 1], 'valid', true);
      cfgB.dilation_rate = [1, 1];
      entriesB.push(factor(`${nameB}/kernel`, [1, 1, w, n], hwio('second', rep.second, n, w, 1, 1)));
    }
    if (rep.bias) {
      checkFinite(rep.bias, { ...this.ctx, layer: conv.name, field: 'bias' });
      entriesB.push(encodedEntry(`${nameB}/bias`, [n], rep.bias, biasEnc));
    }
    Object.assign(cfgA, keepInput);
    const a: LayerJson = { class_name: classA, config: cfgA };
    const b: LayerJson = { class_name: 'Conv2D', config: cfgB };
    if (functional) {
      a.name = nameA;
      a.inbound_nodes = clone(raw.inbound_nodes ?? []);
      b.name = nameB;
      b.inbound_nodes = [[[nameA, 0, 0, {}]]];
    }
    return { layers: [a, b], entries: [...entries, ...entriesB] };
  }

  /** One DacConv2D layer (src/tfjs-layer/dac-conv2d-layer.ts) in place of the conv, its weights in the original's encoding. */
  private dacLayer(
    raw: LayerJson,
    conv: ConvLayerInfo,
    rep: DacReplacement,
    taken: Set<string>,
    functional: boolean,
  ): { layers: LayerJson[]; entries: WeightEntry[] } {
    const orig = raw.config;
    const { n, c, kh, kw } = conv;
    const r = rep.rank;
    const name = uniqueName(`${conv.name}_dac`, taken);
    const cfg: Record<string, unknown> = {
      name,
      trainable: orig.trainable ?? true,
      dtype: orig.dtype ?? 'float32',
      filters: n,
      kernel_size: [kh, kw],
      depth_multiplier: r,
      strides: conv.strides,
      padding: String(orig.padding ?? 'valid'),
      dilation_rate: conv.dilations,
      activation: conv.activation,
      use_bias: rep.bias !== null,
    };
    for (const k of ['batch_input_shape', 'batch_size']) if (orig[k] !== undefined) cfg[k] = orig[k];
    const sep = toSeparableKernels(kernelSpecQuantized(this.weight(conv.name, 'kernel')?.spec) ? balanced(rep, n, c, kh * kw) : rep, { n, c, kh, kw });
    const kernelSpec = this.weight(conv.name, 'kernel')?.spec;
    const biasSpec = this.weight(conv.name, 'bias')?.spec;
    const entries = [
      encodedEntry(`${name}/depthwise_kernel`, [kh, kw, c, r], sep.depthwiseKernel, kernelSpec?.quantization),
      encodedEntry(`${name}/pointwise_kernel`, [1, 1, c * r, n], sep.pointwiseKernel, kernelSpec?.quantization),
    ];
    if (rep.bias) entries.push(encodedEntry(`${name}/bias`, [n], rep.bias, biasSpec?.quantization));
    const layer: LayerJson = { class_name: 'DacConv2D', config: cfg };
    if (functional) {
      layer.name = name;
      layer.inbound_nodes = clone(raw.inbound_nodes ?? []);
    }
    return { layers: [layer], entries };
  }

  foldBatchNorm(): TfjsModel {
    const foldable = this.convLayers.filter((c) => c.foldableBn);
    if (foldable.length === 0) return this;
    const edit = this.editable();
    let weights = edit.weights;
    for (const cl of foldable) {
      const info = cl.info;
      const bnName = cl.foldableBn!;
      const bnLayer = this.graph.byName.get(bnName)!;
      // Folding works on the stored HWIO kernel, whose last axis is the output channel.
      const kernelHwio = this.floats(info.name, kernelName(cl.layer));
      const folded = foldBn(kernelHwio, info.bias, info.bnAfter!, info.n, lastAxisChannel(info.n), { ...this.ctx, layer: bnName });
      const kernelSpec = this.byWeight.get(cl.kernel)!.spec;
      const kernelEntry = encodedEntry(kernelSpec.name, kernelSpec.shape, folded.weights, kernelSpec.quantization?.dtype === 'float16' ? kernelSpec.quantization : undefined);
      const biasName = cl.bias ?? `${info.name}/bias`;
      const bnWeights = this.weights.filter((w) => w.spec.name.startsWith(`${bnName}/`) || w.spec.name.includes(`/${bnName}/`));
      weights = TfjsModel.spliceWeights(weights, cl.kernel, [cl.bias, ...bnWeights.map((w) => w.spec.name)], [
        kernelEntry,
        encodedEntry(biasName, [info.n], folded.bias, kernelSpec.quantization?.dtype === 'float16' ? kernelSpec.quantization : undefined),
      ]);
      const rawConv = edit.graph.rawLayers.find((l) => layerName(l) === info.name)!;
      rawConv.config.use_bias = true;
      const bnIdx = edit.graph.rawLayers.findIndex((l) => layerName(l) === bnName);
      edit.graph.rawLayers.splice(bnIdx, 1);
      if (edit.graph.kind === 'Functional') TfjsModel.rewire(edit.graph, bnLayer.name, info.name);
    }
    return new TfjsModel(this.path, edit.json, weights, this.sources, this.tfjsLayer, this.statedInput, this.finite);
  }
}
