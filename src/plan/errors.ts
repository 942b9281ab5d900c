// Data-free error model: how much a low-rank replacement perturbs what the
// next layer sees, predicted from the weights and the input model (stats.ts).
//
// The error of a replacement W' is E||D (W - W') x||^2 relative to E||D W x||^2:
//   D  = the following BatchNorm's scale gamma/sqrt(var+eps) per output channel
//        (the next layer sees the conv through it);
//   x  = the input patch, E[x x^T] = Sigma = A (x) Th (x) Tw (stats.ts).
// With Sigma = M M^T, M = L (x) Lh (x) Lw (Cholesky factors), the error is the
// Frobenius norm of D (W - W') M, so:
//   channel, spatial: the best replacement is a truncated SVD of the
//     transformed tensor W~ = D W M (for spatial, M acts on the (i, y) rows and
//     on x, so the rearranged matrix keeps its structure), and by Eckart-Young
//     the relative error at width w is its tail energy over its total;
//   DAC: each input channel's filters are the top right singular vectors of its
//     D-weighted, tap-transformed slice (channels cannot be mixed inside a
//     depthwise stage), and the pointwise stage is refitted by least squares
//     under the full Sigma, P = W Sigma F^T (F Sigma F^T)^-1, which lets it
//     borrow from correlated channels; the error is computed exactly under
//     Sigma. Above REFIT_LIMIT rows (c*r) the refit is skipped (its cost grows as
//     (c*r)^3) and the pointwise stage is the per-channel SVD's.
// 'plain' weighting (Sigma = I, D = I) reduces all of this to the plain
// Frobenius norm and plain truncated SVDs.

import type { ConvLayerInfo, Method } from '../model/types.js';
import { maxRank } from '../cost.js';
import { cholesky, choleskySolve, jacobiEigen, lowerInverse, squaredSingularValues } from './linalg.js';
import type { DecomposeBackend } from './backend.js';
import type { InputModel } from './stats.js';

export interface ErrorModelOptions {
  /** 'bn' (default): the data-free model of inputs and BatchNorms; 'plain': raw weights (Frobenius). */
  weighting?: 'bn' | 'plain';
  /** Neighbouring-tap correlation of hidden feature maps (0 <= rho < 1). */
  spatialCorrelation?: number;
}

/** Largest c*r for which the DAC pointwise stage is refitted (a (c*r)^2 system). */
export const REFIT_LIMIT = 1536;

/** Relative ridge added to Sigma's factors so dead channels do not make them singular. */
const RIDGE = 1e-3;

/** Scales below this fraction of the largest are raised to it, so D stays invertible. */
const SCALE_FLOOR = 1e-3;

/** Output-channel scale D of a layer: |gamma|/sqrt(var+eps) of the BatchNorm after it, or 1. */
export function outputScale(layer: ConvLayerInfo, plain: boolean): Float64Array {
  const d = new Float64Array(layer.n).fill(1);
  const bn = layer.bnAfter;
  if (plain || !bn || bn.gamma.length !== layer.n) return d;
  let max = 0;
  for (let j = 0; j < layer.n; j++) {
    d[j] = Math.abs(bn.gamma[j]) / Math.sqrt(bn.variance[j] + bn.epsilon);
    if (Number.isFinite(d[j])) max = Math.max(max, d[j]);
  }
  if (!(max > 0)) return d.fill(1);
  for (let j = 0; j < layer.n; j++) d[j] = Number.isFinite(d[j]) ? Math.max(d[j], SCALE_FLOOR * max) : max;
  return d;
}

/**
 * out[j, i', y', x'] = rowScale(j) * sum_{i,y,x} w[j,i,y,x] Mc[i,i'] Mh[y,y'] Mw[x,x']
 * for a [rows][ch][kh][kw] tensor; a null matrix is the identity.
 */
