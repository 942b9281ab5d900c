// A data-free model of what each conv sees at its input, propagated through
// the network from the weights and BatchNorm statistics alone.
//
// For every conv the input patch x (c channels x kh x kw taps) gets a
// second-moment matrix of Kronecker form  E[x x^T] ~ A (x) Th (x) Tw:
//   A   c x c: channel second moments, mean included (A = C + mu mu^T), or
//       with `centred` the covariance C alone (see StatsOptions.centred);
//   Th  kh x kh, Tw kw x kw: tap matrices, = (fraction of output positions where
//       both taps fall inside the input: zero padding) * rho^(tap distance).
// Where the conv's input comes from another conv through BatchNorm (and, we
// assume, a ReLU), C and mu are propagated:
//   pre-BN covariance of the producer  Cz = Wp (Cp (x) Tp) Wp^T, taken as a
//   correlation matrix R (the BN's running variance gives the true scale);
//   BN output  y ~ N(beta, diag(|gamma|) R diag(|gamma|));
//   after ReLU  mu_j = E[relu(y_j)], C_jk = E[relu(y_j) relu(y_k)] - mu_j mu_k
//   (bivariate normal moments by Gauss-Hermite quadrature).
// A conv whose input has a BatchNorm we cannot trace to a producer conv gets
// independent channels with that BN's moments; with no BatchNorm at all the
// input counts as standardised (A = I), the network's own input.
// Pooling between layers is not modelled (its effect on relative errors is small).

import { DacError } from '../errors.js';
import type { BatchNormParams, ConvLayerInfo } from '../model/types.js';
import type { DecomposeBackend } from './backend.js';
import { identity, jacobiEigen, kron, mixRows, transposeBlocks } from './linalg.js';

/** Correlation of neighbouring taps of hidden feature maps (prior, see docs/auto.md). */
export const FEATURE_CORRELATION = 0.5;
/** Correlation of neighbouring pixels of the network input (natural-image prior). */
export const INPUT_CORRELATION = 0.9;

export interface InputModel {
  /** c x c channel second moments (row-major); with StatsOptions.centred the covariance (mean excluded). */
  A: Float64Array;
  /** Channel means (length c). */
  mean: Float64Array;
  /** kh x kh and kw x kw tap matrices. */
  th: Float64Array;
  tw: Float64Array;
  /** Fraction of output positions at which each tap reads inside the input (length kh, kw). */
  validH: Float64Array;
  validW: Float64Array;
  /** Fraction of output positions at which both taps t and u read inside (kh x kh, kw x kw). */
  pairH: Float64Array;
  pairW: Float64Array;
  /** How A was obtained, for reports. */
  source: 'propagated' | 'batchnorm' | 'standardised';
}

export interface StatsOptions {
  /** 'plain' gives every conv A = I and identity tap matrices (the unweighted Frobenius error). */
  weighting?: 'bn' | 'plain';
  /** Neighbouring-tap correlation of hidden feature maps (default FEATURE_CORRELATION). */
  spatialCorrelation?: number;
  /**
   * A = C, the mean left out: errors are measured as they are after bias
   * correction, which adds the modelled mean shift back, so an error along the
   * mean costs nothing (docs/auto.md). Default false (A = C + mu mu^T).
   */
  centred?: boolean;
}

const SQRT_2PI = Math.sqrt(2 * Math.PI);

export function normalPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / SQRT_2PI;
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 on erf, |error| < 1.5e-7). */
export function normalCdf(x: number): number {
  return cdfOf(x, Math.exp(-0.5 * x * x));
}

/** normalCdf(x) given g = exp(-x^2/2), the exponential it shares with normalPdf(x). */
function cdfOf(x: number, g: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(x) / Math.SQRT2));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * g;
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/**
 * E[max(z,0)] for z ~ N(mu, sigma^2) (the mean of reluMoments, without
 * allocating), one exponential for the CDF and the density: reluCovariance
 * calls it 32 times per pair of channels.
 */
