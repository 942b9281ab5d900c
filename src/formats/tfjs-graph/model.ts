// TF.js graph models (model.json "format": "graph-model"): the convs of the
// GraphDef with their shapes, replacing them by decomposed node pairs, and
// writing model.json + shards back with every other node, the signature and
// the metadata kept.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DacError } from '../../errors.js';
import { hwioToOihwFinite, oihwToHwio } from '../../geometry.js';
import { MAX_JSON_BYTES } from '../../io/limits.js';
import { reconstructWeights, relativeError } from '../../model/reconstruct.js';
import type { ConvLayerInfo, LayerReplacement, OtherCost } from '../../model/types.js';
import { checkFinite, matchReplacements, NOMINAL_FREE_SIZE, uniqueName, type LoadedModel } from '../model.js';
import { TfjsFolderModel } from '../tfjs/folder.js';
import { elementCount, readArtifacts, weightFloats, type ModelJson, type Quantization, type WeightEntry } from '../tfjs/manifest.js';
import type { TfjsArtifacts, TfjsLayerKind } from '../tfjs/model.js';
import { DAC_CONV_OP, dacConvNodes, fitsDacNode, graphConstants } from './dac-node.js';
import {
  attrString,
  attrStrings,
  dataInputs,
  encodeString,
  intList,
  parseGraph,
  protoDims,
  refKey,
  type AttrValue,
  type Graph,
  type GraphNode,
  type TensorRef,
} from './graph.js';
import { CONV_OPS, layoutAxes, propagateShapes, resolvePads, spatialPair, type ShapeOf } from './shapes.js';
import { encodedEntry } from '../tfjs/quantize.js';

/** A quantized replacement is kept quantized when that adds at most this fraction of its own approximation error. */
export const QUANTIZED_ERROR_SHARE = 0.1;

const ACTIVATIONS: Record<string, string> = {
  Relu: 'relu',
  Relu6: 'relu6',
  Elu: 'elu',
  LeakyRelu: 'leakyrelu',
  Prelu: 'prelu',
  Sigmoid: 'sigmoid',
};

interface GraphConv {
  info: ConvLayerInfo;
  node: GraphNode;
  input: TensorRef;
  filter: string;
  /** The bias Const (fused BiasAdd), or null. */
  bias: string | null;
  /** The fused ops after BiasAdd as TF names (['Relu']), and the PReLU alpha input. */
  activationOps: string[];
  alpha: string | null;
}

export interface GraphLoadOptions {
  maxBytes?: number;
  inputShape?: number[];
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function modelJsonOf(file: string): string {
  return fs.existsSync(file) && fs.statSync(file).isDirectory() ? nodePath.join(file, 'model.json') : file;
}

/**
 * Whether a model.json (or its folder) says "format": "graph-model". The
 * converter writes that key first, so the head of the file usually answers;
 * otherwise a model.json within MAX_JSON_BYTES is parsed. Anything unreadable
 * is left to the reader, which says what is wrong with it.
 */
export function isGraphModel(file: string): boolean {
  const jsonPath = modelJsonOf(file);
  try {
    // Only a regular file is peeked at: opening a FIFO would block.
    if (!fs.statSync(jsonPath).isFile()) return false;
    const fd = fs.openSync(jsonPath, 'r');
    let head: string;
    try {
      const buf = Buffer.alloc(64 * 1024);
      head = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
    const format = /"format"\s*:\s*"([^"]*)"/.exec(head);
    const topology = head.indexOf('"modelTopology"');
    if (format && (topology < 0 || format.index < topology)) return format[1] === 'graph-model';
    if (fs.statSync(jsonPath).size > MAX_JSON_BYTES) return false;
    return (JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as { format?: unknown })?.format === 'graph-model';
  } catch {
    return false;
  }
}

/** Loads a TF.js graph model (model.json or its folder). */
export async function loadTfjsGraph(file: string, options: GraphLoadOptions = {}): Promise<GraphModel> {
  const jsonPath = modelJsonOf(file);
  const { json, weights, files } = readArtifacts(jsonPath, options.maxBytes, ['graph-model']);
  return new GraphModel(jsonPath, json, weights, files, options.inputShape);
}

