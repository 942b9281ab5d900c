// A TF.js layer that runs a DAC-decomposed convolution (depthwise with
// multiplier r, then pointwise) through our fused kernel. Its weights have
// the names and layouts of Keras' SeparableConv2D (depthwise_kernel
// [kh, kw, c, r], pointwise_kernel [1, 1, c*r, n], bias [n]), so a model
// saved with it can be rewritten to stock layers and back. Registered with
// tf.serialization on import: a program that imports this module can load a
// model.json that uses 'DacConv2D'; importing it also registers the graph
// models' DacConv2D op (dac-conv2d-op.ts) for tf.loadGraphModel. Inference
// only: gradients do not flow through the native kernel.
import * as tf from '@tensorflow/tfjs';
import './dac-conv2d-op.js';

import type { BackendName } from '../backend/binding.js';
import { DacError } from '../errors.js';
import { paddedOutputSize } from '../geometry.js';
import {
  fusedDepthwisePointwise,
  type Activation,
  type DwPwWeights,
  type Nhwc,
} from '../kernels.js';
import { fromSeparableKernels } from './kernel-layout.js';

export { fromSeparableKernels, toSeparableKernels } from './kernel-layout.js';

export interface DacConv2DArgs {
  /** Output channels n. */
  filters: number;
  kernelSize: number | [number, number];
  /** DAC rank r (the depthwise multiplier). */
  depthMultiplier: number;
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  dilationRate?: number | [number, number];
  activation?: 'linear' | 'relu' | 'relu6';
  useBias?: boolean;
  /** Kernel threads (not saved with the model). Default 1. */
  threads?: number;
  /** Backend for the kernel (not saved). Default: the library's default. */
  backend?: BackendName;
  name?: string;
  trainable?: boolean;
  inputShape?: (number | null)[];
  batchInputShape?: (number | null)[];
  dtype?: 'float32';
}

function pairOf(v: number | [number, number] | undefined, field: string, layer: string): [number, number] {
  const p: unknown[] = v === undefined ? [1, 1] : typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && (x as number) >= 1)) {
    throw new DacError('EINVAL', `${field} must be a positive integer or a pair of them, got ${JSON.stringify(v)}`, {
      layer,
      field,
    });
  }
  return p as [number, number];
}

export class DacConv2D extends tf.layers.Layer {
  static className = 'DacConv2D';

  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly depthMultiplier: number;
  readonly strides: [number, number];
  readonly padding: 'same' | 'valid';
  readonly dilationRate: [number, number];
  readonly activation: 'linear' | 'relu' | 'relu6';
  readonly useBias: boolean;
  threads: number;
  backend: BackendName | undefined;

  private depthwiseKernel: tf.LayerVariable | null = null;
  private pointwiseKernel: tf.LayerVariable | null = null;
  private biasWeight: tf.LayerVariable | null = null;
  // Canonical weights converted from the variables, redone only when a
  // variable's data changes (setWeights / loading assigns new data).
  private converted: { dw: object; pw: object; weights: DwPwWeights; c: number } | null = null;

  constructor(args: DacConv2DArgs) {
    super({
      name: args.name,
      trainable: args.trainable,
      inputShape: args.inputShape,
      batchInputShape: args.batchInputShape,
      dtype: args.dtype,
    } as ConstructorParameters<typeof tf.layers.Layer>[0]);
    const layer = args.name ?? 'DacConv2D';
    const int = (v: unknown, field: string, min: number): number => {
      if (!Number.isInteger(v) || (v as number) < min) {
        throw new DacError('EINVAL', `${field} must be an integer >= ${min}, got ${String(v)}`, { layer, field });
      }
      return v as number;
    };
    this.filters = int(args.filters, 'filters', 1);
    this.kernelSize = pairOf(args.kernelSize, 'kernelSize', layer);
    this.depthMultiplier = int(args.depthMultiplier, 'depthMultiplier', 1);
    this.strides = pairOf(args.strides, 'strides', layer);
    this.dilationRate = pairOf(args.dilationRate, 'dilationRate', layer);
    const padding = args.padding ?? 'valid';
    if (padding !== 'same' && padding !== 'valid') {
      throw new DacError('EINVAL', `padding must be 'same' or 'valid', got ${String(padding)}`, { layer, field: 'padding' });
    }
    this.padding = padding;
    const activation = args.activation ?? 'linear';
    if (!['linear', 'relu', 'relu6'].includes(activation)) {
      throw new DacError('EINVAL', `activation must be 'linear', 'relu' or 'relu6', got ${String(activation)}`, {
        layer,
        field: 'activation',
      });
    }
    this.activation = activation;
    this.useBias = args.useBias ?? true;
    this.threads = args.threads === undefined ? 1 : int(args.threads, 'threads', 1);
    this.backend = args.backend;
  }

