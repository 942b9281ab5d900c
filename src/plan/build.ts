// Turning a plan into replacement weights, under the error model the plan was
// made with (errors.ts): the backend factors the transformed weights and the
// factors are mapped back, so each replacement is the best one for what the
// next layer sees rather than for the plain Frobenius norm. Then two data-free
// corrections, both from the modelled input statistics:
//   variance: a low-rank replacement loses output energy, which the following
//     BatchNorm (fixed statistics) would pass on as a shrunken signal; each
//     output channel's last stage is rescaled so its modelled second moment
//     matches the original's (factor clamped to [0.5, 2]);
//   bias: the modelled mean shift E[(W - W') x]_j = sum_i mu_i sum_taps
//     valid(tap) (W - W')[j,i,tap] (valid: the share of positions where the
//     tap is inside the input) is added to the bias.

import { DacError } from '../errors.js';
import { getBackend } from '../backend/loader.js';
import type { ConvLayerInfo, LayerReplacement, Method } from '../model/types.js';
import { maxRank } from '../cost.js';
import type { DecomposeBackend } from './backend.js';
import { mixTensor, type ErrorModelOptions, type LayerErrorModel } from './error-model.js';
import { defaultWeighting, layerModel, modelSet } from './error-model-set.js';
import { FEATURE_CORRELATION } from './stats.js';
import { paperReplacement, type DecompositionMode } from './paper.js';

export interface BuildOptions {
  /** Fold the modelled mean shift of each output into its bias (default true). */
  biasCorrection?: boolean;
  /** Rescale each output channel to its modelled original second moment (default true). */
  varianceCorrection?: boolean;
  threads?: number;
}

interface PlanLike {
  layers: { name: string; method: string; rank: number }[];
  errorModel?: ErrorModelOptions;
  /** What the plan counted on (a bias added to bias-free convs); the default when options do not say. */
  biasCorrection?: boolean;
  /** 'paper': built as published (paper.ts), the correction options do not apply. */
  mode?: DecompositionMode;
}

/** Whether bias correction changes this layer's bias (so a bias-free conv gains one): its input has a modelled mean. */
export function correctsBias(model: LayerErrorModel, biasCorrection: boolean): boolean {
  return biasCorrection && model.input.mean.some((m) => m !== 0);
}

const VARIANCE_CLAMP: [number, number] = [0.5, 2];

/**
 * Decomposes every layer the plan replaces (in plan order) and returns the
 * replacements; kept layers get none. `backend` defaults to getBackend().
 */
export function buildReplacements(
  convs: ConvLayerInfo[],
  plan: PlanLike,
  backend?: DecomposeBackend,
  options: BuildOptions = {},
): LayerReplacement[] {
  if (!plan || !Array.isArray(plan.layers)) throw new DacError('EINVAL', 'plan must have a layers array', { field: 'plan' });
  const byName = new Map(convs.map((c) => [c.name, c]));
  const errOpts: Required<ErrorModelOptions> = {
    weighting: plan.errorModel?.weighting ?? defaultWeighting(convs),
    spatialCorrelation: plan.errorModel?.spatialCorrelation ?? FEATURE_CORRELATION,
  };
  const work: { layer: ConvLayerInfo; method: Method; rank: number }[] = [];
  for (const lp of plan.layers) {
    if (lp.method === 'keep') continue;
    const layer = byName.get(lp.name);
    if (!layer) throw new DacError('EINVAL', 'the plan names a layer that is not a conv of the model', { layer: lp.name });
    if (lp.method !== 'dac' && lp.method !== 'spatial' && lp.method !== 'channel') {
      throw new DacError('EINVAL', `unknown method '${lp.method}'`, { layer: lp.name, field: 'method' });
    }
    if (layer.groups !== 1) throw new DacError('EINVAL', 'grouped convolutions cannot be decomposed', { layer: lp.name, field: 'groups' });
    const max = maxRank(layer, lp.method);
    if (!Number.isInteger(lp.rank) || lp.rank < 1 || lp.rank > max) {
      throw new DacError('EINVAL', `${lp.rank} is out of range 1..${max} for ${lp.method}`, { layer: lp.name, field: 'rank' });
    }
    work.push({ layer, method: lp.method, rank: lp.rank });
  }
  if (work.length === 0) return [];
  const b = backend ?? getBackend();
  if (plan.mode === 'paper') return work.map(({ layer, method, rank }) => paperReplacement(layer, method, rank, b, options.threads));
  const set = modelSet(convs, errOpts, b);
  const plain = errOpts.weighting === 'plain';
  const opts = { ...options, biasCorrection: options.biasCorrection ?? plan.biasCorrection ?? true };
  return work.map(({ layer, method, rank }) => replaceLayer(layerModel(set, layer, plain), method, rank, b, opts));
}