export class GraphModel extends TfjsFolderModel implements LoadedModel {
  readonly format = 'tfjs-graph' as const;
  readonly inputLayout: 'NHWC' | 'NCHW';
  readonly name: string;
  readonly convs: ConvLayerInfo[];
  readonly other: OtherCost;
  readonly inputShape: number[];
  readonly freeInput: boolean;
  /** The image input's node and declared dims (batch and free sizes -1). */
  readonly input: { node: string; dims: number[]; dtype: string };
  /** The batch size the model fixes, or null when any batch works. */
  readonly fixedBatch: number | null;
  /** How the convs' filters are stored ('float32', 'float16', 'uint8', several joined by '+'). */
  readonly weightDtype: string;
  /** Convs kept for an unknown size; what apply() stored differently from the original (float32 instead of quantized). */
  readonly notes: string[];
  private readonly graph: Graph;
  private readonly byWeight: Map<string, WeightEntry>;
  private readonly convNodes: GraphConv[];
  private readonly shapes: Map<string, ShapeOf>;

  constructor(
    path: string,
    json: ModelJson,
    weights: WeightEntry[],
    sources: string[],
    stated?: number[],
    applyNotes: string[] = [],
    /** What a DAC replacement is written as: stock node pairs, or one DacConv2D op node (dac-node.ts). */
    readonly tfjsLayer: TfjsLayerKind = 'stock',
  ) {
    super(path, json, weights, sources);
    // Published graph models often sit side by side as <name>.json: the file names them, else the folder.
    const base = nodePath.basename(path);
    this.name = /^model\.json$/i.test(base) ? nodePath.basename(nodePath.dirname(nodePath.resolve(path))) : base.replace(/\.json$/i, '');
    this.graph = parseGraph(json.modelTopology, this.ctx);
    this.byWeight = new Map(weights.map((w) => [w.spec.name, w]));
    this.input = this.findInput();
    this.inputLayout = this.findLayout();
    const { shape, free } = this.resolveInput(stated);
    this.inputShape = shape;
    this.freeInput = free;
    this.fixedBatch = this.input.dims[0] > 0 ? this.input.dims[0] : null;
    const [ha, wa, ca] = this.inputLayout === 'NCHW' ? [2, 3, 1] : [1, 2, 3];
    const batchDims = [this.fixedBatch ?? 1, 0, 0, 0];
    batchDims[ha] = shape[0];
    batchDims[wa] = shape[1];
    batchDims[ca] = shape[2];
    this.shapes = propagateShapes(
      { graph: this.graph, inputs: new Map([[this.input.node, batchDims]]), constInts: (r) => this.constInts(r) },
      (node) => protoDims(node.attr?.value?.tensor?.tensorShape) ?? (this.byWeight.get(node.name)?.spec.shape ?? null),
    );
    const computed: string[] = [];
    this.convNodes = this.findConvs(computed);
    this.convs = this.convNodes.map((c) => c.info);
    this.other = this.otherCost();
    const dtypes = new Set(this.convNodes.map((c) => this.byWeight.get(c.filter)!.spec.quantization?.dtype ?? 'float32'));
    this.weightDtype = [...dtypes].sort().join('+') || 'float32';
    this.notes = [
      ...computed.map((name) => `conv ${name} is kept as is: its filter is computed at run time, not a constant (its MACs are counted with the other ops)`),
      ...this.convNodes
        .filter((c) => c.info.skipReason?.includes('size unknown'))
        .map((c) => `conv ${c.info.name} is kept as is: ${c.info.skipReason}`),
      ...applyNotes,
    ];
  }

