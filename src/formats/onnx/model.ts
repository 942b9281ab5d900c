// ONNX models: reading the convs out of a ModelProto, replacing them by
// decomposed pairs, folding BatchNormalization, and writing the file back.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DacError, type ErrorContext } from '../../errors.js';
import { checkOutputPath, writeFileAtomic } from '../../io/atomic.js';
import { DEFAULT_MAX_MODEL_BYTES, readFileBounded } from '../../io/limits.js';
import { foldBatchNorm as foldBn, oihwChannel } from '../../model/batchnorm.js';
import type { BatchNormParams, ConvLayerInfo, LayerReplacement, OtherCost } from '../../model/types.js';
import { checkFinite, convOutSize, matchReplacements, uniqueName, type LoadedModel } from '../model.js';
import { inferShapes, resolvePads, type Shape } from './shapes.js';
import {
  create,
  DataType,
  decodeModel,
  encodeModel,
  MAX_IR_VERSION,
  toNumber,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './schema.js';
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  floatTensor,
  intAttr,
  intsAttr,
  isExternal,
  stringAttr,
  tensorDims,
  tensorFloats,
} from './tensors.js';

/** Ops a BatchNormalization's output may pass through and still count as the input statistics of a conv. */
const PASS_THROUGH = new Set(['Relu', 'LeakyRelu', 'Clip', 'MaxPool', 'AveragePool', 'Dropout', 'Identity']);

interface ConvNode {
  info: ConvLayerInfo;
  node: number;
  /** Index of the BatchNormalization node that can be folded into this conv, or -1. */
  foldableBn: number;
}

const AUTO_PAD = new Set(['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID']);

/** A Conv's attributes checked: 2-D, positive strides and dilations, 4 non-negative pads, a positive group. */
function checkConvAttributes(node: NodeProto, kernel: [number, number], ctx: ErrorContext) {
  const fail = (field: string, msg: string): never => {
    throw new DacError('EFORMAT', msg, { ...ctx, field });
  };
  const list = (name: string, len: number, min: number): number[] | null => {
    const v = attrInts(node, name);
    if (v === null) return null;
    if (v.length !== len || !v.every((d) => Number.isSafeInteger(d) && d >= min)) {
      fail(name, `${name} must be ${len} integers >= ${min}, got [${v.join(', ')}]`);
    }
    return v;
  };
  const ks = list('kernel_shape', 2, 1);
  if (ks && (ks[0] !== kernel[0] || ks[1] !== kernel[1])) {
    fail('kernel_shape', `kernel_shape [${ks.join(', ')}] differs from the weight's [${kernel.join(', ')}]`);
  }
  if (kernel[0] < 1 || kernel[1] < 1) fail('kernel_shape', `kernel ${kernel.join('x')} is empty`);
  const strides = (list('strides', 2, 1) ?? [1, 1]) as [number, number];
  const dilations = (list('dilations', 2, 1) ?? [1, 1]) as [number, number];
  list('pads', 4, 0);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (!AUTO_PAD.has(autoPad)) fail('auto_pad', `auto_pad ${autoPad} is not one of ${[...AUTO_PAD].join(', ')}`);
  const groups = attrInt(node, 'group', 1);
  if (!Number.isSafeInteger(groups) || groups < 1) fail('group', `group must be a positive integer, got ${groups}`);
  return { groups, strides, dilations };
}

function isDefaultDomain(node: NodeProto): boolean {
  return !node.domain || node.domain === 'ai.onnx';
}

/** Every tensor name the graph (and its subgraphs) reads. */
function referencedNames(graph: GraphProto, into = new Set<string>()): Set<string> {
  for (const node of graph.node) {
    for (const i of node.input) if (i) into.add(i);
    for (const a of node.attribute) {
      if (a.g) referencedNames(a.g, into);
      for (const g of a.graphs ?? []) referencedNames(g, into);
    }
  }
  for (const o of graph.output) if (o.name) into.add(o.name);
  return into;
}

