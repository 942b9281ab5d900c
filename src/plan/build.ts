// Turning a plan into replacement weights, under the error model the plan was
// made with (error-model.ts): the backend factors the transformed weights and the
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
import { maxRank } from '../geometry.js';
import type { DecomposeBackend } from './backend.js';
import { mixTensor, type ErrorModelOptions, type LayerErrorModel } from './error-model.js';
import { defaultWeighting, layerErrorModel, errorModelSet, type ErrorModelSet, type LayerFactors } from './error-model-set.js';
import { FEATURE_CORRELATION } from './stats.js';
import { scratchFor, type ScratchPool } from './scratch.js';
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
  errorModel?: ErrorModelOptions & { centred?: boolean };
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

/** Doubles of W' that replaceLayer forms at once (4 MiB): a block of output channels. */
const APPROX_BLOCK = 1 << 19;

/** A layer to factor: its method and rank (spatial/channel: width). */
export interface FactorRequest {
  layer: ConvLayerInfo;
  method: Method;
  rank: number;
}


const factorKey = (name: string, method: Method, rank: number): string => `${name}:${method}:${rank}`;

/**
 * Factors each requested layer once under the error model: all DAC layers in
 * one batched backend call over `threads`, spatial/channel one call each. The
 * factors stay in the model set until buildReplacements takes them, so a plan
 * with explicit ranks (which reads its predicted errors from them) leaves the
 * build nothing to factor again.
 */
export function factorLayers(set: ErrorModelSet, work: FactorRequest[], plain: boolean, threads: number): LayerFactors[] {
  const out: LayerFactors[] = new Array(work.length);
  const dac: number[] = [];
  work.forEach(({ layer, method, rank }, k) => {
    const cached = set.factors.get(factorKey(layer.name, method, rank));
    if (cached) out[k] = cached;
    else if (method === 'dac') dac.push(k);
    else out[k] = factorSvd(layerErrorModel(set, layer, plain), method, rank, set.backend, threads);
  });
  if (dac.length > 0) {
    const backend = set.backend;
    // Depthwise filters from the per-channel SVD of the tensor the error model names (plain W but at the network input).
    const batch = dac.map((k) => {
      const { layer, rank } = work[k];
      const { n, c, kh, kw } = layer;
      const weights = layerErrorModel(set, layer, plain).dacSvdInput();
      return { weights, shape: { n, c, kh, kw }, rank, layout: 'OIHW' as const, name: layer.name };
    });
    const results = backend.decomposeDacBatch(batch, { threads });
    batch.length = 0;
    dac.forEach((k) => {
      const { layer, rank } = work[k];
      // The pointwise stage refitted under Sigma, where that changes it; otherwise the backend's own. A result
      // not used (as large as the output, all layers together) goes with its entry, taken off the list layer by layer.
      const { depthwise, pointwise, singular } = results.shift()!;
      const model = layerErrorModel(set, layer, plain);
      if (model.dacSvdIsBest) {
        out[k] = model.svdFactors(depthwise, pointwise, rank, singular);
      } else {
        const f = model.fitPointwise(model.dacTransformedFilters(depthwise, rank), rank);
        out[k] = { first: new Float32Array(f.depthwise), last: new Float32Array(f.pointwise), error: f.error };
      }
      model.release();
    });
  }
  work.forEach(({ layer, method, rank }, k) => set.factors.set(factorKey(layer.name, method, rank), out[k]));
  return out;
}

/** Share of the squared singular values beyond the first `rank`: the relative error of the truncation. */
function tailShare(singular: Float32Array, rank: number): number {
  let total = 0;
  let tail = 0;
  for (let q = 0; q < singular.length; q++) {
    const s2 = singular[q] * singular[q];
    total += s2;
    if (q >= rank) tail += s2;
  }
  return total > 0 ? Math.min(1, tail / total) : 0;
}

/**
 * A spatial or channel pair: the backend's truncated SVD of the transformed
 * tensor mapped back through the error model's transforms. By Eckart-Young
 * its error under the model is the tail of the transformed tensor's spectrum.
 */