  private findInput(): { node: string; dims: number[]; dtype: string } {
    const sig = (this.json.signature as { inputs?: Record<string, { name?: string; dtype?: string; tensorShape?: AttrValue['shape'] }> })?.inputs;
    const candidates: { node: string; dims: number[] | null; dtype: string }[] = [];
    if (sig && typeof sig === 'object' && Object.keys(sig).length > 0) {
      for (const [key, s] of Object.entries(sig)) {
        const node = String(s?.name ?? key).replace(/:\d+$/, '');
        if (!this.graph.byName.has(node)) {
          throw new DacError('EFORMAT', `signature input ${key} names no node`, { ...this.ctx, field: 'signature.inputs' });
        }
        candidates.push({ node, dims: protoDims(s?.tensorShape), dtype: String(s?.dtype ?? 'DT_FLOAT') });
      }
    } else {
      for (const n of this.graph.nodes) {
        if (n.op === 'Placeholder') candidates.push({ node: n.name, dims: protoDims(n.attr?.shape?.shape), dtype: String(n.attr?.dtype?.type ?? 'DT_FLOAT') });
      }
    }
    if (candidates.length !== 1) {
      throw new DacError('EFORMAT', `expected one model input (an image batch), found ${candidates.length}`, { ...this.ctx, field: 'signature.inputs' });
    }
    const [c] = candidates;
    // The Placeholder may know more than the signature (or the other way round): take the known dims of both.
    const own = protoDims(this.graph.byName.get(c.node)!.attr?.shape?.shape);
    const dims = c.dims ?? own;
    if (!dims || dims.length !== 4) {
      throw new DacError('EFORMAT', `the input must be a 4-D image batch, got ${dims ? `[${dims.join(', ')}]` : 'unknown rank'}`, {
        ...this.ctx,
        layer: c.node,
      });
    }
    const merged = dims.map((d, i) => (d > 0 ? d : own && own.length === 4 && own[i] > 0 ? own[i] : -1));
    return { node: c.node, dims: merged, dtype: c.dtype };
  }

  /**
   * NCHW when the first conv says so, or when the input reaches a Transpose to
   * NHWC through a chain of layout-blind ops (models exported from PyTorch:
   * Pad, then Transpose); else NHWC.
   */
  private findLayout(): 'NHWC' | 'NCHW' {
    const firstConv = this.graph.order.map((n) => this.graph.byName.get(n)!).find((n) => CONV_OPS.has(n.op));
    if (firstConv && attrString(firstConv, 'data_format') === 'NCHW') return 'NCHW';
    const blind = new Set(['Pad', 'PadV2', 'MirrorPad', 'Cast', 'Identity', 'Sub', 'Mul', 'Add', 'AddV2', 'RealDiv']);
    let at = this.input.node;
    for (let hops = 0; hops < 8; hops++) {
      const users = this.graph.consumers.get(at) ?? [];
      if (users.length !== 1) break;
      const u = users[0].node;
      if (u.op === 'Transpose') return this.constInts(dataInputs(u)[1] ?? { node: '', index: 0 })?.join() === '0,2,3,1' ? 'NCHW' : 'NHWC';
      if (!blind.has(u.op)) break;
      at = u.name;
    }
    return 'NHWC';
  }

  /** [H, W, C] of one image: the declared sizes, a stated size for free ones, else NOMINAL_FREE_SIZE. */
  private resolveInput(stated?: number[]): { shape: number[]; free: boolean } {
    const d = this.input.dims;
    const [h, w, c] = this.inputLayout === 'NCHW' ? [d[2], d[3], d[1]] : [d[1], d[2], d[3]];
    const where = { ...this.ctx, field: 'inputShape' };
    if (stated !== undefined) {
      if (!Array.isArray(stated) || (stated.length !== 2 && stated.length !== 3) || !stated.every((v) => Number.isInteger(v) && v >= 1)) {
        throw new DacError('EINVAL', `inputShape must be [H, W] or [H, W, C] of positive integers, got ${JSON.stringify(stated)}`, where);
      }
      const want = [stated[0], stated[1], stated[2] ?? c];
      [h, w, c].forEach((declared, i) => {
        if (declared > 0 && want[i] !== declared) {
          throw new DacError('ESHAPE', `inputShape [${stated.join(', ')}] disagrees with the model's input [${[h, w, c].join(', ')}]`, where);
        }
      });
      if (!(want[2] > 0)) throw new DacError('ESHAPE', 'the model does not fix its channel count; state it as [H, W, C]', where);
      return { shape: want, free: false };
    }
    if (!(c > 0)) throw new DacError('ESHAPE', 'the model does not fix its channel count; state inputShape [H, W, C]', where);
    const free = !(h > 0 && w > 0);
    return { shape: [h > 0 ? h : NOMINAL_FREE_SIZE, w > 0 ? w : NOMINAL_FREE_SIZE, c], free };
  }

