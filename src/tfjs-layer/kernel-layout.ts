// Between the canonical DAC arrays (depthwise [c*r][kh*kw], pointwise
// [n][c*r]) and the Keras SeparableConv2D kernel layouts the DacConv2D layer
// stores ([kh, kw, c, r] and [1, 1, c*r, n]). Kept apart from the layer so
// the model writers can use it without loading TF.js.
import type { DwPwWeights } from '../kernels.js';
import type { ConvShape } from '../validate.js';

/** Keras SeparableConv2D kernels -> the canonical DAC arrays (depthwise [c*r][kh*kw], pointwise [n][c*r]). */
export function fromSeparableKernels(
  depthwiseKernel: Float32Array,
  pointwiseKernel: Float32Array,
  shape: ConvShape,
  rank: number,
): DwPwWeights {
  const { n, c, kh, kw } = shape;
  const T = kh * kw;
  const cr = c * rank;
  const depthwise = new Float32Array(cr * T);
  for (let tap = 0; tap < T; tap++)
    for (let q = 0; q < cr; q++) depthwise[q * T + tap] = depthwiseKernel[tap * cr + q];
  const pointwise = new Float32Array(n * cr);
  for (let q = 0; q < cr; q++) for (let o = 0; o < n; o++) pointwise[o * cr + q] = pointwiseKernel[q * n + o];
  return { rank, depthwise, pointwise };
}

/** The canonical DAC arrays -> Keras SeparableConv2D kernels ([kh, kw, c, r] and [1, 1, c*r, n]). */
export function toSeparableKernels(
  w: DwPwWeights,
  shape: ConvShape,
): { depthwiseKernel: Float32Array; pointwiseKernel: Float32Array } {
  const { n, c, kh, kw } = shape;
  const T = kh * kw;
  const cr = c * w.rank;
  const depthwiseKernel = new Float32Array(cr * T);
  for (let tap = 0; tap < T; tap++) for (let q = 0; q < cr; q++) depthwiseKernel[tap * cr + q] = w.depthwise[q * T + tap];
  const pointwiseKernel = new Float32Array(cr * n);
  for (let q = 0; q < cr; q++) for (let o = 0; o < n; o++) pointwiseKernel[q * n + o] = w.pointwise[o * cr + q];
  return { depthwiseKernel, pointwiseKernel };
}
