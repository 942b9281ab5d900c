// ONNX models: reading the convs out of a ModelProto, replacing them by
// decomposed pairs, folding BatchNormalization, and writing the file back.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DacError, type ErrorContext } from '../../errors.js';
import { convOutputSize } from '../../geometry.js';
import { placeOutput, type FileChunks } from '../../io/output.js';
import { DEFAULT_MAX_MODEL_BYTES, readFileBounded } from '../../io/limits.js';
import { foldBatchNorm as foldBn, oihwChannel } from '../../model/batchnorm.js';
import type { BatchNormParams, ConvLayerInfo, LayerReplacement, OtherCost } from '../../model/types.js';
import { checkFinite, FiniteValues, matchReplacements, NOMINAL_FREE_SIZE, uniqueName, type LoadedModel } from '../model.js';
import { inferShapes, resolvePads, type Shape } from './shapes.js';
import {
  create,
  DataType,
  decodeModel,
  encodeModel,
  encodeModelChunks,
  MAX_IR_VERSION,
  toNumber,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type DimProto,
  type TensorProto,
  type ValueInfoProto,
} from './schema.js';
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  attrTensor,
  dataTypeName,
  FLOAT_TYPES,
  intAttr,
  intsAttr,
  isExternal,
  stringAttr,
  tensorDims,
  tensorFloats,
  typedTensor,
} from './tensors.js';
import { roundToHalf } from '../float16.js';

/** Ops a BatchNormalization's output may pass through and still count as the input statistics of a conv. */
const PASS_THROUGH = new Set(['Relu', 'LeakyRelu', 'Clip', 'MaxPool', 'AveragePool', 'Dropout', 'Identity']);