  /** Values of an int32 (or small float32) Const, for shapes; null when it is not one. */
  private constInts(ref: TensorRef): number[] | null {
    const node = this.graph.byName.get(ref.node);
    const entry = this.byWeight.get(ref.node);
    if (!node || node.op !== 'Const' || !entry || ref.index !== 0) return null;
    const count = elementCount(entry.spec.shape);
    if (count > 64) return null;
    if (entry.spec.dtype === 'int32' && !entry.spec.quantization) {
      const view = new DataView(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.byteLength);
      return Array.from({ length: count }, (_, i) => view.getInt32(4 * i, true));
    }
    if (entry.spec.dtype === 'float32') return Array.from(weightFloats(entry, this.ctx));
    return null;
  }

  /** A float Const's values, checked finite unless `check` is false (the caller checks them); null when the input is not a Const in the manifest. */
  private constFloats(name: string, layer: string, check = true): Float32Array | null {
    const node = this.graph.byName.get(name);
    const entry = this.byWeight.get(name);
    if (!node || node.op !== 'Const' || !entry) return null;
    const values = weightFloats(entry, { ...this.ctx, layer });
    if (check) checkFinite(values, { ...this.ctx, layer, field: name });
    return values;
  }

  /** The convs with constant filters; the names of those without go to `computed`. */
  private findConvs(computed: string[]): GraphConv[] {
    const out: GraphConv[] = [];
    for (const name of this.graph.order) {
      const node = this.graph.byName.get(name)!;
      if (!CONV_OPS.has(node.op)) continue;
      const where = { ...this.ctx, layer: name };
      const ins = dataInputs(node);
      if (ins.length < 2) throw new DacError('EFORMAT', `${node.op} needs an input and a filter`, { ...where, field: 'input' });
      const [xRef, fRef] = ins;
      const filterNode = this.graph.byName.get(fRef.node)!;
      // Checked finite as it is turned to OIHW (below), not in a pass of its own.
      const filterVals = fRef.index === 0 ? this.constFloats(fRef.node, name, false) : null;
      if (!filterVals) {
        // Without constant weights there is nothing to decompose; its cost is counted with the other ops.
        computed.push(name);
        continue;
      }
      const fshape = this.byWeight.get(fRef.node)!.spec.shape;
      if (fshape.length !== 4 || fshape.some((d) => d < 1)) {
        throw new DacError('ESHAPE', `filter must be 4-D [kh, kw, in, out], got [${fshape.join(', ')}]`, { ...where, field: filterNode.name });
      }
      const [kh, kw, fin, fout] = fshape;
      const depthwise = node.op.includes('Depthwise');
      const fused = node.op.startsWith('_Fused') || node.op.startsWith('Fused');
      const fusedOps = fused ? attrStrings(node, 'fused_ops') : [];
      const reasons: string[] = [];
      const pair = (key: string): [number, number] => {
        const v = spatialPair(node, key);
        if (typeof v === 'string') throw new DacError('EFORMAT', v, { ...where, field: key });
        return v;
      };
      const strides = pair('strides');
      const dilations = pair('dilations');
      const x = this.shapes.get(refKey(xRef))!;
      const [ha, wa, ca] = layoutAxes(node);
      let inH = 1;
      let inW = 1;
      let outH = 1;
      let outW = 1;
      let c = fin;
      let pads: [number, number, number, number] = [0, 0, 0, 0];
      if (typeof x === 'string') reasons.push(`input size unknown (${x}); its MACs are counted as for a 1x1 output`);
      else if (x.length !== 4) reasons.push(`input has rank ${x.length}, expected 4`);
      else {
        c = x[ca];
        inH = x[ha];
        inW = x[wa];
        const p = resolvePads(node, x, kh, kw, strides, dilations);
        if (typeof p === 'string') throw new DacError('EFORMAT', p, { ...where, field: 'padding' });
        pads = p;
        const y = this.shapes.get(`${name}:0`);
        if (Array.isArray(y)) {
          outH = y[ha];
          outW = y[wa];
        } else reasons.push(`output size unknown (${y})`);
      }
      const n = depthwise ? fin * fout : fout;
      if (depthwise && c !== fin) throw new DacError('ESHAPE', `depthwise filter has ${fin} channels, the input ${c}`, { ...where, field: filterNode.name });
      if (!depthwise && c % fin !== 0) {
        throw new DacError('ESHAPE', `input has ${c} channels, not a multiple of the filter's ${fin}`, { ...where, field: filterNode.name });
      }
      const groups = depthwise ? c : c / fin;
      let bias: Float32Array | null = null;
      let biasName: string | null = null;
      let alpha: string | null = null;
      let activationOps: string[] = [];
      const args = ins.slice(2);
      if (fusedOps.length) {
        const [first, ...rest] = fusedOps;
        if (first === 'BiasAdd') {
          const b = args[0];
          bias = b && b.index === 0 ? this.constFloats(b.node, name) : null;
          if (!bias) reasons.push('fused bias is not a constant');
          else if (bias.length !== n) throw new DacError('ESHAPE', `bias has ${bias.length} values, expected ${n}`, { ...where, field: b.node });
          else biasName = b.node;
          activationOps = rest;
          if (rest[0] === 'Prelu') alpha = args[1]?.node ?? null;
        } else reasons.push(`fused ops [${fusedOps.join(', ')}] (TF.js runs only BiasAdd and an activation)`);
        if (activationOps.length > 1 || (activationOps.length === 1 && !ACTIVATIONS[activationOps[0]])) {
          reasons.push(`fused activation [${activationOps.join(', ')}] is not one TF.js runs`);
        }
      }
      const activation = activationOps.length === 1 ? (ACTIVATIONS[activationOps[0]] ?? activationOps[0].toLowerCase()) : 'linear';
      if (depthwise) reasons.unshift('depthwise convolution');
      else if (groups > 1) reasons.unshift(`grouped convolution (groups=${groups})`);
      else if (kh * kw === 1) reasons.unshift('1x1 convolution (nothing to decompose)');
      if (attrString(node, 'data_format') === 'NCHW') reasons.push('NCHW layout (TF.js runs graph models in NHWC)');
      if (strides.some((s) => s > 1) && dilations.some((d) => d > 1)) reasons.push('both strided and dilated (TF.js runs one or the other)');
      const expected = kh * kw * fin * fout;
      if (filterVals.length !== expected) throw new DacError('ESHAPE', `filter has ${filterVals.length} values, expected ${expected}`, { ...where, field: filterNode.name });
      // Depthwise [kh][kw][c][m] is [kh][kw][1][c*m] with output channel i*m+k.
      const weights = new Float32Array(filterVals.length);
      if (!hwioToOihwFinite(filterVals, kh, kw, depthwise ? 1 : fin, n, weights)) checkFinite(filterVals, { ...where, field: fRef.node });
      out.push({
        node,
        input: xRef,
        filter: fRef.node,
        bias: biasName,
        activationOps,
        alpha,
        info: {
          name,
          index: out.length,
          n,
          c,
          kh,
          kw,
          groups,
          strides,
          dilations,
          pads,
          inH,
          inW,
          outH,
          outW,
          weights,
          bias,
          activation,
          bnAfter: null,
          bnBefore: null,
          skipReason: reasons.length ? reasons.join('; ') : null,
        },
      });
    }
    return out;
  }