export function mixTensor(
  w: ArrayLike<number>,
  rows: number,
  ch: number,
  kh: number,
  kw: number,
  Mc: Float64Array | null,
  Mh: Float64Array | null,
  Mw: Float64Array | null,
  rowScale: ((j: number) => number) | null,
): Float64Array {
  const K = kh * kw;
  const per = ch * K;
  let cur = Float64Array.from(w as ArrayLike<number>);
  if (Mw) {
    const next = new Float64Array(cur.length);
    for (let base = 0; base < cur.length; base += kw) {
      for (let x2 = 0; x2 < kw; x2++) {
        let s = 0;
        for (let x = 0; x < kw; x++) s += cur[base + x] * Mw[x * kw + x2];
        next[base + x2] = s;
      }
    }
    cur = next;
  }
  if (Mh) {
    const next = new Float64Array(cur.length);
    for (let base = 0; base < cur.length; base += K) {
      for (let y2 = 0; y2 < kh; y2++) {
        for (let x = 0; x < kw; x++) {
          let s = 0;
          for (let y = 0; y < kh; y++) s += cur[base + y * kw + x] * Mh[y * kh + y2];
          next[base + y2 * kw + x] = s;
        }
      }
    }
    cur = next;
  }
  if (Mc) {
    const next = new Float64Array(cur.length);
    for (let j = 0; j < rows; j++) {
      const base = j * per;
      for (let i = 0; i < ch; i++) {
        const row = cur.subarray(base + i * K, base + (i + 1) * K);
        for (let i2 = 0; i2 < ch; i2++) {
          const m = Mc[i * ch + i2];
          if (m === 0) continue;
          const dst = base + i2 * K;
          for (let t = 0; t < K; t++) next[dst + t] += row[t] * m;
        }
      }
    }
    cur = next;
  }
  if (rowScale) {
    for (let j = 0; j < rows; j++) {
      const f = rowScale(j);
      for (let q = j * per; q < (j + 1) * per; q++) cur[q] *= f;
    }
  }
  return cur;
}

export interface DacFactors {
  rank: number;
  /** [c*rank][kh*kw] */
  depthwise: Float64Array;
  /** [n][c*rank] */
  pointwise: Float64Array;
  /** Relative error under the model. */
  error: number;
}

/** Everything the planner and the builder need about one layer under the error model. */
export class LayerErrorModel {
  readonly d: Float64Array;
  /** Cholesky factors of A, Th, Tw (Sigma = M M^T), applied as right-multipliers on their index. */
  readonly mc: Float64Array;
  readonly mh: Float64Array;
  readonly mw: Float64Array;
  readonly mcInv: Float64Array;
  readonly mhInv: Float64Array;
  readonly mwInv: Float64Array;
  private curves = new Map<Method, Float64Array>();
  private transformedCache: Float32Array | null = null;
  private dac: {
    /** [n][c][K] weights with taps transformed (x Lh (x) Lw), channels untouched. */
    W0: Float64Array;
    /** [c][R][K] top right singular vectors of each D-weighted, tap-transformed channel slice. */
    basis: Float64Array;
    R: number;
    /** [n][c][K] A-mixed tap-transformed weights:  Y[j,i] = sum_i' A[i,i'] W0[j,i'] */
    Y: Float64Array;
    /** sum_j d_j^2 W_j Sigma W_j^T */
    total: number;
  } | null = null;

  constructor(
    readonly layer: ConvLayerInfo,
    readonly input: InputModel,
    plain: boolean,
  ) {
    const { c, kh, kw } = layer;
    this.d = outputScale(layer, plain);
    // Sigma = (L L^T) (x) (Lh Lh^T) (x) (Lw Lw^T): right-multiplying W by L (x) Lh (x) Lw gives the weighted norm.
    const L = cholesky(input.A, c, RIDGE);
    const Lh = cholesky(input.th, kh, RIDGE);
    const Lw = cholesky(input.tw, kw, RIDGE);
    this.mc = L;
    this.mh = Lh;
    this.mw = Lw;
    this.mcInv = lowerInverse(L, c);
    this.mhInv = lowerInverse(Lh, kh);
    this.mwInv = lowerInverse(Lw, kw);
  }

  /** W~ = D W (L (x) Lh (x) Lw), OIHW, the tensor spatial and channel decompose. */
  transformed(): Float32Array {
    if (!this.transformedCache) {
      const { n, c, kh, kw } = this.layer;
      this.transformedCache = Float32Array.from(
        mixTensor(this.layer.weights, n, c, kh, kw, this.mc, this.mh, this.mw, (j) => this.d[j]),
      );
    }
    return this.transformedCache;
  }