interface ConvNode {
  info: ConvLayerInfo;
  node: number;
  /** Index of the BatchNormalization node that can be folded into this conv, or -1. */
  foldableBn: number;
  weight: ConstTensor;
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

/** Pure ops that carry a constant through unchanged in value (only in shape or type). */
const CONST_CHAIN = new Set(['Identity', 'Cast', 'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten']);

/**
 * Drops what nothing reads any more after an edit: constant-chain nodes
 * (Constant, Identity, Cast, ... of weights we replaced), then initializers
 * (and their graph-input entries, IR < 4 style), then value_info of tensors
 * no longer in the graph.
 */
function pruneUnused(graph: GraphProto): void {
  for (;;) {
    const used = referencedNames(graph);
    const before = graph.node.length;
    graph.node = graph.node.filter(
      (n) => !((n.op_type === 'Constant' || CONST_CHAIN.has(n.op_type ?? '')) && isDefaultDomain(n) && n.output.every((o) => !o || !used.has(o))),
    );
    if (graph.node.length === before) break;
  }
  const used = referencedNames(graph);
  const dropped = new Set(graph.initializer.filter((t) => !used.has(t.name!)).map((t) => t.name!));
  graph.initializer = graph.initializer.filter((t) => !dropped.has(t.name!));
  graph.input = graph.input.filter((v) => !dropped.has(v.name!));
  const present = new Set([...graph.node.flatMap((n) => n.output), ...graph.initializer.map((t) => t.name), ...graph.input.map((v) => v.name)]);
  graph.value_info = graph.value_info.filter((v) => present.has(v.name!));
}

function tensorValueInfo(name: string, dims: number[], elemType: number): ValueInfoProto {
  return create<ValueInfoProto>('ValueInfoProto', {
    name,
    type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  });
}

/** Adds an initializer (and, when the model lists initializers as graph inputs, the matching input). */
function addInitializer(graph: GraphProto, t: TensorProto, listsInitializersAsInputs: boolean): void {
  graph.initializer.push(t);
  if (listsInitializersAsInputs) graph.input.push(tensorValueInfo(t.name!, tensorDims(t), t.data_type ?? DataType.FLOAT));
}

/** Loading options of an ONNX model (see LoadOptions in src/formats). */
export interface OnnxLoadOptions {
  /** [H, W] or [H, W, C] for the sizes the model leaves free. */
  inputShape?: number[];
}

/** A constant conv weight, bias or BatchNorm parameter, read through the nodes that carry it. */
interface ConstTensor {
  values: Float32Array;
  dims: number[];
  /** The data type the model stores it in, and the one the consuming node sees (after Casts). */
  storeType: number;
  computeType: number;
  /** The initializer (or Constant node output) holding the data. */
  source: string;
  tensor: TensorProto;
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
  const seen = new Set<string>();
  for (const t of proto.graph.initializer) {
    if (isExternal(t)) {
      throw new DacError(
        'EFORMAT',
        `initializer ${t.name} uses external data; only self-contained .onnx files are supported (re-export with the weights inside)`,
        { model: file, field: t.name },
      );
    }
    // Runtimes differ in which of two same-named initializers they use, so no choice of ours is safe.
    if (seen.has(t.name!)) {
      throw new DacError('EFORMAT', `two initializers are named ${t.name}; the model is ambiguous (re-export it)`, { model: file, field: t.name });
    }
    seen.add(t.name!);
  }
  return proto;
}

/**
 * Makes every float32 raw_data of a decoded model readable as a view (no
 * copy of the weights) when some float32 initializer lies unaligned in the
 * file, without a second copy of the file: the large tensors are aligned
 * where they lie, in the file's buffer (our own read buffer, never the
 * file), and the small ones are packed into one buffer of their own.
 *
 * A large float32 payload at byteOffset o is moved left by d = o % 4 (1..3)
 * bytes, over the end of its own field header. That header (the tag, one
 * byte, and the length as a varint, 3 bytes from 2^14 on) is at least 4
 * bytes for payloads of OWN_BUFFER_BYTES and more, so the move writes only
 * bytes of this field: its header, which protobufjs has already parsed and
 * nothing keeps a view of, and its own payload. Every other view of the
 * buffer is the payload of another field, which lies wholly before this
 * field's header or after its payload, so no move touches bytes another
 * view reads, in whatever order they are made.
 *
 * The whole file's buffer then lives as long as any of these views (a
 * replaced conv's weight is not freed by itself), but loading peaks at about
 * one copy of the weights instead of two: the lower peak over a job.
 */
function alignBytes(proto: ModelProto, file: Uint8Array): void {
  const unaligned = proto.graph!.initializer.some(
    (t) => t.data_type === DataType.FLOAT && t.raw_data instanceof Uint8Array && t.raw_data.buffer === file.buffer && t.raw_data.byteOffset % 4 !== 0,
  );
  if (!unaligned) return;
  const found: Array<{ holder: Record<string, unknown> | unknown[]; key: string | number; bytes: Uint8Array }> = [];
  // An explicit stack: a hostile file may nest subgraphs deeper than recursion goes.
  const stack: unknown[] = [proto];
  while (stack.length) {
    const v = stack.pop();
    // Arrays of numbers (float_data, dims) hold no bytes.
    if (!v || typeof v !== 'object' || (Array.isArray(v) && typeof v[0] !== 'object')) continue;
    const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key, x] of entries) {
      if (x instanceof Uint8Array) {
        if (x.buffer === file.buffer) found.push({ holder: v as Record<string, unknown>, key, bytes: x });
      } else if (x && typeof x === 'object') stack.push(x);
    }
  }
  const large = (f: { bytes: Uint8Array }) => f.bytes.length >= OWN_BUFFER_BYTES;
  const floatRaw = (f: (typeof found)[number]) => f.key === 'raw_data' && (f.holder as unknown as TensorProto).data_type === DataType.FLOAT;
  for (const f of found) {
    const shift = f.bytes.byteOffset % 4;
    if (!large(f) || !floatRaw(f) || shift === 0) continue;
    const at = f.bytes.byteOffset;
    const whole = new Uint8Array(f.bytes.buffer);
    whole.copyWithin(at - shift, at, at + f.bytes.length);
    (f.holder as Record<string | number, unknown>)[f.key] = whole.subarray(at - shift, at - shift + f.bytes.length);
  }
  const pad = (n: number) => Math.ceil(n / 8) * 8;
  const small = new Uint8Array(found.reduce((a, f) => a + (large(f) ? 0 : pad(f.bytes.length)), 0));
  let offset = 0;
  for (const f of found) {
    if (large(f)) continue;
    const copy = small.subarray(offset, offset + f.bytes.length);
    copy.set(f.bytes);
    offset += pad(f.bytes.length);
    (f.holder as Record<string | number, unknown>)[f.key] = copy;
  }
}

/** Payloads from this size up are aligned in place in the file's buffer, the smaller ones packed (alignBytes). */
const OWN_BUFFER_BYTES = 64 * 1024;

/**
 * Loads an .onnx file of at most `maxBytes`, refused by its size before it
 * is read. `finite`: what is known of its values (all of them for a model
 * this package has just written: not scanned again). Aligned either way:
 * the convs' weights are read as views, not copied.
 */
export async function loadOnnx(file: string, maxBytes = DEFAULT_MAX_MODEL_BYTES, inputShape?: number[], finite = new FiniteValues<TensorProto>()): Promise<OnnxModel> {
  const bytes = readFileBounded(file, maxBytes, { model: file, field: 'file' });
  const proto = parseBytes(bytes, file);
  alignBytes(proto, bytes);
  return new OnnxModel(file, proto, { inputShape }, finite);
}

/** An ONNX model from bytes in memory (`file` is only used in messages). */
export function parseOnnx(bytes: Uint8Array, file = '<memory>', options: OnnxLoadOptions = {}): OnnxModel {
  return new OnnxModel(file, parseBytes(bytes, file), options);
}

/**
 * The structure ONNX requires and every runtime checks: each node has an
 * op_type, reads only tensors that exist before it (topological order, no
 * cycles), and writes tensors no one else writes; the outputs exist.
 */