  private otherCost(): OtherCost {
    const convWeights = new Set<string>();
    for (const c of this.convNodes) {
      convWeights.add(c.filter);
      if (c.bias) convWeights.add(c.bias);
    }
    let params = 0;
    for (const w of this.weights) {
      if (w.spec.dtype === 'float32' && !convWeights.has(w.spec.name)) params += elementCount(w.spec.shape);
    }
    let macs = 0;
    const listed = new Set(this.convNodes.map((c) => c.node.name));
    for (const node of this.graph.nodes) {
      const ins = dataInputs(node);
      const shape = (i: number) => {
        const s = ins[i] && this.shapes.get(refKey(ins[i]));
        return Array.isArray(s) ? s : null;
      };
      const y = this.shapes.get(`${node.name}:0`);
      if (!Array.isArray(y)) continue;
      if (node.op === 'MatMul' || node.op === '_FusedMatMul') {
        const a = shape(0);
        if (a) macs += elementCount(y) * a[node.attr?.transpose_a?.b ? 0 : 1];
      } else if (node.op === 'BatchMatMul' || node.op === 'BatchMatMulV2') {
        const a = shape(0);
        if (a) macs += elementCount(y) * a[a.length - (node.attr?.adj_x?.b ? 2 : 1)];
      } else if (node.op === 'Conv2DBackpropInput') {
        // A transposed conv: every input pixel (dy) spreads over kh x kw taps of each output channel.
        const f = shape(1);
        const dy = shape(2);
        if (f && dy) macs += elementCount(dy) * f[0] * f[1] * f[2];
      } else if (node.op === DAC_CONV_OP) {
        // Per output pixel: the depthwise taps (kh*kw*c*r) and the pointwise row (c*r*n).
        const f = shape(1);
        const p = shape(2);
        if (f && p) macs += (elementCount(y) / p[3]) * (elementCount(f) + elementCount(p));
      } else if (CONV_OPS.has(node.op) && !listed.has(node.name)) {
        const f = shape(1);
        const x = shape(0);
        if (f && x) macs += elementCount(y) * f[0] * f[1] * (node.op.includes('Depthwise') ? 1 : f[2]);
      }
    }
    return { macs, params };
  }