function allNames(graph: GraphProto): Set<string> {
  const names = new Set<string>();
  for (const t of graph.initializer) if (t.name) names.add(t.name);
  for (const v of [...graph.input, ...graph.output, ...graph.value_info]) if (v.name) names.add(v.name);
  for (const n of graph.node) {
    if (n.name) names.add(n.name);
    for (const o of n.output) if (o) names.add(o);
  }
  return names;
}

/** Drops initializers nothing reads any more (and their graph-input entries, IR < 4 style). */
function pruneInitializers(graph: GraphProto): void {
  const used = referencedNames(graph);
  const dropped = new Set(graph.initializer.filter((t) => !used.has(t.name!)).map((t) => t.name!));
  if (dropped.size === 0) return;
  graph.initializer = graph.initializer.filter((t) => !dropped.has(t.name!));
  graph.input = graph.input.filter((v) => !dropped.has(v.name!));
}

function tensorValueInfo(name: string, dims: number[]): ValueInfoProto {
  return create<ValueInfoProto>('ValueInfoProto', {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  });
}

/** Adds an initializer (and, when the model lists initializers as graph inputs, the matching input). */
function addInitializer(graph: GraphProto, t: TensorProto, listsInitializersAsInputs: boolean): void {
  graph.initializer.push(t);
  if (listsInitializersAsInputs) graph.input.push(tensorValueInfo(t.name!, tensorDims(t)));
}

function parseBytes(bytes: Uint8Array, file: string): ModelProto {
  let proto: ModelProto;
  try {
    proto = decodeModel(bytes);
  } catch (err) {
    throw new DacError('EFORMAT', `cannot parse ONNX protobuf (truncated or not an ONNX file): ${(err as Error).message}`, {
      model: file,
    });
  }
  if (!proto.graph || proto.graph.node.length === 0) {
    throw new DacError('EFORMAT', 'not an ONNX model: no graph or an empty graph', { model: file });
  }
  const ir = toNumber(proto.ir_version);
  if (ir > MAX_IR_VERSION && encodeModel(proto).length !== bytes.length) {
    throw new DacError(
      'EFORMAT',
      `IR version ${ir} carries fields this reader does not know (it covers IR <= ${MAX_IR_VERSION}); refusing to rewrite it lossily`,
      { model: file, field: 'ir_version' },
    );
  }
  for (const t of proto.graph.initializer) {
    if (isExternal(t)) {
      throw new DacError(
        'EFORMAT',
        `initializer ${t.name} uses external data; only self-contained .onnx files are supported (re-export with the weights inside)`,
        { model: file, field: t.name },
      );
    }
  }
  return proto;
}

/** Loads an .onnx file of at most `maxBytes`, refused by its size before it is read. */
export async function loadOnnx(file: string, maxBytes = DEFAULT_MAX_MODEL_BYTES): Promise<OnnxModel> {
  const bytes = readFileBounded(file, maxBytes, { model: file, field: 'file' });
  return new OnnxModel(file, parseBytes(bytes, file));
}

/** An ONNX model from bytes in memory (`file` is only used in messages). */
export function parseOnnx(bytes: Uint8Array, file = '<memory>'): OnnxModel {
  return new OnnxModel(file, parseBytes(bytes, file));
}

export class OnnxModel implements LoadedModel {
  readonly format = 'onnx' as const;
  readonly inputLayout = 'NCHW' as const;
  readonly name: string;
  readonly convs: ConvLayerInfo[];
  readonly other: OtherCost;
  readonly inputShape: number[];
  readonly freeInput = false;
  /** The graph input the runners feed, and the output they read. */
  readonly inputName: string;
  readonly outputName: string;
  /** The input's batch size when the model fixes it (runners then feed batches of exactly that), else null. */
  readonly fixedBatch: number | null;
  private readonly convNodes: ConvNode[];
  private readonly initializers: Map<string, TensorProto>;

