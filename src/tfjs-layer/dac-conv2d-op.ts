// The 'DacConv2D' op of TF.js graph models written by `dac decompose
// --tfjs-layer dac` (node contract: src/formats/tfjs-graph/dac-node.ts),
// registered with tf.registerOp on import so stock tf.loadGraphModel runs it
// through our fused depthwise+pointwise kernel. Imported by the DacConv2D
// layer module, i.e. by `dac-conv/tfjs`. Inference only.
import * as tf from '@tensorflow/tfjs';

import { DacError } from '../errors.js';
import { DAC_CONV_OP } from '../formats/tfjs-graph/dac-node.js';
import { fusedDepthwisePointwise, type Activation, type DwPwWeights, type Nhwc, type Padding } from '../kernels.js';
import { fromSeparableKernels } from './kernel-layout.js';

type OpNode = Parameters<Parameters<typeof tf.registerOp>[1]>[0];

// Kernels converted to the canonical layout, per constant: graph weights are
// the same tensors call after call, and go with the model when it is disposed.
const converted = new WeakMap<object, { pw: object; weights: DwPwWeights }>();

function pairAttr(node: OpNode, key: string): [number, number] {
  const v = node.attrs[key];
  if (!Array.isArray(v) || v.length !== 4 || !v.every((d) => Number.isInteger(d) && (d as number) >= 1)) {
    throw new DacError('EFORMAT', `${key} must be 4 positive integers (NHWC), got ${JSON.stringify(v)}`, { field: key });
  }
  return [v[1] as number, v[2] as number];
}

function paddingOf(node: OpNode): Padding {
  // TF.js lower-cases string attributes.
  const p = node.attrs.padding;
  if (p === 'same' || p === 'valid') return p;
  const e = node.attrs.explicit_paddings;
  if (p === 'explicit' && Array.isArray(e) && e.length === 8 && e.every((v) => Number.isInteger(v) && (v as number) >= 0)) {
    const [top, bottom, left, right] = (e as number[]).slice(2, 6);
    return [top, left, bottom, right];
  }
  throw new DacError('EFORMAT', `padding must be SAME, VALID or EXPLICIT with 8 explicit_paddings, got ${String(p)}`, { field: 'padding' });
}

function dacConv2dOp(node: OpNode): tf.Tensor {
  const [x, dw, pw, bias] = node.inputs;
  if (!x || !dw || !pw || x.rank !== 4 || x.dtype !== 'float32' || dw.rank !== 4 || pw.rank !== 4) {
    throw new DacError('ESHAPE', `${DAC_CONV_OP} takes a float32 NHWC input, a [kh, kw, c, r] depthwise and a [1, 1, c*r, n] pointwise kernel`, {
      field: 'inputs',
    });
  }
  const [kh, kw, c, r] = dw.shape as [number, number, number, number];
  const n = pw.shape[3] as number;
  if (x.shape[3] !== c || pw.shape[2] !== c * r || node.attrs.rank !== r || (bias && bias.size !== n)) {
    throw new DacError(
      'ESHAPE',
      `input [${x.shape.join(', ')}], depthwise [${dw.shape.join(', ')}], pointwise [${pw.shape.join(', ')}], rank ${String(node.attrs.rank)} and bias [${bias?.shape.join(', ') ?? ''}] do not fit together`,
      { field: 'inputs' },
    );
  }
  const activation = node.attrs.activation ?? 'linear';
  if (activation !== 'linear' && activation !== 'relu' && activation !== 'relu6') {
    throw new DacError('EFORMAT', `activation must be linear, relu or relu6, got ${String(activation)}`, { field: 'activation' });
  }
  let cached = converted.get(dw.dataId);
  if (!cached || cached.pw !== pw.dataId) {
    cached = { pw: pw.dataId, weights: fromSeparableKernels(dw.dataSync() as Float32Array, pw.dataSync() as Float32Array, { n, c, kh, kw }, r) };
    converted.set(dw.dataId, cached);
  }
  const result = fusedDepthwisePointwise(x.dataSync() as Float32Array, x.shape as Nhwc, cached.weights, { n, c, kh, kw }, {
    strides: pairAttr(node, 'strides'),
    dilations: pairAttr(node, 'dilations'),
    padding: paddingOf(node),
    bias: bias ? (bias.dataSync() as Float32Array) : null,
    activation: (activation === 'linear' ? 'none' : activation) as Activation,
  });
  return tf.tensor4d(result.output, result.shape);
}

tf.registerOp(DAC_CONV_OP, dacConv2dOp);
