// The single conv a replacement pair is equal to (both stages are linear and
// the first has no bias), and how far it is from the original: report.json
// states this real weight error ||W - W_approx|| / ||W|| of what was
// written (replacementError), not a prediction; the TF.js graph writer
// compares quantized factors against the unquantized pair (reconstructWeights).
import type { Backend } from '../backend/backend.js';
import type { ConvLayerInfo, LayerReplacement } from './types.js';

/** OIHW [n][c][kh][kw] weights of the conv equal to the replacement. */
export function reconstructWeights(rep: LayerReplacement, conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw'>): Float32Array {
  const { n, c, kh, kw } = conv;
  const k = kh * kw;
  const out = new Float64Array(n * c * k);
  if (rep.method === 'dac') {
    const r = rep.rank;
    for (let o = 0; o < n; o++)
      for (let i = 0; i < c; i++)
        for (let m = 0; m < r; m++) {
          const a = rep.pointwise[o * c * r + i * r + m];
          if (a === 0) continue;
          const dw = (i * r + m) * k;
          const dst = (o * c + i) * k;
          for (let p = 0; p < k; p++) out[dst + p] += a * rep.depthwise[dw + p];
        }
  } else if (rep.method === 'spatial') {
    const w = rep.width;
    for (let o = 0; o < n; o++)
      for (let j = 0; j < w; j++)
        for (let i = 0; i < c; i++)
          for (let y = 0; y < kh; y++) {
            const v = rep.vertical[(j * c + i) * kh + y];
            if (v === 0) continue;
            const dst = ((o * c + i) * kh + y) * kw;
            const h = (o * w + j) * kw;
            for (let x = 0; x < kw; x++) out[dst + x] += v * rep.horizontal[h + x];
          }
  } else {
    const w = rep.width;
    const per = c * k;
    for (let o = 0; o < n; o++)
      for (let j = 0; j < w; j++) {
        const a = rep.second[o * w + j];
        if (a === 0) continue;
        for (let p = 0; p < per; p++) out[o * per + p] += a * rep.first[j * per + p];
      }
  }
  return Float32Array.from(out);
}

