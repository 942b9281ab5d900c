// Static shapes through a graph model, for MAC accounting: from the input
// (signature or Placeholder, free sizes fixed by the caller) node by node in
// topological order. An op without a rule here, or one whose shape depends
// on values only known at run time, makes its outputs unknown with the
// reason, and everything downstream inherits that reason instead of failing.
import { convOutputSize, samePadding } from '../../geometry.js';
import { attrBool, attrInt, attrInts, attrString, dataInputs, protoDims, refKey, type Graph, type GraphNode, type TensorRef } from './graph.js';

/** A known shape, or why it is not known. */
export type ShapeOf = number[] | string;

export interface ShapeContext {
  graph: Graph;
  /** Fixed shapes of the graph inputs (Placeholder name -> dims). */
  inputs: Map<string, number[]>;
  /** Values of a small integer constant (pads, axes, target shapes), or null if not a readable constant. */
  constInts(ref: TensorRef): number[] | null;
}

const UNARY = new Set([
  'Identity', 'Snapshot', 'StopGradient', 'Relu', 'Relu6', 'Elu', 'Selu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'Softplus',
  'Softsign', 'Swish', 'Cast', 'Neg', 'Abs', 'Sqrt', 'Rsqrt', 'Exp', 'Log', 'Log1p', 'Square', 'Floor', 'Ceil', 'Round',
  'Reciprocal', 'Sign', 'Sin', 'Cos', 'Erf', 'IsNan', 'LogicalNot', 'Softmax', 'LogSoftmax', 'BiasAdd', 'Prelu',
  'ClipByValue', 'ZerosLike', 'OnesLike', 'FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3', 'LRN', 'Atan', 'Tan', 'Asin', 'Acos',
]);

const BINARY = new Set([
  'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Div', 'DivNoNan', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference',
  'FloorDiv', 'FloorMod', 'Mod', 'Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'LogicalAnd',
  'LogicalOr', 'Atan2',
]);

const ONE_INPUT = new Set(['Shape', 'Squeeze', 'Unpack', 'AddN', 'Pack', 'MaxPool', 'AvgPool', 'Select', 'SelectV2', 'DepthToSpace', 'SpaceToDepth', 'Fill']);
const TWO_INPUTS = new Set([
  'Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative', 'Pad', 'PadV2', 'MirrorPad', 'ConcatV2',
  'Mean', 'Sum', 'Max', 'Min', 'Prod', 'Reshape', 'ResizeBilinear', 'ResizeNearestNeighbor', 'Transpose', 'ExpandDims',
  'MatMul', '_FusedMatMul', 'BatchMatMul', 'BatchMatMulV2', 'GatherV2', 'GatherNd', 'StridedSlice',
]);

export const CONV_OPS = new Set(['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative']);

/** Layout axes of a 4-D activation: [h, w, c]. */
export function layoutAxes(node: GraphNode): [number, number, number] {
  return attrString(node, 'data_format') === 'NCHW' ? [2, 3, 1] : [1, 2, 3];
}

/** Padding of one conv/pool on H and W as [top, left, bottom, right], or a reason. */
export function resolvePads(
  node: GraphNode,
  x: number[],
  kh: number,
  kw: number,
  strides: [number, number],
  dilations: [number, number],
): [number, number, number, number] | string {
  const [ha, wa] = layoutAxes(node);
  const padding = attrString(node, 'padding') ?? 'VALID';
  if (padding === 'VALID') return [0, 0, 0, 0];
  if (padding === 'SAME') {
    const [t, b] = samePadding(x[ha], kh, strides[0], dilations[0]);
    const [l, r] = samePadding(x[wa], kw, strides[1], dilations[1]);
    return [t, l, b, r];
  }
  if (padding === 'EXPLICIT') {
    const e = attrInts(node, 'explicit_paddings') ?? [];
    if (e.length !== 8 || e.some((v) => !Number.isInteger(v) || v < 0)) return `explicit_paddings must be 8 non-negative integers, got [${e.join(', ')}]`;
    return [e[2 * ha], e[2 * wa], e[2 * ha + 1], e[2 * wa + 1]];
  }
  return `padding ${padding} is not SAME, VALID or EXPLICIT`;
}

