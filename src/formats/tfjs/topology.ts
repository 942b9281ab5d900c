// The Keras layer graph inside a TF.js modelTopology (Sequential or
// Functional), normalized to layers with explicit inbound connections, and
// static shape inference (channels-last, one image, no batch axis).
import { DacError, type ErrorContext } from '../../errors.js';
import { paddedOutputSize } from '../../geometry.js';
import { topoOrder } from '../../model/graph.js';

export interface LayerJson {
  class_name: string;
  config: Record<string, unknown>;
  name?: string;
  inbound_nodes?: unknown[];
}

/** One input of one call of a layer: [layer, node index, tensor index]. */
export type Ref = [string, number, number];

export interface GraphLayer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  /** Per call (node): its input tensors. */
  calls: Ref[][];
}

export interface LayerGraph {
  kind: 'Sequential' | 'Functional';
  /** The modelTopology object holding the layers (inside model_config when wrapped). */
  modelConfig: Record<string, unknown>;
  /** The raw layer objects, in file order (edit these to rewrite the model). */
  rawLayers: LayerJson[];
  layers: GraphLayer[];
  byName: Map<string, GraphLayer>;
  inputs: Ref[];
  outputs: Ref[];
}

function fail(msg: string, ctx: ErrorContext): never {
  throw new DacError('EFORMAT', msg, ctx);
}

/** The object with class_name/config that describes the model (unwrapping model_config). */
export function modelConfigOf(topology: Record<string, unknown>, ctx: ErrorContext): Record<string, unknown> {
  const t = (topology.model_config ?? topology) as Record<string, unknown>;
  if (!t || typeof t !== 'object' || typeof t.class_name !== 'string') {
    fail('modelTopology has no class_name (not a Keras model config)', { ...ctx, field: 'modelTopology' });
  }
  return t;
}

function layerList(modelConfig: Record<string, unknown>, ctx: ErrorContext): LayerJson[] {
  const config = modelConfig.config as Record<string, unknown> | LayerJson[] | undefined;
  const layers = Array.isArray(config) ? config : (config?.layers as LayerJson[] | undefined);
  if (!Array.isArray(layers)) fail('the model config has no layers array', { ...ctx, field: 'config.layers' });
  for (const l of layers) {
    if (!l || typeof l !== 'object' || typeof l.class_name !== 'string' || !l.config || typeof l.config !== 'object') {
      fail('a layer entry lacks class_name or config', { ...ctx, field: 'config.layers' });
    }
  }
  return layers;
}

export function layerName(l: LayerJson): string {
  return (l.config.name as string | undefined) ?? l.name ?? '';
}

function parseRef(r: unknown, ctx: ErrorContext): Ref {
  if (Array.isArray(r) && typeof r[0] === 'string' && Number.isInteger(r[1]) && Number.isInteger(r[2])) {
    if ((r[1] as number) < 0) fail(`negative node index in inbound reference to ${r[0]}`, ctx);
    // Every layer this reader knows has a single output.
    if (r[2] !== 0) fail(`tensor index ${r[2]} of ${r[0]} is out of range (its layers have one output)`, ctx);
    return [r[0], r[1] as number, r[2] as number];
  }
  if (r && typeof r === 'object' && !Array.isArray(r)) {
    fail('Keras 3 style inbound_nodes are not supported; save the model with TF.js or Keras 2', ctx);
  }
  return fail(`bad inbound reference (expected [layer, node, tensor, kwargs])`, ctx);
}

