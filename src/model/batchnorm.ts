// Folding an inference-mode BatchNormalization into the conv before it:
// BN(conv(x)) = s * (W*x + b - mean) + beta with s = gamma / sqrt(var + eps),
// which is one conv with weights s*W (per output channel) and bias
// s*(b - mean) + beta. Computed in float64, stored as float32.
import { DacError, type ErrorContext } from '../errors.js';
import type { BatchNormParams } from './types.js';

export interface FoldedConv {
  /** Same layout as the input weights. */
  weights: Float32Array;
  bias: Float32Array;
}

/** Checks a BN's parameter arrays: all of length `channels`, finite, variance + eps > 0. */
export function checkBatchNorm(bn: BatchNormParams, channels: number, ctx: ErrorContext): void {
  for (const field of ['gamma', 'beta', 'mean', 'variance'] as const) {
    const arr = bn[field];
    if (arr.length !== channels) {
      throw new DacError('ESHAPE', `${field} has ${arr.length} values, expected ${channels}`, { ...ctx, field });
    }
    for (let i = 0; i < arr.length; i++) {
      if (!Number.isFinite(arr[i])) {
        throw new DacError('ENONFINITE', `${field}[${i}] is ${arr[i]}`, { ...ctx, field });
      }
    }
  }
  if (!Number.isFinite(bn.epsilon) || bn.epsilon < 0) {
    throw new DacError('ERANGE', `epsilon must be finite and >= 0, got ${bn.epsilon}`, { ...ctx, field: 'epsilon' });
  }
  for (let i = 0; i < channels; i++) {
    if (!(bn.variance[i] + bn.epsilon > 0)) {
      throw new DacError('ERANGE', `variance[${i}] + epsilon is not positive`, { ...ctx, field: 'variance' });
    }
  }
}

/**
 * Folds `bn` into a conv. `channelOf(j)` gives the output channel of weight
 * element j (so any layout works); `bias` may be null (treated as zeros).
 */
export function foldBatchNorm(
  weights: Float32Array,
  bias: Float32Array | null,
  bn: BatchNormParams,
  channels: number,
  channelOf: (index: number) => number,
  ctx: ErrorContext = {},
): FoldedConv {
  checkBatchNorm(bn, channels, ctx);
  if (bias && bias.length !== channels) {
    throw new DacError('ESHAPE', `bias has ${bias.length} values, expected ${channels}`, { ...ctx, field: 'bias' });
  }
  const scale = new Float64Array(channels);
  for (let o = 0; o < channels; o++) scale[o] = bn.gamma[o] / Math.sqrt(bn.variance[o] + bn.epsilon);
  const w = new Float32Array(weights.length);
  for (let j = 0; j < weights.length; j++) w[j] = weights[j] * scale[channelOf(j)];
  const b = new Float32Array(channels);
  for (let o = 0; o < channels; o++) b[o] = ((bias ? bias[o] : 0) - bn.mean[o]) * scale[o] + bn.beta[o];
  return { weights: w, bias: b };
}

/** Output channel of element j in OIHW weights [n][c/g][kh][kw]. */
export function oihwChannel(perOutput: number): (j: number) => number {
  return (j) => Math.floor(j / perOutput);
}

/** Output channel of element j in HWIO-style weights whose last axis is the output channel. */
export function lastAxisChannel(channels: number): (j: number) => number {
  return (j) => j % channels;
}
