// dac-conv: data-free acceleration of convolutional networks.
// The public API: the whole-model API (src/api.ts: load, plan, decompose,
// save, report), backends, per-layer decompositions and kernels.
import type { BackendName } from './backend/binding.js';
import {
  type BatchLayer,
  type ChannelResult,
  type DacOptions,
  type DacResult,
  type DecomposeOptions,
  type SpatialResult,
} from './backend/backend.js';
import { getBackend } from './backend/loader.js';
import type { ConvShape } from './geometry.js';

export type { BackendName } from './backend/binding.js';
export type { ConvShape } from './geometry.js';
export {
  Backend,
  matchingWidths,
  maxDacRank,
  maxSpatialWidth,
  maxChannelWidth,
  type BackendInfo,
  type BatchLayer,
  type ChannelResult,
  type DacOptions,
  type DacResult,
  type DecomposeOptions,
  type SpatialResult,
  type WeightLayout,
} from './backend/backend.js';
export { availableBackends, backendInfo, getBackend, type BackendReport } from './backend/loader.js';
export { DAC_ERROR_KINDS, DacError, toDacError, type DacErrorCode, type DacErrorKind, type ErrorContext } from './errors.js';
export * from './api.js';
export {
  benchModel,
  convTotals,
  DEFAULT_BENCH_PLAN,
  LATENCY_TABLE_VERSION,
  latencyMarkdown,
  latencySvg,
  planLatencies,
  readLatencyTable,
  RUNTIMES,
  type BenchOptions,
  type LatencyTable,
  type LayerLatency,
  type LayerTimes,
  type RuntimeId,
  type VariantTime,
  type WholeModelTime,
} from './latency/index.js';
export type { TfjsBackendName } from './runtime/tfjs-backend.js';

export interface BackendChoice {
  /** Force a backend; default: DAC_BACKEND, else native, else WASM. */
  backend?: BackendName;
}

/** DAC decomposition of one conv on the default (or chosen) backend. */
export function decomposeDac(
  weights: Float32Array,
  shape: ConvShape,
  rank: number,
  opts: DacOptions & BackendChoice = {},
): DacResult {
  return getBackend(opts.backend).decomposeDac(weights, shape, rank, opts);
}

/** DAC decomposition of many convs in one call (native spreads them over threads). */
export function decomposeDacBatch(
  layers: BatchLayer[],
  opts: Omit<DacOptions, 'layout'> & BackendChoice = {},
): DacResult[] {
  return getBackend(opts.backend).decomposeDacBatch(layers, opts);
}

/** Spatial (Jaderberg) decomposition: kh x 1 with `width` filters, then 1 x kw. */
export function decomposeSpatial(
  weights: Float32Array,
  shape: ConvShape,
  width: number,
  opts: DecomposeOptions & BackendChoice = {},
): SpatialResult {
  return getBackend(opts.backend).decomposeSpatial(weights, shape, width, opts);
}

/** Channel (Zhang) decomposition: kh x kw with `width` filters, then 1x1. */
export function decomposeChannel(
  weights: Float32Array,
  shape: ConvShape,
  width: number,
  opts: DecomposeOptions & BackendChoice = {},
): ChannelResult {
  return getBackend(opts.backend).decomposeChannel(weights, shape, width, opts);
}
export {
  conv2d,
  fusedDepthwisePointwise,
  kernelVariants,
  resolvePadding,
  samePadding,
  convOutputSize,
} from './kernels.js';