  constructor(
    readonly path: string,
    private readonly proto: ModelProto,
  ) {
    const graph = proto.graph!;
    this.name = nodePath.basename(path).replace(/\.onnx$/i, '');
    this.initializers = new Map(graph.initializer.map((t) => [t.name!, t]));
    const ctx: ErrorContext = { model: path };
    const inputs = graph.input.filter((v) => !this.initializers.has(v.name!));
    if (inputs.length !== 1) {
      throw new DacError('EFORMAT', `expected one graph input (an image batch), found ${inputs.length}`, ctx);
    }
    if (graph.output.length < 1) throw new DacError('EFORMAT', 'the graph has no outputs', ctx);
    this.inputName = inputs[0].name!;
    this.outputName = graph.output[0].name!;
    const batchDim = inputs[0].type?.tensor_type?.shape?.dim?.[0];
    this.fixedBatch = batchDim && Object.prototype.hasOwnProperty.call(batchDim, 'dim_value') ? toNumber(batchDim.dim_value) : null;
    const shapes = inferShapes({ graph, initializers: this.initializers, ctx });
    const inShape = shapes.get(this.inputName);
    if (!inShape || inShape.length !== 4 || inShape.slice(1).some((d) => d < 1)) {
      throw new DacError('EFORMAT', `input ${this.inputName} must be NCHW with fixed C, H, W; got [${inShape?.join(', ') ?? '?'}]`, {
        ...ctx,
        field: this.inputName,
      });
    }
    this.inputShape = [inShape[2], inShape[3], inShape[1]];
    this.convNodes = this.findConvs(graph, shapes, ctx);
    this.convs = this.convNodes.map((c) => c.info);
    this.other = this.otherCost(graph, shapes);
  }

  /** The encoded model (what save() writes). */
  bytes(): Uint8Array {
    return encodeModel(this.proto);
  }

  private floats(name: string, ctx: ErrorContext): Float32Array {
    const t = this.initializers.get(name)!;
    return tensorFloats(t, ctx);
  }

  private bnParams(node: NodeProto, ctx: ErrorContext): BatchNormParams | null {
    if (node.input.length < 5 || !node.input.slice(1, 5).every((n) => this.initializers.has(n))) return null;
    const [, scale, bias, mean, variance] = node.input;
    const where = { ...ctx, layer: node.name || node.output[0] };
    return {
      gamma: this.floats(scale, where),
      beta: this.floats(bias, where),
      mean: this.floats(mean, where),
      variance: this.floats(variance, where),
      epsilon: attrFloat(node, 'epsilon', 1e-5),
    };
  }