  /** The model as tf.io artifacts (one weight buffer), for tf.loadGraphModel. */
  artifacts(): TfjsArtifacts & Record<string, unknown> {
    const { weightsManifest: _, ...rest } = this.json;
    return {
      ...rest,
      modelTopology: this.json.modelTopology,
      weightSpecs: this.weights.map((w) => w.spec),
      weightData: this.weightData(),
      format: 'graph-model',
    };
  }

  /**
   * The same model, writing DAC replacements as `kind`: stock node pairs, or
   * DacConv2D op nodes (needs `dac-conv/tfjs`). For a model before apply():
   * what an earlier apply() noted is not carried over.
   */
  withTfjsLayer(kind: TfjsLayerKind): GraphModel {
    if (kind !== 'stock' && kind !== 'dac') {
      throw new DacError('EINVAL', `the TF.js layer kind must be stock or dac, got ${String(kind)}`, { ...this.ctx, field: 'tfjsLayer' });
    }
    return kind === this.tfjsLayer ? this : new GraphModel(this.path, this.json, this.weights, this.sources, this.statedShape(), [], kind);
  }

  /** Graph models from the converter have BatchNorm folded already: nothing to do. */
  foldBatchNorm(): GraphModel {
    return this;
  }

  apply(replacements: LayerReplacement[]): GraphModel {
    const matched = matchReplacements(this.convNodes, replacements, this.path);
    const topology = clone(this.json.modelTopology);
    const nodes = topology.node as GraphNode[];
    const taken = new Set<string>([...nodes.map((n) => n.name), ...this.weights.map((w) => w.spec.name)]);
    const added: WeightEntry[] = [];
    const notes: string[] = [];
    const replaced = new Map<string, GraphNode[]>();
    for (const { conv: gc, rep } of matched) {
      const storage = this.chooseStorage(gc, rep, notes);
      const { nodes: pair, entries } =
        rep.method === 'dac' && this.tfjsLayer === 'dac' && fitsDacNode(gc) ? dacConvNodes(gc, rep, storage, taken) : this.replacementNodes(gc, rep, storage, taken);
      replaced.set(gc.info.name, pair);
      added.push(...entries);
    }
    const rewritten = nodes.flatMap((n) => replaced.get(n.name) ?? [n]);
    // Filters and biases nobody reads any more (a weight shared with a kept node stays).
    const read = new Set<string>();
    for (const n of rewritten) for (const r of dataInputs(n)) read.add(r.node);
    const dropped = new Set<string>();
    for (const { conv: gc } of matched) for (const w of [gc.filter, gc.bias]) if (w && !read.has(w)) dropped.add(w);
    // Control edges to a dropped constant order nothing (converters leave them on variable reads): they go too.
    for (const n of rewritten) {
      if (n.input?.some((s) => s.startsWith('^') && dropped.has(s.slice(1)))) n.input = n.input.filter((s) => !(s.startsWith('^') && dropped.has(s.slice(1))));
    }
    topology.node = rewritten.filter((n) => !dropped.has(n.name));
    const weights = [...this.weights.filter((w) => !dropped.has(w.spec.name)), ...added];
    return new GraphModel(this.path, { ...this.json, modelTopology: topology }, weights, this.sources, this.statedShape(), notes, this.tfjsLayer);
  }

