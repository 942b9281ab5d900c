// An independent reference for the decomposition core, in plain TypeScript:
// a one-sided Jacobi SVD (Hestenes) in float64, and the DAC, spatial and
// channel decompositions built on it with the contract's conventions
// (native/decompose/decompose.h): first-stage vectors sign-fixed so their
// largest-magnitude entry is positive (near-ties to the lowest index),
// components with sigma <= 1e-7 * sigma_max all zero. Slow (O(R*C^2) per
// sweep, several sweeps) but simple enough to trust; tests keep shapes small.
// The oracle of test/decompose.test.ts and test/paper.test.ts, and the
// plain-TypeScript row of bench/svd.ts (which is why it lives in bench/).

export type Layout = 'OIHW' | 'HWIO';

export interface Shape {
  n: number;
  c: number;
  kh: number;
  kw: number;
}

/** Components at or below this fraction of the largest singular value are zeroed. */
export const NULL_TOLERANCE = 1e-7;

export interface Svd {
  /** min(rows, cols) singular values, descending */
  sigma: Float64Array;
  /** rows x m, column-major: u_j at [j*rows, (j+1)*rows) */
  u: Float64Array;
  /** cols x m, column-major */
  v: Float64Array;
  rows: number;
  cols: number;
}

/**
 * Thin SVD of a row-major rows x cols matrix by one-sided Jacobi: columns of a
 * working copy are rotated pairwise until all are orthogonal; their norms are
 * the singular values. Works on the transpose when rows < cols.
 */
