// Linear algebra for planning. Kernel-sized eigenproblems (DAC's per-channel
// filters, quadrature rules) are solved here in double precision; everything
// channel-sized (GEMM, Cholesky, triangular solves) runs on the backend.

import type { DecomposeBackend } from './backend.js';

/** Eigenvalues and eigenvectors of a small symmetric m x m matrix (cyclic Jacobi). */
export function jacobiEigen(a: ArrayLike<number>, m: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(m * m);
  for (let i = 0; i < m; i++) V[i * m + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < m; i++) {
      diag += A[i * m + i] * A[i * m + i];
      for (let j = i + 1; j < m; j++) off += A[i * m + j] * A[i * m + j];
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < m; p++) {
      for (let q = p + 1; q < m; q++) {
        const apq = A[p * m + q];
        if (apq === 0) continue;
        const theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < m; k++) {
          const akp = A[k * m + p];
          const akq = A[k * m + q];
          A[k * m + p] = c * akp - s * akq;
          A[k * m + q] = s * akp + c * akq;
        }
        for (let k = 0; k < m; k++) {
          const apk = A[p * m + k];
          const aqk = A[q * m + k];
          A[p * m + k] = c * apk - s * aqk;
          A[q * m + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < m; k++) {
          const vkp = V[k * m + p];
          const vkq = V[k * m + q];
          V[k * m + p] = c * vkp - s * vkq;
          V[k * m + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(m);
  for (let i = 0; i < m; i++) values[i] = A[i * m + i];
  return { values, vectors: V };
}

/** Whether every off-diagonal entry of an m x m matrix is exactly zero. */
export function isDiagonal(a: ArrayLike<number>, m: number): boolean {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) if (i !== j && a[i * m + j] !== 0) return false;
  }
  return true;
}

export function identity(m: number): Float64Array {
  const I = new Float64Array(m * m);
  for (let i = 0; i < m; i++) I[i * m + i] = 1;
  return I;
}

/**
 * out[j, i', t] = sum_i w[j, i, t] M[i, i'] for a [rows][ch][K] tensor: one
 * GEMM on the backend (M^T times the tensor with channels outermost), or a
 * scaling when M is diagonal.
 */
export function mixChannels(
  backend: DecomposeBackend,
  w: ArrayLike<number>,
  rows: number,
  ch: number,
  K: number,
  M: Float64Array,
): Float64Array {
  if (isDiagonal(M, ch)) {
    const out = new Float64Array(rows * ch * K);
    for (let j = 0; j < rows; j++) {
      for (let i = 0; i < ch; i++) {
        const m = M[i * ch + i];
        const base = (j * ch + i) * K;
        for (let t = 0; t < K; t++) out[base + t] = w[base + t] * m;
      }
    }
    return out;
  }
  // X[i][(j, t)] = w[j][i][t]
  const X = transposeBlocks(w, rows, ch, K);
  return transposeBlocks(mixRows(backend, X, ch, rows * K, M), ch, rows, K);
}

/**
 * out[i'][q] = sum_i M[i, i'] x[i][q] for a channel-major [ch][cols] array
 * (mixChannels without its two transposes, for callers that keep tensors by
 * channel): one GEMM on the backend, or a scaling when M is diagonal.
 */
export function mixRows(backend: DecomposeBackend, x: Float64Array, ch: number, cols: number, M: Float64Array): Float64Array {
  if (!isDiagonal(M, ch)) return backend.matmul(M, x, ch, cols, ch, { transA: true });
  const out = new Float64Array(ch * cols);
  for (let i = 0; i < ch; i++) {
    const m = M[i * ch + i];
    for (let q = i * cols; q < (i + 1) * cols; q++) out[q] = x[q] * m;
  }
  return out;
}

/** Tile edge of transposeBlocks: a tile's rows and columns stay in cache (a plain loop strides through one of them). */
const TILE = 16;

/** [rows][cols][block] -> [cols][rows][block] (a transpose whose elements are runs of `block` values), tile by tile. */
export function transposeBlocks(src: ArrayLike<number>, rows: number, cols: number, block: number): Float64Array {
  const out = new Float64Array(rows * cols * block);
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let q = c0; q < c1; q++) {
        for (let p = r0; p < r1; p++) {
          const s = (p * cols + q) * block;
          const d = (q * rows + p) * block;
          for (let t = 0; t < block; t++) out[d + t] = src[s + t];
        }
      }
    }
  }
  return out;
}

/**
 * Scales of scaleTensor: element (b, p, q) of a [batch][rows][cols] tensor is multiplied by cell[p*cols + q],
 * then by line[p], then by batch[b], in that order. This is the one product order of a diagonally weighted
 * tensor (weight * tap * channel * output scale: mixTensor's with every factor diagonal, and the plain
 * spectral matrices read in other layouts), so every layout holds the same values bit for bit.
 */
export interface TensorScales {
  cell: ArrayLike<number>;
  line: ArrayLike<number>;
  batch: ArrayLike<number>;
}

/**
 * A [batch][rows][cols] tensor scaled element by element (TensorScales) in double precision, written as it
 * is or, with `transpose`, each batch item transposed ([batch][cols][rows]): one pass over `src` instead of
 * a scaled copy and its transpose. A matrix per batch item fits in cache whole. Into `out` where given.
 */
export function scaleTensor<T extends Float32Array | Float64Array = Float64Array>(
  src: ArrayLike<number>,
  batch: number,
  rows: number,
  cols: number,
  scales: TensorScales,
  transpose = false,
  out: T = new Float64Array(batch * rows * cols) as T,
): T {
  const { cell, line } = scales;
  const per = rows * cols;
  // Where element (p, q) of a batch item goes.
  const sp = transpose ? 1 : cols;
  const sq = transpose ? rows : 1;
  for (let b = 0; b < batch; b++) {
    const f = scales.batch[b];
    const base = b * per;
    for (let p = 0; p < rows; p++) {
      const m = line[p];
      for (let q = 0; q < cols; q++) out[base + p * sp + q * sq] = src[base + p * cols + q] * cell[p * cols + q] * m * f;
    }
  }
  return out;
}

/** `count` copies of `v` one after another (a per-tap scale for every channel of a [ch][K] block). */
export function tile(v: ArrayLike<number>, count: number): Float64Array {
  const out = new Float64Array(count * v.length);
  for (let k = 0; k < count; k++) for (let u = 0; u < v.length; u++) out[k * v.length + u] = v[u];
  return out;
}

/** a (x) b for square a (p x p) and b (q x q). */
export function kron(a: Float64Array, p: number, b: Float64Array, q: number): Float64Array {
  const m = p * q;
  const out = new Float64Array(m * m);
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++)
      for (let k = 0; k < q; k++) for (let l = 0; l < q; l++) out[(i * q + k) * m + (j * q + l)] = a[i * p + j] * b[k * q + l];
  return out;
}
