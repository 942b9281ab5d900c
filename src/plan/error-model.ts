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
//     plain n x (kh*kw) slice, as in the paper (channels cannot be mixed inside a
//     depthwise stage; weighting this choice by a propagated input model measured
//     worse, see docs/auto.md; at the network's input, whose model is an image
//     prior, the D-weighted, tap-transformed slice), and the pointwise stage is refitted by least squares
//     under the full Sigma, P = W Sigma F^T (F Sigma F^T)^-1, which lets it
//     borrow from correlated channels; the error is computed exactly under
//     Sigma. Above REFIT_LIMIT rows (c*r) the refit is skipped (its cost grows as
//     (c*r)^3) and the pointwise stage is the per-channel SVD's.
// 'plain' weighting (Sigma = I, D = I) reduces all of this to the plain
// Frobenius norm and plain truncated SVDs.
// Where A is diagonal ('plain', a standardised input) the refit's system is
// block diagonal, one r x r block per channel, and is solved block by block;
// the DAC error beyond the refitted ranks is computed in the coordinates of
// the per-channel bases (see tailErrors), not by forming each residual.

import type { ConvLayerInfo, Method } from '../model/types.js';
import { ScratchPool } from './scratch.js';
import { maxRank } from '../geometry.js';
import { identity, isDiagonal, jacobiEigen, kron, mixChannels, mixRows, scaleTensor, tile, transposeBlocks } from './linalg.js';
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

/** Relative ridge of the DAC refit's system (dead channels leave zero rows in it). */
const REFIT_RIDGE = 1e-12;

/**
 * Input channels gathered per pass for per-channel GEMMs (gatherChannels):
 * a block's run of each OIHW weight row is read at once, not one channel's K values.
 */
const CHANNEL_BLOCK = 32;

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
 * for a [rows][ch][kh][kw] tensor; a null matrix is the identity. The channel
 * mixing (Mc) runs on the backend. Into `out` where given (a Float32Array gets
 * each value rounded once, as a copy of the double result would).
 */
export function mixTensor<T extends Float32Array | Float64Array = Float64Array>(
  backend: DecomposeBackend,
  w: ArrayLike<number>,
  rows: number,
  ch: number,
  kh: number,
  kw: number,
  Mc: Float64Array | null,
  Mh: Float64Array | null,
  Mw: Float64Array | null,
  rowScale: ((j: number) => number) | null,
  out?: T,
): T {
  const K = kh * kw;
  const per = ch * K;
  const taps = Mh || Mw ? kron(Mh ?? identity(kh), kh, Mw ?? identity(kw), kw) : null;
  const tapScale = diagonalOf(taps, K);
  const chScale = diagonalOf(Mc, ch);
  if (tapScale && chScale) {
    // Every transform diagonal (plain weighting, white taps): one pass of the same products in the same
    // order as below (the GEMMs would add only zeros to each; a missing factor is an exact 1).
    const batch = Float64Array.from({ length: rows }, (_, j) => (rowScale ? rowScale(j) : 1));
    return scaleTensor(w, rows, ch, K, { cell: tile(tapScale, ch), line: chScale, batch }, false, out ?? (new Float64Array(rows * per) as T));
  }
  let cur: Float64Array;
  if (Mc && !isDiagonal(Mc, ch)) {
    // By channel from the start (the tap GEMM treats every K-run alike): the transpose in is also the
    // copy to double precision, and the channel GEMM runs between it and the one transpose back.
    cur = tapsByChannel(backend, w, rows, ch, K, taps);
    cur = transposeBlocks(mixRows(backend, cur, ch, rows * K, Mc), ch, rows, K);
  } else {
    cur = Float64Array.from(w as ArrayLike<number>);
    // Both tap transforms at once: the rows times (Mh (x) Mw), one GEMM.
    if (taps) cur = backend.matmul(cur, taps, rows * ch, K, K);
    if (Mc) cur = mixChannels(backend, cur, rows, ch, K, Mc);
  }
  if (rowScale) {
    for (let j = 0; j < rows; j++) {
      const f = rowScale(j);
      for (let q = j * per; q < (j + 1) * per; q++) cur[q] *= f;
    }
  }
  if (!out) return cur as T;
  out.set(cur);
  return out;
}

/**
 * A [rows][ch][K] tensor by channel ([ch][rows][K], double precision), its
 * K-runs times `taps` (K x K, null: as they are): the layout in which a
 * channel mixing is one GEMM (mixRows).
 */
function tapsByChannel(
  backend: DecomposeBackend,
  w: ArrayLike<number>,
  rows: number,
  ch: number,
  K: number,
  taps: Float64Array | null,
): Float64Array {
  const byChannel = transposeBlocks(w, rows, ch, K);
  return taps ? backend.matmul(byChannel, taps, rows * ch, K, K) : byChannel;
}

/** The diagonal of an m x m matrix that has nothing else (all ones for null, the identity), or null. */
function diagonalOf(a: Float64Array | null, m: number): Float64Array | null {
  if (!a) return new Float64Array(m).fill(1);
  if (!isDiagonal(a, m)) return null;
  return Float64Array.from({ length: m }, (_, i) => a[i * m + i]);
}

/**
 * Channels i0..i1-1 of an OIHW tensor [n][c][K] by channel ([i1-i0][n][K])
 * into the front of `out`: one pass over each row's run of the block.
 */
function gatherChannels(w: ArrayLike<number>, n: number, c: number, K: number, i0: number, i1: number, out: Float64Array): Float64Array {
  for (let j = 0; j < n; j++) {
    for (let i = i0; i < i1; i++) {
      const src = (j * c + i) * K;
      const dst = ((i - i0) * n + j) * K;
      for (let t = 0; t < K; t++) out[dst + t] = w[src + t];
    }
  }
  return out;
}

/**
 * S[(j*c + i)*ranks + k] = <slice (j, i), basis row (i, k)> for the n x c slices of K values of `src`, slice
 * (j, i) starting at j*jStride + i*iStride (OIHW weights: c*K, K; by channel: K, n*K), the basis laid out
 * [c][Rb][K]; each sum in tap order. K products per value, a loop: one backend call per channel would cost
 * more in calls than in work.
 */
