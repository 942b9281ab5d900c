// The decompositions exactly as published, for reproducing the papers and
// comparing with them (`paper: true`, `--paper`): plain truncated SVDs of the
// raw weights and the original bias, with none of this project's additions
// (no BatchNorm/input weighting, no DAC pointwise refit, no variance or bias
// correction).
//   DAC (Li et al. 2019): per input channel i the SVD of its n x (kh*kw) slice
//     W_i = U S V^T; depthwise = the top-r rows of V^T, pointwise = U_r S_r.
//   spatial (Jaderberg et al. 2014, data-free filter reconstruction): the SVD of
//     W as a (c*kh) x (n*kw) matrix; vertical = top-w left vectors, horizontal =
//     the right vectors scaled by sigma.
//   channel (Zhang et al. 2016 without data): the SVD of W as n x (c*kh*kw);
//     first = top-w right vectors, second = U_w S_w.
// These are the backend's decompositions with its sign convention (bench/reference-svd.ts).
// Planning in this mode uses the plain Frobenius error model, which for these
// decompositions is exactly their weight error (planModel forces it).

import type { ConvLayerInfo, LayerReplacement, Method } from '../model/types.js';
import type { DecomposeBackend } from './backend.js';

/** Which decomposition built a replacement: the papers' (`paper`) or this project's weighted, corrected one (`ours`). */
export type DecompositionMode = 'paper' | 'ours';

/** One layer's replacement as the method's paper builds it. */
export function paperReplacement(
  layer: ConvLayerInfo,
  method: Method,
  rank: number,
  backend: DecomposeBackend,
  threads = 1,
): LayerReplacement {
  const { n, c, kh, kw } = layer;
  const shape = { n, c, kh, kw };
  const opts = { layout: 'OIHW' as const, threads, context: { layer: layer.name } };
  const bias = layer.bias ? Float32Array.from(layer.bias) : null;
  if (method === 'dac') {
    const r = backend.decomposeDac(layer.weights, shape, rank, opts);
    return { method, name: layer.name, rank, depthwise: r.depthwise, pointwise: r.pointwise, bias };
  }
  if (method === 'spatial') {
    const r = backend.decomposeSpatial(layer.weights, shape, rank, opts);
    return { method, name: layer.name, width: rank, vertical: r.vertical, horizontal: r.horizontal, bias };
  }
  const r = backend.decomposeChannel(layer.weights, shape, rank, opts);
  return { method, name: layer.name, width: rank, first: r.first, second: r.second, bias };
}