  private findConvs(graph: GraphProto, shapes: Map<string, Shape>, ctx: ErrorContext): ConvNode[] {
    const producer = new Map<string, number>();
    const consumers = new Map<string, number[]>();
    graph.node.forEach((n, i) => {
      for (const o of n.output) if (o) producer.set(o, i);
      for (const inp of n.input) if (inp) consumers.set(inp, [...(consumers.get(inp) ?? []), i]);
    });
    const graphOutputs = new Set(graph.output.map((o) => o.name!));
    const nameCount = new Map<string, number>();
    for (const n of graph.node) if (n.name) nameCount.set(n.name, (nameCount.get(n.name) ?? 0) + 1);

    const out: ConvNode[] = [];
    graph.node.forEach((node, idx) => {
      if (node.op_type !== 'Conv' || !isDefaultDomain(node)) return;
      const w = this.initializers.get(node.input[1]);
      const name = node.name && nameCount.get(node.name) === 1 ? node.name : node.output[0];
      const where = { ...ctx, layer: name };
      if (w && tensorDims(w).length !== 4) return; // 1-D and 3-D convs are counted with the rest
      const x = shapes.get(node.input[0]);
      const y = shapes.get(node.output[0]);
      if (!x || x.length !== 4 || x.some((d) => d < 1)) {
        throw new DacError('EFORMAT', `cannot infer the input size of this conv (input ${node.input[0]})`, where);
      }
      if (!w) {
        throw new DacError('EFORMAT', `weight ${node.input[1]} is not an initializer; only constant weights are supported`, where);
      }
      const [n, cg, kh, kw] = tensorDims(w);
      const { groups, strides, dilations } = checkConvAttributes(node, [kh, kw], where);
      const pads = resolvePads(node, x[2], x[3], [kh, kw], strides, dilations);
      if (n % groups !== 0) throw new DacError('EFORMAT', `group ${groups} does not divide the ${n} output channels`, { ...where, field: 'group' });
      const weights = tensorFloats(w, where);
      checkFinite(weights, { ...where, field: node.input[1] });
      let bias: Float32Array | null = null;
      let skipReason: string | null = null;
      if (node.input[2]) {
        if (this.initializers.has(node.input[2])) {
          bias = tensorFloats(this.initializers.get(node.input[2])!, where);
          checkFinite(bias, { ...where, field: node.input[2] });
        } else skipReason = `bias ${node.input[2]} is computed, not an initializer`;
      }
      const c = cg * groups;
      if (x[1] !== c) {
        throw new DacError('EFORMAT', `input has ${x[1]} channels, weights expect ${c}`, { ...where, field: node.input[1] });
      }
      const outH = convOutSize(x[2], kh, strides[0], dilations[0], pads[0], pads[2]);
      const outW = convOutSize(x[3], kw, strides[1], dilations[1], pads[1], pads[3]);
      if (outH < 1 || outW < 1) {
        throw new DacError('EFORMAT', `the ${kh}x${kw} kernel does not fit the padded ${x[2]}x${x[3]} input`, where);
      }
      if (y && (y[2] !== outH || y[3] !== outW)) {
        throw new DacError('EFORMAT', `declared output size ${y[2]}x${y[3]} differs from the computed ${outH}x${outW}`, where);
      }
      if (!skipReason) {
        if (groups === c && groups > 1) skipReason = 'depthwise convolution (groups = channels)';
        else if (groups > 1) skipReason = `grouped convolution (groups=${groups})`;
        else if (kh * kw === 1) skipReason = '1x1 convolution (nothing to decompose)';
      }

      let bnAfter: BatchNormParams | null = null;
      let foldableBn = -1;
      const users = consumers.get(node.output[0]) ?? [];
      if (users.length === 1) {
        const bnNode = graph.node[users[0]];
        if (bnNode.op_type === 'BatchNormalization' && isDefaultDomain(bnNode) && bnNode.input[0] === node.output[0]) {
          bnAfter = this.bnParams(bnNode, ctx);
          const extraOutputs = bnNode.output.slice(1).some((o) => o);
          if (bnAfter && !extraOutputs && !graphOutputs.has(node.output[0]) && attrInt(bnNode, 'training_mode', 0) === 0) {
            foldableBn = users[0];
          }
        }
      }
      let bnBefore: BatchNormParams | null = null;
      let tensor = node.input[0];
      for (let hops = 0; hops < 16; hops++) {
        const p = producer.get(tensor);
        if (p === undefined) break;
        const prev = graph.node[p];
        if (prev.op_type === 'BatchNormalization') {
          bnBefore = this.bnParams(prev, ctx);
          break;
        }
        if (!PASS_THROUGH.has(prev.op_type ?? '')) break;
        tensor = prev.input[0];
      }

      out.push({
        node: idx,
        foldableBn,
        info: {
          name,
          index: out.length,
          n,
          c,
          kh,
          kw,
          groups,
          strides: [strides[0], strides[1]],
          dilations: [dilations[0], dilations[1]],
          pads,
          inH: x[2],
          inW: x[3],
          outH,
          outW,
          weights,
          bias,
          activation: 'linear',
          bnAfter,
          bnBefore,
          skipReason,
        },
      });
    });
    return out;
  }