/** [h, w] of a 4-element NHWC/NCHW attribute list (strides, dilations, ksize). */
export function spatialPair(node: GraphNode, key: string): [number, number] | string {
  const v = attrInts(node, key);
  if (v === undefined) return [1, 1];
  const [ha, wa] = layoutAxes(node);
  if (v.length !== 4 || v.some((d) => !Number.isInteger(d) || d < 1)) return `${key} must be 4 positive integers, got [${v.join(', ')}]`;
  return [v[ha], v[wa]];
}

function broadcast(a: number[], b: number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Output shapes of one node from its inputs' (all known), or a reason. */
function rule(node: GraphNode, xs: number[][], c: ShapeContext): number[][] | string {
  const op = node.op;
  const ins = dataInputs(node);
  const x = xs[0];
  const need = UNARY.has(op) || ONE_INPUT.has(op) ? 1 : BINARY.has(op) || TWO_INPUTS.has(op) ? 2 : op === 'DacConv2D' ? 3 : 0;
  if (xs.length < need) return `has ${xs.length} data inputs, needs ${need}`;
  if (UNARY.has(op)) return [x];
  if (BINARY.has(op)) {
    const out = broadcast(xs[0], xs[1]);
    return out ? [out] : `cannot broadcast [${xs[0].join(', ')}] with [${xs[1].join(', ')}]`;
  }
  switch (op) {
    case 'AddN':
    case 'Select':
    case 'SelectV2':
      return [xs[xs.length - 1]];
    case 'IdentityN':
      return xs;
    case 'Shape':
      return [[x.length]];
    case 'Conv2D':
    case '_FusedConv2D':
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2dNative':
    case 'DacConv2D':
    case 'MaxPool':
    case 'AvgPool': {
      if (x.length !== 4) return `input has rank ${x.length}, expected 4`;
      const pool = op === 'MaxPool' || op === 'AvgPool';
      const f = xs[1];
      const k = pool ? spatialPair(node, 'ksize') : [f[0], f[1]];
      const strides = spatialPair(node, 'strides');
      const dil = pool ? ([1, 1] as [number, number]) : spatialPair(node, 'dilations');
      for (const v of [k, strides, dil]) if (typeof v === 'string') return v;
      const [kh, kw] = k as [number, number];
      const pads = resolvePads(node, x, kh, kw, strides as [number, number], dil as [number, number]);
      if (typeof pads === 'string') return pads;
      const [ha, wa, ca] = layoutAxes(node);
      const out = x.slice();
      out[ha] = convOutputSize(x[ha], kh, (strides as number[])[0], (dil as number[])[0], pads[0], pads[2]);
      out[wa] = convOutputSize(x[wa], kw, (strides as number[])[1], (dil as number[])[1], pads[1], pads[3]);
      // DacConv2D (dac-node.ts): x, depthwise [kh, kw, c, r], pointwise [1, 1, c*r, n].
      if (!pool) out[ca] = op === 'DacConv2D' ? xs[2][3] : op.includes('Depthwise') ? f[2] * f[3] : f[3];
      if (out[ha] < 1 || out[wa] < 1) return `output would be ${out[ha]}x${out[wa]} (input too small for the kernel)`;
      return [out];
    }
    case 'Pad':
    case 'PadV2':
    case 'MirrorPad': {
      const p = c.constInts(ins[1]);
      if (!p || p.length !== 2 * x.length) return 'paddings are not a constant of the right size';
      return [x.map((d, i) => d + p[2 * i] + p[2 * i + 1])];
    }
    case 'ConcatV2': {
      const axis = c.constInts(ins[ins.length - 1]);
      if (!axis || axis.length !== 1) return 'axis is not a constant';
      const parts = xs.slice(0, -1);
      const a = norm(axis[0], x.length);
      const out = x.slice();
      out[a] = parts.reduce((s, p) => s + p[a], 0);
      return [out];
    }
    case 'Mean':
    case 'Sum':
    case 'Max':
    case 'Min':
    case 'Prod': {
      const axes = c.constInts(ins[1]);
      if (!axes) return 'reduction axes are not a constant';
      const set = new Set(axes.map((a) => norm(a, x.length)));
      const keep = attrBool(node, 'keep_dims') ?? false;
      return [keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i))];
    }
    case 'Reshape': {
      const shape = c.constInts(ins[1]);
      if (!shape) return 'target shape is not a constant';
      const total = x.reduce((a, b) => a * b, 1);
      const known = shape.reduce((a, b) => (b === -1 ? a : a * b), 1);
      return [shape.map((d) => (d === -1 ? total / known : d))];
    }
    case 'ResizeBilinear':
    case 'ResizeNearestNeighbor': {
      const size = c.constInts(ins[1]);
      if (!size || size.length !== 2) return 'size is not a constant';
      return [[x[0], size[0], size[1], x[3]]];
    }
    case 'Transpose': {
      const perm = c.constInts(ins[1]);
      if (!perm || perm.length !== x.length) return 'perm is not a constant';
      return [perm.map((p) => x[p])];
    }
    case 'ExpandDims': {
      const axis = c.constInts(ins[1]);
      if (!axis || axis.length !== 1) return 'axis is not a constant';
      const out = x.slice();
      out.splice(norm(axis[0], x.length + 1), 0, 1);
      return [out];
    }
    case 'Squeeze': {
      const dims = attrInts(node, 'squeeze_dims') ?? [];
      const set = new Set(dims.map((d) => norm(d, x.length)));
      return [x.filter((d, i) => (set.size ? !set.has(i) : d !== 1))];
    }
    case 'StridedSlice': {
      const [begin, end, strides] = [1, 2, 3].map((i) => (ins[i] ? c.constInts(ins[i]) : null));
      if (!begin || !end || !strides || begin.length !== end.length || begin.length !== strides.length || begin.length > x.length) {
        return 'begin, end and strides are not constants of one length';
      }
      const mask = (key: string) => attrInt(node, key) ?? 0;
      if (mask('ellipsis_mask') || mask('new_axis_mask')) return 'ellipsis and new-axis masks have no rule here';
      const out: number[] = [];
      x.forEach((dim, i) => {
        if (i >= begin.length) return out.push(dim);
        const s = strides[i];
        const bit = (key: string) => (mask(key) >> i) & 1;
        const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v < 0 ? v + dim : v));
        const [lo, hi] = s > 0 ? [0, dim] : [-1, dim - 1];
        const b = bit('begin_mask') ? (s > 0 ? 0 : dim - 1) : clamp(begin[i], lo, hi);
        const e = bit('end_mask') ? (s > 0 ? dim : -1) : clamp(end[i], lo, hi);
        if (bit('shrink_axis_mask')) return undefined;
        out.push(s === 0 ? NaN : Math.max(0, Math.ceil((e - b) / s)));
      });
      return [out];
    }
    case 'Fill':
    case 'Conv2DBackpropInput': {
      // The output size is an input's value: Fill(dims, v), Conv2DBackpropInput(input_sizes, filter, dy).
      const size = c.constInts(ins[0]);
      return size ? [size] : 'the output size is not a constant';
    }
    case 'DepthToSpace':
    case 'SpaceToDepth': {
      const b = attrInt(node, 'block_size') ?? 0;
      if (x.length !== 4 || b < 1 || attrString(node, 'data_format') === 'NCHW') return 'needs an NHWC input and a block_size';
      const up = op === 'DepthToSpace';
      if (up ? x[3] % (b * b) : x[1] % b || x[2] % b) return `block_size ${b} does not divide the input`;
      return [up ? [x[0], x[1] * b, x[2] * b, x[3] / (b * b)] : [x[0], x[1] / b, x[2] / b, x[3] * b * b]];
    }
    case 'BatchMatMul':
    case 'BatchMatMulV2': {
      const [a, b] = xs;
      if (a.length < 2 || b.length < 2) return 'BatchMatMul operands must be at least 2-D';
      const batch = broadcast(a.slice(0, -2), b.slice(0, -2));
      if (!batch) return 'BatchMatMul batch dimensions do not broadcast';
      const m = attrBool(node, 'adj_x') ? a[a.length - 1] : a[a.length - 2];
      const n = attrBool(node, 'adj_y') ? b[b.length - 2] : b[b.length - 1];
      return [[...batch, m, n]];
    }
    case 'GatherNd': {
      const ind = xs[1];
      if (ind.length < 1 || ind[ind.length - 1] > x.length) return 'indices do not fit the params';
      return [[...ind.slice(0, -1), ...x.slice(ind[ind.length - 1])]];
    }
    case 'GatherV2': {
      const axis = ins[2] ? c.constInts(ins[2]) : null;
      if (!axis || axis.length !== 1) return 'axis is not a constant';
      if (attrInt(node, 'batch_dims')) return 'batch_dims has no rule here';
      const a = norm(axis[0], x.length);
      return [[...x.slice(0, a), ...xs[1], ...x.slice(a + 1)]];
    }
    case 'Unpack': {
      const a = norm(attrInt(node, 'axis') ?? 0, x.length);
      return Array.from({ length: x[a] }, () => x.filter((_, i) => i !== a));
    }
    case 'Pack': {
      const out = x.slice();
      out.splice(norm(attrInt(node, 'axis') ?? 0, x.length + 1), 0, xs.length);
      return [out];
    }
    case 'MatMul':
    case '_FusedMatMul': {
      const [a, b] = xs;
      if (a.length !== 2 || b.length !== 2) return 'MatMul operands must be 2-D';
      const m = attrBool(node, 'transpose_a') ? a[1] : a[0];
      const n = attrBool(node, 'transpose_b') ? b[0] : b[1];
      return [[m, n]];
    }
    default:
      return `op ${op} has no shape rule`;
  }
}

