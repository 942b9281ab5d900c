// Static shape inference over an ONNX graph for one image (batch 1), enough
// to size every conv and every tensor the writer adds. The ops CNN exporters
// emit are handled, including the integer arithmetic exporters put in the
// graph to compute sizes at run time (Shape -> Gather/Slice -> Concat ->
// Resize/Reshape): small integer and float tensors are evaluated, so such
// chains come out as numbers at the input size the caller fixes. Anything
// else falls back to the shapes the model declares in value_info, else it
// stays unknown with the reason recorded.
import type { ErrorContext } from '../../errors.js';
import { convOutputSize, samePadding } from '../../geometry.js';
import { DataType, toNumber, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './schema.js';
import { attrFloat, attrFloats, attrInt, attrInts, attrString, attrTensor, tensorDims, tensorFloats, tensorInts } from './tensors.js';

export type Shape = number[];

/** Values of a small tensor known before run time, row-major; `int` for integer types. */
export interface Value {
  data: number[];
  int: boolean;
}

/** Tensors up to this many elements are evaluated (shape arithmetic, scales, small constants). */
const MAX_VALUE_ELEMENTS = 1024;

const INT_TYPES = new Set<number>([2, 3, 4, 5, 6, 7, 12, 13, 9]); // uint8, int8, uint16, int16, int32, int64, uint32, uint64, bool

/** Declared dims of a value: free ones (dim_param or no value) are -1. */
export function declaredShape(v: ValueInfoProto): Shape | null {
  const dims = v.type?.tensor_type?.shape?.dim;
  if (!dims) return null;
  return dims.map((d) =>
    Object.prototype.hasOwnProperty.call(d, 'dim_value') && d.dim_value !== undefined && d.dim_value !== null ? toNumber(d.dim_value) : -1,
  );
}

function known(s: Shape | undefined): s is Shape {
  return !!s && s.every((d) => Number.isSafeInteger(d) && d >= 0);
}

const count = (s: Shape) => s.reduce((a, b) => a * b, 1);

function broadcast(shapes: Shape[]): Shape | undefined {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) return undefined;
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Resolved spatial pads [top, left, bottom, right] of a Conv/Pool node over an NCHW input. */
export function resolvePads(
  node: NodeProto,
  inH: number,
  inW: number,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): [number, number, number, number] {
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    // samePadding puts the odd pixel after (SAME_UPPER); SAME_LOWER puts it before.
    const axis = (size: number, k: number, s: number, d: number): [number, number] => {
      const [before, after] = samePadding(size, k, s, d);
      return autoPad === 'SAME_UPPER' ? [before, after] : [after, before];
    };
    const [t, b] = axis(inH, kernel[0], strides[0], dilations[0]);
    const [l, r] = axis(inW, kernel[1], strides[1], dilations[1]);
    return [t, l, b, r];
  }
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  const pads = attrInts(node, 'pads') ?? [0, 0, 0, 0];
  return [pads[0] ?? 0, pads[1] ?? 0, pads[2] ?? 0, pads[3] ?? 0];
}

function pair(v: number[] | null, fallback: number): [number, number] {
  return [v?.[0] ?? fallback, v?.[1] ?? fallback];
}

/**
 * Pooling output length with ceil_mode: as PyTorch and onnxruntime count it,
 * a last window that would start in the right padding is dropped.
 */
function ceilPoolSize(size: number, k: number, s: number, d: number, before: number, after: number): number {
  let out = Math.ceil((size + before + after - ((k - 1) * d + 1)) / s) + 1;
  if ((out - 1) * s >= size + before) out--;
  return out;
}

export interface ShapeContext {
  graph: GraphProto;
  initializers: Map<string, TensorProto>;
  ctx: ErrorContext;
  /** Shapes of graph inputs that replace what the model declares (free sizes fixed). */
  inputs?: Map<string, Shape>;
}

export interface GraphShapes {
  /** Shapes (batch 1) of every tensor that could be inferred. */
  shapes: Map<string, Shape>;
  /** Values of the small tensors known before run time. */
  values: Map<string, Value>;
  /** For a tensor whose shape is unknown: where inference stopped, in words. */
  unknown: Map<string, string>;
}