  /** The stated input size a copy must be evaluated at (free sizes stay free in the file). */
  private statedShape(): number[] | undefined {
    return this.freeInput ? undefined : this.inputShape;
  }

  /**
   * Quantized originals get quantized replacements when requantizing adds
   * little to the replacement's own error (QUANTIZED_ERROR_SHARE of it);
   * otherwise float32, and a note says so.
   */
  private chooseStorage(gc: GraphConv, rep: LayerReplacement, notes: string[]): Quantization | undefined {
    const storage = this.byWeight.get(gc.filter)!.spec.quantization;
    if (!storage) return undefined;
    const conv = gc.info;
    const exact = reconstructWeights(rep, conv);
    const decompError = relativeError(conv.weights, exact);
    const roundTrip = (v: Float32Array) => weightFloats(encodedEntry('x', [v.length], v, storage));
    const q: LayerReplacement =
      rep.method === 'dac'
        ? { ...rep, depthwise: roundTrip(rep.depthwise), pointwise: roundTrip(rep.pointwise) }
        : rep.method === 'spatial'
          ? { ...rep, vertical: roundTrip(rep.vertical), horizontal: roundTrip(rep.horizontal) }
          : { ...rep, first: roundTrip(rep.first), second: roundTrip(rep.second) };
    const quantError = relativeError(exact, reconstructWeights(q, conv));
    if (quantError <= QUANTIZED_ERROR_SHARE * decompError) return storage;
    notes.push(
      `layer ${conv.name}: new weights stored as float32, not ${storage.dtype} like the original: ${storage.dtype} would add ` +
        `${quantError.toExponential(2)} to a weight error of ${decompError.toExponential(2)}`,
    );
    return undefined;
  }