function reluMean(mu: number, sigma: number): number {
  if (!(sigma > 0)) return Math.max(mu, 0);
  const a = mu / sigma;
  const g = Math.exp(-0.5 * a * a);
  return Math.max(mu * cdfOf(a, g) + sigma * (g / SQRT_2PI), 0);
}

/** E[max(z,0)] and E[max(z,0)^2] for z ~ N(mu, sigma^2). */
export function reluMoments(mu: number, sigma: number): { mean: number; second: number } {
  if (!(sigma > 0)) {
    const r = Math.max(mu, 0);
    return { mean: r, second: r * r };
  }
  const a = mu / sigma;
  const cdf = normalCdf(a);
  const pdf = normalPdf(a);
  return {
    mean: Math.max(mu * cdf + sigma * pdf, 0),
    second: Math.max((mu * mu + sigma * sigma) * cdf + mu * sigma * pdf, 0),
  };
}

/** Gauss-Legendre rule on [-1, 1] (Golub-Welsch: eigen-decomposition of the Jacobi matrix). */
function legendreRule(m: number): { nodes: Float64Array; weights: Float64Array } {
  const J = new Float64Array(m * m);
  for (let k = 1; k < m; k++) {
    const b = k / Math.sqrt(4 * k * k - 1);
    J[(k - 1) * m + k] = b;
    J[k * m + k - 1] = b;
  }
  const { values, vectors } = jacobiEigen(J, m);
  const weights = new Float64Array(m);
  for (let k = 0; k < m; k++) weights[k] = 2 * vectors[k] * vectors[k];
  return { nodes: values, weights };
}

let legendre: { nodes: Float64Array; weights: Float64Array } | null = null;

/**
 * Nodes z and weights w with sum w f(z) ~ E[f(z)], z ~ N(0,1), for f smooth
 * except at `kink`: one Gauss-Legendre panel on each side, over [-8, 8].
 */
function normalRule(kink: number): { nodes: Float64Array; weights: Float64Array } {
  legendre ??= legendreRule(16);
  const g = legendre;
  const k = Math.max(-8, Math.min(8, kink));
  const panels: [number, number][] = [
    [-8, k],
    [k, 8],
  ];
  const nodes = new Float64Array(2 * g.nodes.length);
  const weights = new Float64Array(2 * g.nodes.length);
  panels.forEach(([a, b], p) => {
    const half = (b - a) / 2;
    for (let q = 0; q < g.nodes.length; q++) {
      const z = a + half * (g.nodes[q] + 1);
      nodes[p * g.nodes.length + q] = z;
      weights[p * g.nodes.length + q] = half * g.weights[q] * normalPdf(z);
    }
  });
  return { nodes, weights };
}

/**
 * Mean and centred covariance of relu(y) for y ~ N(mu, diag(sd) R diag(sd)).
 * Off-diagonals by quadrature over y_j of
 * (relu(y_j) - mu_j) (E[relu(y_k) | y_j] - mu_k).
 */
export function reluCovariance(mu: Float64Array, sd: Float64Array, R: Float64Array): { mean: Float64Array; cov: Float64Array } {
  const c = mu.length;
  const mean = new Float64Array(c);
  const second = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const m = reluMoments(mu[j], sd[j]);
    mean[j] = m.mean;
    second[j] = m.second;
  }
  const E = new Float64Array(c * c);
  for (let j = 0; j < c; j++) {
    // relu(y_j) has its kink where y_j = 0; the conditional means are smooth in z.
    const { nodes, weights } = normalRule(sd[j] > 0 ? -mu[j] / sd[j] : 0);
    // Centred on both sides, so independent channels give exactly 0 despite the ReLU kink.
    const wy = Float64Array.from(nodes, (z, q) => weights[q] * (Math.max(mu[j] + sd[j] * z, 0) - mean[j]));
    for (let k = j + 1; k < c; k++) {
      const rho = Math.max(-1, Math.min(1, R[j * c + k]));
      const condSd = sd[k] * Math.sqrt(Math.max(1 - rho * rho, 0));
      let s = 0;
      for (let q = 0; q < nodes.length; q++) s += wy[q] * (reluMean(mu[k] + rho * sd[k] * nodes[q], condSd) - mean[k]);
      E[j * c + k] = s;
      E[k * c + j] = s;
    }
    E[j * c + j] = second[j] - mean[j] * mean[j];
  }
  return { mean, cov: E };
}