  /** Relative error e[r] for r = 0..maxRank(method) (e[0] = 1). */
  curve(method: Method, backend?: DecomposeBackend): Float64Array {
    let e = this.curves.get(method);
    if (e) return e;
    const max = maxRank(this.layer, method);
    e = new Float64Array(max + 1);
    if (method === 'dac') {
      e = this.dacCurve();
    } else {
      const s2 = this.spectrum(method, backend);
      let total = 0;
      for (const v of s2) total += v;
      let tail = total;
      for (let r = 0; r <= max; r++) {
        e[r] = total > 0 ? Math.min(1, Math.max(0, tail / total)) : 0;
        if (r < s2.length) tail -= s2[r];
      }
      e[0] = 1;
    }
    // Rounding can make a longer tail look marginally larger; errors never grow with rank.
    for (let r = 1; r <= max; r++) e[r] = Math.min(e[r], e[r - 1]);
    this.curves.set(method, e);
    return e;
  }

  /** Squared singular values of the transformed tensor's spatial or channel matrix. */
  private spectrum(method: 'spatial' | 'channel', backend?: DecomposeBackend): Float64Array {
    const { n, c, kh, kw } = this.layer;
    const w = this.transformed();
    if (backend) {
      const shape = { n, c, kh, kw };
      const opts = { layout: 'OIHW' as const, context: { layer: this.layer.name } };
      const s =
        method === 'spatial'
          ? backend.decomposeSpatial(w, shape, 1, opts).singular
          : backend.decomposeChannel(w, shape, 1, opts).singular;
      return Float64Array.from(s, (x) => x * x);
    }
    const K = kh * kw;
    if (method === 'channel') return squaredSingularValues(n, c * K, (j, col) => w[j * c * K + col]);
    return squaredSingularValues(c * kh, n * kw, (r, col) => {
      const i = Math.floor(r / kh);
      const y = r % kh;
      const j = Math.floor(col / kw);
      const x = col % kw;
      return w[((j * c + i) * kh + y) * kw + x];
    });
  }