  build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const c = shape[shape.length - 1];
    if (shape.length !== 4 || c === null) {
      throw new DacError('ESHAPE', `input must be NHWC with a known channel count, got [${shape.join(', ')}]`, {
        layer: this.name,
        field: 'inputShape',
      });
    }
    const [kh, kw] = this.kernelSize;
    const r = this.depthMultiplier;
    this.depthwiseKernel = this.addWeight('depthwise_kernel', [kh, kw, c, r], 'float32', tf.initializers.glorotUniform({}));
    this.pointwiseKernel = this.addWeight('pointwise_kernel', [1, 1, c * r, this.filters], 'float32', tf.initializers.glorotUniform({}));
    if (this.useBias) this.biasWeight = this.addWeight('bias', [this.filters], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const out = (size: number | null, axis: 0 | 1): number | null => {
      if (size === null) return null;
      return paddedOutputSize(size, this.kernelSize[axis], this.strides[axis], this.dilationRate[axis], this.padding);
    };
    return [s[0], out(s[1], 0), out(s[2], 1), this.filters];
  }

  private weightsFor(c: number): DwPwWeights {
    const dw = this.depthwiseKernel!.read();
    const pw = this.pointwiseKernel!.read();
    const cur = this.converted;
    if (cur && cur.dw === dw.dataId && cur.pw === pw.dataId && cur.c === c) return cur.weights;
    const [kh, kw] = this.kernelSize;
    const r = this.depthMultiplier;
    if (dw.size !== kh * kw * c * r || pw.size !== c * r * this.filters) {
      throw new DacError(
        'ESHAPE',
        `input has ${c} channels but the layer's kernels are [${dw.shape.join(', ')}] and [${pw.shape.join(', ')}]`,
        { layer: this.name, field: 'input' },
      );
    }
    const weights = fromSeparableKernels(
      dw.dataSync() as Float32Array,
      pw.dataSync() as Float32Array,
      { n: this.filters, c, kh, kw },
      this.depthMultiplier,
    );
    this.converted = { dw: dw.dataId, pw: pw.dataId, weights, c };
    return weights;
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor;
    if (x.rank !== 4 || x.dtype !== 'float32') {
      throw new DacError('ESHAPE', `input must be a float32 NHWC tensor, got ${x.dtype} [${x.shape.join(', ')}]`, {
        layer: this.name,
        field: 'input',
      });
    }
    const shape = x.shape as Nhwc;
    const [kh, kw] = this.kernelSize;
    const result = fusedDepthwisePointwise(
      x.dataSync() as Float32Array,
      shape,
      this.weightsFor(shape[3]),
      { n: this.filters, c: shape[3], kh, kw },
      {
        strides: this.strides,
        dilations: this.dilationRate,
        padding: this.padding,
        bias: this.biasWeight ? (this.biasWeight.read().dataSync() as Float32Array) : null,
        activation: (this.activation === 'linear' ? 'none' : this.activation) as Activation,
        threads: this.threads,
        backend: this.backend,
        context: { layer: this.name },
      },
    );
    return tf.tensor4d(result.output, result.shape);
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      depthMultiplier: this.depthMultiplier,
      strides: this.strides,
      padding: this.padding,
      dilationRate: this.dilationRate,
      activation: this.activation,
      useBias: this.useBias,
    };
  }
}

tf.serialization.registerClass(DacConv2D);

/** tf.layers-style factory. */
export function dacConv2d(args: DacConv2DArgs): DacConv2D {
  return new DacConv2D(args);
}