/** ||W - W_approx||_F / ||W||_F (0 for an all-zero W approximated exactly). */
export function relativeError(original: Float32Array, approx: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < original.length; i++) {
    const d = original[i] - approx[i];
    num += d * d;
    den += original[i] * original[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

/**
 * ||W - W'|| / ||W|| of a replacement pair, W' the single conv it equals
 * (what reconstructWeights builds). Computed slice by slice into a
 * small scratch, with the factors in locals, instead of building W' whole:
 * on a VGG16-sized model that halves the time of the report's error column,
 * the largest part of a decomposition outside planning. Given a backend,
 * spatial and channel pairs are formed by its GEMM instead (residualByGemm),
 * and DAC pairs measured by its dacPairEnergy in one native pass (the JS
 * loop was a quarter of a --rank 4 zoo job); the written float32 factors are
 * what both read, so the error stays that of the pair as written. `threads`
 * spreads that pass's output channels (each one's sums are its own, so the
 * error is the same at any count).
 */
export function replacementError(
  rep: LayerReplacement,
  conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw' | 'weights'> & { name?: string },
  backend?: Pick<Backend, 'matmul' | 'dacPairEnergy'>,
  threads?: number,
): number {
  const w = conv.weights;
  const [num, den] =
    rep.method === 'dac'
      ? backend
        ? dacResidualOnBackend(rep, conv, backend, threads)
        : dacResidual(w, conv.n, conv.c, conv.kh * conv.kw, rep.rank, rep.depthwise, rep.pointwise)
      : [
          backend
            ? residualByGemm(rep, conv, backend)
            : rep.method === 'spatial'
              ? spatialResidual(w, conv.n, conv.c, conv.kh, conv.kw, rep.width, rep.vertical, rep.horizontal)
              : channelResidual(w, conv.n, conv.c * conv.kh * conv.kw, rep.width, rep.first, rep.second),
          squaredNorm(w),
        ];
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

function squaredNorm(w: Float32Array): number {
  let s = 0;
  for (let q = 0; q < w.length; q++) s += w[q] * w[q];
  return s;
}

/**
 * [||W - W'||^2, ||W||^2], W'[o,i] = sum_m pw[o,i,m] dw[i,m]: one (o, i)
 * slice of K taps at a time, the norm summed in the same pass (in the same
 * order as squaredNorm), the filters in double precision once.
 */
function dacResidual(w: Float32Array, n: number, c: number, K: number, r: number, dw32: Float32Array, pw: Float32Array): [number, number] {
  const dw = new Float64Array(dw32);
  const s = new Float64Array(K);
  let num = 0;
  let den = 0;
  for (let o = 0; o < n; o++) {
    for (let i = 0; i < c; i++) {
      const wb = (o * c + i) * K;
      const pb = (o * c + i) * r;
      for (let t = 0; t < K; t++) {
        const v = w[wb + t];
        s[t] = v;
        den += v * v;
      }
      for (let m = 0, d = i * r * K; m < r; m++, d += K) {
        const a = pw[pb + m];
        for (let t = 0; t < K; t++) s[t] -= a * dw[d + t];
      }
      for (let t = 0; t < K; t++) num += s[t] * s[t];
    }
  }
  return [num, den];
}

/** [||W - W'||^2, ||W||^2] of a DAC pair by the backend: unit scales make its energy the plain norm. */
function dacResidualOnBackend(
  rep: Extract<LayerReplacement, { method: 'dac' }>,
  conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw' | 'weights'> & { name?: string },
  backend: Pick<Backend, 'dacPairEnergy'>,
  threads: number | undefined,
): [number, number] {
  const { n, c, kh, kw } = conv;
  const pair = { rank: rep.rank, depthwise: rep.depthwise, pointwise: rep.pointwise };
  const e = backend.dacPairEnergy(conv.weights, { n, c, kh, kw }, pair, { threads, context: conv.name === undefined ? {} : { layer: conv.name } });
  let num = 0;
  let den = 0;
  for (let j = 0; j < n; j++) {
    num += e.residual[j];
    den += e.energy[j];
  }
  return [num, den];
}

/** Doubles in one block of residualByGemm's product (1 MiB): W' is never whole in memory. */
const GEMM_BLOCK = 1 << 17;

/**
 * ||W - W'||^2 of a spatial or channel pair, W' as matrix products on the
 * backend: (c*kh x w)(w x n*kw) for spatial, (n x w)(w x c*kh*kw) for
 * channel, a block of rows at a time (a whole VGG16-sized W' in double
 * precision is 19 MiB, on a zoo job's peak). The slice loops below do the
 * same multiply-adds in JavaScript, some 10x slower on the wide layers auto
 * plans give these methods.
 */
function residualByGemm(
  rep: Extract<LayerReplacement, { method: 'spatial' | 'channel' }>,
  conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw' | 'weights'>,
  backend: Pick<Backend, 'matmul'>,
): number {
  const { n, c, kh, kw, weights: w } = conv;
  const width = rep.width;
  // left (rows x w) times right (w x cols), row-major, rows p0..p1-1 at a time into `residual`, which adds
  // up what they miss of W.
  const blocks = (left: Float64Array, right: Float64Array, rows: number, cols: number, residual: (p0: number, p1: number, part: Float64Array) => number): number => {
    const step = Math.max(1, Math.floor(GEMM_BLOCK / cols));
    const out = new Float64Array(Math.min(rows, step) * cols);
    let num = 0;
    for (let p0 = 0; p0 < rows; p0 += step) {
      const p1 = Math.min(rows, p0 + step);
      num += residual(p0, p1, backend.matmul(left.subarray(p0 * width, p1 * width), right, p1 - p0, cols, width, { out: out.subarray(0, (p1 - p0) * cols) }));
    }
    return num;
  };
  if (rep.method === 'channel') {
    const per = c * kh * kw;
    return blocks(Float64Array.from(rep.second), Float64Array.from(rep.first), n, per, (p0, p1, part) => {
      let num = 0;
      for (let q = p0 * per; q < p1 * per; q++) num += (w[q] - part[q - p0 * per]) ** 2;
      return num;
    });
  }
  // vertical [w][c*kh] transposed to [c*kh][w]; horizontal [n][w][kw] regrouped as [w][n*kw]. Row (i, y) of
  // the product, column (o, x), is W[o][i][y][x].
  const rows = c * kh;
  const cols = n * kw;
  const v = new Float64Array(rows * width);
  for (let j = 0; j < width; j++) for (let p = 0; p < rows; p++) v[p * width + j] = rep.vertical[j * rows + p];
  const h = new Float64Array(width * cols);
  for (let o = 0; o < n; o++) for (let j = 0; j < width; j++) for (let x = 0; x < kw; x++) h[j * cols + o * kw + x] = rep.horizontal[(o * width + j) * kw + x];
  return blocks(v, h, rows, cols, (p0, p1, part) => {
    let num = 0;
    for (let p = p0; p < p1; p++) {
      const i = Math.floor(p / kh);
      const y = p % kh;
      for (let o = 0; o < n; o++) {
        const base = ((o * c + i) * kh + y) * kw;
        const at = (p - p0) * cols + o * kw;
        for (let x = 0; x < kw; x++) num += (w[base + x] - part[at + x]) ** 2;
      }
    }
    return num;
  });
}

/** ||W - W'||^2, W'[o,i,y,x] = sum_j v[j,i,y] h[o,j,x]: one (o, i) slice at a time. */
function spatialResidual(w: Float32Array, n: number, c: number, kh: number, kw: number, width: number, v: Float32Array, h: Float32Array): number {
  const K = kh * kw;
  const s = new Float64Array(K);
  let num = 0;
  for (let o = 0; o < n; o++) {
    for (let i = 0; i < c; i++) {
      const base = (o * c + i) * K;
      for (let t = 0; t < K; t++) s[t] = w[base + t];
      for (let j = 0; j < width; j++) {
        const hj = (o * width + j) * kw;
        for (let y = 0; y < kh; y++) {
          const a = v[(j * c + i) * kh + y];
          if (a === 0) continue;
          for (let x = 0; x < kw; x++) s[y * kw + x] -= a * h[hj + x];
        }
      }
      for (let t = 0; t < K; t++) num += s[t] * s[t];
    }
  }
  return num;
}

/** ||W - W'||^2, W'[o] = sum_j second[o,j] first[j]: one output filter (per = c*K) at a time. */
function channelResidual(w: Float32Array, n: number, per: number, width: number, first: Float32Array, second: Float32Array): number {
  const s = new Float64Array(per);
  let num = 0;
  for (let o = 0; o < n; o++) {
    for (let q = 0; q < per; q++) s[q] = w[o * per + q];
    for (let j = 0; j < width; j++) {
      const a = second[o * width + j];
      if (a === 0) continue;
      for (let q = 0; q < per; q++) s[q] -= a * first[j * per + q];
    }
    for (let q = 0; q < per; q++) num += s[q] * s[q];
  }
  return num;
}