function factorSvd(model: LayerErrorModel, method: 'spatial' | 'channel', rank: number, backend: DecomposeBackend, threads: number): LayerFactors {
  const layer = model.layer;
  const { n, c, kh, kw } = layer;
  const shape = { n, c, kh, kw };
  const dopts = { layout: 'OIHW' as const, threads, context: { layer: layer.name } };
  const weights = model.transformed();
  model.release();
  if (method === 'spatial') {
    const r = backend.decomposeSpatial(weights, shape, rank, dopts);
    // vertical [w][c][kh]: undo L on the channel and Lh on the row tap; horizontal [n][w][kw]: Lw and D.
    const first = mixTensor(backend, r.vertical, rank, c, kh, 1, model.mcInv, model.mhInv, null, null);
    const last = mixTensor(backend, r.horizontal, n, rank, 1, kw, null, null, model.mwInv, (j) => 1 / model.d[j]);
    // mcInv made again above: dropped with its factor, not kept until the layer is built.
    model.release();
    return { first: new Float32Array(first), last: new Float32Array(last), error: tailShare(r.singular, rank) };
  }
  const r = backend.decomposeChannel(weights, shape, rank, dopts);
  const first = mixTensor(backend, r.first, rank, c, kh, kw, model.mcInv, model.mhInv, model.mwInv, null);
  const last = Float32Array.from(r.second, (v, q) => v / model.d[Math.floor(q / rank)]);
  model.release();
  return { first: new Float32Array(first), last, error: tailShare(r.singular, rank) };
}

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
  return scratchFor(convs).within(() => build(convs, plan, backend, options));
}

function build(convs: ConvLayerInfo[], plan: PlanLike, backend: DecomposeBackend | undefined, options: BuildOptions): LayerReplacement[] {
  if (!plan || !Array.isArray(plan.layers)) throw new DacError('EINVAL', 'plan must have a layers array', { field: 'plan' });
  const byName = new Map(convs.map((c) => [c.name, c]));
  const errOpts: Required<ErrorModelOptions> = {
    weighting: plan.errorModel?.weighting ?? defaultWeighting(convs),
    spatialCorrelation: plan.errorModel?.spatialCorrelation ?? FEATURE_CORRELATION,
  };
  const work: FactorRequest[] = [];
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
  // The plan's own model (centred moments included), so its factors are found and the build is what it predicted.
  const set = errorModelSet(convs, { ...errOpts, centred: plan.errorModel?.centred }, b);
  const plain = errOpts.weighting === 'plain';
  const factors = factorLayers(set, work, plain, options.threads ?? 1);
  const opts = { ...options, biasCorrection: options.biasCorrection ?? plan.biasCorrection ?? true };
  return work.map(({ layer, method, rank }, k) => {
    // Taken: the model set keeps no layer's factors once its replacement exists.
    set.factors.delete(factorKey(layer.name, method, rank));
    const model = layerErrorModel(set, layer, plain);
    const rep = replaceLayer(model, method, rank, factors[k], set.backend, set.scratch, opts);
    model.release();
    return rep;
  });
}

