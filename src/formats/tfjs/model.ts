// TF.js Layers models: the convs of a Sequential or Functional Keras graph,
// replacing them by decomposed layer pairs, folding BatchNormalization, and
// writing model.json + shards back.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DacError, type ErrorContext } from '../../errors.js';
import { checkOutputPath, writeFolderAtomic } from '../../io/atomic.js';
import { foldBatchNorm as foldBn, lastAxisChannel } from '../../model/batchnorm.js';
import type { BatchNormParams, ConvLayerInfo, LayerReplacement, OtherCost } from '../../model/types.js';
import { checkFinite, hwioToOihw, matchReplacements, samePads, uniqueName, type LoadedModel } from '../model.js';
import {
  elementCount,
  floatEntry,
  readArtifacts,
  serializeArtifacts,
  weightFloats,
  type ModelJson,
  type WeightEntry,
  type WeightSpec,
} from './manifest.js';
import { inferShapes, inputShapes, layerName, parseGraph, type GraphLayer, type LayerGraph, type LayerJson, type Ref, type Shape } from './topology.js';

const CONV_CLASSES = new Set(['Conv2D', 'Convolution2D', 'DepthwiseConv2D']);
/** Layers a BatchNormalization's output may pass through and still count as the input statistics of a conv. */
const PASS_THROUGH = new Set(['Activation', 'ReLU', 'LeakyReLU', 'MaxPooling2D', 'AveragePooling2D', 'MaxPool2D', 'AvgPool2D', 'Dropout']);

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

/** Loads a TF.js Layers model (model.json or its folder); its files together may take at most `maxBytes`. */
export async function loadTfjs(file: string, maxBytes?: number): Promise<TfjsModel> {
  let jsonPath = file;
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) jsonPath = nodePath.join(file, 'model.json');
  const { json, weights, files } = readArtifacts(jsonPath, maxBytes);
  return new TfjsModel(jsonPath, json, weights, files);
}

export class TfjsModel implements LoadedModel {
  readonly format = 'tfjs' as const;
  readonly inputLayout = 'NHWC' as const;
  readonly name: string;
  readonly convs: ConvLayerInfo[];
  readonly other: OtherCost;
  readonly inputShape: number[];
  readonly freeInput = false;
  private readonly graph: LayerGraph;
  private readonly shapes: Map<string, Shape>;
  private readonly byWeight: Map<string, WeightEntry>;
  private readonly convLayers: ConvLayer[];
  private readonly ctx: ErrorContext;

  constructor(
    readonly path: string,
    private readonly json: ModelJson,
    private readonly weights: WeightEntry[],
    /** The files this model came from, which save() must never overwrite. */
    private readonly sources: string[],
  ) {
    this.ctx = { model: path };
    this.name = nodePath.basename(nodePath.dirname(nodePath.resolve(path)));
    this.graph = parseGraph(json.modelTopology, this.ctx);
    this.shapes = inferShapes(this.graph, this.ctx);
    this.byWeight = new Map(weights.map((w) => [w.spec.name, w]));
    if (this.graph.inputs.length !== 1) {
      throw new DacError('EFORMAT', `expected one model input (an image batch), found ${this.graph.inputs.length}`, this.ctx);
    }
    const [inLayer] = this.graph.inputs[0];
    const g = this.graph.byName.get(inLayer)!;
    const inShape = g.className === 'InputLayer' ? this.shapes.get(`${inLayer}#0`)! : inputShapes(g, 0, this.shapes, this.ctx)[0];
    if (inShape.length !== 3 || inShape.some((d) => d < 1)) {
      throw new DacError('EFORMAT', `the input must be an image [H, W, C] of fixed size, got [${inShape.join(', ')}]`, this.ctx);
    }
    this.inputShape = inShape.slice();
    this.convLayers = this.findConvs();
    this.convs = this.convLayers.map((c) => c.info);
    this.other = this.otherCost();
  }

  /** The stored weight of a layer (`kernel`, `bias`, ...), matched as layer/name, possibly under a scope prefix. */
  private weight(layer: string, name: string): WeightEntry | undefined {
    const exact = this.byWeight.get(`${layer}/${name}`);
    if (exact) return exact;
    const suffix = `/${layer}/${name}`;
    return this.weights.find((w) => w.spec.name.endsWith(suffix));
  }

