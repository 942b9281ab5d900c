// Inference kernels on a backend: the fused depthwise(multiplier r) +
// pointwise convolution that DAC produces, and a dense convolution in the
// same engine (so original and decomposed layers are timed alike). NHWC
// float32 activations. These pick a backend and hand the call to it; the
// checks and the call into the core live in Backend.
import type { BackendName } from './backend/binding.js';
import type {
  Backend,
  DwPwWeights,
  KernelCallOptions,
  KernelResult,
  KernelVariants,
  Nhwc,
} from './backend/backend.js';
import { getBackend } from './backend/loader.js';
import type { ConvShape } from './geometry.js';

export type { Activation, DwPwWeights, KernelResult, KernelVariants, Nhwc } from './backend/backend.js';
export { convOutputSize, resolvePadding, samePadding, type Padding } from './geometry.js';

export interface KernelOptions extends KernelCallOptions {
  /** Backend name or object; default: getBackend(). */
  backend?: BackendName | Backend;
}

function backendOf(backend: BackendName | Backend | undefined): Backend {
  return typeof backend === 'object' && backend !== null ? backend : getBackend(backend);
}

/** The kernel variants a backend can run on this CPU, per family: "ref" first and the default last. */
export function kernelVariants(backend: BackendName | Backend = getBackend()): KernelVariants {
  return backendOf(backend).variants();
}

/** The decomposed layer in one pass on a backend; see Backend.fusedDepthwisePointwise. */
export function fusedDepthwisePointwise(
  input: Float32Array,
  inputShape: Nhwc,
  weights: DwPwWeights,
  shape: ConvShape,
  opts: KernelOptions = {},
): KernelResult {
  return backendOf(opts.backend).fusedDepthwisePointwise(input, inputShape, weights, shape, opts);
}

/** A dense convolution on a backend; `weights` is OIHW [n][c][kh][kw] with `shape` = {n, c, kh, kw}. */
export function conv2d(
  input: Float32Array,
  inputShape: Nhwc,
  weights: Float32Array,
  shape: ConvShape,
  opts: KernelOptions = {},
): KernelResult {
  return backendOf(opts.backend).conv2d(input, inputShape, weights, shape, opts);
}