export function jacobiSvd(a: ArrayLike<number>, rows: number, cols: number): Svd {
  if (rows < cols) {
    const t = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
    const s = jacobiSvd(t, cols, rows);
    return { sigma: s.sigma, u: s.v, v: s.u, rows, cols };
  }
  const m = cols;
  // w: column-major copy of A (rows x m); vm: accumulated rotations (m x m).
  const w = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) for (let c = 0; c < m; c++) w[c * rows + r] = a[r * cols + c];
  const vm = new Float64Array(m * m);
  for (let i = 0; i < m; i++) vm[i * m + i] = 1;
  const eps = 2.220446049250313e-16;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < m - 1; p++) {
      for (let q = p + 1; q < m; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        const op = p * rows;
        const oq = q * rows;
        for (let r = 0; r < rows; r++) {
          const x = w[op + r];
          const y = w[oq + r];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = cs * t;
        for (let r = 0; r < rows; r++) {
          const x = w[op + r];
          const y = w[oq + r];
          w[op + r] = cs * x - sn * y;
          w[oq + r] = sn * x + cs * y;
        }
        const vp = p * m;
        const vq = q * m;
        for (let r = 0; r < m; r++) {
          const x = vm[vp + r];
          const y = vm[vq + r];
          vm[vp + r] = cs * x - sn * y;
          vm[vq + r] = sn * x + cs * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += w[j * rows + r] ** 2;
    norms[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: m }, (_, j) => j).sort((x, y) => norms[y] - norms[x] || x - y);
  const sigma = new Float64Array(m);
  const u = new Float64Array(rows * m);
  const v = new Float64Array(cols * m);
  order.forEach((src, j) => {
    sigma[j] = norms[src];
    for (let r = 0; r < rows; r++) u[j * rows + r] = norms[src] > 0 ? w[src * rows + r] / norms[src] : 0;
    for (let r = 0; r < m; r++) v[j * cols + r] = vm[src * m + r];
  });
  return { sigma, u, v, rows, cols };
}

/** Index deciding a vector's sign: largest magnitude, near-ties (1e-9 relative) to the lowest index. */
export function signPivot(v: ArrayLike<number>, offset: number, len: number): number {
  let maxabs = 0;
  for (let i = 0; i < len; i++) maxabs = Math.max(maxabs, Math.abs(v[offset + i]));
  const cut = maxabs * (1 - 1e-9);
  for (let i = 0; i < len; i++) if (Math.abs(v[offset + i]) >= cut) return i;
  return 0;
}

/**
 * Top-`width` components split by stage: `first` (unit vectors of the
 * first-stage side: right vectors when firstIsRight, else left; sign-fixed)
 * and `second` (the other side scaled by sigma). Both column-major.
 */
export interface Truncated {
  sigma: Float64Array;
  first: Float64Array;
  firstLen: number;
  second: Float64Array;
  secondLen: number;
}

export function truncatedSvd(a: ArrayLike<number>, rows: number, cols: number, width: number, firstIsRight: boolean): Truncated {
  const s = jacobiSvd(a, rows, cols);
  const firstLen = firstIsRight ? cols : rows;
  const secondLen = firstIsRight ? rows : cols;
  const f = firstIsRight ? s.v : s.u;
  const g = firstIsRight ? s.u : s.v;
  const first = new Float64Array(firstLen * width);
  const second = new Float64Array(secondLen * width);
  const smax = s.sigma.length > 0 ? s.sigma[0] : 0;
  for (let j = 0; j < width; j++) {
    if (!(s.sigma[j] > NULL_TOLERANCE * smax)) continue;
    const p = signPivot(f, j * firstLen, firstLen);
    const sign = f[j * firstLen + p] < 0 ? -1 : 1;
    for (let i = 0; i < firstLen; i++) first[j * firstLen + i] = sign * f[j * firstLen + i];
    for (let i = 0; i < secondLen; i++) second[j * secondLen + i] = sign * s.sigma[j] * g[j * secondLen + i];
  }
  return { sigma: s.sigma, first, firstLen, second, secondLen };
}

/** W[o][i][h][x] from either layout. */
export function weightAt(w: ArrayLike<number>, s: Shape, layout: Layout, o: number, i: number, h: number, x: number): number {
  return layout === 'OIHW' ? w[((o * s.c + i) * s.kh + h) * s.kw + x] : w[((h * s.kw + x) * s.c + i) * s.n + o];
}

export function toHwio(oihw: Float32Array, s: Shape): Float32Array {
  const out = new Float32Array(oihw.length);
  for (let o = 0; o < s.n; o++)
    for (let i = 0; i < s.c; i++)
      for (let h = 0; h < s.kh; h++)
        for (let x = 0; x < s.kw; x++) out[((h * s.kw + x) * s.c + i) * s.n + o] = oihw[((o * s.c + i) * s.kh + h) * s.kw + x];
  return out;
}

export interface RefDac {
  depthwise: Float32Array;
  pointwise: Float32Array;
  singular: Float32Array;
}

/** DAC: per input channel, the rank-r SVD of its n x (kh*kw) slice. */
export function referenceDac(w: ArrayLike<number>, s: Shape, rank: number, layout: Layout = 'OIHW'): RefDac {
  const k = s.kh * s.kw;
  const m = Math.min(s.n, k);
  const depthwise = new Float32Array(s.c * rank * k);
  const pointwise = new Float32Array(s.n * s.c * rank);
  const singular = new Float32Array(s.c * m);
  const slice = new Float64Array(s.n * k);
  for (let i = 0; i < s.c; i++) {
    for (let o = 0; o < s.n; o++)
      for (let a = 0; a < k; a++) slice[o * k + a] = weightAt(w, s, layout, o, i, Math.floor(a / s.kw), a % s.kw);
    const t = truncatedSvd(slice, s.n, k, rank, true);
    for (let j = 0; j < m; j++) singular[i * m + j] = t.sigma[j];
    for (let j = 0; j < rank; j++) {
      for (let a = 0; a < k; a++) depthwise[(i * rank + j) * k + a] = t.first[j * k + a];
      for (let o = 0; o < s.n; o++) pointwise[o * s.c * rank + i * rank + j] = t.second[j * s.n + o];
    }
  }
  return { depthwise, pointwise, singular };
}

export interface RefSpatial {
  vertical: Float32Array;
  horizontal: Float32Array;
  singular: Float32Array;
}

/** Spatial: SVD of W as (c*kh) x (n*kw); vertical [width][c][kh], horizontal [n][width][kw]. */
export function referenceSpatial(w: ArrayLike<number>, s: Shape, width: number, layout: Layout = 'OIHW'): RefSpatial {
  const rows = s.c * s.kh;
  const cols = s.n * s.kw;
  const a = new Float64Array(rows * cols);
  for (let o = 0; o < s.n; o++)
    for (let i = 0; i < s.c; i++)
      for (let h = 0; h < s.kh; h++)
        for (let x = 0; x < s.kw; x++) a[(i * s.kh + h) * cols + o * s.kw + x] = weightAt(w, s, layout, o, i, h, x);
  const t = truncatedSvd(a, rows, cols, width, false);
  const vertical = new Float32Array(width * rows);
  const horizontal = new Float32Array(s.n * width * s.kw);
  for (let j = 0; j < width; j++) {
    for (let r = 0; r < rows; r++) vertical[j * rows + r] = t.first[j * rows + r];
    for (let o = 0; o < s.n; o++)
      for (let x = 0; x < s.kw; x++) horizontal[(o * width + j) * s.kw + x] = t.second[j * cols + o * s.kw + x];
  }
  return { vertical, horizontal, singular: Float32Array.from(t.sigma) };
}

export interface RefChannel {
  first: Float32Array;
  second: Float32Array;
  singular: Float32Array;
}

/** Channel: SVD of W as n x (c*kh*kw); first [width][c][kh][kw], second [n][width]. */
export function referenceChannel(w: ArrayLike<number>, s: Shape, width: number, layout: Layout = 'OIHW'): RefChannel {
  const cols = s.c * s.kh * s.kw;
  const a = new Float64Array(s.n * cols);
  for (let o = 0; o < s.n; o++)
    for (let i = 0; i < s.c; i++)
      for (let h = 0; h < s.kh; h++)
        for (let x = 0; x < s.kw; x++) a[o * cols + (i * s.kh + h) * s.kw + x] = weightAt(w, s, layout, o, i, h, x);
  const t = truncatedSvd(a, s.n, cols, width, true);
  const first = new Float32Array(width * cols);
  const second = new Float32Array(s.n * width);
  for (let j = 0; j < width; j++) {
    for (let q = 0; q < cols; q++) first[j * cols + q] = t.first[j * cols + q];
    for (let o = 0; o < s.n; o++) second[o * width + j] = t.second[j * s.n + o];
  }
  return { first, second, singular: Float32Array.from(t.sigma) };
}