function replaceLayer(
  model: LayerErrorModel,
  method: Method,
  rank: number,
  f: LayerFactors,
  backend: DecomposeBackend,
  scratch: ScratchPool,
  options: BuildOptions,
): LayerReplacement {
  const layer = model.layer;
  const { n, c, kh, kw } = layer;
  const K = kh * kw;
  const context = { layer: layer.name };
  // first: [mid][c][kh][kw] (the stage that reads the input), last: [n][mid] (scaled per output channel).
  const first = f.first;
  const last = f.last;
  let mid: number;
  let lastPer: number;
  // Rows j0..j1-1 of W' (output channels, OIHW) into `w`. The corrections below are per output channel, so
  // W' is formed a block of them at a time: whole, a VGG16-sized layer's is 19 MiB on the build's peak.
  let reconstruct: (j0: number, j1: number, w: Float64Array) => void;
  if (method === 'dac') {
    mid = c * rank;
    lastPer = mid;
    // W[j][i][t] = sum_k last[j][i*r+k] first[i*r+k][t]: one native GEMM (rows x r)(r x K) per input channel.
    const F = new Float64Array(rank * K);
    reconstruct = (j0, j1, w) => {
      const rows = j1 - j0;
      const P = new Float64Array(rows * rank);
      const Wi = new Float64Array(rows * K);
      for (let i = 0; i < c; i++) {
        for (let j = 0; j < rows; j++) for (let k = 0; k < rank; k++) P[j * rank + k] = last[(j0 + j) * mid + i * rank + k];
        for (let q = 0; q < rank * K; q++) F[q] = first[i * rank * K + q];
        backend.matmul(P, F, rows, K, rank, { context, out: Wi });
        for (let j = 0; j < rows; j++) for (let t = 0; t < K; t++) w[(j * c + i) * K + t] = Wi[j * K + t];
      }
    };
  } else if (method === 'spatial') {
    mid = rank;
    lastPer = rank * kw;
    // W[j][i][y][x] = sum_m last[j][m][x] first[m][i][y]: one native GEMM per column tap x. As a
    // JS loop (n*w*c*kh*kw steps) this was most of the time on wide layers: 1024->1024 3x3 at
    // --rank 4 (w = 688) took 86 of 131 s.
    const F = new Float64Array(first);
    reconstruct = (j0, j1, w) => {
      const rows = j1 - j0;
      const L = new Float64Array(rows * rank);
      const R = new Float64Array(rows * c * kh);
      for (let x = 0; x < kw; x++) {
        for (let q = 0; q < rows * rank; q++) L[q] = last[(j0 * rank + q) * kw + x];
        backend.matmul(L, F, rows, c * kh, rank, { context, out: R });
        for (let q = 0; q < rows * c * kh; q++) w[q * kw + x] = R[q];
      }
    };
  } else {
    mid = rank;
    lastPer = rank;
    // W[j][q] = sum_m last[j][m] first[m][q]: one native GEMM (a JS loop was O(n*w*c*kh*kw)).
    const F = new Float64Array(first);
    reconstruct = (j0, j1, w) => {
      backend.matmul(Float64Array.from(last.subarray(j0 * rank, j1 * rank)), F, j1 - j0, c * K, rank, { context, out: w });
    };
  }
  const shiftsBias = correctsBias(model, options.biasCorrection ?? true);
  const variance = options.varianceCorrection ?? true;
  // Variance correction's factor per output channel, applied to `last` as it is written out.
  const gains = new Float64Array(n).fill(1);
  let scaled = false;
  // The pair's modelled energy (and the layer's, same pass): without forming W' where the error model
  // allows and the bias does not need it.
  const energies = variance && method === 'dac' && !shiftsBias ? model.dacOutputEnergies(first, last, rank, options.threads) : null;
  const e0 = variance ? (energies ? energies.weights : model.outputEnergy(layer.weights)) : null;
  let bias = layer.bias ? Float32Array.from(layer.bias) : null;
  const shifted = shiftsBias ? new Float32Array(n) : null;
  const gain = (j: number, e1: number): number => {
    const g = e1 > 0 ? Math.min(VARIANCE_CLAMP[1], Math.max(VARIANCE_CLAMP[0], Math.sqrt(e0![j] / e1))) : 1;
    if (g !== 1) {
      scaled = true;
      gains[j] = g;
    }
    return g;
  };
  if (energies) {
    for (let j = 0; j < n; j++) gain(j, energies.pair[j]);
  } else if (variance || shiftsBias) {
    const per = c * K;
    const step = Math.max(1, Math.floor(APPROX_BLOCK / per));
    const block = scratch.take(Math.min(n, step) * per);
    const { validH, validW } = model.input;
    const mean = model.input.mean;
    for (let j0 = 0; j0 < n; j0 += step) {
      const j1 = Math.min(n, j0 + step);
      const approx = block.subarray(0, (j1 - j0) * per);
      reconstruct(j0, j1, approx);
      const e1 = variance ? model.outputEnergy(approx) : null;
      for (let j = j0; j < j1; j++) {
        const row = (j - j0) * per;
        const g = e1 ? gain(j, e1[j - j0]) : 1;
        if (!shifted) continue;
        if (g !== 1) for (let q = row; q < row + per; q++) approx[q] *= g;
        let shift = 0;
        for (let i = 0; i < c; i++) {
          if (mean[i] === 0) continue;
          let s = 0;
          for (let y = 0; y < kh; y++)
            for (let x = 0; x < kw; x++) {
              const q = ((j * c + i) * kh + y) * kw + x;
              s += validH[y] * validW[x] * (layer.weights[q] - approx[q - j0 * per]);
            }
          shift += mean[i] * s;
        }
        shifted[j] = (bias ? bias[j] : 0) + shift;
      }
    }
    scratch.give(block);
  }
  if (shifted) bias = shifted;
  // The factors were taken from the model set, so the gains go into `last` in place (rounded to float32 once).
  if (scaled) scaleRows(last, gains, lastPer);
  if (method === 'dac') return { method, name: layer.name, rank, depthwise: first, pointwise: last, bias };
  if (method === 'spatial') return { method, name: layer.name, width: mid, vertical: first, horizontal: last, bias };
  return { method, name: layer.name, width: mid, first, second: last, bias };
}

/** a[j][q] *= gains[j], rows of `per` values. */
function scaleRows(a: Float32Array, gains: Float64Array, per: number): void {
  for (let j = 0; j < gains.length; j++) {
    const g = gains[j];
    if (g !== 1) for (let q = j * per; q < (j + 1) * per; q++) a[q] *= g;
  }
}