export function parseGraph(topology: Record<string, unknown>, ctx: ErrorContext): LayerGraph {
  const modelConfig = modelConfigOf(topology, ctx);
  const rawLayers = layerList(modelConfig, ctx);
  const className = modelConfig.class_name as string;
  const layers: GraphLayer[] = [];
  const byName = new Map<string, GraphLayer>();
  const add = (g: GraphLayer) => {
    if (!g.name) fail(`a ${g.className} layer has no name`, ctx);
    if (byName.has(g.name)) fail(`two layers are named ${g.name}`, { ...ctx, layer: g.name });
    byName.set(g.name, g);
    layers.push(g);
  };

  if (className === 'Sequential') {
    let prev: Ref | null = null;
    const inputs: Ref[] = [];
    for (const raw of rawLayers) {
      const g: GraphLayer = { name: layerName(raw), className: raw.class_name, config: raw.config, calls: [] };
      if (raw.class_name === 'InputLayer') {
        if (prev) fail('an InputLayer must come first', { ...ctx, layer: g.name });
        add(g);
        g.calls = [];
        inputs.push([g.name, 0, 0]);
        prev = [g.name, 0, 0];
        continue;
      }
      g.calls = [prev ? [prev] : []];
      if (!prev) inputs.push([g.name, 0, 0]);
      add(g);
      prev = [g.name, 0, 0];
    }
    if (!prev) fail('the model has no layers', ctx);
    return { kind: 'Sequential', modelConfig, rawLayers, layers, byName, inputs, outputs: [prev] };
  }

  if (className === 'Model' || className === 'Functional') {
    const config = modelConfig.config as Record<string, unknown>;
    for (const raw of rawLayers) {
      const name = layerName(raw);
      const nodes = (raw.inbound_nodes ?? []) as unknown[];
      if (!Array.isArray(nodes)) fail('inbound_nodes must be an array', { ...ctx, layer: name });
      const calls = nodes.map((node) => {
        if (!Array.isArray(node)) return [parseRef(node, { ...ctx, layer: name })];
        return node.map((r) => parseRef(r, { ...ctx, layer: name }));
      });
      add({ name, className: raw.class_name, config: raw.config, calls });
    }
    const refs = (v: unknown, field: string): Ref[] => {
      if (!Array.isArray(v)) fail(`${field} must be an array`, { ...ctx, field });
      // A single output may be written as one ref rather than a list of refs.
      if (typeof v[0] === 'string') return [parseRef(v, { ...ctx, field })];
      return v.map((r) => parseRef(r, { ...ctx, field }));
    };
    const inputs = refs(config.input_layers, 'input_layers');
    const outputs = refs(config.output_layers, 'output_layers');
    if (inputs.length === 0) fail('the model has no inputs', { ...ctx, field: 'input_layers' });
    if (outputs.length === 0) fail('the model has no outputs', { ...ctx, field: 'output_layers' });
    const callsOf = (name: string) => {
      const g = byName.get(name)!;
      return g.className === 'InputLayer' ? 1 : g.calls.length;
    };
    for (const layer of layers) {
      for (const call of layer.calls) {
        for (const [src, node] of call) {
          if (!byName.has(src)) fail(`inbound layer ${src} does not exist`, { ...ctx, layer: layer.name });
          if (node >= callsOf(src)) fail(`node ${node} of ${src} does not exist`, { ...ctx, layer: layer.name });
        }
      }
    }
    for (const [src, node] of [...inputs, ...outputs]) {
      if (!byName.has(src)) fail(`model input/output layer ${src} does not exist`, ctx);
      if (node >= callsOf(src)) fail(`node ${node} of model input/output layer ${src} does not exist`, ctx);
    }
    return { kind: 'Functional', modelConfig, rawLayers, layers, byName, inputs, outputs };
  }
  return fail(`model class ${className} is not supported (Sequential and Functional models are)`, { ...ctx, field: 'class_name' });
}

// ---- shape inference ----------------------------------------------------

export type Shape = number[];

const IDENTITY = new Set([
  'BatchNormalization',
  'LayerNormalization',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'ThresholdedReLU',
  'Softmax',
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'AlphaDropout',
  'GaussianDropout',
  'GaussianNoise',
  'Masking',
]);

const MERGE = new Set(['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum']);

function pairOf(v: unknown, fallback: number): [number, number] {
  if (v === undefined || v === null) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v)) return [Number(v[0]), Number(v[1] ?? v[0])];
  return [fallback, fallback];
}

/** [[top, bottom], [left, right]] from a ZeroPadding2D / Cropping2D spec. */
function padSpec(v: unknown): [[number, number], [number, number]] {
  if (typeof v === 'number') return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    const a = v[0];
    const b = v[1];
    if (typeof a === 'number' && typeof b === 'number') return [[a, a], [b, b]];
    if (Array.isArray(a) && Array.isArray(b)) return [[a[0], a[1]], [b[0], b[1]]];
  }
  return [[1, 1], [1, 1]];
}

/** A positive-integer pair from a config field (an int or a 1-2 element list), or an error naming it. */
function positivePair(g: GraphLayer, field: string, fallback: number, ctx: ErrorContext): [number, number] {
  const v = g.config[field];
  if (v === undefined || v === null) return [fallback, fallback];
  const list = typeof v === 'number' ? [v, v] : Array.isArray(v) && (v.length === 1 || v.length === 2) ? [v[0], v[v.length - 1]] : null;
  if (!list || !list.every((d) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1)) {
    fail(`${field} must be one or two positive integers`, { ...ctx, layer: g.name, field });
  }
  return [list[0], list[1]];
}

