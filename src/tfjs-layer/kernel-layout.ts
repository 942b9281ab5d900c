// Between the canonical DAC arrays (depthwise [c*r][kh*kw], pointwise
// [n][c*r]) and the Keras SeparableConv2D kernel layouts the DacConv2D layer
// stores ([kh, kw, c, r] and [1, 1, c*r, n]). Both are OIHW <-> HWIO
// (src/geometry.ts): the depthwise with c*r outputs of one input each, the
// pointwise as a 1x1. Kept apart from the layer so the model writers can use
// it without loading TF.js.
import { hwioToOihw, oihwToHwio, type ConvShape } from '../geometry.js';
import type { DwPwWeights } from '../kernels.js';

/** Keras SeparableConv2D kernels -> the canonical DAC arrays (depthwise [c*r][kh*kw], pointwise [n][c*r]). */
export function fromSeparableKernels(
  depthwiseKernel: Float32Array,
  pointwiseKernel: Float32Array,
  shape: ConvShape,
  rank: number,
): DwPwWeights {
  const { n, c, kh, kw } = shape;
  const cr = c * rank;
  return { rank, depthwise: hwioToOihw(depthwiseKernel, kh, kw, 1, cr), pointwise: hwioToOihw(pointwiseKernel, 1, 1, cr, n) };
}

/** The canonical DAC arrays -> Keras SeparableConv2D kernels ([kh, kw, c, r] and [1, 1, c*r, n]). */
export function toSeparableKernels(
  w: DwPwWeights,
  shape: ConvShape,
): { depthwiseKernel: Float32Array; pointwiseKernel: Float32Array } {
  const { n, c, kh, kw } = shape;
  const cr = c * w.rank;
  return { depthwiseKernel: oihwToHwio(w.depthwise, cr, 1, kh, kw), pointwiseKernel: oihwToHwio(w.pointwise, n, cr, 1, 1) };
}