function checkGraph(graph: GraphProto, ctx: ErrorContext): void {
  const known = new Set<string>([...graph.initializer.map((t) => t.name!), ...graph.input.map((v) => v.name!)]);
  for (const node of graph.node) {
    const where = { ...ctx, layer: node.name || node.output[0] };
    if (!node.op_type) throw new DacError('EFORMAT', 'a node has no op_type', where);
    for (const i of node.input) {
      if (i && !known.has(i)) {
        throw new DacError('EFORMAT', `reads ${i}, which no earlier node, initializer or graph input provides (a cycle, or nodes out of order)`, {
          ...where,
          field: i,
        });
      }
    }
    for (const o of node.output) {
      if (!o) continue;
      if (known.has(o)) throw new DacError('EFORMAT', `writes ${o}, which another node, initializer or graph input already provides`, { ...where, field: o });
      known.add(o);
    }
  }
  for (const o of graph.output) {
    if (!known.has(o.name!)) throw new DacError('EFORMAT', `graph output ${o.name} is never computed`, { ...ctx, field: o.name });
  }
}

const dimIs = (d: DimProto | undefined): boolean =>
  !!d && Object.prototype.hasOwnProperty.call(d, 'dim_value') && d.dim_value !== undefined && d.dim_value !== null && toNumber(d.dim_value) >= 1;

/**
 * The NCHW shape the graph is evaluated at: the declared one, with free
 * (dim_param or missing) height/width taken from `stated` when given, else
 * NOMINAL_FREE_SIZE; a stated size must agree with every size the model fixes.
 */
function resolveInput(
  declared: DimProto[] | undefined,
  stated: number[] | undefined,
  channelsFromWeights: number | null,
  ctx: ErrorContext,
): { nchw: Shape; free: boolean; freeSpatial: boolean } {
  const field = 'inputShape';
  if (declared && declared.length !== 4) {
    throw new DacError('EFORMAT', `the input must be an NCHW image batch (4 dims), it has ${declared.length}`, ctx);
  }
  declared?.forEach((d, i) => {
    if (Object.prototype.hasOwnProperty.call(d, 'dim_value') && !(toNumber(d.dim_value) >= 1)) {
      throw new DacError('EFORMAT', `input dim ${i} is ${toNumber(d.dim_value)}; sizes are positive (or free)`, ctx);
    }
  });
  const fixed = [1, 2, 3].map((i) => (declared && dimIs(declared[i]) ? toNumber(declared[i].dim_value) : -1));
  const [c0, h0, w0] = fixed;
  const freeSpatial = h0 < 1 || w0 < 1;
  const show = () => `${h0 < 1 ? '?' : h0}x${w0 < 1 ? '?' : w0}x${c0 < 1 ? '?' : c0} (HxWxC)`;
  if (stated !== undefined) {
    const ok = Array.isArray(stated) && (stated.length === 2 || stated.length === 3) && stated.every((d) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1);
    if (!ok) throw new DacError('EINVAL', `inputShape must be [H, W] or [H, W, C] of positive integers, got ${JSON.stringify(stated)}`, { ...ctx, field });
    const [h, w, c] = stated;
    if ((h0 >= 1 && h !== h0) || (w0 >= 1 && w !== w0) || (c !== undefined && c0 >= 1 && c !== c0)) {
      throw new DacError('EINVAL', `inputShape ${stated.join('x')} disagrees with the model's input ${show()}`, { ...ctx, field });
    }
    const ch = c ?? (c0 >= 1 ? c0 : channelsFromWeights);
    if (!ch) throw new DacError('EINVAL', 'the model leaves its channel count free: state it as inputShape [H, W, C]', { ...ctx, field });
    return { nchw: [1, ch, h, w], free: false, freeSpatial };
  }
  const ch = c0 >= 1 ? c0 : channelsFromWeights;
  if (!ch) throw new DacError('EFORMAT', 'the model leaves its channel count free: state the input as [H, W, C]', { ...ctx, field });
  return { nchw: [1, ch, h0 < 1 ? NOMINAL_FREE_SIZE : h0, w0 < 1 ? NOMINAL_FREE_SIZE : w0], free: freeSpatial, freeSpatial };
}

export class OnnxModel implements LoadedModel {
  readonly format = 'onnx' as const;
  readonly inputLayout = 'NCHW' as const;
  readonly name: string;
  readonly convs: ConvLayerInfo[];
  readonly other: OtherCost;
  readonly inputShape: number[];
  readonly freeInput: boolean;
  readonly notes: string[] = [];
  readonly weightDtype: string;
  /** The graph input the runners feed, and the output they read. */
  readonly inputName: string;
  readonly outputName: string;
  /** The input's batch size when the model fixes it (runners then feed batches of exactly that), else null. */
  readonly fixedBatch: number | null;
  private readonly convNodes: ConvNode[];
  private readonly initializers: Map<string, TensorProto>;
  private readonly producer = new Map<string, number>();
  private readonly shapes: Map<string, Shape>;
  private readonly consts = new Map<string, ConstTensor | null>();
  /** Whether the model declares free input height/width (written tensors then keep free spatial dims). */
  private readonly freeSpatial: boolean;
  private readonly inputDims: DimProto[];
  private readonly ctx: ErrorContext;

