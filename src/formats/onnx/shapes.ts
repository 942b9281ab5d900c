// Static shape inference over an ONNX graph for one image (batch 1), enough
// to size every conv: the ops CNN exporters emit are handled; anything else
// falls back to the shapes the model declares in value_info, else unknown.
import type { ErrorContext } from '../../errors.js';
import { toNumber, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './schema.js';
import { attrInt, attrInts, attrString, attrTensor, tensorDims, tensorInts } from './tensors.js';

export type Shape = number[];

/** Declared dims of a value; dynamic ones are -1 (the first, a batch, is taken as 1). */
export function declaredShape(v: ValueInfoProto): Shape | null {
  const dims = v.type?.tensor_type?.shape?.dim;
  if (!dims) return null;
  return dims.map((d, i) => {
    if (d.dim_value !== undefined && d.dim_value !== null && Object.prototype.hasOwnProperty.call(d, 'dim_value')) {
      return toNumber(d.dim_value);
    }
    return i === 0 ? 1 : -1;
  });
}

function known(s: Shape | undefined): s is Shape {
  return !!s && s.every((d) => d >= 0);
}

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
    const axis = (size: number, k: number, s: number, d: number): [number, number] => {
      const out = Math.ceil(size / s);
      const total = Math.max((out - 1) * s + (k - 1) * d + 1 - size, 0);
      const small = Math.floor(total / 2);
      return autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
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

export interface ShapeContext {
  graph: GraphProto;
  initializers: Map<string, TensorProto>;
  ctx: ErrorContext;
}

/** Shapes (batch 1) of every tensor that can be inferred. */
export function inferShapes({ graph, initializers, ctx }: ShapeContext): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  const constants = new Map<string, TensorProto>(initializers);
  for (const [name, t] of initializers) shapes.set(name, tensorDims(t));
  for (const v of graph.input) {
    const s = declaredShape(v);
    if (v.name && s && !shapes.has(v.name)) shapes.set(v.name, s);
  }
  const declared = new Map<string, Shape>();
  for (const v of [...graph.value_info, ...graph.output]) {
    const s = declaredShape(v);
    if (v.name && s) declared.set(v.name, s);
  }
  const ints = (name: string | undefined): number[] | null => {
    const t = name ? constants.get(name) : undefined;
    if (!t) return null;
    try {
      return tensorInts(t, ctx);
    } catch {
      return null;
    }
  };

  for (const node of graph.node) {
    const inShapes = node.input.map((n) => (n ? shapes.get(n) : undefined));
    const x = inShapes[0];
    let out: Shape | undefined;
    const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}:${node.op_type}` : node.op_type;
    switch (op) {
      case 'Constant': {
        const t = attrTensor(node, 'value');
        if (t) {
          constants.set(node.output[0], t);
          out = tensorDims(t);
        }
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
        const size = (n: number, k: number, s: number, d: number, a: number, b: number) => {
          const span = (k - 1) * d + 1;
          const v = (n + a + b - span) / s;
          return (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
        };
        const channels = op === 'Conv' ? (w ? w[0] : -1) : x[1];
        out = [x[0], channels, size(x[2], kernel[0], strides[0], dil[0], p[0], p[2]), size(x[3], kernel[1], strides[1], dil[1], p[1], p[3])];
        break;
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
      case 'GlobalLpPool':
        if (x) out = [x[0], x[1], ...x.slice(2).map(() => 1)];
        break;
      case 'BatchNormalization':
      case 'InstanceNormalization':
      case 'LayerNormalization':
      case 'LRN':
      case 'Relu':
      case 'LeakyRelu':
      case 'PRelu':
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
      case 'Identity':
      case 'Softmax':
      case 'LogSoftmax':
      case 'Neg':
      case 'Abs':
      case 'Exp':
      case 'Log':
      case 'Sqrt':
      case 'Erf':
      case 'Cast':
      case 'Floor':
      case 'Ceil':
      case 'Round':
      case 'Sign':
      case 'Reciprocal':
        out = x;
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
        if (inShapes.every(known)) out = broadcast(inShapes as Shape[]);
        break;
      case 'Flatten': {
        if (!known(x)) break;
        let axis = attrInt(node, 'axis', 1);
        if (axis < 0) axis += x.length;
        const a = x.slice(0, axis).reduce((p, v) => p * v, 1);
        out = [a, x.slice(axis).reduce((p, v) => p * v, 1)];
        break;
      }
      case 'Gemm': {
        const b = inShapes[1];
        if (!known(x) || !known(b) || x.length !== 2 || b.length !== 2) break;
        const m = attrInt(node, 'transA', 0) ? x[1] : x[0];
        const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
        out = [m, n];
        break;
      }
      case 'MatMul': {
        const b = inShapes[1];
        if (!known(x) || !known(b) || x.length < 2 || b.length < 1) break;
        out = b.length === 1 ? x.slice(0, -1) : [...x.slice(0, -1), b[b.length - 1]];
        break;
      }
      case 'Reshape': {
        const target = ints(node.input[1]);
        if (!known(x) || !target) break;
        const total = x.reduce((p, v) => p * v, 1);
        const allowZero = attrInt(node, 'allowzero', 0) === 1;
        const dims = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
        const fixed = dims.filter((d) => d !== -1).reduce((p, v) => p * v, 1);
        out = dims.map((d) => (d === -1 ? (fixed ? total / fixed : 0) : d));
        break;
      }
      case 'Transpose': {
        if (!x) break;
        const perm = attrInts(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
        out = perm.map((p) => x[p]);
        break;
      }
      case 'Concat': {
        if (!inShapes.every(known) || inShapes.length === 0) break;
        const list = inShapes as Shape[];
        let axis = attrInt(node, 'axis', 0);
        if (axis < 0) axis += list[0].length;
        out = list[0].slice();
        out[axis] = list.reduce((p, s) => p + s[axis], 0);
        break;
      }
      case 'Pad': {
        if (!known(x)) break;
        const pads = attrInts(node, 'pads') ?? ints(node.input[1]);
        if (!pads || pads.length !== 2 * x.length) break;
        out = x.map((d, i) => d + pads[i] + pads[i + x.length]);
        break;
      }
      case 'Squeeze': {
        if (!known(x)) break;
        const axes = (attrInts(node, 'axes') ?? ints(node.input[1]) ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map(
          (a) => (a < 0 ? a + x.length : a),
        );
        out = x.filter((_, i) => !axes.includes(i));
        break;
      }
      case 'Unsqueeze': {
        if (!known(x)) break;
        const axesRaw = attrInts(node, 'axes') ?? ints(node.input[1]);
        if (!axesRaw) break;
        const rank = x.length + axesRaw.length;
        const axes = axesRaw.map((a) => (a < 0 ? a + rank : a));
        const rest = x.slice();
        out = Array.from({ length: rank }, (_, i) => (axes.includes(i) ? 1 : rest.shift()!));
        break;
      }
      default:
        break;
    }
    const name = node.output[0];
    if (!name) continue;
    if (known(out)) shapes.set(name, out);
    else if (declared.has(name)) shapes.set(name, declared.get(name)!);
    for (const extra of node.output.slice(1)) if (extra && declared.has(extra)) shapes.set(extra, declared.get(extra)!);
  }
  return shapes;
}