  private floats(layer: string, name: string): Float32Array {
    const w = this.weight(layer, name);
    if (!w) throw new DacError('EFORMAT', `weight ${layer}/${name} is missing from the manifest`, { ...this.ctx, layer, field: name });
    const values = weightFloats(w, { ...this.ctx, layer });
    checkFinite(values, { ...this.ctx, layer, field: w.spec.name });
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

  private findConvs(): ConvLayer[] {
    const out: ConvLayer[] = [];
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
      const kernelName = depthwise ? 'depthwise_kernel' : 'kernel';
      const kernelEntry = this.weight(g.name, kernelName);
      const kernelHwio = this.floats(g.name, kernelName);
      const groups = depthwise ? cin : Number(c.groups ?? 1);
      const n = depthwise ? cin * Number(c.depth_multiplier ?? 1) : Number(c.filters);
      const expected = depthwise ? kh * kw * n : kh * kw * (cin / groups) * n;
      if (kernelHwio.length !== expected) {
        throw new DacError('ESHAPE', `kernel has ${kernelHwio.length} values, expected ${expected}`, { ...where, field: kernelEntry!.spec.name });
      }
      const weights = depthwise
        ? hwioToOihw(kernelHwio, kh, kw, 1, n) // [kh][kw][c][m] is [kh][kw][1][c*m] with channel i*m+k
        : hwioToOihw(kernelHwio, kh, kw, cin / groups, n);
      const useBias = c.use_bias !== false;
      const bias = useBias ? this.floats(g.name, 'bias') : null;
      const padding = String(c.padding ?? 'valid');
      let pads: [number, number, number, number] = [0, 0, 0, 0];
      if (padding === 'same') {
        const [t, b] = samePads(x[0], kh, strides[0], dilations[0]);
        const [l, r] = samePads(x[1], kw, strides[1], dilations[1]);
        pads = [t, l, b, r];
      }
      const activation = activationOf(c);

      let skipReason: string | null = null;
      if (g.calls.length > 1) skipReason = `layer is shared (called ${g.calls.length} times)`;
      else if (depthwise) skipReason = 'depthwise convolution';
      else if (groups > 1) skipReason = `grouped convolution (groups=${groups})`;
      else if (kh * kw === 1) skipReason = '1x1 convolution (nothing to decompose)';
      else if (dilations[0] > 1 || dilations[1] > 1) skipReason = 'dilated convolution (TF.js DepthwiseConv2D ignores dilation_rate)';

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
          weights,
          bias,
          activation,
          bnAfter,
          bnBefore,
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
        else if (g.className === 'SeparableConv2D' || g.className === 'SeparableConvolution2D') {
          const mid = x[2] * Number(c.depth_multiplier ?? 1);
          macs += y[0] * y[1] * mid * (kh * kw + Number(c.filters));
        } else if (g.className === 'Conv2DTranspose') macs += x[0] * x[1] * x[2] * kh * kw * Number(c.filters);
      });
    }
    return { macs, params };
  }

  /** The model as tf.io artifacts (one weight buffer), for loading into TF.js. */
  artifacts(): TfjsArtifacts {
    const total = this.weights.reduce((a, w) => a + w.bytes.length, 0);
    const data = new Uint8Array(total);
    let offset = 0;
    for (const w of this.weights) {
      data.set(w.bytes, offset);
      offset += w.bytes.length;
    }
    return {
      modelTopology: this.json.modelTopology,
      weightSpecs: this.weights.map((w) => w.spec),
      weightData: data.buffer,
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

  apply(replacements: LayerReplacement[]): TfjsModel {
    const matched = matchReplacements(this.convs, replacements, this.path);
    const edit = this.editable();
    let weights = edit.weights;
    for (const cl of this.convLayers) {
      const m = matched.get(cl.info.name);
      if (!m) continue;
      const idx = edit.graph.rawLayers.findIndex((l) => layerName(l) === cl.info.name);
      const raw = edit.graph.rawLayers[idx];
      const { layers, entries } = this.replacementLayers(raw, m.conv, m.rep, edit.taken, edit.graph.kind === 'Functional');
      edit.graph.rawLayers.splice(idx, 1, ...layers);
      if (edit.graph.kind === 'Functional') TfjsModel.rewire(edit.graph, cl.info.name, layerName(layers[1]));
      weights = TfjsModel.spliceWeights(weights, cl.kernel, [cl.bias], entries);
    }
    return new TfjsModel(this.path, edit.json, weights, this.sources);
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
    const entriesB: WeightEntry[] = [];
    const hwio = (values: Float32Array, cout: number, cin: number, h: number, w: number) => {
      const out = new Float32Array(values.length);
      for (let o = 0; o < cout; o++)
        for (let i = 0; i < cin; i++)
          for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[((y * w + x) * cin + i) * cout + o] = values[((o * cin + i) * h + y) * w + x];
      return out;
    };
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
      // depthwise [c*r][kh*kw] -> [kh][kw][c][r]
      const dw = new Float32Array(c * r * kh * kw);
      for (let i = 0; i < c; i++)
        for (let m = 0; m < r; m++)
          for (let p = 0; p < kh * kw; p++) dw[(p * c + i) * r + m] = rep.depthwise[(i * r + m) * kh * kw + p];
      entries.push(floatEntry(`${nameA}/depthwise_kernel`, [kh, kw, c, r], dw));
      cfgB = conv2d(nameB, n, [1, 1], [1, 1], 'valid', true);
      cfgB.dilation_rate = [1, 1];
      entriesB.push(floatEntry(`${nameB}/kernel`, [1, 1, c * r, n], hwio(rep.pointwise, n, c * r, 1, 1)));
    } else if (rep.method === 'spatial') {
      const w = rep.width;
      const [dh, dwl] = conv.dilations;
      cfgA = conv2d(nameA, w, [kh, 1], [sh, 1], padding, false);
      cfgA.dilation_rate = [dh, 1];
      entries.push(floatEntry(`${nameA}/kernel`, [kh, 1, c, w], hwio(rep.vertical, w, c, kh, 1)));
      cfgB = conv2d(nameB, n, [1, kw], [1, sw], padding, true);
      cfgB.dilation_rate = [1, dwl];
      entriesB.push(floatEntry(`${nameB}/kernel`, [1, kw, w, n], hwio(rep.horizontal, n, w, 1, kw)));
    } else {
      const w = rep.width;
      cfgA = conv2d(nameA, w, [kh, kw], [sh, sw], padding, false);
      entries.push(floatEntry(`${nameA}/kernel`, [kh, kw, c, w], hwio(rep.first, w, c, kh, kw)));
      cfgB = conv2d(nameB, n, [1, 1], [1, 1], 'valid', true);
      cfgB.dilation_rate = [1, 1];
      entriesB.push(floatEntry(`${nameB}/kernel`, [1, 1, w, n], hwio(rep.second, n, w, 1, 1)));
    }
    if (rep.bias) entriesB.push(floatEntry(`${nameB}/bias`, [n], rep.bias));
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
      const kernelHwio = this.floats(info.name, cl.layer.className === 'DepthwiseConv2D' ? 'depthwise_kernel' : 'kernel');
      const folded = foldBn(kernelHwio, info.bias, info.bnAfter!, info.n, lastAxisChannel(info.n), { ...this.ctx, layer: bnName });
      const kernelSpec = this.byWeight.get(cl.kernel)!.spec;
      const kernelEntry = floatEntry(kernelSpec.name, kernelSpec.shape, folded.weights);
      const biasName = cl.bias ?? `${info.name}/bias`;
      const bnWeights = this.weights.filter((w) => w.spec.name.startsWith(`${bnName}/`) || w.spec.name.includes(`/${bnName}/`));
      weights = TfjsModel.spliceWeights(weights, cl.kernel, [cl.bias, ...bnWeights.map((w) => w.spec.name)], [
        kernelEntry,
        floatEntry(biasName, [info.n], folded.bias),
      ]);
      const rawConv = edit.graph.rawLayers.find((l) => layerName(l) === info.name)!;
      rawConv.config.use_bias = true;
      const bnIdx = edit.graph.rawLayers.findIndex((l) => layerName(l) === bnName);
      edit.graph.rawLayers.splice(bnIdx, 1);
      if (edit.graph.kind === 'Functional') TfjsModel.rewire(edit.graph, bnLayer.name, info.name);
    }
    return new TfjsModel(this.path, edit.json, weights, this.sources);
  }

  /** `extraFiles` (plain names) are written into the same folder in the same atomic step, e.g. a report. */
  async save(outPath: string, extraFiles: Map<string, string | Uint8Array> = new Map()): Promise<void> {
    if (/\.json$/i.test(outPath)) {
      throw new DacError('EINVAL', `a TF.js model is written to a folder; got ${outPath} (drop the file name)`, { field: 'output' });
    }
    checkOutputPath(outPath, this.sources);
    const files = serializeArtifacts(this.json, this.weights);
    for (const [name, data] of extraFiles) {
      if (files.has(name)) throw new DacError('EINVAL', `extra file ${name} would replace a model file`, { field: 'extraFiles' });
      files.set(name, data);
    }
    await writeFolderAtomic(nodePath.resolve(outPath), files);
  }
}