/** Fraction of output positions where tap t (and tap u) read inside the input, along one axis. */
export function tapValidity(
  inSize: number,
  outSize: number,
  k: number,
  stride: number,
  dilation: number,
  padBefore: number,
): { pair: Float64Array; single: Float64Array } {
  const pair = new Float64Array(k * k);
  const single = new Float64Array(k);
  const inside = new Uint8Array(k);
  for (let o = 0; o < outSize; o++) {
    for (let t = 0; t < k; t++) {
      const p = o * stride - padBefore + t * dilation;
      inside[t] = p >= 0 && p < inSize ? 1 : 0;
    }
    for (let t = 0; t < k; t++) {
      single[t] += inside[t];
      for (let u = 0; u < k; u++) pair[t * k + u] += inside[t] & inside[u];
    }
  }
  for (let i = 0; i < pair.length; i++) pair[i] /= outSize;
  for (let i = 0; i < k; i++) single[i] /= outSize;
  return { pair, single };
}

function tapMatrix(pair: Float64Array, k: number, dilation: number, rho: number): Float64Array {
  const T = new Float64Array(k * k);
  for (let t = 0; t < k; t++) {
    for (let u = 0; u < k; u++) T[t * k + u] = pair[t * k + u] * (t === u ? 1 : Math.pow(rho, Math.abs(t - u) * dilation));
  }
  return T;
}