  constructor(
    readonly path: string,
    private readonly proto: ModelProto,
    private readonly options: OnnxLoadOptions = {},
    /**
     * Tensors whose values (as the convs read them) are known finite: checked
     * by the model this one derives from, or written by apply() from checked
     * replacements. Their finiteness is not checked again.
     */
    private readonly finite = new FiniteValues<TensorProto>(),
  ) {
    const graph = proto.graph!;
    this.name = nodePath.basename(path).replace(/\.onnx$/i, '');
    this.initializers = new Map(graph.initializer.map((t) => [t.name!, t]));
    const ctx: ErrorContext = { model: path };
    this.ctx = ctx;
    const inputs = graph.input.filter((v) => !this.initializers.has(v.name!));
    if (inputs.length !== 1) {
      throw new DacError('EFORMAT', `expected one graph input (an image batch), found ${inputs.length}`, ctx);
    }
    if (graph.output.length < 1) throw new DacError('EFORMAT', 'the graph has no outputs', ctx);
    this.inputName = inputs[0].name!;
    this.outputName = graph.output[0].name!;
    checkGraph(graph, ctx);
    graph.node.forEach((n, i) => {
      for (const o of n.output) if (o) this.producer.set(o, i);
    });
    this.inputDims = inputs[0].type?.tensor_type?.shape?.dim ?? [];
    const declaredDims = inputs[0].type?.tensor_type?.shape?.dim;
    this.fixedBatch = dimIs(declaredDims?.[0]) ? toNumber(declaredDims![0].dim_value) : null;
    const input = resolveInput(declaredDims, options.inputShape, this.channelsFromFirstConv(graph), { ...ctx, field: this.inputName });
    this.freeInput = input.free;
    this.freeSpatial = input.freeSpatial;
    input.nchw[0] = this.fixedBatch ?? 1;
    const inferred = inferShapes({ graph, initializers: this.initializers, ctx, inputs: new Map([[this.inputName, input.nchw]]) });
    this.shapes = inferred.shapes;
    this.inputShape = [input.nchw[2], input.nchw[3], input.nchw[1]];
    this.convNodes = this.findConvs(graph, inferred.unknown, ctx);
    this.convs = this.convNodes.map((c) => c.info);
    this.other = this.otherCost(graph);
    this.weightDtype = [...new Set(this.convNodes.map((cn) => dataTypeName(cn.weight.storeType)))].sort().join('+') || 'float32';
    this.noteDataTypes();
  }

  /** The encoded model (what save() writes). */
  bytes(): Uint8Array {
    return encodeModel(this.proto);
  }

  /** bytes() as written: chunk by chunk, the weights from their own buffers (never the whole encoding at once). */
  outputChunks(): FileChunks {
    return { chunks: () => encodeModelChunks(this.proto) };
  }

  /** Input channels of the first conv reading the graph input, for models that leave C free. */
  private channelsFromFirstConv(graph: GraphProto): number | null {
    const conv = graph.node.find((n) => n.op_type === 'Conv' && n.input[0] === this.inputName);
    let name = conv?.input[1];
    // Through the Identity/Cast nodes that keep a weight's dims.
    for (let hops = 0; name && !this.initializers.has(name) && hops < 8; hops++) {
      const p = this.producer.get(name);
      const node = p === undefined ? undefined : graph.node[p];
      name = node && (node.op_type === 'Identity' || node.op_type === 'Cast') ? node.input[0] : undefined;
    }
    const w = name ? this.initializers.get(name) : undefined;
    if (!conv || !w || w.dims.length !== 4) return null;
    return toNumber(w.dims[1]) * attrInt(conv, 'group', 1);
  }

  /**
   * The value of a constant expression: an initializer or Constant node,
   * possibly through Identity, Cast, Reshape, Squeeze, Unsqueeze, Flatten
   * (exporters route deduplicated and half-precision weights this way); null
   * when the tensor is computed at run time.
   */
  private constFloat(name: string): ConstTensor | null {
    if (this.consts.has(name)) return this.consts.get(name)!;
    const chain = this.constChain(name);
    let out: ConstTensor | null = null;
    if (chain && FLOAT_TYPES.has(chain.source.data_type ?? 0)) {
      const { source, computeType, toHalf } = chain;
      const storeType = source.data_type!;
      let values = tensorFloats(source, { ...this.ctx, field: chain.sourceName });
      if (toHalf && storeType !== DataType.FLOAT16) values = values.map(roundToHalf);
      const dims = this.shapes.get(name) ?? tensorDims(source);
      if (dims.reduce((a, b) => a * b, 1) === values.length) {
        out = { values, dims, storeType, computeType: computeType ?? storeType, source: chain.sourceName, tensor: source };
      }
    }
    this.consts.set(name, out);
    return out;
  }