function replaceLayer(
  model: LayerErrorModel,
  method: Method,
  rank: number,
  backend: DecomposeBackend,
  options: BuildOptions,
): LayerReplacement {
  const layer = model.layer;
  const { n, c, kh, kw } = layer;
  const K = kh * kw;
  const shape = { n, c, kh, kw };
  const dopts = { layout: 'OIHW' as const, threads: options.threads ?? 1, context: { layer: layer.name } };
  // first: [mid][c][kh][kw] (the stage that reads the input), last: [n][mid] (scaled per output channel).
  let mid: number;
  let first: Float64Array;
  let last: Float64Array;
  let lastPer: number;
  let reconstruct: () => Float64Array;
  if (method === 'dac') {
    // Depthwise filters from the backend's per-channel SVD of D W (x) (Lh (x) Lw); pointwise refitted under Sigma.
    const transformed = Float32Array.from(mixTensor(backend, layer.weights, n, c, kh, kw, null, model.mh, model.mw, (j) => model.d[j]));
    const r = backend.decomposeDac(transformed, shape, rank, dopts);
    const f = model.fitPointwise(Float64Array.from(r.depthwise), rank);
    mid = c * rank;
    first = f.depthwise;
    last = f.pointwise;
    lastPer = mid;
    reconstruct = () => {
      const w = new Float64Array(n * c * K);
      for (let j = 0; j < n; j++)
        for (let i = 0; i < c; i++)
          for (let k = 0; k < rank; k++) {
            const p = last[j * mid + i * rank + k];
            if (p === 0) continue;
            for (let t = 0; t < K; t++) w[(j * c + i) * K + t] += p * first[(i * rank + k) * K + t];
          }
      return w;
    };
  } else if (method === 'spatial') {
    const r = backend.decomposeSpatial(model.transformed(), shape, rank, dopts);
    mid = rank;
    // vertical [w][c][kh]: undo L on the channel and Lh on the row tap; horizontal [n][w][kw]: Lw and D.
    first = mixTensor(backend, r.vertical, rank, c, kh, 1, model.mcInv, model.mhInv, null, null);
    last = mixTensor(backend, r.horizontal, n, rank, 1, kw, null, null, model.mwInv, (j) => 1 / model.d[j]);
    lastPer = rank * kw;
    // W[j][i][y][x] = sum_m last[j][m][x] first[m][i][y]: one native GEMM per column tap x. As a
    // JS loop (n*w*c*kh*kw steps) this was most of the time on wide layers: 1024->1024 3x3 at
    // --rank 4 (w = 688) took 86 of 131 s.
    reconstruct = () => {
      const w = new Float64Array(n * c * K);
      const L = new Float64Array(n * rank);
      for (let x = 0; x < kw; x++) {
        for (let q = 0; q < n * rank; q++) L[q] = last[q * kw + x];
        const R = backend.matmul(L, first, n, c * kh, rank, { context: { layer: layer.name } });
        for (let q = 0; q < n * c * kh; q++) w[q * kw + x] = R[q];
      }
      return w;
    };
  } else {
    const r = backend.decomposeChannel(model.transformed(), shape, rank, dopts);
    mid = rank;
    first = mixTensor(backend, r.first, rank, c, kh, kw, model.mcInv, model.mhInv, model.mwInv, null);
    last = Float64Array.from(r.second, (v, q) => v / model.d[Math.floor(q / rank)]);
    lastPer = rank;
    // W[j][q] = sum_m last[j][m] first[m][q]: one native GEMM (a JS loop was O(n*w*c*kh*kw)).
    reconstruct = () => backend.matmul(last, first, n, c * K, rank, { context: { layer: layer.name } });
  }
  let approx: Float64Array | null = null;
  if (options.varianceCorrection ?? true) {
    approx = reconstruct();
    const e0 = model.outputEnergy(layer.weights);
    const e1 = model.outputEnergy(approx);
    for (let j = 0; j < n; j++) {
      const g = e1[j] > 0 ? Math.min(VARIANCE_CLAMP[1], Math.max(VARIANCE_CLAMP[0], Math.sqrt(e0[j] / e1[j]))) : 1;
      if (g === 1) continue;
      for (let q = j * lastPer; q < (j + 1) * lastPer; q++) last[q] *= g;
      for (let q = j * c * K; q < (j + 1) * c * K; q++) approx[q] *= g;
    }
  }
  let bias = layer.bias ? Float32Array.from(layer.bias) : null;
  const mean = model.input.mean;
  if (correctsBias(model, options.biasCorrection ?? true)) {
    approx ??= reconstruct();
    const { validH, validW } = model.input;
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let shift = 0;
      for (let i = 0; i < c; i++) {
        if (mean[i] === 0) continue;
        let s = 0;
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) {
            const q = ((j * c + i) * kh + y) * kw + x;
            s += validH[y] * validW[x] * (layer.weights[q] - approx[q]);
          }
        shift += mean[i] * s;
      }
      out[j] = (bias ? bias[j] : 0) + shift;
    }
    bias = out;
  }
  const f32 = (a: Float64Array) => Float32Array.from(a);
  if (method === 'dac') {
    return { method, name: layer.name, rank, depthwise: f32(first), pointwise: f32(last), bias };
  }
  if (method === 'spatial') {
    return { method, name: layer.name, width: mid, vertical: f32(first), horizontal: f32(last), bias };
  }
  return { method, name: layer.name, width: mid, first: f32(first), second: f32(last), bias };
}