function sameBn(a: BatchNormParams, b: BatchNormParams): boolean {
  if (a === b) return true;
  const arrays: (keyof BatchNormParams)[] = ['gamma', 'beta', 'mean', 'variance'];
  for (const key of arrays) {
    const x = a[key] as Float32Array;
    const y = b[key] as Float32Array;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/** Cz = W (C (x) T) W^T for an OIHW weight tensor [n][c][K], T = Th (x) Tw (K x K, symmetric), on the backend. */
function propagateCovariance(
  backend: DecomposeBackend,
  w: Float32Array,
  n: number,
  c: number,
  K: number,
  C: Float64Array,
  T: Float64Array,
): Float64Array {
  // X_j = C W_j T (c x K): by channel from the start (taps on every K-run, then one channel GEMM), one transpose back.
  const WT = backend.matmul(transposeBlocks(w, n, c, K), T, c * n, K, K);
  const X = transposeBlocks(mixRows(backend, WT, c, n * K, C), c, n, K);
  return backend.matmul(X, Float64Array.from(w), n, n, c * K, { transB: true });
}

/**
 * The input model of every conv (by name), in topological order so each
 * producer is modelled before its consumers, and for each conv the conv that
 * produced its input through a BatchNorm, where there is one.
 */
export function estimateInputs(
  convs: ConvLayerInfo[],
  backend: DecomposeBackend,
  opts: StatsOptions = {},
): { inputs: Map<string, InputModel>; producerOf: Map<string, string> } {
  const plain = opts.weighting === 'plain';
  if (opts.weighting !== undefined && opts.weighting !== 'bn' && !plain) {
    throw new DacError('EINVAL', `must be 'bn' or 'plain', got '${String(opts.weighting)}'`, { field: 'weighting' });
  }
  const rho = opts.spatialCorrelation ?? FEATURE_CORRELATION;
  if (typeof rho !== 'number' || !(rho >= 0 && rho < 1)) {
    throw new DacError('EINVAL', `must be a number in [0, 1), got ${String(rho)}`, { field: 'spatialCorrelation' });
  }
  const out = new Map<string, InputModel>();
  const producerOf = new Map<string, string>();
  // Centred channel covariance and tap matrix of each conv's input, for its consumers.
  const centred = new Map<string, { C: Float64Array; T: Float64Array }>();
  // Plain weighting's channel covariances are all I: one per channel count, shared (read only; a c x c
  // identity per layer was 12 MiB of VGG16's, held as long as the model is).
  const identities = new Map<number, Float64Array>();
  for (const layer of convs) {
    const { c, kh, kw } = layer;
    const vh = tapValidity(layer.inH, layer.outH, kh, layer.strides[0], layer.dilations[0], layer.pads[0]);
    const vw = tapValidity(layer.inW, layer.outW, kw, layer.strides[1], layer.dilations[1], layer.pads[1]);
    if (plain) {
      if (!identities.has(c)) identities.set(c, identity(c));
      out.set(layer.name, {
        A: identities.get(c)!,
        mean: new Float64Array(c),
        th: identity(kh),
        tw: identity(kw),
        validH: vh.single,
        validW: vw.single,
        pairH: vh.pair,
        pairW: vw.pair,
        source: 'standardised',
      });
      continue;
    }
    const bn = layer.bnBefore && layer.bnBefore.gamma.length === c ? layer.bnBefore : null;
    const producer = bn
      ? convs.find((p) => p !== layer && p.n === c && p.groups === 1 && p.bnAfter && centred.has(p.name) && sameBn(p.bnAfter, bn))
      : undefined;
    let C: Float64Array;
    let mean: Float64Array;
    let source: InputModel['source'];
    // No statistics: the network input (natural-image prior), or a hidden layer of a BN-folded model, whose
    // taps are left white: the image prior there gave the worst plans (docs/auto.md, "BN-folded models").
    const layerRho = bn ? rho : layer.inputConv ? 0 : INPUT_CORRELATION;
    if (bn && producer) {
      const prev = centred.get(producer.name)!;
      const K = producer.kh * producer.kw;
      const Cz = propagateCovariance(backend, producer.weights, producer.n, producer.c, K, prev.C, prev.T);
      const R = new Float64Array(c * c);
      const sd = new Float64Array(c);
      for (let j = 0; j < c; j++) sd[j] = Math.sqrt(Math.max(Cz[j * c + j], 0));
      for (let j = 0; j < c; j++) {
        for (let k = 0; k < c; k++) R[j * c + k] = j === k ? 1 : sd[j] > 0 && sd[k] > 0 ? Cz[j * c + k] / (sd[j] * sd[k]) : 0;
      }
      const mu = Float64Array.from(bn.beta);
      const gs = new Float64Array(c);
      for (let j = 0; j < c; j++) gs[j] = Math.abs(bn.gamma[j]) * Math.sqrt(bn.variance[j] / (bn.variance[j] + bn.epsilon));
      const r = reluCovariance(mu, gs, R);
      C = r.cov;
      mean = r.mean;
      source = 'propagated';
    } else if (bn) {
      C = new Float64Array(c * c);
      mean = new Float64Array(c);
      for (let j = 0; j < c; j++) {
        const m = reluMoments(bn.beta[j], Math.abs(bn.gamma[j]));
        mean[j] = m.mean;
        C[j * c + j] = Math.max(m.second - m.mean * m.mean, 0);
      }
      source = 'batchnorm';
    } else {
      C = identity(c);
      mean = new Float64Array(c);
      source = 'standardised';
    }
    const th = tapMatrix(vh.pair, kh, layer.dilations[0], layerRho);
    const tw = tapMatrix(vw.pair, kw, layer.dilations[1], layerRho);
    const A = new Float64Array(c * c);
    const keepMean = opts.centred !== true;
    for (let j = 0; j < c; j++) for (let k = 0; k < c; k++) A[j * c + k] = C[j * c + k] + (keepMean ? mean[j] * mean[k] : 0);
    centred.set(layer.name, { C, T: kron(th, kh, tw, kw) });
    out.set(layer.name, { A, mean, th, tw, validH: vh.single, validW: vw.single, pairH: vh.pair, pairW: vw.pair, source });
    if (producer) producerOf.set(layer.name, producer.name);
  }
  return { inputs: out, producerOf };
}