function positiveInt(g: GraphLayer, field: string, fallback: number | null, ctx: ErrorContext): number {
  const v = g.config[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) {
    fail(`${field} must be a positive integer, got ${String(v)}`, { ...ctx, layer: g.name, field });
  }
  return v;
}

function checkChannelsLast(g: GraphLayer, ctx: ErrorContext): void {
  const fmt = g.config.data_format;
  if (fmt !== undefined && fmt !== null && fmt !== 'channels_last') {
    fail(`data_format ${String(fmt)} is not supported (channels_last only)`, { ...ctx, layer: g.name, field: 'data_format' });
  }
}

/** The input shape (no batch axis, unknown sizes as -1) an InputLayer or a first Sequential layer declares. */
function batchShape(g: GraphLayer, ctx: ErrorContext): Shape {
  const s = g.config.batch_input_shape ?? g.config.batch_shape;
  const where = { ...ctx, layer: g.name, field: 'batch_input_shape' };
  if (!Array.isArray(s) || s.length < 2) fail('no batch_input_shape (an input needs one, with a batch axis first)', where);
  return s.slice(1).map((d) => {
    if (d === null) return -1;
    if (!Number.isInteger(d) || d < 1 || d > 2 ** 31 - 1) fail(`sizes must be positive integers or null, got ${String(d)}`, where);
    return d as number;
  });
}