  private otherCost(graph: GraphProto, shapes: Map<string, Shape>): OtherCost {
    let macs = 0;
    let params = 0;
    const counted = new Set<string>();
    const size = (name: string) => tensorDims(this.initializers.get(name)!).reduce((a, b) => a * b, 1);
    const isFloatInit = (name: string) => {
      const t = this.initializers.get(name);
      return !!t && (t.data_type === DataType.FLOAT || t.data_type === DataType.FLOAT16 || t.data_type === DataType.DOUBLE);
    };
    const convNodes = new Set(this.convNodes.map((c) => c.node));
    graph.node.forEach((node, idx) => {
      if (convNodes.has(idx)) return;
      const inputs = node.op_type === 'BatchNormalization' ? node.input.slice(1, 3) : node.input.slice(1);
      for (const name of inputs) {
        if (name && isFloatInit(name) && !counted.has(name)) {
          counted.add(name);
          params += size(name);
        }
      }
      const x = shapes.get(node.input[0]);
      const y = shapes.get(node.output[0]);
      if (!x || !y) return;
      const prod = (s: Shape) => s.reduce((a, b) => a * b, 1);
      if (node.op_type === 'Gemm' || node.op_type === 'MatMul') {
        const k = node.op_type === 'Gemm' && attrInt(node, 'transA', 0) ? x[0] : x[x.length - 1];
        macs += (prod(y) / (y[0] || 1)) * k;
      } else if (node.op_type === 'Conv' || node.op_type === 'ConvTranspose') {
        const w = shapes.get(node.input[1]);
        if (w) macs += node.op_type === 'Conv' ? (prod(y) / y[0]) * (prod(w) / w[0]) : (prod(x) / x[0]) * (prod(w) / w[0]);
      }
    });
    return { macs, params };
  }

  /** A deep copy of the proto, to edit without touching this model. */
  private cloneProto(): ModelProto {
    return decodeModel(encodeModel(this.proto));
  }

  private listsInitializersAsInputs(): boolean {
    const inputs = new Set(this.proto.graph!.input.map((v) => v.name));
    return this.proto.graph!.initializer.some((t) => inputs.has(t.name));
  }

  apply(replacements: LayerReplacement[]): OnnxModel {
    const matched = matchReplacements(this.convs, replacements, this.path);
    const proto = this.cloneProto();
    const graph = proto.graph!;
    const taken = allNames(graph);
    const asInputs = this.listsInitializersAsInputs();
    const newNodes = new Map<number, NodeProto[]>();
    for (const cn of this.convNodes) {
      const m = matched.get(cn.info.name);
      if (!m) continue;
      newNodes.set(cn.node, this.replacementNodes(graph.node[cn.node], m.conv, m.rep, taken, graph, asInputs));
    }
    graph.node = graph.node.flatMap((n, i) => newNodes.get(i) ?? [n]);
    pruneInitializers(graph);
    return new OnnxModel(this.path, proto);
  }