  /** The tensor a constant expression starts from, and what the Casts on the way do; null when computed at run time. */
  private constChain(name: string): { source: TensorProto; sourceName: string; computeType?: number; toHalf: boolean } | null {
    const graph = this.proto.graph!;
    let cur = name;
    let computeType: number | undefined;
    let toHalf = false;
    for (let hops = 0; hops < 64; hops++) {
      const init = this.initializers.get(cur);
      if (init) return { source: init, sourceName: cur, computeType, toHalf };
      const p = this.producer.get(cur);
      const node = p === undefined ? undefined : graph.node[p];
      if (!node || !isDefaultDomain(node)) return null;
      if (node.op_type === 'Constant') {
        const t = attrTensor(node, 'value');
        return t ? { source: t, sourceName: cur, computeType, toHalf } : null;
      }
      if (!CONST_CHAIN.has(node.op_type ?? '') || node.output[0] !== cur) return null;
      if (node.op_type === 'Cast') {
        const to = attrInt(node, 'to', 0);
        if (!FLOAT_TYPES.has(to)) return null;
        computeType ??= to;
        if (to === DataType.FLOAT16) toHalf = true;
      }
      cur = node.input[0];
    }
    return null;
  }

  private bnParams(node: NodeProto, ctx: ErrorContext): BatchNormParams | null {
    if (node.input.length < 5) return null;
    const [scale, bias, mean, variance] = node.input.slice(1, 5).map((n) => (n ? this.constFloat(n) : null));
    if (!scale || !bias || !mean || !variance) return null;
    const where = { ...ctx, layer: node.name || node.output[0] };
    const values = [scale, bias, mean, variance].map((t) => {
      checkFinite(t.values, { ...where, field: t.source });
      return t.values;
    });
    return { gamma: values[0], beta: values[1], mean: values[2], variance: values[3], epsilon: attrFloat(node, 'epsilon', 1e-5) };
  }