function sliceCoordinates(
  src: ArrayLike<number>,
  jStride: number,
  iStride: number,
  basis: Float64Array,
  Rb: number,
  n: number,
  c: number,
  K: number,
  ranks: number,
): Float64Array {
  const S = new Float64Array(n * c * ranks);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < n; j++) {
      const at = j * jStride + i * iStride;
      for (let k = 0; k < ranks; k++) {
        const f = (i * Rb + k) * K;
        let s = 0;
        for (let t = 0; t < K; t++) s += src[at + t] * basis[f + t];
        S[(j * c + i) * ranks + k] = s;
      }
    }
  }
  return S;
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
  /** Cholesky factors of A (the getter mc), Th, Tw (Sigma = M M^T), applied as right-multipliers on their index. */
  readonly mh: Float64Array;
  readonly mw: Float64Array;
  readonly mhInv: Float64Array;
  readonly mwInv: Float64Array;
  /** c x c, so made when asked for and dropped by release() with the caches below (VGG16's: 20 MiB together). */
  private mcCache: Float64Array | null = null;
  private mcInvCache: Float64Array | null = null;
  /** A has no off-diagonal entries: the refit separates by channel. */
  private readonly diagonalA: boolean;
  private curves = new Map<Method, Float64Array>();
  /** Spectra computed ahead of their curves (prefetchSpectra). */
  private spectra = new Map<'spatial' | 'channel', Float64Array>();
  /*
   * The caches below are layer-sized double-precision tensors: release()
   * drops them once a layer is planned or built, so a model holds at most one
   * layer's worth at a time (the curves, a few numbers per rank, stay).
   */
  private transformedCache: Float64Array | null = null;
  /** spectralMatrix's one array where every factor is diagonal (byTap), null until made or where there is none. */
  private byTapCache: Float64Array | null = null;
  private dac: {
    /** [c][n][K] weights with taps transformed (x Lh (x) Lw), channels untouched, by channel. */
    W0c: Float64Array;
    /** [c][n][K] A-mixed tap-transformed weights by channel, Y[i,j] = sum_i' A[i,i'] W0[i',j], where A mixes channels (else null). */
    Yc: Float64Array | null;
    /** sum_j d_j^2 W_j Sigma W_j^T */
    total: number;
  } | null = null;
  /** [c][R][K] each channel's top right singular vectors of dacSvdInput(), tap-transformed and orthonormalised (the curve's basis). */
  private dacBasisCache: { basis: Float64Array; R: number } | null = null;
  /** sum_j d_j^2 W_j Sigma W_j^T (Sigma as the refit sees it, without the factors' ridge): a number, kept by release(). */
  private totalCache: number | null = null;
  /** outputEnergy(layer.weights), once made (or where energyTotal's pass gives it, plain weighting): n numbers, kept by release(). */
  private weightEnergyCache: Float64Array | null = null;

  constructor(
    readonly layer: ConvLayerInfo,
    readonly input: InputModel,
    plain: boolean,
    readonly backend: DecomposeBackend,
    /** Where the layer-sized spectral tensors and Gram matrices come from (a set's models share one). */
    private readonly scratch = new ScratchPool(),
  ) {
    const { c, kh, kw } = layer;
    this.d = outputScale(layer, plain);
    const context = { layer: layer.name };
    // Sigma = (L L^T) (x) (Lh Lh^T) (x) (Lw Lw^T): right-multiplying W by L (x) Lh (x) Lw gives the weighted norm.
    const factor = (a: Float64Array, m: number) => {
      const L = backend.cholesky(a, m, RIDGE, context);
      return { L, inv: backend.solveTriangular(L, m, identity(m), m, { context }) };
    };
    const fh = factor(input.th, kh);
    const fw = factor(input.tw, kw);
    this.diagonalA = isDiagonal(input.A, c);
    this.mh = fh.L;
    this.mw = fw.L;
    this.mhInv = fh.inv;
    this.mwInv = fw.inv;
  }

  /** L, A's Cholesky factor (c x c). */
  get mc(): Float64Array {
    const { c, name } = this.layer;
    this.mcCache ??= this.backend.cholesky(this.input.A, c, RIDGE, { layer: name });
    return this.mcCache;
  }

  /** L^-1 (c x c), made when first asked for: only spatial and channel map their factors back through it. */
  get mcInv(): Float64Array {
    const { c, name } = this.layer;
    if (!this.mcInvCache && this.diagonalA) {
      this.mcInvCache = new Float64Array(c * c);
      for (let i = 0; i < c; i++) this.mcInvCache[i * c + i] = 1 / this.mc[i * c + i];
    }
    this.mcInvCache ??= this.backend.solveTriangular(this.mc, c, identity(c), c, { context: { layer: name } });
    return this.mcInvCache;
  }

  /** W~ = D W (L (x) Lh (x) Lw), OIHW, the tensor spatial and channel decompose. */
  transformed(): Float32Array {
    if (this.transformedCache) return new Float32Array(this.transformedCache);
    const { n, c, kh, kw } = this.layer;
    return mixTensor(this.backend, this.layer.weights, n, c, kh, kw, this.mc, this.mh, this.mw, (j) => this.d[j], new Float32Array(n * c * kh * kw));
  }

  private transformed64(): Float64Array {
    if (!this.transformedCache) {
      const { n, c, kh, kw } = this.layer;
      // Made only where some transform is not diagonal (else byTap serves the spectra and transformed()
      // the factorisations): mixTensor's own array, which release() gives to the pool.
      this.transformedCache = mixTensor<Float64Array>(this.backend, this.layer.weights, n, c, kh, kw, this.mc, this.mh, this.mw, (j) => this.d[j]);
    }
    return this.transformedCache;
  }

  /** Relative error e[r] for r = 0..maxRank(method) (e[0] = 1); `threads` for the backend's spectra (spatial, channel). */
  curve(method: Method, threads = 1): Float64Array {
    let e = this.curves.get(method);
    if (e) return e;
    const max = maxRank(this.layer, method);
    e = new Float64Array(max + 1);
    if (method === 'dac') {
      e = this.dacCurve();
    } else {
      const s2 = this.spectrum(method, threads);
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

  /**
   * Squared singular values (descending) of the transformed tensor's spatial
   * ((c*kh) x (n*kw)) or channel (n x (c*kh*kw)) matrix: the eigenvalues of
   * its smaller Gram matrix, on the backend (or as spectra() left them).
   */
  private spectrum(method: 'spatial' | 'channel', threads: number): Float64Array {
    const known = this.spectra.get(method);
    if (known) return known;
    const m = this.gramOrder(method);
    const G = this.scratch.take(m * m);
    try {
      this.gram(method, threads, G);
      return this.backend.symmetricEigenvalues(G, m, { layer: this.layer.name }, { threads, overwrite: true }).map((v) => Math.max(v, 0));
    } finally {
      this.scratch.give(G);
    }
  }

  /** The smaller Gram matrix (m x m, m = gramOrder(method)) of spectrum(method)'s matrix, in `out`. */
  private gram(method: 'spatial' | 'channel', threads: number, out: Float64Array): void {
    const { M, rows, cols, transposed } = this.spectralMatrix(method);
    const context = { layer: this.layer.name };
    const m = Math.min(rows, cols);
    const k = Math.max(rows, cols);
    // Of the rows (M M^T) where rows <= cols, else of the columns (M^T M); a matrix held transposed swaps the two.
    if (rows <= cols !== transposed) this.backend.matmul(M, M, m, m, k, { transB: true, threads, out, context });
    else this.backend.matmul(M, M, m, m, k, { transA: true, threads, out, context });
  }

  /**
   * spectrum(method)'s matrix (rows x cols), or one with its singular values: in general the transformed
   * tensor W~ as it is (channel: n x (c*kh*kw)) or rearranged [n][c*kh][kw] -> [c*kh][n][kw] (spatial: rows
   * (i, y), columns (j, x)). Where every factor is diagonal (plain weighting) both read one array made from
   * the weights in one pass, W~ with each output's [c*kh][kw] block transposed: read as n x (kw*c*kh) it is
   * the channel matrix with its columns permuted; it holds the spatial matrix transposed (`transposed`).
   */
  spectralMatrix(method: 'spatial' | 'channel'): { M: Float64Array; rows: number; cols: number; transposed: boolean } {
    const { n, c, kh, kw } = this.layer;
    this.byTapCache ??= this.byTap();
    const M = this.byTapCache;
    if (method === 'channel') return { M: M ?? this.transformed64(), rows: n, cols: c * kh * kw, transposed: false };
    return { M: M ?? transposeBlocks(this.transformed64(), n, c * kh, kw), rows: c * kh, cols: n * kw, transposed: M !== null };
  }

  /**
   * Where mixTensor would only scale the weights (every factor diagonal), W~ by tap column ([n][kw][c*kh],
   * W~'s products in W~'s order) in one pass from the weights; else null.
   */
  private byTap(): Float64Array | null {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const taps = diagonalOf(kron(this.mh, kh, this.mw, kw), K);
    const channels = diagonalOf(this.mc, c);
    if (!taps || !channels) return null;
    // Row (i, y) of a [c*kh][kw] block: taps (y, 0..kw-1), channel i.
    const line = new Float64Array(c * kh);
    for (let q = 0; q < c * kh; q++) line[q] = channels[Math.floor(q / kh)];
    const out = this.scratch.take(n * c * kh * kw);
    return scaleTensor(this.layer.weights, n, c * kh, kw, { cell: tile(taps, c), line, batch: this.d }, true, out);
  }

  /**
   * The curves of several layers ahead of their use: the spatial and channel
   * spectra of `threads` layers whose Gram matrices have the same order in
   * one backend call (the reduction of one large Gram matrix is bound by
   * memory bandwidth and gains little from a second thread; two reduced side
   * by side each run at full speed), and, while each layer's transformed
   * tensor exists, its DAC curve. Layers with the same pair of orders come
   * one after another, and a batch waits for a partner of its order from
   * the next layers until none is left, so each batch is full where it can
   * be (VGG16: a 512-order channel Gram of the one 256->512 conv goes with
   * one of a 512->512 conv); its buffer is reused. Same values as curve()
   * makes one by one. Each layer's caches are released once its part is done.
   */
  static prefetchCurves(models: LayerErrorModel[], methods: readonly Method[], threads: number): void {
    const spectral = methods.filter((m): m is 'spatial' | 'channel' => m !== 'dac');
    if (threads < 2 || spectral.length === 0) return;
    const byOrders = new Map<string, { model: LayerErrorModel; needs: { method: 'spatial' | 'channel'; m: number; key: string }[] }[]>();
    const left = new Map<string, number>();
    for (const model of models) {
      const needs = spectral
        .filter((method) => !model.curves.has(method) && !model.spectra.has(method))
        .map((method) => {
          const m = model.gramOrder(method);
          return { method, m, key: `${method}:${m}` };
        });
      if (needs.length === 0) continue;
      for (const { key } of needs) left.set(key, (left.get(key) ?? 0) + 1);
      const orders = needs.map((x) => x.key).join();
      if (!byOrders.has(orders)) byOrders.set(orders, []);
      byOrders.get(orders)!.push({ model, needs });
    }
    const batches = new Map<string, { all: Float64Array; members: LayerErrorModel[] }>();
    const solve = (method: 'spatial' | 'channel', m: number, all: Float64Array, members: LayerErrorModel[]) => {
      const count = members.length;
      const context = { layer: members.map((x) => x.layer.name).join(', ') };
      const values = members[0].backend.symmetricEigenvalues(all.subarray(0, count * m * m), m, context, { threads, count, overwrite: true });
      members.forEach((model, b) => model.spectra.set(method, values.subarray(b * m, (b + 1) * m).map((v) => Math.max(v, 0))));
    };
    for (const group of byOrders.values()) {
      for (const { model, needs } of group) {
        for (const { method, m, key } of needs) {
          let batch = batches.get(key);
          if (!batch) {
            // Room for as many as will come (a key with fewer layers than threads never fills a batch).
            batch = { all: model.scratch.take(Math.min(threads, left.get(key)!) * m * m), members: [] };
            batches.set(key, batch);
          }
          const b = batch.members.length;
          model.gram(method, threads, batch.all.subarray(b * m * m, (b + 1) * m * m));
          batch.members.push(model);
          const rest = left.get(key)! - 1;
          left.set(key, rest);
          if (batch.members.length === threads || rest === 0) {
            solve(method, m, batch.all, batch.members);
            batch.members = [];
            if (rest === 0) {
              batches.delete(key);
              model.scratch.give(batch.all);
            }
          }
        }
        if (methods.includes('dac')) model.curve('dac');
        model.release();
      }
    }
  }

  /** The order of spectrum(method)'s Gram matrix. */
  private gramOrder(method: 'spatial' | 'channel'): number {
    const { n, c, kh, kw } = this.layer;
    return method === 'channel' ? Math.min(n, c * kh * kw) : Math.min(c * kh, n * kw);
  }

  /** Drops the layer-sized caches (they are rebuilt if needed again); the curves stay. */
  release(): void {
    this.mcCache = null;
    this.mcInvCache = null;
    if (this.transformedCache) this.scratch.give(this.transformedCache);
    this.transformedCache = null;
    if (this.byTapCache) this.scratch.give(this.byTapCache);
    this.byTapCache = null;
    this.dac = null;
    this.dacBasisCache = null;
  }

  /** The tap transform's scales where it is diagonal (plain weighting, white taps) and A is too, else null. */
  private plainScales(): Float64Array | null {
    const { kh, kw } = this.layer;
    return this.diagonalA ? diagonalOf(kron(this.mh, kh, this.mw, kw), kh * kw) : null;
  }

  /**
   * Whether each channel's truncated SVD of dacSvdInput() is already the best
   * DAC pair under the model: it only rescales (A diagonal, one scale for
   * every tap and one for every output: plain weighting), so the error
   * separates by channel, the refit would return the SVD's own pointwise
   * stage, and the error at each rank is the curve's (scaledDacCurve).
   */
  get dacSvdIsBest(): boolean {
    return this.diagonalA && this.uniformScale();
  }

  /**
   * Where dacSvdIsBest, the factors fitPointwise would make from the
   * backend's per-channel SVD of the weights (its filters, rank r, and its
   * pointwise stage, the refit's optimum there), without the refit: the
   * filters kept unit under the tap transform (divided by its one scale, the
   * pointwise stage multiplied by it), and the curve's error at rank r: from
   * the SVD's own singular values ([c][min(n, K)]: scaledDacCurve's
   * eigenvalues, squared, in float32) when the curve is not made yet.
   * `depthwise` and `pointwise` are the caller's to give: they are scaled in
   * place and returned, so a layer's factors never exist twice.
   */
  svdFactors(depthwise: Float32Array, pointwise: Float32Array, r: number, singular: Float32Array): { first: Float32Array; last: Float32Array; error: number } {
    const { c, kh, kw } = this.layer;
    const tau = kron(this.mh, kh, this.mw, kw)[0];
    const first = depthwise;
    const last = pointwise;
    if (tau !== 1) {
      for (let q = 0; q < first.length; q++) first[q] /= tau;
      for (let q = 0; q < last.length; q++) last[q] *= tau;
    }
    const curve = this.curves.get('dac');
    if (curve) return { first, last, error: curve[r] };
    // tail / total with sum_i A[i,i] s_ik^2 over k >= r and over every k; rank R spans every slice (exact).
    const per = singular.length / c;
    let tail = 0;
    let total = 0;
    for (let i = 0; i < c; i++) {
      const a = this.input.A[i * c + i];
      for (let k = 0; k < per; k++) {
        const s2 = a * singular[i * per + k] * singular[i * per + k];
        total += s2;
        if (k >= r) tail += s2;
      }
    }
    const error = r >= maxRank(this.layer, 'dac') || total <= 0 ? 0 : Math.min(1, Math.max(0, tail / total));
    return { first, last, error };
  }

  /** Whether D and the tap transform are each one scale (plain weighting): they then change no singular vector. */
  private uniformScale(): boolean {
    const { kh, kw } = this.layer;
    const taps = diagonalOf(kron(this.mh, kh, this.mw, kw), kh * kw);
    return taps !== null && taps.every((v) => v === taps[0]) && this.d.every((v) => v === this.d[0]);
  }

  private energyTotal(): number {
    if (this.totalCache !== null) return this.totalCache;
    const tapScale = this.plainScales();
    if (!tapScale) return this.dacSetup().total;
    // Plain: sum_j d_j^2 sum_i A[i,i] |W[j,i] taps|^2, one pass over the weights (dacSetup's products),
    // which also gives outputEnergy(weights) (its products, under the factors' scales).
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const w = this.layer.weights;
    const A = this.input.A;
    const rows = new Float64Array(n);
    let total = 0;
    for (let j = 0; j < n; j++) {
      let s = 0;
      let e = 0;
      for (let i = 0; i < c; i++) {
        const a = A[i * c + i];
        const m = this.mc[i * c + i];
        for (let t = 0; t < K; t++) {
          const v = w[(j * c + i) * K + t] * tapScale[t];
          s += v * a * v;
          const u = v * m;
          e += u * u;
        }
      }
      total += this.d[j] * this.d[j] * s;
      rows[j] = e;
    }
    this.totalCache = total;
    this.weightEnergyCache = rows;
    return total;
  }

  /**
   * The coordinates of every slice W0[j,i] on its channel's first `ranks`
   * basis vectors (basis laid out [c][Rb][K]), laid out as a pointwise stage:
   * S[(j*c + i)*ranks + k] = <W0[j,i], basis_ik>. Plain: straight from the
   * weights with the tap scales moved onto the basis, so W0 is never formed;
   * else from W0 by channel.
   */
  private coordinates(basis: Float64Array, Rb: number, ranks: number): Float64Array {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const tapScale = this.plainScales();
    if (tapScale) {
      const F = new Float64Array(c * ranks * K);
      for (let i = 0; i < c; i++)
        for (let k = 0; k < ranks; k++) for (let t = 0; t < K; t++) F[(i * ranks + k) * K + t] = basis[(i * Rb + k) * K + t] * tapScale[t];
      return sliceCoordinates(this.layer.weights, c * K, K, F, ranks, n, c, K, ranks);
    }
    return sliceCoordinates(this.dacSetup().W0c, K, n * K, basis, Rb, n, c, K, ranks);
  }

  private dacSetup() {
    if (this.dac) return this.dac;
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const A = this.input.A;
    const tapScale = this.plainScales();
    if (tapScale) {
      // Plain weighting: W0 is a scale per tap, written by channel at once, and Y is not needed.
      const w = this.layer.weights;
      const W0c = new Float64Array(n * c * K);
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < c; i++) for (let t = 0; t < K; t++) W0c[(i * n + j) * K + t] = w[(j * c + i) * K + t] * tapScale[t];
      }
      this.dac = { W0c, Yc: null, total: this.energyTotal() };
      return this.dac;
    }
    // W0 = W with taps transformed (x Lh (x) Lw), kept by channel; no channel mixing: depthwise filters are per channel.
    const W0c = tapsByChannel(this.backend, this.layer.weights, n, c, K, kron(this.mh, kh, this.mw, kw));
    // Y[i,j] = sum_i' A[i,i'] W0[i',j] (A is symmetric): one GEMM by channel; with A diagonal only its diagonal is kept, not Y.
    const Yc = this.diagonalA ? null : mixRows(this.backend, W0c, c, n * K, A);
    // Per output channel, summed over (i, t) in order.
    const rows = new Float64Array(n);
    for (let i = 0; i < c; i++) {
      const a = A[i * c + i];
      for (let j = 0; j < n; j++) {
        const base = (i * n + j) * K;
        let s = rows[j];
        if (Yc) for (let q = base; q < base + K; q++) s += Yc[q] * W0c[q];
        else for (let q = base; q < base + K; q++) s += W0c[q] * a * W0c[q];
        rows[j] = s;
      }
    }
    let total = 0;
    for (let j = 0; j < n; j++) total += this.d[j] * this.d[j] * rows[j];
    this.dac = { W0c, Yc, total };
    this.totalCache = total;
    return this.dac;
  }

  /**
   * Whether DAC's depthwise filters come from the weighted slices D W (Lh (x) Lw)
   * rather than the plain ones: only where the input model is the a-priori
   * model of the network's own input (pixel correlations are a property of
   * images), not one propagated through hidden layers (docs/auto.md).
   */
  get dacWeighted(): boolean {
    return this.input.source === 'standardised';
  }

  /** The tensor whose per-channel SVD gives DAC's depthwise filters (OIHW): D W (Lh (x) Lw) or W, per dacWeighted. */
  dacSvdInput(): Float32Array {
    const { n, c, kh, kw } = this.layer;
    // A uniform scale (plain weighting) leaves every singular vector as it is: the weights themselves.
    if (!this.dacWeighted || this.uniformScale()) return this.layer.weights;
    return new Float32Array(mixTensor(this.backend, this.layer.weights, n, c, kh, kw, null, this.mh, this.mw, (j) => this.d[j]));
  }

  /** Depthwise filters [c*r][K] from the SVD of dacSvdInput(), in tap-transformed space (what fitPointwise takes). */
  dacTransformedFilters(depthwise: Float32Array, r: number): Float64Array {
    const { c, kh, kw } = this.layer;
    return this.dacWeighted ? Float64Array.from(depthwise) : mixTensor(this.backend, depthwise, c * r, 1, kh, kw, null, this.mh, this.mw, null);
  }

  /**
   * The curve's per-channel basis: eigenvectors of each channel's Gram matrix
   * of dacSvdInput() (TypeScript Jacobi, double precision; the builder takes
   * the backend's SVD of the same tensor), in tap-transformed space and
   * orthonormalised there in rank order, so the first r vectors span the
   * rank-r filters (what the refit sees) and tailErrors can use them as
   * coordinates.
   */
  private dacBasis() {
    if (this.dacBasisCache) return this.dacBasisCache;
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const R = maxRank(this.layer, 'dac');
    const weighted = this.dacWeighted;
    // Weighted: rows d_j W0[j,i] (W0c, taps already transformed); plain: rows W[j,i], gathered by channel a
    // block at a time (a channel's slices lie c*K apart in the weights).
    const W0c = weighted ? this.dacSetup().W0c : null;
    const block = W0c ? null : new Float64Array(Math.min(c, CHANNEL_BLOCK) * n * K);
    const svdBasis = new Float64Array(c * R * K);
    const G = new Float64Array(K * K);
    for (let i = 0; i < c; i++) {
      if (block && i % CHANNEL_BLOCK === 0) gatherChannels(this.layer.weights, n, c, K, i, Math.min(c, i + CHANNEL_BLOCK), block);
      const w = W0c ?? block!;
      const first = W0c ? i * n * K : (i % CHANNEL_BLOCK) * n * K;
      G.fill(0);
      for (let j = 0; j < n; j++) {
        const base = first + j * K;
        const d2 = weighted ? this.d[j] * this.d[j] : 1;
        for (let t = 0; t < K; t++) {
          const a = d2 * w[base + t];
          for (let u = t; u < K; u++) G[t * K + u] += a * w[base + u];
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
        for (let t = 0; t < K; t++) svdBasis[(i * R + k) * K + t] = sign * vectors[t * K + col];
      }
    }
    const basis = weighted ? svdBasis : mixTensor(this.backend, svdBasis, c * R, 1, kh, kw, null, this.mh, this.mw, null);
    orthonormaliseChannels(basis, c, R, K);
    this.dacBasisCache = { basis, R };
    return this.dacBasisCache;
  }

  /** DAC factors at rank r (real, untransformed) and their predicted relative error. */
  dacFactors(r: number): DacFactors {
    const { basis, R } = this.dacBasis();
    return this.fit(basis, R, r);
  }

  /**
   * DAC factors for depthwise filters F~ given in tap-transformed space
   * ([c*r][K], channel i's filters at rows i*r..i*r+r-1, e.g. a backend's
   * per-channel SVD of dacSvdInput() through dacTransformedFilters): the pointwise stage
   * refitted under Sigma (above REFIT_LIMIT, the per-channel projection), the
   * real depthwise filters, and the predicted relative error.
   */
  fitPointwise(Ft: Float64Array, r: number): DacFactors {
    // Same span, so the same optimum, but the refit's system is then conditioned like A alone: plain
    // filters seen through the tap transform are far from orthogonal, and with a near-singular A the
    // product lost the fit (full rank came out inexact on InceptionV3's late convs).
    orthonormaliseChannels(Ft, this.layer.c, r, this.layer.kh * this.layer.kw);
    return this.fit(Ft, r, r);
  }

  /** Factors at rank r from a basis laid out [c][Rb][K] (rank r <= Rb uses its first r rows per channel). */
  private fit(basis: Float64Array, Rb: number, r: number): DacFactors {
    const { c, kh, kw } = this.layer;
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
    const depthwise = mixTensor(this.backend, Ft, m, 1, kh, kw, null, this.mhInv, this.mwInv, null);
    return { rank: r, depthwise, pointwise, error };
  }

  /**
   * The DAC curve where the error model only rescales (A diagonal, one scale
   * for every tap and one for every output: plain weighting). Each channel's
   * best filters are then its plain SVD's, whatever the refit, so e[r] is the
   * A-weighted share of the squared singular values beyond r: eigenvalues of
   * the channels' Gram matrices in double precision (a GEMM and an
   * eigensolve per channel on the backend), no basis and no refit.
   * Null under any other model.
   */
  private scaledDacCurve(): Float64Array | null {
    if (!this.dacSvdIsBest) return null;
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const R = maxRank(this.layer, 'dac');
    const A = this.input.A;
    const context = { layer: this.layer.name };
    // Every channel's Gram matrix, then all their eigenvalues in one call (a call per channel cost more than its work).
    const grams = new Float64Array(c * K * K);
    const rows = new Float64Array(Math.min(c, CHANNEL_BLOCK) * n * K);
    for (let i = 0; i < c; i++) {
      if (i % CHANNEL_BLOCK === 0) gatherChannels(this.layer.weights, n, c, K, i, Math.min(c, i + CHANNEL_BLOCK), rows);
      const X = rows.subarray((i % CHANNEL_BLOCK) * n * K, ((i % CHANNEL_BLOCK) + 1) * n * K);
      this.backend.matmul(X, X, K, K, n, { transA: true, out: grams.subarray(i * K * K, (i + 1) * K * K), context });
    }
    const values = this.backend.symmetricEigenvalues(grams, K, context, { count: c, overwrite: true });
    // tail[r] = sum_i A[i,i] sum_{k >= r} lambda_ik
    const tail = new Float64Array(R + 1);
    for (let i = 0; i < c; i++) {
      const a = A[i * c + i];
      for (let k = 0; k < K; k++) {
        const v = Math.max(values[i * K + k], 0);
        for (let r = 0; r <= Math.min(k, R); r++) tail[r] += a * v;
      }
    }
    const e = new Float64Array(R + 1);
    e[0] = 1;
    // Rank R spans every slice of a channel: exact (e[R] = 0).
    for (let r = 1; r < R; r++) e[r] = tail[0] > 0 ? Math.min(1, Math.max(0, tail[r] / tail[0])) : 0;
    return e;
  }

  /** Predicted DAC errors e[0..maxRank] with the TypeScript per-channel basis. */
  private dacCurve(): Float64Array {
    const scaled = this.scaledDacCurve();
    if (scaled) return scaled;
    const { c } = this.layer;
    const { basis, R } = this.dacBasis();
    const e = new Float64Array(R + 1).fill(1);
    // One Cholesky serves every rank up to Rr: with unknowns ordered rank-major the
    // rank-r system is the leading block of the rank-Rr one. Rank R spans every
    // slice of a channel, so it is exact and needs no refit (tailErrors gives 0).
    const Rr = Math.min(R - 1, Math.floor(REFIT_LIMIT / c));
    if (Rr >= 1) {
      const refitted = this.refit(basis, R, Rr, null).errors;
      for (let r = 1; r <= Rr; r++) e[r] = refitted[r];
    }
    if (Rr < R) e.set(this.tailErrors(Rr + 1), Rr + 1);
    return e;
  }

  /**
   * The pointwise stage's least-squares fit under Sigma for a basis [c][Rb][K]
   * (tap-transformed): P = H G^-1 with G[(i,k),(i',k')] = A[i,i'] <F~ik, F~i'k'>
   * and H[j,(i,k)] = <Y[j,i], F~ik>. Unknowns are ordered rank-major (k, i),
   * so one Cholesky of the ranks-Rb system gives, for every r <= Rb, the
   * captured energy sum_j d_j^2 h_j G_r^-1 h_j^T as the squared norm of the
   * first c*r entries of L^-1 h_j. A ridge of 1e-12 of G's mean diagonal keeps
   * dead channels solvable. Returns errors[0..ranks] and, for solveRank, the
   * pointwise weights [n][c*solveRank] in (i, k) order.
   */
  private refit(basis: Float64Array, Rb: number, ranks: number, solveRank: number | null): { errors: Float64Array; pointwise: Float64Array | null } {
    const { n, c } = this.layer;
    const total = this.energyTotal();
    const captured = new Float64Array(ranks + 1);
    const pointwise = solveRank ? new Float64Array(n * c * solveRank) : null;
    if (this.diagonalA) this.refitBlocks(basis, Rb, ranks, solveRank, captured, pointwise);
    else this.refitDense(basis, Rb, ranks, solveRank, captured, pointwise);
    const errors = new Float64Array(ranks + 1);
    errors[0] = 1;
    for (let r = 1; r <= ranks; r++) errors[r] = total > 0 ? Math.min(1, Math.max(0, (total - captured[r]) / total)) : 0;
    return { errors, pointwise };
  }

  /** The refit with A dense: G assembled from the basis' Gram matrix, factored and solved on the backend. */
  private refitDense(
    basis: Float64Array,
    Rb: number,
    ranks: number,
    solveRank: number | null,
    captured: Float64Array,
    pointwise: Float64Array | null,
  ): void {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const Yc = this.dacSetup().Yc!;
    const A = this.input.A;
    const m = c * ranks;
    const context = { layer: this.layer.name };
    // B[q] = basis row of unknown q = (k, i), rank-major.
    const B = new Float64Array(m * K);
    for (let q = 0; q < m; q++) {
      const src = ((q % c) * Rb + Math.floor(q / c)) * K;
      B.set(basis.subarray(src, src + K), q * K);
    }
    const G = this.backend.matmul(B, B, m, m, K, { transB: true, context });
    for (let q = 0; q < m; q++) {
      const arow = (q % c) * c;
      // i2 = q2 % c, counted rather than divided.
      for (let q2 = 0, i2 = 0; q2 <= q; q2++, i2 = i2 === c - 1 ? 0 : i2 + 1) G[q * m + q2] *= A[arow + i2];
    }
    // H[j, (k, i)]: Y by channel read once in order, against channel i's `ranks` basis rows.
    const H = new Float64Array(n * m);
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < n; j++) {
        const src = (i * n + j) * K;
        for (let q = i; q < m; q += c) {
          let s = 0;
          for (let t = 0; t < K; t++) s += Yc[src + t] * B[q * K + t];
          H[j * m + q] = s;
        }
      }
    }
    const L = this.backend.cholesky(G, m, REFIT_RIDGE, context);
    // z_j = L^-1 h_j
    const Z = this.backend.solveTriangular(L, m, H, n, { transpose: true, context });
    for (let j = 0; j < n; j++) {
      const d2 = this.d[j] * this.d[j];
      let acc = 0;
      for (let r = 1; r <= ranks; r++) {
        for (let q = (r - 1) * c; q < r * c; q++) acc += Z[j * m + q] * Z[j * m + q];
        captured[r] += d2 * acc;
      }
    }
    if (pointwise && solveRank) {
      // p_j = L_r^-T z_j on the leading rank-solveRank block.
      const mr = c * solveRank;
      const Zr = new Float64Array(n * mr);
      for (let j = 0; j < n; j++) Zr.set(Z.subarray(j * m, j * m + mr), j * mr);
      const P = this.backend.solveTriangular(L, m, Zr, n, { k: mr, context });
      for (let j = 0; j < n; j++) {
        for (let q = 0; q < mr; q++) pointwise[j * mr + (q % c) * solveRank + Math.floor(q / c)] = P[j * mr + q];
      }
    }
  }

  /**
   * The refit with A diagonal: G is block diagonal, channel i's block
   * A[i,i] <F~ik, F~ik'> (ranks x ranks), and the rank-major Cholesky of G is
   * the blocks' own factors interleaved, so each block is solved alone with
   * the ridge the whole system would get.
   */
  private refitBlocks(
    basis: Float64Array,
    Rb: number,
    ranks: number,
    solveRank: number | null,
    captured: Float64Array,
    pointwise: Float64Array | null,
  ): void {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const S = this.coordinates(basis, Rb, ranks);
    const A = this.input.A;
    const context = { layer: this.layer.name };
    const blocks: Float64Array[] = [];
    let trace = 0;
    for (let i = 0; i < c; i++) {
      const a = A[i * c + i];
      const Gi = new Float64Array(ranks * ranks);
      for (let k = 0; k < ranks; k++) {
        for (let k2 = 0; k2 <= k; k2++) {
          let s = 0;
          for (let t = 0; t < K; t++) s += basis[(i * Rb + k) * K + t] * basis[(i * Rb + k2) * K + t];
          Gi[k * ranks + k2] = a * s;
        }
        trace += Gi[k * ranks + k];
      }
      blocks.push(Gi);
    }
    const meanDiag = trace / (c * ranks);
    const add = REFIT_RIDGE * (meanDiag > 0 ? meanDiag : 1);
    const mr = solveRank ?? 0;
    const Zr = new Float64Array(n * mr);
    for (let i = 0; i < c; i++) {
      const Gi = blocks[i];
      let blockTrace = 0;
      for (let k = 0; k < ranks; k++) blockTrace += Gi[k * ranks + k];
      const blockMean = blockTrace / ranks;
      // The backend adds ridge * (this block's mean diagonal); scale it so the block gets exactly `add`.
      const Li = this.backend.cholesky(Gi, ranks, blockMean > 0 ? add / blockMean : add, context);
      // H_i = A[i,i] times the channel's coordinates.
      const a = A[i * c + i];
      const Hi = new Float64Array(n * ranks);
      for (let j = 0; j < n; j++) for (let k = 0; k < ranks; k++) Hi[j * ranks + k] = a * S[(j * c + i) * ranks + k];
      const Zi = this.backend.solveTriangular(Li, ranks, Hi, n, { transpose: true, context });
      for (let j = 0; j < n; j++) {
        const d2 = this.d[j] * this.d[j];
        let acc = 0;
        for (let k = 0; k < ranks; k++) {
          acc += Zi[j * ranks + k] * Zi[j * ranks + k];
          captured[k + 1] += d2 * acc;
        }
      }
      if (pointwise && mr > 0) {
        for (let j = 0; j < n; j++) Zr.set(Zi.subarray(j * ranks, j * ranks + mr), j * mr);
        const Pi = this.backend.solveTriangular(Li, ranks, Zr, n, { k: mr, context });
        for (let j = 0; j < n; j++) {
          for (let k = 0; k < mr; k++) pointwise[j * c * mr + i * mr + k] = Pi[j * mr + k];
        }
      }
    }
  }

  /**
   * Errors at ranks r0..R of the per-channel projection onto the TypeScript
   * basis (its first r vectors per channel), under the full A. The basis
   * vectors of a channel are orthonormal and span all of its slices, so the
   * residual at rank r is sum_{k>=r} s_jik F~ik with s_jik = <W0[j,i], F~ik>,
   * and its weighted energy is sum over tail pairs (k,i), (k',i') of
   * A[i,i'] <F~ik, F~i'k'> M[(k,i),(k',i')], M = S^T D^2 S: one product of
   * the tail coordinates with themselves instead of one channel mixing of the
   * residual per rank.
   */
  private tailErrors(r0: number): Float64Array {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const { W0c, total } = this.dacSetup();
    const { basis, R } = this.dacBasis();
    const A = this.input.A;
    const out = new Float64Array(R - r0 + 1);
    const t = R - r0;
    if (t === 0 || !(total > 0)) return out;
    const m = t * c;
    const context = { layer: this.layer.name };
    // Tail vectors in (k, i) order, k = r0..R-1, and the D-weighted coordinates St[(k, i)][j].
    const F = new Float64Array(m * K);
    for (let k = 0; k < t; k++) {
      for (let i = 0; i < c; i++) F.set(basis.subarray((i * R + r0 + k) * K, (i * R + r0 + k + 1) * K), (k * c + i) * K);
    }
    const St = new Float64Array(m * n);
    for (let q = 0; q < m; q++) {
      const i = q % c;
      for (let j = 0; j < n; j++) {
        const src = (i * n + j) * K;
        let s = 0;
        for (let u = 0; u < K; u++) s += W0c[src + u] * F[q * K + u];
        St[q * n + j] = this.d[j] * s;
      }
    }
    // energy[k][k'] = sum over channel pairs of A * <F, F'> * M, for tail ranks k, k'.
    const energy = new Float64Array(t * t);
    if (this.diagonalA) {
      for (let i = 0; i < c; i++) {
        const a = A[i * c + i];
        if (a === 0) continue;
        for (let k = 0; k < t; k++) {
          for (let k2 = 0; k2 < t; k2++) {
            const q = k * c + i;
            const q2 = k2 * c + i;
            let g = 0;
            for (let u = 0; u < K; u++) g += F[q * K + u] * F[q2 * K + u];
            let mm = 0;
            for (let j = 0; j < n; j++) mm += St[q * n + j] * St[q2 * n + j];
            energy[k * t + k2] += a * g * mm;
          }
        }
      }
    } else {
      // energy is symmetric: per tail rank k, the products of its c rows with those of ranks 0..k only
      // (t(t+1)/2 of the t^2 blocks of St St^T and F F^T), the rest mirrored. (Ranks k..t-1 instead would
      // hand the backend two views starting at one address but of other shapes, which its GEMM takes for
      // a Gram matrix.)
      for (let k = 0; k < t; k++) {
        const cols = (k + 1) * c;
        const M = this.backend.matmul(St.subarray(k * c * n, (k + 1) * c * n), St.subarray(0, cols * n), c, cols, n, { transB: true, context });
        const Gf = this.backend.matmul(F.subarray(k * c * K, (k + 1) * c * K), F.subarray(0, cols * K), c, cols, K, { transB: true, context });
        for (let i = 0; i < c; i++) {
          const arow = i * c;
          for (let k2 = 0; k2 <= k; k2++) {
            const at = k * t + k2;
            const row = i * cols + k2 * c;
            for (let i2 = 0; i2 < c; i2++) energy[at] += A[arow + i2] * Gf[row + i2] * M[row + i2];
          }
        }
        for (let k2 = 0; k2 < k; k2++) energy[k2 * t + k] = energy[k * t + k2];
      }
    }
    // e[r] sums the pairs with both ranks >= r.
    for (let r = r0; r < R; r++) {
      let err = 0;
      for (let k = r - r0; k < t; k++) for (let k2 = r - r0; k2 < t; k2++) err += energy[k * t + k2];
      out[r - r0] = Math.min(1, Math.max(0, err / total));
    }
    return out;
  }

  /**
   * Per-channel projection onto F~ (each channel's truncated SVD): pointwise
   * = the coordinates S = W0_i F~_i^T, and the error of the residual
   * W0_i - S_i F~_i under the full A. With A diagonal the residual's energy
   * per slice is |W0_ji|^2 - 2|s_ji|^2 + s_ji^T (F~_i F~_i^T) s_ji, so the
   * error is total minus the captured part and the residual is never formed.
   */
  private project(Ft: Float64Array, r: number): { pointwise: Float64Array; error: number } {
    const { n, c, kh, kw } = this.layer;
    const K = kh * kw;
    const total = this.energyTotal();
    const A = this.input.A;
    // The coordinates are the pointwise stage.
    const pointwise = this.coordinates(Ft, r, r);
    let err = 0;
    if (this.diagonalA) {
      // G[i] = A[i,i] F~_i F~_i^T (r x r per channel)
      const G = new Float64Array(c * r * r);
      for (let i = 0; i < c; i++) {
        for (let k = 0; k < r; k++) {
          for (let k2 = 0; k2 < r; k2++) {
            let g = 0;
            for (let t = 0; t < K; t++) g += Ft[(i * r + k) * K + t] * Ft[(i * r + k2) * K + t];
            G[(i * r + k) * r + k2] = g;
          }
        }
      }
      let captured = 0;
      for (let j = 0; j < n; j++) {
        let cj = 0;
        for (let i = 0; i < c; i++) {
          const s = (j * c + i) * r;
          let q = 0;
          for (let k = 0; k < r; k++) {
            let row = 0;
            for (let k2 = 0; k2 < r; k2++) row += G[(i * r + k) * r + k2] * pointwise[s + k2];
            q += pointwise[s + k] * (2 * pointwise[s + k] - row);
          }
          cj += A[i * c + i] * q;
        }
        captured += this.d[j] * this.d[j] * cj;
      }
      err = total - captured;
    } else {
      // A mixes channels: the residual whole, by channel ([c][n][K], W0's layout), one channel mixing on the backend.
      const { W0c } = this.dacSetup();
      const delta = new Float64Array(c * n * K);
      for (let i = 0; i < c; i++) {
        // W0_i - S_i F~_i: r products per value, a loop (c backend calls of this size cost more in calls than in work).
        for (let j = 0; j < n; j++) {
          const s = (j * c + i) * r;
          const base = (i * n + j) * K;
          for (let t = 0; t < K; t++) {
            let p = 0;
            for (let k = 0; k < r; k++) p += pointwise[s + k] * Ft[(i * r + k) * K + t];
            delta[base + t] = W0c[base + t] - p;
          }
        }
      }
      const mixed = mixRows(this.backend, delta, c, n * K, A);
      const rows = new Float64Array(n);
      for (let i = 0; i < c; i++) {
        for (let j = 0; j < n; j++) {
          let e = rows[j];
          for (let q = (i * n + j) * K; q < (i * n + j + 1) * K; q++) e += delta[q] * mixed[q];
          rows[j] = e;
        }
      }
      for (let j = 0; j < n; j++) err += this.d[j] * this.d[j] * rows[j];
    }
    return { pointwise, error: total > 0 ? Math.min(1, Math.max(0, err / total)) : 0 };
  }

  /**
   * outputEnergy of the layer's weights and of a DAC pair of them, in one
   * backend pass that never forms the pair's kernel, where Sigma is diagonal
   * (plain weighting, white taps; else null): w_j Sigma w_j^T = sum_{i,t}
   * (Mc[i,i] Mt[t,t] w_j[i,t])^2, Mt = Mh (x) Mw.
   */
  dacOutputEnergies(depthwise: Float32Array, pointwise: Float32Array, r: number, threads = 1): { weights: Float64Array; pair: Float64Array } | null {
    const { n, c, kh, kw, name } = this.layer;
    const tapScale = diagonalOf(kron(this.mh, kh, this.mw, kw), kh * kw);
    const channelScale = diagonalOf(this.mc, c);
    if (!tapScale || !channelScale) return null;
    const pair = { rank: r, depthwise, pointwise };
    const e = this.backend.dacPairEnergy(this.layer.weights, { n, c, kh, kw }, pair, { tapScale, channelScale, threads, context: { layer: name } });
    return { weights: e.energy, pair: e.approxEnergy };
  }

  /**
   * Modelled second moment of each output channel (before D) of an OIHW kernel: w_j Sigma w_j^T. `w` may
   * hold any number of output channels (a block of them: each one's sum is its own).
   */
  outputEnergy(w: ArrayLike<number>): Float64Array {
    const { c, kh, kw } = this.layer;
    const K = kh * kw;
    const n = w.length / (c * K);
    if (w === this.layer.weights && this.weightEnergyCache) return this.weightEnergyCache.slice();
    const e = new Float64Array(n);
    const taps = kron(this.mh, kh, this.mw, kw);
    if (this.diagonalA && isDiagonal(this.mc, c) && isDiagonal(taps, K)) {
      // Sigma diagonal (plain weighting, white taps): mixTensor's products, summed in place of a weighted copy.
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let i = 0; i < c; i++) {
          const m = this.mc[i * c + i];
          const base = (j * c + i) * K;
          for (let u = 0; u < K; u++) {
            const v = w[base + u] * taps[u * K + u] * m;
            s += v * v;
          }
        }
        e[j] = s;
      }
      return e;
    }
    // mixTensor's products by channel (no transpose back), each output's squares summed over (i, t) in order.
    const t = mixRows(this.backend, tapsByChannel(this.backend, w, n, c, K, taps), c, n * K, this.mc);
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < n; j++) {
        let s = e[j];
        for (let q = (i * n + j) * K; q < (i * n + j + 1) * K; q++) s += t[q] * t[q];
        e[j] = s;
      }
    }
    // The layer's own: the planner (a consumer's gain) and the builder (variance correction) both ask.
    if (w === this.layer.weights) this.weightEnergyCache = e.slice();
    return e;
  }
}

/**
 * Gram-Schmidt of each channel's rows [c][R][K] in place, in rank order, so the first r rows of a channel
 * span what its first r rows spanned (a row in the span of the earlier ones becomes zero).
 */
function orthonormaliseChannels(rows: Float64Array, c: number, R: number, K: number): void {
  for (let q = 0; q < c * R; q++) {
    const v = rows.subarray(q * K, (q + 1) * K);
    for (let q2 = q - (q % R); q2 < q; q2++) {
      const u = rows.subarray(q2 * K, (q2 + 1) * K);
      let dot = 0;
      for (let t = 0; t < K; t++) dot += u[t] * v[t];
      for (let t = 0; t < K; t++) v[t] -= dot * u[t];
    }
    let norm = 0;
    for (let t = 0; t < K; t++) norm += v[t] * v[t];
    norm = Math.sqrt(norm);
    for (let t = 0; t < K; t++) v[t] = norm > 1e-12 ? v[t] / norm : 0;
  }
}