  private replacementNodes(
    orig: NodeProto,
    conv: ConvLayerInfo,
    rep: LayerReplacement,
    taken: Set<string>,
    graph: GraphProto,
    asInputs: boolean,
  ): NodeProto[] {
    const { n, c, kh, kw } = conv;
    const base = orig.name || orig.output[0];
    const autoPad = attrString(orig, 'auto_pad', 'NOTSET');
    const explicit = autoPad === 'NOTSET';
    const [sh, sw] = conv.strides;
    const [dh, dw] = conv.dilations;
    const [pt, pl, pb, pr] = conv.pads;
    const mid = uniqueName(`${orig.output[0]}_${rep.method}`, taken);
    const init = (suffix: string, dims: number[], values: Float32Array) => {
      const t = floatTensor(uniqueName(`${base}_${suffix}`, taken), dims, values);
      addInitializer(graph, t, asInputs);
      return t.name!;
    };
    const geometry = (kernel: [number, number], strides: [number, number], dil: [number, number], pads: number[], group: number) => {
      const attrs = [intsAttr('kernel_shape', kernel), intsAttr('strides', strides), intsAttr('dilations', dil), intAttr('group', group)];
      attrs.push(explicit ? intsAttr('pads', pads) : stringAttr('auto_pad', autoPad));
      return attrs;
    };
    const node = (suffix: string, inputs: string[], output: string, attribute: unknown[]) =>
      create<NodeProto>('NodeProto', {
        name: uniqueName(`${base}_${suffix}`, taken),
        op_type: 'Conv',
        domain: orig.domain ?? '',
        input: inputs,
        output: [output],
        attribute,
      });
    const biasInputs = rep.bias ? [init('bias', [n], rep.bias)] : [];
    const pointwiseAttrs = geometry([1, 1], [1, 1], [1, 1], [0, 0, 0, 0], 1);

    if (rep.method === 'dac') {
      const r = rep.rank;
      const dwW = init('dw_weight', [c * r, 1, kh, kw], rep.depthwise);
      const pwW = init('pw_weight', [n, c * r, 1, 1], rep.pointwise);
      return [
        node('dw', [orig.input[0], dwW], mid, geometry([kh, kw], [sh, sw], [dh, dw], [pt, pl, pb, pr], c)),
        node('pw', [mid, pwW, ...biasInputs], orig.output[0], pointwiseAttrs),
      ];
    }
    if (rep.method === 'spatial') {
      const w = rep.width;
      const vW = init('v_weight', [w, c, kh, 1], rep.vertical);
      const hW = init('h_weight', [n, w, 1, kw], rep.horizontal);
      return [
        node('v', [orig.input[0], vW], mid, geometry([kh, 1], [sh, 1], [dh, 1], [pt, 0, pb, 0], 1)),
        node('h', [mid, hW, ...biasInputs], orig.output[0], geometry([1, kw], [1, sw], [1, dw], [0, pl, 0, pr], 1)),
      ];
    }
    const w = rep.width;
    const fW = init('c1_weight', [w, c, kh, kw], rep.first);
    const sW = init('c2_weight', [n, w, 1, 1], rep.second);
    return [
      node('c1', [orig.input[0], fW], mid, geometry([kh, kw], [sh, sw], [dh, dw], [pt, pl, pb, pr], 1)),
      node('c2', [mid, sW, ...biasInputs], orig.output[0], pointwiseAttrs),
    ];
  }

  foldBatchNorm(): OnnxModel {
    const proto = this.cloneProto();
    const graph = proto.graph!;
    const taken = allNames(graph);
    const asInputs = this.listsInitializersAsInputs();
    const removed = new Set<number>();
    const removedTensors = new Set<string>();
    for (const cn of this.convNodes) {
      if (cn.foldableBn < 0) continue;
      const info = cn.info;
      const conv = graph.node[cn.node];
      const bnNode = graph.node[cn.foldableBn];
      const folded = foldBn(info.weights, info.bias, info.bnAfter!, info.n, oihwChannel((info.c / info.groups) * info.kh * info.kw), {
        model: this.path,
        layer: bnNode.name || bnNode.output[0],
      });
      const base = conv.name || conv.output[0];
      const wName = uniqueName(`${base}_bnfold_weight`, taken);
      const bName = uniqueName(`${base}_bnfold_bias`, taken);
      addInitializer(graph, floatTensor(wName, [info.n, info.c / info.groups, info.kh, info.kw], folded.weights), asInputs);
      addInitializer(graph, floatTensor(bName, [info.n], folded.bias), asInputs);
      removedTensors.add(conv.output[0]);
      conv.input = [conv.input[0], wName, bName];
      conv.output = [bnNode.output[0]];
      removed.add(cn.foldableBn);
    }
    if (removed.size === 0) return this;
    graph.node = graph.node.filter((_, i) => !removed.has(i));
    graph.value_info = graph.value_info.filter((v) => !removedTensors.has(v.name!));
    pruneInitializers(graph);
    return new OnnxModel(this.path, proto);
  }

  async save(outPath: string): Promise<void> {
    checkOutputPath(outPath, [this.path]);
    if (fs.existsSync(outPath) && fs.statSync(outPath).isDirectory()) {
      throw new DacError('EISDIR', `${outPath} is a folder; an ONNX model is written to a file path`, { field: 'output' });
    }
    await writeFileAtomic(nodePath.resolve(outPath), this.bytes());
  }
}