  private findConvs(graph: GraphProto, unknown: Map<string, string>, ctx: ErrorContext): ConvNode[] {
    const shapes = this.shapes;
    const consumers = new Map<string, number[]>();
    graph.node.forEach((n, i) => {
      for (const inp of n.input) if (inp) consumers.set(inp, [...(consumers.get(inp) ?? []), i]);
    });
    const graphOutputs = new Set(graph.output.map((o) => o.name!));
    const nameCount = new Map<string, number>();
    for (const n of graph.node) if (n.name) nameCount.set(n.name, (nameCount.get(n.name) ?? 0) + 1);

    // Each conv gets arrays of its own, so that no caller editing one conv's weights changes a conv sharing them.
    const handedOut = new Set<Float32Array>();
    const own = (v: Float32Array) => {
      if (!handedOut.has(v)) {
        handedOut.add(v);
        return v;
      }
      return v.slice();
    };
    const out: ConvNode[] = [];
    graph.node.forEach((node, idx) => {
      if (node.op_type !== 'Conv' || !isDefaultDomain(node)) return;
      const name = node.name && nameCount.get(node.name) === 1 ? node.name : node.output[0];
      const where = { ...ctx, layer: name };
      const wc = this.constFloat(node.input[1]);
      const wDims = wc?.dims ?? shapes.get(node.input[1]);
      if (wDims && wDims.length !== 4) return; // 1-D and 3-D convs are counted with the rest
      const x = shapes.get(node.input[0]);
      // Convs we cannot size or read are kept as they are; the reader says so instead of refusing the model.
      const sized = !!x && x.length === 4 && x.every((d) => d >= 1);
      const reasons: string[] = [];
      if (!sized) {
        const why = unknown.get(node.input[0]) ?? `the size of ${node.input[0]} is unknown`;
        reasons.push(`input size unknown (${why}); its MACs are counted as for a 1x1 output`);
      }
      if (!wc) {
        // A constant the reader cannot take as float weights is malformed, not computed: say why.
        const chain = this.constChain(node.input[1]);
        if (chain) {
          tensorFloats(chain.source, { ...where, field: chain.sourceName });
          throw new DacError('EFORMAT', `weight ${node.input[1]}: its shape [${wDims?.join(', ') ?? '?'}] does not match its values`, {
            ...where,
            field: chain.sourceName,
          });
        }
        this.notes.push(
          `conv ${name} is kept as is: its weight ${node.input[1]} is computed at run time, not a constant` +
            (sized && wDims ? ' (its MACs are counted with the other layers)' : '; its MACs are not counted'),
        );
        return;
      }
      const [n, cg, kh, kw] = wc.dims;
      const { groups, strides, dilations } = checkConvAttributes(node, [kh, kw], where);
      const [inH, inW] = sized ? [x[2], x[3]] : [1, 1];
      const pads = resolvePads(node, inH, inW, [kh, kw], strides, dilations);
      if (n % groups !== 0) throw new DacError('EFORMAT', `group ${groups} does not divide the ${n} output channels`, { ...where, field: 'group' });
      const weights = own(wc.values);
      this.checkConst(weights, wc, where);
      let bias: Float32Array | null = null;
      if (node.input[2]) {
        const b = this.constFloat(node.input[2]);
        if (!b) reasons.push(`bias ${node.input[2]} is computed at run time, not a constant`);
        else if (b.values.length !== n) {
          throw new DacError('EFORMAT', `bias has ${b.values.length} values, the conv has ${n} output channels`, { ...where, field: b.source });
        } else {
          bias = own(b.values);
          this.checkConst(bias, b, where);
        }
      }
      const c = cg * groups;
      let [outH, outW] = [1, 1];
      if (sized) {
        if (x[1] !== c) {
          throw new DacError('EFORMAT', `input has ${x[1]} channels, weights expect ${c}`, { ...where, field: node.input[1] });
        }
        outH = convOutputSize(inH, kh, strides[0], dilations[0], pads[0], pads[2]);
        outW = convOutputSize(inW, kw, strides[1], dilations[1], pads[1], pads[3]);
        if (outH < 1 || outW < 1) {
          throw new DacError('EFORMAT', `the ${kh}x${kw} kernel does not fit the padded ${inH}x${inW} input`, where);
        }
        const y = shapes.get(node.output[0]);
        if (y && y.length === 4 && (y[2] !== outH || y[3] !== outW)) {
          throw new DacError('EFORMAT', `declared output size ${y[2]}x${y[3]} differs from the computed ${outH}x${outW}`, where);
        }
      }
      let skipReason = reasons.length ? reasons.join('; ') : null;
      if (!sized) this.notes.push(`conv ${name} is kept as is: ${skipReason}`);
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
        const p = this.producer.get(tensor);
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
        weight: wc,
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
          inH,
          inW,
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

  /** A conv's weight or bias values are finite (checked once per tensor, also across derived models). */
  private checkConst(values: Float32Array, t: ConstTensor, where: ErrorContext): void {
    if (this.finite.has(t.tensor)) return;
    checkFinite(values, { ...where, field: t.source });
    this.finite.add(t.tensor);
  }

  /** One note per non-float32 weight type: what was read and how the factors are written. */
  private noteDataTypes(): void {
    const kinds = new Set<string>();
    for (const { weight } of this.convNodes) {
      const { storeType, computeType } = weight;
      if (storeType === DataType.FLOAT && computeType === DataType.FLOAT) continue;
      kinds.add(
        storeType === computeType
          ? `conv weights stored and computed in ${dataTypeName(storeType)}: decomposed in float32, the factors are written as ${dataTypeName(storeType)}`
          : `conv weights stored as ${dataTypeName(storeType)} and cast to ${dataTypeName(computeType)} in the graph: decomposed in float32, the factors are written as ${dataTypeName(storeType)} behind the same Cast`,
      );
    }
    this.notes.push(...kinds);
  }

  private otherCost(graph: GraphProto): OtherCost {
    const shapes = this.shapes;
    let macs = 0;
    let params = 0;
    const counted = new Set<string>();
    const convNodes = new Set(this.convNodes.map((c) => c.node));
    // A listed conv's weights and bias are its own parameters, whichever nodes carry them.
    for (const cn of this.convNodes) {
      for (const name of graph.node[cn.node].input.slice(1)) {
        const src = name ? this.constChain(name) : null;
        if (src) counted.add(src.sourceName);
      }
    }
    graph.node.forEach((node, idx) => {
      if (convNodes.has(idx)) return;
      if (CONST_CHAIN.has(node.op_type ?? '') && node.output[0] && this.constChain(node.output[0])) return;
      // BatchNorm's statistics and Resize's scales/sizes are no parameters.
      const inputs =
        node.op_type === 'BatchNormalization' ? node.input.slice(1, 3) : node.op_type === 'Resize' || node.op_type === 'Upsample' ? [] : node.input.slice(1);
      // Counted from the dims, without reading the values.
      for (const name of inputs) {
        const src = name ? this.constChain(name) : null;
        if (src && FLOAT_TYPES.has(src.source.data_type ?? 0) && !counted.has(src.sourceName)) {
          counted.add(src.sourceName);
          params += tensorDims(src.source).reduce((a, b) => a * b, 1);
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

  /**
   * A copy of the proto to edit without touching this model. The top graph's
   * initializers are shared, not copied (apply and foldBatchNorm add new
   * tensors and drop old ones, never change one in place): re-encoding them
   * copied every weight of the model once more.
   */
  private cloneProto(): ModelProto {
    const graph = this.proto.graph!;
    const initializers = graph.initializer;
    graph.initializer = [];
    try {
      const copy = decodeModel(encodeModel(this.proto));
      copy.graph!.initializer = initializers.slice();
      return copy;
    } finally {
      graph.initializer = initializers;
    }
  }

  private listsInitializersAsInputs(): boolean {
    const inputs = new Set(this.proto.graph!.input.map((v) => v.name));
    return this.proto.graph!.initializer.some((t) => inputs.has(t.name));
  }

  /** Declared dims of a tensor (value_info, inputs, outputs), to copy symbolic ones into what we write. */
  private declaredDims(name: string): DimProto[] | undefined {
    const g = this.proto.graph!;
    const v = [...g.value_info, ...g.input, ...g.output].find((vi) => vi.name === name);
    return v?.type?.tensor_type?.shape?.dim;
  }

  /**
   * value_info of an activation the writer adds, [batch, channels, h, w]:
   * the batch as the input declares it; h and w fixed when the model fixes
   * its input size, else the symbolic dim of `hFrom`/`wFrom` (tensors of the
   * same height/width), else left free.
   */
  private activationInfo(name: string, elemType: number, channels: number, h: number, w: number, hFrom: string, wFrom: string): ValueInfoProto {
    const free = (from: string, axis: number): DimProto => {
      const d = this.declaredDims(from)?.[axis];
      return d && Object.prototype.hasOwnProperty.call(d, 'dim_param') && d.dim_param ? { dim_param: d.dim_param } : {};
    };
    const batch: DimProto = this.inputDims[0] ? { ...this.inputDims[0] } : {};
    const dims: DimProto[] = [
      batch,
      { dim_value: channels },
      this.freeSpatial ? free(hFrom, 2) : { dim_value: h },
      this.freeSpatial ? free(wFrom, 3) : { dim_value: w },
    ];
    return create<ValueInfoProto>('ValueInfoProto', { name, type: { tensor_type: { elem_type: elemType, shape: { dim: dims } } } });
  }

  apply(replacements: LayerReplacement[]): OnnxModel {
    const matched = matchReplacements(this.convNodes, replacements, this.path);
    const proto = this.cloneProto();
    const graph = proto.graph!;
    const taken = allNames(graph);
    const asInputs = this.listsInitializersAsInputs();
    const newNodes = new Map<number, NodeProto[]>();
    for (const { conv: cn, rep } of matched) newNodes.set(cn.node, this.replacementNodes(graph.node[cn.node], cn, rep, taken, graph, asInputs));
    graph.node = graph.node.flatMap((n, i) => newNodes.get(i) ?? [n]);
    pruneUnused(graph);
    this.ownInitializers(graph);
    return new OnnxModel(this.path, proto, this.options, this.finite);
  }

  /**
   * Copies out the initializers of a derived model (apply, foldBatchNorm)
   * that are views of a buffer its initializers fill less than half of: the
   * file's bytes once the convs it replaced are gone (alignBytes leaves the
   * large tensors in them). The derived model then does not keep the file's
   * bytes alive once the model it derives from is dropped. Copies are new
   * tensors: the tensors this model shares keep their bytes.
   */
  private ownInitializers(graph: GraphProto): void {
    const raw = (t: TensorProto) => (t.raw_data instanceof Uint8Array && t.raw_data.length > 0 ? t.raw_data : null);
    const used = new Map<ArrayBufferLike, number>();
    for (const t of graph.initializer) {
      const r = raw(t);
      if (r) used.set(r.buffer, (used.get(r.buffer) ?? 0) + r.length);
    }
    graph.initializer = graph.initializer.map((t) => {
      const r = raw(t);
      if (!r || 2 * used.get(r.buffer)! >= r.buffer.byteLength) return t;
      const copy: TensorProto = Object.assign(Object.create(Object.getPrototypeOf(t) as object) as TensorProto, t, { raw_data: new Uint8Array(r) });
      if (this.finite.has(t)) this.finite.add(copy);
      return copy;
    });
  }

  /**
   * Adds a new constant in the conv's own types: an initializer in the type
   * the weight is stored in, behind a Cast (with its value_info) when the
   * graph casts the weight before the conv. Returns the tensor to feed.
   */
  private addConst(
    graph: GraphProto,
    taken: Set<string>,
    asInputs: boolean,
    name: string,
    dims: number[],
    values: Float32Array,
    types: Pick<ConstTensor, 'storeType' | 'computeType'>,
    nodes: NodeProto[],
    /** `values` are known finite (checked replacements): only what float16 storage may overflow is checked. */
    checked: boolean,
  ): string {
    const t = typedTensor(uniqueName(name, taken), dims, values, types.storeType);
    if (checked) {
      if (types.storeType === DataType.FLOAT16) checkFinite(tensorFloats(t, this.ctx), { ...this.ctx, field: t.name });
      this.finite.add(t);
    }
    addInitializer(graph, t, asInputs);
    if (types.storeType === types.computeType) return t.name!;
    const cast = uniqueName(`${name}_cast`, taken);
    nodes.push(
      create<NodeProto>('NodeProto', {
        name: cast,
        op_type: 'Cast',
        input: [t.name!],
        output: [cast],
        attribute: [intAttr('to', types.computeType)],
      }),
    );
    graph.value_info.push(tensorValueInfo(cast, dims, types.computeType));
    return cast;
  }

  private replacementNodes(orig: NodeProto, cn: ConvNode, rep: LayerReplacement, taken: Set<string>, graph: GraphProto, asInputs: boolean): NodeProto[] {
    const conv = cn.info;
    const { n, c, kh, kw } = conv;
    const base = orig.name || orig.output[0];
    const autoPad = attrString(orig, 'auto_pad', 'NOTSET');
    const explicit = autoPad === 'NOTSET';
    const [sh, sw] = conv.strides;
    const [dh, dw] = conv.dilations;
    const [pt, pl, pb, pr] = conv.pads;
    const mid = uniqueName(`${orig.output[0]}_${rep.method}`, taken);
    const nodes: NodeProto[] = [];
    const biasTypes = orig.input[2] ? (this.constFloat(orig.input[2]) ?? cn.weight) : cn.weight;
    const init = (suffix: string, dims: number[], values: Float32Array, types = cn.weight) =>
      this.addConst(graph, taken, asInputs, `${base}_${suffix}`, dims, values, types, nodes, true);
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
    const biasInputs = rep.bias ? [init('bias', [n], rep.bias, biasTypes)] : [];
    const pointwiseAttrs = geometry([1, 1], [1, 1], [1, 1], [0, 0, 0, 0], 1);
    const out = orig.output[0];
    const midInfo = (channels: number, sameWidthAsInput: boolean) =>
      graph.value_info.push(
        this.activationInfo(
          mid,
          cn.weight.computeType,
          channels,
          conv.outH,
          sameWidthAsInput ? conv.inW : conv.outW,
          out,
          sameWidthAsInput ? orig.input[0] : out,
        ),
      );

    if (rep.method === 'dac') {
      const r = rep.rank;
      const dwW = init('dw_weight', [c * r, 1, kh, kw], rep.depthwise);
      const pwW = init('pw_weight', [n, c * r, 1, 1], rep.pointwise);
      midInfo(c * r, false);
      return [
        ...nodes,
        node('dw', [orig.input[0], dwW], mid, geometry([kh, kw], [sh, sw], [dh, dw], [pt, pl, pb, pr], c)),
        node('pw', [mid, pwW, ...biasInputs], out, pointwiseAttrs),
      ];
    }
    if (rep.method === 'spatial') {
      const w = rep.width;
      const vW = init('v_weight', [w, c, kh, 1], rep.vertical);
      const hW = init('h_weight', [n, w, 1, kw], rep.horizontal);
      midInfo(w, true);
      return [
        ...nodes,
        node('v', [orig.input[0], vW], mid, geometry([kh, 1], [sh, 1], [dh, 1], [pt, 0, pb, 0], 1)),
        node('h', [mid, hW, ...biasInputs], out, geometry([1, kw], [1, sw], [1, dw], [0, pl, 0, pr], 1)),
      ];
    }
    const w = rep.width;
    const fW = init('c1_weight', [w, c, kh, kw], rep.first);
    const sW = init('c2_weight', [n, w, 1, 1], rep.second);
    midInfo(w, false);
    return [
      ...nodes,
      node('c1', [orig.input[0], fW], mid, geometry([kh, kw], [sh, sw], [dh, dw], [pt, pl, pb, pr], 1)),
      node('c2', [mid, sW, ...biasInputs], out, pointwiseAttrs),
    ];
  }

  foldBatchNorm(): OnnxModel {
    const proto = this.cloneProto();
    const graph = proto.graph!;
    const taken = allNames(graph);
    const asInputs = this.listsInitializersAsInputs();
    const removed = new Set<number>();
    const removedTensors = new Set<string>();
    const inserted = new Map<number, NodeProto[]>();
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
      const nodes: NodeProto[] = [];
      // New tensors (never the originals in place): a weight may be shared with another conv.
      const wName = this.addConst(graph, taken, asInputs, `${base}_bnfold_weight`, cn.weight.dims, folded.weights, cn.weight, nodes, false);
      const bName = this.addConst(graph, taken, asInputs, `${base}_bnfold_bias`, [info.n], folded.bias, cn.weight, nodes, false);
      removedTensors.add(conv.output[0]);
      conv.input = [conv.input[0], wName, bName];
      conv.output = [bnNode.output[0]];
      removed.add(cn.foldableBn);
      inserted.set(cn.node, nodes);
    }
    if (removed.size === 0) return this;
    graph.node = graph.node.flatMap((n, i) => (removed.has(i) ? [] : [...(inserted.get(i) ?? []), n]));
    graph.value_info = graph.value_info.filter((v) => !removedTensors.has(v.name!));
    pruneUnused(graph);
    this.ownInitializers(graph);
    return new OnnxModel(this.path, proto, this.options, this.finite);
  }

  /** Writes the .onnx file atomically (src/io/output.ts): never over the input or a file dac did not create. */
  async save(outPath: string): Promise<void> {
    const target = nodePath.resolve(outPath);
    const name = nodePath.basename(target);
    await placeOutput({ target, kind: 'file', inputs: [this.path] }, { files: new Map([[name, this.outputChunks()]]), commit: name });
  }
}