  private dacSetup() {
    if (this.dac) return this.dac;
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const R = maxRank(this.layer, 'dac');
    // W0 = W with taps transformed (x Lh (x) Lw); no channel mixing: depthwise filters are per channel.
    const W0 = mixTensor(this.layer.weights, n, c, kh, kw, null, this.mh, this.mw, null);
    const basis = new Float64Array(c * R * K);
    const G = new Float64Array(K * K);
    for (let i = 0; i < c; i++) {
      G.fill(0);
      for (let j = 0; j < n; j++) {
        const d2 = this.d[j] * this.d[j];
        const base = (j * c + i) * K;
        for (let t = 0; t < K; t++) {
          const a = d2 * W0[base + t];
          for (let u = t; u < K; u++) G[t * K + u] += a * W0[base + u];
        }
      }
      for (let t = 0; t < K; t++) for (let u = 0; u < t; u++) G[t * K + u] = G[u * K + t];
      const { values, vectors } = jacobiEigen(G, K);
      const order = Array.from({ length: K }, (_, k) => k).sort((a, b) => values[b] - values[a] || a - b);
      for (let k = 0; k < R; k++) {
        const col = order[k];
        // Deterministic sign: largest-magnitude entry positive (lowest index on ties).
        let best = 0;
        for (let t = 1; t < K; t++) if (Math.abs(vectors[t * K + col]) > Math.abs(vectors[best * K + col]) + 1e-12) best = t;
        const sign = vectors[best * K + col] < 0 ? -1 : 1;
        for (let t = 0; t < K; t++) basis[(i * R + k) * K + t] = sign * vectors[t * K + col];
      }
    }
    // Y[j,i] = sum_i' A[i,i'] W0[j,i']  (A is symmetric)
    const A = this.input.A;
    const Y = new Float64Array(n * c * K);
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < c; i++) {
        const dst = (j * c + i) * K;
        for (let i2 = 0; i2 < c; i2++) {
          const a = A[i * c + i2];
          if (a === 0) continue;
          const src = (j * c + i2) * K;
          for (let t = 0; t < K; t++) Y[dst + t] += a * W0[src + t];
        }
      }
    }
    let total = 0;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = j * c * K; q < (j + 1) * c * K; q++) s += Y[q] * W0[q];
      total += this.d[j] * this.d[j] * s;
    }
    this.dac = { W0, basis, R, Y, total };
    return this.dac;
  }

  /** DAC factors at rank r (real, untransformed) and their predicted relative error. */
  dacFactors(r: number): DacFactors {
    const { basis, R } = this.dacSetup();
    return this.fit(basis, R, r);
  }

  /**
   * DAC factors for depthwise filters F~ given in tap-transformed space
   * ([c*r][K], channel i's filters at rows i*r..i*r+r-1, e.g. a backend's
   * per-channel SVD of the same transformed slices): the pointwise stage
   * refitted under Sigma (above REFIT_LIMIT, the per-channel projection), the
   * real depthwise filters, and the predicted relative error.
   */
  fitPointwise(Ft: Float64Array, r: number): DacFactors {
    return this.fit(Ft, r, r);
  }

  /** Factors at rank r from a basis laid out [c][Rb][K] (rank r <= Rb uses its first r rows per channel). */
  private fit(basis: Float64Array, Rb: number, r: number): DacFactors {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const m = c * r;
    const Ft = new Float64Array(m * K);
    for (let i = 0; i < c; i++) for (let k = 0; k < r; k++) Ft.set(basis.subarray((i * Rb + k) * K, (i * Rb + k + 1) * K), (i * r + k) * K);
    let pointwise: Float64Array;
    let error: number;
    if (m <= REFIT_LIMIT) {
      const res = this.refit(Ft, r, r, r);
      pointwise = res.pointwise!;
      error = res.errors[r];
    } else {
      const res = this.project(Ft, r);
      pointwise = res.pointwise;
      error = res.error;
    }
    // Real depthwise filters: F = F~ (Lh (x) Lw)^-1 on the taps.
    const depthwise = mixTensor(Ft, m, 1, kh, kw, null, this.mhInv, this.mwInv, null);
    return { rank: r, depthwise, pointwise, error };
  }

  /** Predicted DAC errors e[0..maxRank] with the TypeScript per-channel basis. */
  private dacCurve(): Float64Array {
    const { c } = this.layer;
    const { basis, R } = this.dacSetup();
    const e = new Float64Array(R + 1).fill(1);
    // One Cholesky serves every rank up to Rr: with unknowns ordered rank-major the
    // rank-r system is the leading block of the rank-Rr one.
    const Rr = Math.min(R, Math.floor(REFIT_LIMIT / c));
    if (Rr >= 1) {
      const refitted = this.refit(basis, R, Rr, null).errors;
      for (let r = 1; r <= Rr; r++) e[r] = refitted[r];
    }
    for (let r = Rr + 1; r <= R; r++) {
      const K = this.layer.kh * this.layer.kw;
      const Ft = new Float64Array(c * r * K);
      for (let i = 0; i < c; i++) for (let k = 0; k < r; k++) Ft.set(basis.subarray((i * R + k) * K, (i * R + k + 1) * K), (i * r + k) * K);
      e[r] = this.project(Ft, r).error;
    }
    return e;
  }

  /**
   * Least-squares pointwise stage under Sigma for a basis [c][Rb][K] (tap-
   * transformed): P = H G^-1 with G[(i,k),(i',k')] = A[i,i'] <F~ik, F~i'k'> and
   * H[j,(i,k)] = <Y[j,i], F~ik>. Unknowns are ordered rank-major (k, i), so a
   * single Cholesky of the ranks-Rb system gives, for every r <= Rb, the
   * captured energy sum_j d_j^2 h_j G_r^-1 h_j^T as the squared norm of the
   * first c*r entries of L^-1 h_j. Returns errors[0..Rb] and, for solveRank,
   * the pointwise weights [n][c*solveRank] in (i, k) order.
   */
  private refit(basis: Float64Array, Rb: number, ranks: number, solveRank: number | null): { errors: Float64Array; pointwise: Float64Array | null } {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const { Y, total } = this.dacSetup();
    const A = this.input.A;
    const m = c * ranks;
    const row = (q: number) => ((q % c) * Rb + Math.floor(q / c)) * K;
    const G = new Float64Array(m * m);
    for (let q = 0; q < m; q++) {
      const iq = q % c;
      const bq = row(q);
      for (let q2 = 0; q2 <= q; q2++) {
        const a = A[iq * c + (q2 % c)];
        if (a === 0) continue;
        const b2 = row(q2);
        let s = 0;
        for (let t = 0; t < K; t++) s += basis[bq + t] * basis[b2 + t];
        G[q * m + q2] = a * s;
        G[q2 * m + q] = a * s;
      }
    }
    const L = cholesky(G, m, 1e-12);
    const captured = new Float64Array(ranks + 1);
    const pointwise = solveRank ? new Float64Array(n * c * solveRank) : null;
    const z = new Float64Array(m);
    for (let j = 0; j < n; j++) {
      for (let q = 0; q < m; q++) {
        const src = (j * c + (q % c)) * K;
        const bq = row(q);
        let s = 0;
        for (let t = 0; t < K; t++) s += Y[src + t] * basis[bq + t];
        z[q] = s;
      }
      // forward substitution: z = L^-1 h
      for (let q = 0; q < m; q++) {
        let s = z[q];
        const lrow = q * m;
        for (let k = 0; k < q; k++) s -= L[lrow + k] * z[k];
        z[q] = s / L[lrow + q];
      }
      const d2 = this.d[j] * this.d[j];
      let acc = 0;
      for (let r = 1; r <= ranks; r++) {
        for (let q = (r - 1) * c; q < r * c; q++) acc += z[q] * z[q];
        captured[r] += d2 * acc;
      }
      if (pointwise && solveRank) {
        // back substitution on the leading rank-solveRank block: p = L_r^-T z_r
        const mr = c * solveRank;
        const p = z.slice(0, mr);
        for (let q = mr - 1; q >= 0; q--) {
          let s = p[q];
          for (let k = q + 1; k < mr; k++) s -= L[k * m + q] * p[k];
          p[q] = s / L[q * m + q];
        }
        for (let q = 0; q < mr; q++) pointwise[j * mr + (q % c) * solveRank + Math.floor(q / c)] = p[q];
      }
    }
    const errors = new Float64Array(ranks + 1);
    errors[0] = 1;
    for (let r = 1; r <= ranks; r++) errors[r] = total > 0 ? Math.min(1, Math.max(0, (total - captured[r]) / total)) : 0;
    return { errors, pointwise };
  }

  /** Per-channel projection onto F~ (each channel's truncated SVD); the error under the full A. */
  private project(Ft: Float64Array, r: number): { pointwise: Float64Array; error: number } {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const { W0, total } = this.dacSetup();
    const A = this.input.A;
    const m = c * r;
    const pointwise = new Float64Array(n * m);
    const delta = new Float64Array(c * K);
    let err = 0;
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < c; i++) {
        const base = (j * c + i) * K;
        for (let t = 0; t < K; t++) delta[i * K + t] = W0[base + t];
        for (let k = 0; k < r; k++) {
          let s = 0;
          for (let t = 0; t < K; t++) s += W0[base + t] * Ft[(i * r + k) * K + t];
          pointwise[j * m + i * r + k] = s;
          for (let t = 0; t < K; t++) delta[i * K + t] -= s * Ft[(i * r + k) * K + t];
        }
      }
      let e = 0;
      for (let i = 0; i < c; i++) {
        for (let i2 = 0; i2 < c; i2++) {
          const a = A[i * c + i2];
          if (a === 0) continue;
          let s = 0;
          for (let t = 0; t < K; t++) s += delta[i * K + t] * delta[i2 * K + t];
          e += a * s;
        }
      }
      err += this.d[j] * this.d[j] * e;
    }
    return { pointwise, error: total > 0 ? Math.min(1, err / total) : 0 };
  }

  /** Modelled second moment of each output channel (before D) of an OIHW kernel: w_j Sigma w_j^T. */
  outputEnergy(w: ArrayLike<number>): Float64Array {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const t = mixTensor(w, n, c, kh, kw, this.mc, this.mh, this.mw, null);
    const e = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = j * c * K; q < (j + 1) * c * K; q++) s += t[q] * t[q];
      e[j] = s;
    }
    return e;
  }
}