/** Shapes of every node output (key "node:index"); unknown ones carry the reason. */
/** Ops whose small integer results are computed here, so that sizes taken from tf.shape() resolve. */
const VALUE_OPS = new Set(['Shape', 'Identity', 'Cast', 'StridedSlice', 'Pack', 'ConcatV2', 'Reshape', 'Squeeze', 'ExpandDims',
  'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'FloorDiv', 'Maximum', 'Minimum', 'FloorMod', 'Ceil', 'Floor', 'Round', 'Neg']);
const UNARY_VALUES: Record<string, (x: number) => number> = { Ceil: Math.ceil, Floor: Math.floor, Round: Math.round, Neg: (x) => -x };

/**
 * The values of a small integer tensor computed from known shapes and
 * constants (tf.shape(x)[1:3] - 2, packed into a Pad's paddings, ...), or
 * null. Results of at most 64 elements, flattened row-major.
 */
function valueOf(node: GraphNode, out: number[], xs: number[][], ints: (ref: TensorRef) => number[] | null): number[] | null {
  if (!VALUE_OPS.has(node.op) || out.reduce((a, b) => a * b, 1) > 64) return null;
  const ins = dataInputs(node);
  if (node.op === 'Shape') return xs[0].slice();
  const vals = ins.map((r) => ints(r));
  const v0 = vals[0];
  switch (node.op) {
    case 'Identity':
    case 'Reshape':
    case 'Squeeze':
    case 'ExpandDims':
      return v0;
    case 'Cast':
      return v0 && v0.map(Math.trunc);
    case 'Ceil':
    case 'Floor':
    case 'Round':
    case 'Neg':
      return v0 && v0.map(UNARY_VALUES[node.op]);
    case 'StridedSlice': {
      const [, b, e, s] = vals;
      const bit = (key: string) => (attrInt(node, key) ?? 0) & 1;
      if (!v0 || !b || !e || !s || b.length !== 1 || xs[0].length !== 1 || bit('ellipsis_mask') || bit('new_axis_mask')) return null;
      const n = v0.length;
      const fix = (i: number) => Math.min(n, Math.max(0, i < 0 ? i + n : i));
      if (s[0] !== 1) return null;
      const begin = bit('begin_mask') ? 0 : fix(b[0]);
      const end = bit('shrink_axis_mask') ? begin + 1 : bit('end_mask') ? n : fix(e[0]);
      return v0.slice(begin, end);
    }
    case 'Pack':
    case 'ConcatV2': {
      // Flat concatenation is the result only along the first axis.
      if (node.op === 'Pack' ? (attrInt(node, 'axis') ?? 0) !== 0 : out.length !== 1) return null;
      const parts = node.op === 'ConcatV2' ? vals.slice(0, -1) : vals;
      return parts.every((p) => p !== null) ? (parts as number[][]).flat() : null;
    }
    default: {
      const [a, b] = vals;
      if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return null;
      const f: Record<string, (x: number, y: number) => number> = {
        Add: (x, y) => x + y,
        AddV2: (x, y) => x + y,
        Sub: (x, y) => x - y,
        Mul: (x, y) => x * y,
        RealDiv: (x, y) => x / y,
        FloorDiv: (x, y) => Math.floor(x / y),
        FloorMod: (x, y) => x - Math.floor(x / y) * y,
        Maximum: Math.max,
        Minimum: Math.min,
      };
      const len = Math.max(a.length, b.length);
      const r = Array.from({ length: len }, (_, i) => f[node.op](a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
      return r.every(Number.isFinite) ? r : null;
    }
  }
}

export function propagateShapes(c: ShapeContext, constShape: (node: GraphNode) => number[] | null): Map<string, ShapeOf> {
  const shapes = new Map<string, ShapeOf>();
  // Integer values worked out on the way, consulted before the constants.
  const values = new Map<string, number[]>();
  const ints = (ref: TensorRef) => values.get(refKey(ref)) ?? c.constInts(ref);
  const ctx: ShapeContext = { ...c, constInts: ints };
  for (const name of c.graph.order) {
    const node = c.graph.byName.get(name)!;
    if (node.op === 'Const') {
      const dims = constShape(node);
      shapes.set(`${name}:0`, dims ?? `constant ${name} has no shape`);
      continue;
    }
    if (node.op === 'Placeholder') {
      const dims = c.inputs.get(name) ?? protoDims(node.attr?.shape?.shape);
      shapes.set(`${name}:0`, dims && dims.every((d) => d >= 1) ? dims : `input ${name} has an unknown size`);
      continue;
    }
    if (node.op === 'TensorListStack') {
      // A while loop's result list (tf.map): its declared element shape and count say the size, whatever the loop did.
      const element = ints(dataInputs(node)[1] ?? { node: '', index: 0 });
      const count = attrInt(node, 'num_elements') ?? -1;
      const ok = element && count >= 1 && element.every((d) => d >= 1);
      shapes.set(`${name}:0`, ok ? [count, ...element] : `TensorListStack ${name} declares no fixed element shape and count`);
      continue;
    }
    const xs: number[][] = [];
    let unknown: string | null = null;
    for (const ref of dataInputs(node)) {
      const s = shapes.get(refKey(ref));
      if (typeof s === 'string' || s === undefined) {
        unknown = s ?? `output ${ref.index} of ${ref.node} is unknown`;
        break;
      }
      xs.push(s);
    }
    let result: number[][] | string;
    if (unknown !== null) result = unknown;
    else {
      const r = rule(node, xs, ctx);
      result = typeof r === 'string' ? `${r} at node ${name} (${node.op})` : r;
      if (Array.isArray(result) && result.some((s) => s.some((d) => !Number.isInteger(d) || d < 0))) {
        result = `node ${name} (${node.op}) gives a non-integer or negative size`;
      }
      if (Array.isArray(result)) {
        const v = valueOf(node, result[0], xs, ints);
        if (v && v.length === result[0].reduce((a, b) => a * b, 1)) values.set(`${name}:0`, v);
        // tf.unstack(tf.shape(x)): each output a scalar of the vector.
        const u = node.op === 'Unpack' && xs[0].length === 1 ? ints(dataInputs(node)[0]) : null;
        if (u && u.length === result.length) u.forEach((d, i) => values.set(`${name}:${i}`, [d]));
      }
    }
    if (typeof result === 'string') shapes.set(`${name}:0`, result);
    else result.forEach((s, i) => shapes.set(`${name}:${i}`, s));
  }
  return shapes;
}
