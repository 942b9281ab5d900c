// The single conv a replacement pair is equal to (both stages are linear and
// the first has no bias), so report.json can state the real weight error
// ||W - W_approx|| / ||W|| of what was written, not a prediction.
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