/** Output shape (no batch axis) of one call of a layer, given its input shapes. */
export function outputShape(g: GraphLayer, ins: Shape[], ctx: ErrorContext): Shape {
  const where = { ...ctx, layer: g.name };
  const x = ins[0];
  const c = g.config;
  const need4 = () => {
    if (!x || x.length !== 3) fail(`expects an image input [H, W, C], got [${x?.join(', ') ?? ''}]`, where);
  };
  switch (g.className) {
    case 'InputLayer':
      return batchShape(g, ctx);
    case 'Conv2D':
    case 'Convolution2D':
    case 'DepthwiseConv2D':
    case 'SeparableConv2D':
    case 'SeparableConvolution2D':
    case 'DacConv2D': {
      need4();
      checkChannelsLast(g, ctx);
      const [kh, kw] = positivePair(g, 'kernel_size', 1, ctx);
      const [sh, sw] = positivePair(g, 'strides', 1, ctx);
      const [dh, dw] = positivePair(g, 'dilation_rate', 1, ctx);
      const padding = String(c.padding ?? 'valid');
      if (padding !== 'same' && padding !== 'valid') fail(`padding ${padding} is not supported`, { ...where, field: 'padding' });
      const groups = positiveInt(g, 'groups', 1, ctx);
      if (x[2] % groups !== 0) fail(`groups ${groups} does not divide the ${x[2]} input channels`, { ...where, field: 'groups' });
      const out =
        g.className === 'DepthwiseConv2D' ? x[2] * positiveInt(g, 'depth_multiplier', 1, ctx) : positiveInt(g, 'filters', null, ctx);
      if (g.className !== 'DepthwiseConv2D' && out % groups !== 0) fail(`groups ${groups} does not divide the ${out} filters`, { ...where, field: 'groups' });
      const size = [paddedOutputSize(x[0], kh, sh, dh, padding), paddedOutputSize(x[1], kw, sw, dw, padding), out];
      if (size[0] < 1 || size[1] < 1) fail(`the ${kh}x${kw} kernel does not fit the ${x[0]}x${x[1]} input`, where);
      return size;
    }
    case 'Conv2DTranspose': {
      need4();
      checkChannelsLast(g, ctx);
      const [kh, kw] = pairOf(c.kernel_size, 1);
      const [sh, sw] = pairOf(c.strides, 1);
      const len = (n: number, k: number, s: number) => (c.padding === 'same' ? n * s : n * s + Math.max(k - s, 0));
      return [len(x[0], kh, sh), len(x[1], kw, sw), Number(c.filters)];
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D':
    case 'MaxPool2D':
    case 'AvgPool2D': {
      need4();
      checkChannelsLast(g, ctx);
      const [ph, pw] = pairOf(c.pool_size, 2);
      const [sh, sw] = c.strides === null || c.strides === undefined ? [ph, pw] : pairOf(c.strides, 1);
      const padding = c.padding === 'same' ? 'same' : 'valid';
      return [paddedOutputSize(x[0], ph, sh, 1, padding), paddedOutputSize(x[1], pw, sw, 1, padding), x[2]];
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D':
    case 'GlobalAvgPool2D':
    case 'GlobalMaxPool2D':
      need4();
      checkChannelsLast(g, ctx);
      return c.keepdims ? [1, 1, x[2]] : [x[2]];
    case 'Flatten':
      return [x.reduce((a, b) => a * b, 1)];
    case 'Dense':
      return [...x.slice(0, -1), Number(c.units)];
    case 'Reshape': {
      const target = (c.target_shape as number[]).slice();
      const total = x.reduce((a, b) => a * b, 1);
      const fixed = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      return target.map((d) => (d === -1 ? total / fixed : d));
    }
    case 'Permute':
      return (c.dims as number[]).map((d) => x[d - 1]);
    case 'ZeroPadding2D': {
      need4();
      const [[t, b], [l, r]] = padSpec(c.padding);
      return [x[0] + t + b, x[1] + l + r, x[2]];
    }
    case 'Cropping2D': {
      need4();
      const [[t, b], [l, r]] = padSpec(c.cropping);
      return [x[0] - t - b, x[1] - l - r, x[2]];
    }
    case 'UpSampling2D': {
      need4();
      const [a, b] = pairOf(c.size, 2);
      return [x[0] * a, x[1] * b, x[2]];
    }
    case 'Concatenate': {
      let axis = Number(c.axis ?? -1);
      axis = axis < 0 ? x.length + axis : axis - 1;
      const out = x.slice();
      out[axis] = ins.reduce((a, s) => a + s[axis], 0);
      return out;
    }
    default:
      if (IDENTITY.has(g.className) || MERGE.has(g.className)) return x.slice();
      return fail(`cannot infer shapes through layer class ${g.className}`, where);
  }
}

/**
 * The image shape a model input declares ([H, W, C], free sizes as -1), and
 * the layer that declares it (an InputLayer, or a Sequential model's first layer).
 */
export function declaredInput(graph: LayerGraph, ctx: ErrorContext): { layer: GraphLayer; shape: Shape } {
  if (graph.inputs.length !== 1) {
    throw new DacError('EFORMAT', `expected one model input (an image batch), found ${graph.inputs.length}`, ctx);
  }
  const layer = graph.byName.get(graph.inputs[0][0])!;
  return { layer, shape: batchShape(layer, ctx) };
}

/**
 * Output shape of every call: key `${layer}#${node}`. Input shapes come from
 * InputLayers or batch_input_shape; `input`, when given, replaces the shape
 * the model input declares (its free sizes fixed), also under `${layer}#input`.
 */
export function inferShapes(graph: LayerGraph, ctx: ErrorContext, input?: Shape): Map<string, Shape> {
  const key = (name: string, node: number) => `${name}#${node}`;
  // Every call after the calls it reads, whatever order the file lists the
  // layers in; cycles are refused (parseGraph already refused dangling refs).
  const calls = new Map<string, { g: GraphLayer; node: number }>();
  const preds = new Map<string, string[]>();
  for (const g of graph.layers) {
    const nodes = g.className === 'InputLayer' ? [[]] : g.calls;
    nodes.forEach((refs, node) => {
      calls.set(key(g.name, node), { g, node });
      preds.set(key(g.name, node), refs.map(([src, n]) => key(src, n)));
    });
  }
  const label = (k: string): string => {
    const { g, node } = calls.get(k)!;
    return g.calls.length > 1 ? `${g.name} (call ${node})` : g.name;
  };
  const shapes = new Map<string, Shape>();
  const inputLayer = input ? graph.inputs[0]?.[0] : undefined;
  const declared = (g: GraphLayer): Shape => {
    if (g.name !== inputLayer) return batchShape(g, ctx);
    shapes.set(`${g.name}#input`, input!.slice());
    return input!.slice();
  };
  for (const k of topoOrder(preds, ctx, label)) {
    const { g, node } = calls.get(k)!;
    let ins: Shape[];
    if (g.className === 'InputLayer') {
      shapes.set(k, declared(g));
      continue;
    }
    if (g.calls[node].length === 0) ins = [declared(g)];
    else ins = g.calls[node].map(([src, n]) => shapes.get(key(src, n))!);
    shapes.set(k, outputShape(g, ins, ctx));
  }
  return shapes;
}

/** Input shapes of one call (the shapes of its inbound tensors). */
export function inputShapes(g: GraphLayer, node: number, shapes: Map<string, Shape>, ctx: ErrorContext): Shape[] {
  if (g.calls[node]?.length) return g.calls[node].map(([src, n]) => shapes.get(`${src}#${n}`)!);
  return [shapes.get(`${g.name}#input`) ?? batchShape(g, ctx)];
}