  private replacementNodes(
    gc: GraphConv,
    rep: LayerReplacement,
    storage: Quantization | undefined,
    taken: Set<string>,
  ): { nodes: GraphNode[]; entries: WeightEntry[] } {
    const { name, n, c, kh, kw } = gc.info;
    const orig = gc.node;
    const [sh, sw] = gc.info.strides;
    const [dh, dw] = gc.info.dilations;
    const padding = attrString(orig, 'padding') ?? 'VALID';
    const explicit = gc.info.pads; // [top, left, bottom, right]
    const T = orig.attr?.T ?? { type: 'DT_FLOAT' };
    const { nodes, entries, constant } = graphConstants(taken);
    /** padding attrs of a stage: SAME/VALID kept, EXPLICIT split by axis. */
    const pad = (useH: boolean, useW: boolean): Record<string, AttrValue> => {
      if (padding !== 'EXPLICIT') return { padding: { s: encodeString(padding) }, explicit_paddings: { list: {} } };
      const [t, l, b, r] = explicit;
      return {
        padding: { s: encodeString('EXPLICIT') },
        explicit_paddings: intList([0, 0, useH ? t : 0, useH ? b : 0, useW ? l : 0, useW ? r : 0, 0, 0]),
      };
    };
    const nhwc = { s: encodeString('NHWC') };
    const suffixes = rep.method === 'dac' ? ['dw', 'pw'] : rep.method === 'spatial' ? ['v', 'h'] : ['c1', 'c2'];
    const nameA = uniqueName(`${name}_${suffixes[0]}`, taken);
    const inputX = orig.input![0];
    let first: GraphNode;
    let secondFilter: string;
    let secondAttrs: Record<string, AttrValue>;
    if (rep.method === 'dac') {
      const r = rep.rank;
      // depthwise [c*r][kh*kw] is OIHW with c*r outputs of one input: its HWIO is [kh][kw][c][r]
      const f = constant(`${nameA}/filter`, [kh, kw, c, r], oihwToHwio(rep.depthwise, c * r, 1, kh, kw), storage);
      first = {
        name: nameA,
        op: 'DepthwiseConv2dNative',
        input: [inputX, f],
        attr: { T, data_format: nhwc, strides: intList([1, sh, sw, 1]), dilations: intList([1, dh, dw, 1]), ...pad(true, true) },
      };
      secondFilter = constant(`${name}_${suffixes[1]}/filter`, [1, 1, c * r, n], oihwToHwio(rep.pointwise, n, c * r, 1, 1), storage);
      secondAttrs = { strides: intList([1, 1, 1, 1]), dilations: intList([1, 1, 1, 1]), padding: { s: encodeString('VALID') }, explicit_paddings: { list: {} } };
    } else if (rep.method === 'spatial') {
      const w = rep.width;
      const f = constant(`${nameA}/filter`, [kh, 1, c, w], oihwToHwio(rep.vertical, w, c, kh, 1), storage);
      first = {
        name: nameA,
        op: 'Conv2D',
        input: [inputX, f],
        attr: { T, data_format: nhwc, strides: intList([1, sh, 1, 1]), dilations: intList([1, dh, 1, 1]), use_cudnn_on_gpu: { b: true }, ...pad(true, false) },
      };
      secondFilter = constant(`${name}_${suffixes[1]}/filter`, [1, kw, w, n], oihwToHwio(rep.horizontal, n, w, 1, kw), storage);
      secondAttrs = { strides: intList([1, 1, sw, 1]), dilations: intList([1, 1, dw, 1]), ...pad(false, true) };
    } else {
      const w = rep.width;
      const f = constant(`${nameA}/filter`, [kh, kw, c, w], oihwToHwio(rep.first, w, c, kh, kw), storage);
      first = {
        name: nameA,
        op: 'Conv2D',
        input: [inputX, f],
        attr: { T, data_format: nhwc, strides: intList([1, sh, sw, 1]), dilations: intList([1, dh, dw, 1]), use_cudnn_on_gpu: { b: true }, ...pad(true, true) },
      };
      secondFilter = constant(`${name}_${suffixes[1]}/filter`, [1, 1, w, n], oihwToHwio(rep.second, n, w, 1, 1), storage);
      secondAttrs = { strides: intList([1, 1, 1, 1]), dilations: intList([1, 1, 1, 1]), padding: { s: encodeString('VALID') }, explicit_paddings: { list: {} } };
    }
    // The second stage takes the original node's name, so every consumer still reads it, and carries its bias and activation.
    const act = gc.activationOps;
    let biasInput: string | null = null;
    if (rep.bias) {
      const same = gc.bias && gc.info.bias && rep.bias.every((v, i) => Object.is(v, gc.info.bias![i]));
      biasInput = same ? gc.bias! : constant(`${name}_${suffixes[1]}/bias`, [n], rep.bias, undefined);
    } else if (act.length) {
      // TF.js reads a fused activation only after a BiasAdd: a zero bias keeps the activation.
      biasInput = constant(`${name}_${suffixes[1]}/bias`, [n], new Float32Array(n), undefined);
    }
    const second: GraphNode = { ...clone(orig), input: [nameA, secondFilter], attr: { ...clone(orig.attr ?? {}), ...secondAttrs, data_format: nhwc } };
    const secondAttr = second.attr!;
    if (biasInput) {
      second.op = '_FusedConv2D';
      second.input!.push(biasInput);
      if (gc.alpha) second.input!.push(orig.input![3]);
      secondAttr.fused_ops = { list: { s: ['BiasAdd', ...act].map(encodeString) } };
      secondAttr.num_args = { i: String(gc.alpha ? 2 : 1) };
      secondAttr.epsilon ??= { f: 0 };
    } else {
      second.op = 'Conv2D';
      for (const k of ['fused_ops', 'num_args', 'epsilon', 'leakyrelu_alpha']) delete secondAttr[k];
    }
    // Control inputs of the original (if any) stay on the first stage.
    for (const ctl of (orig.input ?? []).filter((s) => s.startsWith('^'))) first.input!.push(ctl);
    return { nodes: [...nodes, first, second], entries };
  }
}