function normAxis(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

/** Applies a binary op to two values with scalar or equal-length broadcasting. */
function elementwise(a: Value, b: Value, f: (x: number, y: number) => number): Value | undefined {
  const n = Math.max(a.data.length, b.data.length);
  if (a.data.length !== n && a.data.length !== 1) return undefined;
  if (b.data.length !== n && b.data.length !== 1) return undefined;
  const data = Array.from({ length: n }, (_, i) => f(a.data[a.data.length === 1 ? 0 : i], b.data[b.data.length === 1 ? 0 : i]));
  return { data, int: a.int && b.int };
}

/** start/end/step of one Slice axis, clamped as the operator does. */
function sliceRange(dim: number, start: number, end: number, step: number): number[] {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
  } else {
    s = clamp(s, -1, dim - 1);
    e = clamp(e, -1, dim - 1);
  }
  const idx: number[] = [];
  for (let i = s; step > 0 ? i < e : i > e; i += step) idx.push(i);
  return idx;
}

/** Shapes and small values of every tensor that can be inferred, at the input shapes given. */
export function inferShapes({ graph, initializers, ctx, inputs }: ShapeContext): GraphShapes {
  const shapes = new Map<string, Shape>();
  const values = new Map<string, Value>();
  const unknown = new Map<string, string>();
  const constValue = (t: TensorProto): Value | undefined => {
    const dims = tensorDims(t);
    if (count(dims) > MAX_VALUE_ELEMENTS) return undefined;
    try {
      if (t.data_type === DataType.INT64 || t.data_type === DataType.INT32) return { data: tensorInts(t, ctx), int: true };
      if (t.data_type === DataType.FLOAT || t.data_type === DataType.FLOAT16 || t.data_type === DataType.DOUBLE) {
        return { data: Array.from(tensorFloats(t, ctx)), int: false };
      }
    } catch {
      return undefined;
    }
    return undefined;
  };
  for (const [name, t] of initializers) {
    shapes.set(name, tensorDims(t));
    const v = constValue(t);
    if (v) values.set(name, v);
  }
  for (const v of graph.input) {
    if (!v.name || shapes.has(v.name)) continue;
    const s = inputs?.get(v.name) ?? declaredShape(v);
    if (s && known(s)) shapes.set(v.name, s);
    else unknown.set(v.name, `graph input ${v.name} has free dimensions`);
  }
  // Declared shapes of intermediate tensors, a free leading dim taken as the batch the input is evaluated at.
  const batch = inputs ? ([...inputs.values()][0]?.[0] ?? 1) : 1;
  const declared = new Map<string, Shape>();
  for (const v of [...graph.value_info, ...graph.output]) {
    const s = declaredShape(v)?.map((d, i) => (i === 0 && d < 0 ? batch : d));
    if (v.name && s && known(s)) declared.set(v.name, s);
  }
  const valuesOf = (name: string | undefined): number[] | null => {
    const v = name ? values.get(name) : undefined;
    return v ? v.data : null;
  };

  for (const node of graph.node) {
    const inShapes = node.input.map((n) => (n ? shapes.get(n) : undefined));
    const inValues = node.input.map((n) => (n ? values.get(n) : undefined));
    const x = inShapes[0];
    const xv = inValues[0];
    const outs: (Shape | undefined)[] = [];
    let value: Value | undefined;
    const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}:${node.op_type}` : node.op_type;
    switch (op) {
      case 'Constant': {
        const t = attrTensor(node, 'value');
        if (t) {
          outs[0] = tensorDims(t);
          value = constValue(t);
          break;
        }
        const i = attrInts(node, 'value_ints');
        const f = attrFloats(node, 'value_floats');
        const has = (k: string) => node.attribute.some((a) => a.name === k);
        if (i) [outs[0], value] = [[i.length], { data: i, int: true }];
        else if (f) [outs[0], value] = [[f.length], { data: f, int: false }];
        else if (has('value_int')) [outs[0], value] = [[], { data: [attrInt(node, 'value_int', 0)], int: true }];
        else if (has('value_float')) [outs[0], value] = [[], { data: [attrFloat(node, 'value_float', 0)], int: false }];
        break;
      }
      case 'Conv':
      case 'MaxPool':
      case 'AveragePool':
      case 'LpPool': {
        if (!known(x) || x.length !== 4) break;
        const w = inShapes[1];
        let kernel = pair(attrInts(node, 'kernel_shape'), 0);
        if (op === 'Conv' && (!kernel[0] || !kernel[1]) && w && w.length === 4) kernel = [w[2], w[3]];
        if (!kernel[0] || !kernel[1]) break;
        const strides = pair(attrInts(node, 'strides'), 1);
        const dil = pair(attrInts(node, 'dilations'), 1);
        const p = resolvePads(node, x[2], x[3], kernel, strides, dil);
        const ceil = op !== 'Conv' && attrInt(node, 'ceil_mode', 0) === 1;
        const size = ceil ? ceilPoolSize : convOutputSize;
        const channels = op === 'Conv' ? (w ? w[0] : -1) : x[1];
        outs[0] = [x[0], channels, size(x[2], kernel[0], strides[0], dil[0], p[0], p[2]), size(x[3], kernel[1], strides[1], dil[1], p[1], p[3])];
        if (op === 'MaxPool' && node.output[1]) outs[1] = outs[0];
        break;
      }
      case 'ConvTranspose': {
        const w = inShapes[1];
        if (!known(x) || x.length !== 4 || !known(w) || w.length !== 4) break;
        const group = attrInt(node, 'group', 1);
        const declaredOut = attrInts(node, 'output_shape');
        if (declaredOut && declaredOut.length === 2) {
          outs[0] = [x[0], w[1] * group, declaredOut[0], declaredOut[1]];
          break;
        }
        if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET' && attrString(node, 'auto_pad', 'NOTSET') !== 'VALID') break;
        const strides = pair(attrInts(node, 'strides'), 1);
        const dil = pair(attrInts(node, 'dilations'), 1);
        const outPad = pair(attrInts(node, 'output_padding'), 0);
        const p = attrString(node, 'auto_pad', 'NOTSET') === 'VALID' ? [0, 0, 0, 0] : (attrInts(node, 'pads') ?? [0, 0, 0, 0]);
        const size = (n: number, k: number, s: number, d: number, op0: number, a: number, b: number) => s * (n - 1) + op0 + (k - 1) * d + 1 - a - b;
        outs[0] = [
          x[0],
          w[1] * group,
          size(x[2], w[2], strides[0], dil[0], outPad[0], p[0], p[2]),
          size(x[3], w[3], strides[1], dil[1], outPad[1], p[1], p[3]),
        ];
        break;
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
      case 'GlobalLpPool':
        if (x) outs[0] = [x[0], x[1], ...x.slice(2).map(() => 1)];
        break;
      case 'Identity':
        outs[0] = x;
        value = xv;
        break;
      case 'Cast': {
        outs[0] = x;
        const to = attrInt(node, 'to', DataType.FLOAT);
        if (xv) value = INT_TYPES.has(to) ? { data: xv.data.map(Math.trunc), int: true } : { data: xv.data.slice(), int: false };
        break;
      }
      case 'Floor':
      case 'Ceil':
      case 'Neg':
      case 'Sqrt':
      case 'Abs':
      case 'Round': {
        outs[0] = x;
        const f = { Floor: Math.floor, Ceil: Math.ceil, Neg: (v: number) => -v, Sqrt: Math.sqrt, Abs: Math.abs, Round: Math.round }[op];
        if (xv) value = { data: xv.data.map(f), int: xv.int };
        break;
      }
      case 'BatchNormalization':
      case 'InstanceNormalization':
      case 'LayerNormalization':
      case 'LRN':
      case 'Relu':
      case 'LeakyRelu':
      case 'Elu':
      case 'Selu':
      case 'Celu':
      case 'Gelu':
      case 'Sigmoid':
      case 'HardSigmoid':
      case 'HardSwish':
      case 'Tanh':
      case 'Softplus':
      case 'Softsign':
      case 'Mish':
      case 'Clip':
      case 'Dropout':
      case 'Softmax':
      case 'LogSoftmax':
      case 'Exp':
      case 'Log':
      case 'Erf':
      case 'Sign':
      case 'Reciprocal':
      case 'Not':
      case 'IsNaN':
      case 'Shrink':
      case 'ThresholdedRelu':
        outs[0] = x;
        break;
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Pow':
      case 'Max':
      case 'Min':
      case 'Sum':
      case 'Mean':
      case 'Where':
      case 'PRelu':
      case 'Mod':
      case 'Equal':
      case 'Less':
      case 'Greater':
      case 'LessOrEqual':
      case 'GreaterOrEqual':
      case 'And':
      case 'Or':
      case 'Xor': {
        if (inShapes.every(known)) outs[0] = broadcast(inShapes as Shape[]);
        const [a, b] = inValues;
        if (a && b && node.input.length === 2) {
          const intDiv = (p: number, q: number) => (a.int && b.int ? Math.trunc(p / q) : p / q);
          const f = { Add: (p: number, q: number) => p + q, Sub: (p: number, q: number) => p - q, Mul: (p: number, q: number) => p * q, Div: intDiv, Max: Math.max, Min: Math.min }[
            op as 'Add'
          ];
          if (f) value = elementwise(a, b, f);
        }
        break;
      }
      case 'Flatten': {
        if (!known(x)) break;
        const axis = normAxis(attrInt(node, 'axis', 1), x.length);
        outs[0] = [count(x.slice(0, axis)), count(x.slice(axis))];
        if (xv) value = xv;
        break;
      }
      case 'Gemm': {
        const b = inShapes[1];
        if (!known(x) || !known(b) || x.length !== 2 || b.length !== 2) break;
        const m = attrInt(node, 'transA', 0) ? x[1] : x[0];
        const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
        outs[0] = [m, n];
        break;
      }
      case 'MatMul': {
        const b = inShapes[1];
        if (!known(x) || !known(b) || x.length < 1 || b.length < 1) break;
        const a2 = x.length === 1 ? [1, x[0]] : x;
        const b2 = b.length === 1 ? [b[0], 1] : b;
        const batch = broadcast([a2.slice(0, -2), b2.slice(0, -2)]);
        if (!batch) break;
        const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
        if (x.length === 1) out.splice(out.length - 2, 1);
        if (b.length === 1) out.pop();
        outs[0] = out;
        break;
      }
      case 'Reshape': {
        const target = valuesOf(node.input[1]);
        if (!known(x) || !target) break;
        const allowZero = attrInt(node, 'allowzero', 0) === 1;
        const dims = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
        const fixed = count(dims.filter((d) => d !== -1));
        const out = dims.map((d) => (d === -1 ? (fixed ? count(x) / fixed : 0) : d));
        if (count(out) === count(x)) outs[0] = out;
        if (xv) value = xv;
        break;
      }
      case 'Squeeze': {
        if (!known(x)) break;
        const raw = attrInts(node, 'axes') ?? (node.input[1] ? valuesOf(node.input[1]) : x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0));
        if (!raw) break;
        const axes = raw.map((a) => normAxis(a, x.length));
        outs[0] = x.filter((_, i) => !axes.includes(i));
        if (xv) value = xv;
        break;
      }
      case 'Unsqueeze': {
        if (!known(x)) break;
        const raw = attrInts(node, 'axes') ?? valuesOf(node.input[1]);
        if (!raw) break;
        const rank = x.length + raw.length;
        const axes = raw.map((a) => normAxis(a, rank));
        const rest = x.slice();
        outs[0] = Array.from({ length: rank }, (_, i) => (axes.includes(i) ? 1 : rest.shift()!));
        if (xv) value = xv;
        break;
      }
      case 'Transpose': {
        if (!x) break;
        const perm = attrInts(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
        outs[0] = perm.map((p) => x[p]);
        break;
      }
      case 'Concat': {
        if (!inShapes.every(known) || inShapes.length === 0) break;
        const list = inShapes as Shape[];
        const axis = normAxis(attrInt(node, 'axis', 0), list[0].length);
        const out = list[0].slice();
        out[axis] = list.reduce((p, s) => p + s[axis], 0);
        outs[0] = out;
        if (list[0].length === 1 && inValues.every((v) => v)) {
          value = { data: inValues.flatMap((v) => v!.data), int: inValues.every((v) => v!.int) };
        }
        break;
      }
      case 'Pad': {
        if (!known(x)) break;
        const pads = attrInts(node, 'pads') ?? valuesOf(node.input[1]);
        if (!pads) break;
        const axesIn = node.input[3] ? valuesOf(node.input[3]) : null;
        if (node.input[3] && !axesIn) break;
        const axes = axesIn ? axesIn.map((a) => normAxis(a, x.length)) : x.map((_, i) => i);
        if (pads.length !== 2 * axes.length) break;
        const out = x.slice();
        axes.forEach((a, i) => (out[a] += pads[i] + pads[i + axes.length]));
        outs[0] = out;
        break;
      }
      case 'Shape': {
        if (!x) break;
        let start = normAxis(attrInt(node, 'start', 0), x.length);
        const endAttr = node.attribute.some((a) => a.name === 'end') ? attrInt(node, 'end', x.length) : x.length;
        let end = normAxis(endAttr, x.length);
        start = Math.min(Math.max(start, 0), x.length);
        end = Math.min(Math.max(end, 0), x.length);
        const dims = x.slice(start, Math.max(start, end));
        outs[0] = [dims.length];
        if (known(dims)) value = { data: dims, int: true };
        break;
      }
      case 'Size':
        outs[0] = [];
        if (known(x)) value = { data: [count(x)], int: true };
        break;
      case 'Gather': {
        const idxShape = inShapes[1];
        if (!known(x) || !known(idxShape)) break;
        const axis = normAxis(attrInt(node, 'axis', 0), x.length);
        outs[0] = [...x.slice(0, axis), ...idxShape, ...x.slice(axis + 1)];
        const iv = inValues[1];
        if (xv && iv && x.length === 1) value = { data: iv.data.map((i) => xv.data[i < 0 ? i + x[0] : i]), int: xv.int };
        break;
      }
      case 'Slice': {
        if (!known(x)) break;
        const opsetAttrs = attrInts(node, 'starts') !== null;
        const starts = opsetAttrs ? attrInts(node, 'starts') : valuesOf(node.input[1]);
        const ends = opsetAttrs ? attrInts(node, 'ends') : valuesOf(node.input[2]);
        if (!starts || !ends) break;
        const axesIn = opsetAttrs ? attrInts(node, 'axes') : node.input[3] ? valuesOf(node.input[3]) : null;
        if (!opsetAttrs && node.input[3] && !axesIn) break;
        const stepsIn = !opsetAttrs && node.input[4] ? valuesOf(node.input[4]) : null;
        if (!opsetAttrs && node.input[4] && !stepsIn) break;
        const axes = (axesIn ?? starts.map((_, i) => i)).map((a) => normAxis(a, x.length));
        const out = x.slice();
        let picked: number[] | null = null;
        axes.forEach((a, i) => {
          const idx = sliceRange(x[a], starts[i], ends[i], stepsIn?.[i] ?? 1);
          out[a] = idx.length;
          if (x.length === 1) picked = idx;
        });
        outs[0] = out;
        if (xv && x.length === 1) value = { data: (picked ?? xv.data.map((_, i) => i)).map((i) => xv.data[i]), int: xv.int };
        break;
      }
      case 'Split': {
        if (!known(x)) break;
        const axis = normAxis(attrInt(node, 'axis', 0), x.length);
        const parts = node.output.length;
        let split = attrInts(node, 'split') ?? (node.input[1] ? valuesOf(node.input[1]) : null);
        if (node.input[1] && !split) break;
        if (!split) {
          const each = Math.ceil(x[axis] / parts);
          split = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(each, x[axis] - i * each)));
        }
        split.forEach((d, i) => {
          const s = x.slice();
          s[axis] = d;
          outs[i] = s;
        });
        break;
      }
      case 'Resize':
      case 'Upsample': {
        if (!known(x)) break;
        // Upsample and opset-10 Resize take scales second; opset 11+ Resize takes roi, scales, sizes.
        const scalesName = op === 'Upsample' || node.input.length === 2 ? node.input[1] : node.input[2];
        const sizes = op === 'Resize' && node.input[3] ? valuesOf(node.input[3]) : null;
        const axesAttr = attrInts(node, 'axes');
        const axes = axesAttr ? axesAttr.map((a) => normAxis(a, x.length)) : x.map((_, i) => i);
        const out = x.slice();
        if (sizes && sizes.length === axes.length) {
          axes.forEach((a, i) => (out[a] = sizes[i]));
          outs[0] = out;
          break;
        }
        const scales = attrFloats(node, 'scales') ?? (scalesName ? valuesOf(scalesName) : null);
        if (!scales || scales.length !== axes.length) break;
        // floor(input * scale), the product in float32 as the runtimes compute it.
        axes.forEach((a, i) => (out[a] = Math.floor(Math.fround(x[a] * scales[i]))));
        outs[0] = out;
        break;
      }
      case 'DepthToSpace':
      case 'SpaceToDepth': {
        if (!known(x) || x.length !== 4) break;
        const b = attrInt(node, 'blocksize', 1);
        outs[0] = op === 'DepthToSpace' ? [x[0], x[1] / (b * b), x[2] * b, x[3] * b] : [x[0], x[1] * b * b, x[2] / b, x[3] / b];
        break;
      }
      case 'Expand': {
        const target = valuesOf(node.input[1]);
        if (!known(x) || !target) break;
        outs[0] = broadcast([x, target]);
        break;
      }
      case 'Tile': {
        const reps = valuesOf(node.input[1]);
        if (!known(x) || !reps || reps.length !== x.length) break;
        outs[0] = x.map((d, i) => d * reps[i]);
        break;
      }
      case 'ConstantOfShape': {
        const dims = valuesOf(node.input[0]);
        if (!dims) break;
        outs[0] = dims;
        const t = attrTensor(node, 'value');
        const fill = t ? constValue(t) : { data: [0], int: false };
        if (fill && count(dims) <= MAX_VALUE_ELEMENTS) value = { data: new Array(count(dims)).fill(fill.data[0] ?? 0), int: fill.int };
        break;
      }
      case 'Range': {
        const [s, l, d] = [valuesOf(node.input[0]), valuesOf(node.input[1]), valuesOf(node.input[2])];
        if (!s || !l || !d || d[0] === 0) break;
        const n = Math.max(Math.ceil((l[0] - s[0]) / d[0]), 0);
        outs[0] = [n];
        if (n <= MAX_VALUE_ELEMENTS) value = { data: Array.from({ length: n }, (_, i) => s[0] + i * d[0]), int: !!inValues[0]?.int };
        break;
      }
      case 'ReduceMean':
      case 'ReduceSum':
      case 'ReduceMax':
      case 'ReduceMin':
      case 'ReduceProd':
      case 'ReduceL1':
      case 'ReduceL2':
      case 'ReduceLogSum':
      case 'ReduceLogSumExp':
      case 'ReduceSumSquare':
      case 'ArgMax':
      case 'ArgMin': {
        if (!known(x)) break;
        const keep = attrInt(node, 'keepdims', 1) === 1;
        let raw: number[] | null;
        if (op === 'ArgMax' || op === 'ArgMin') raw = [attrInt(node, 'axis', 0)];
        else raw = attrInts(node, 'axes') ?? (node.input[1] ? valuesOf(node.input[1]) : null);
        if (node.input[1] && !raw) break;
        if (!raw || raw.length === 0) {
          if (attrInt(node, 'noop_with_empty_axes', 0) === 1) {
            outs[0] = x;
            break;
          }
          raw = x.map((_, i) => i);
        }
        const axes = raw.map((a) => normAxis(a, x.length));
        outs[0] = keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i));
        break;
      }
      default:
        break;
    }
    node.output.forEach((name, i) => {
      if (!name) return;
      const out = outs[i];
      if (known(out)) shapes.set(name, out);
      else if (declared.has(name)) shapes.set(name, declared.get(name)!);
      else {
        const missing = node.input.find((n) => n && !shapes.has(n));
        const label = node.name ? `${op} node ${node.name}` : `${op} node (output ${name})`;
        unknown.set(
          name,
          missing !== undefined
            ? (unknown.get(missing) ?? `the size of ${missing} is unknown`)
            : `shape inference stops at the ${label}: its output size depends on values known only at run time or on an op it does not cover`,
        );
      }
    });
    if (value && node.output[0] && shapes.has(node.output[0]) && value.data.length === count(shapes.get(node.output[0])!)) {
      values.set(node.output[0], value);
    }
  }
  return { shapes, values, unknown };
}
