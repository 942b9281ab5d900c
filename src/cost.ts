// Exact cost accounting (multiply-accumulates and parameters) shared by every
// command: planning, `dac inspect`, report.json and the benchmarks. Costs are
// counted from the real output sizes the layer info carries, so stride,
// padding and dilation are all reflected; one MAC = one multiply-add of one
// image (batch 1). Biases count as parameters, not as MACs.

import { DacError } from './errors.js';
import { checkLayerGeometry, checkRank, maxRank, spatialIntermediateSize, type ConvShape, type LayerGeometry } from './geometry.js';
import type { LayerPlan, Method, OtherCost } from './model/types.js';

export interface Cost {
  macs: number;
  params: number;
}

/** What the accounting reads of a conv: its geometry and whether it has a bias. */
export type CostedConv = LayerGeometry & { bias?: Float32Array | null };

function hasBias(layer: CostedConv): boolean {
  return layer.bias !== undefined && layer.bias !== null;
}

/** MACs and parameters of the original convolution. */
export function convCost(layer: CostedConv): Cost {
  checkLayerGeometry(layer);
  const perFilter = (layer.c / layer.groups) * layer.kh * layer.kw;
  return {
    macs: layer.outH * layer.outW * layer.n * perFilter,
    params: layer.n * perFilter + (hasBias(layer) ? layer.n : 0),
  };
}

/**
 * MACs and parameters of a layer's replacement:
 *   dac     : depthwise kh x kw with c*rank filters + pointwise 1x1 (c*rank -> n), both at the output size
 *   spatial : kh x 1 conv c -> width (vertical stride/padding/dilation, so its output is outH x inW)
 *             + 1 x kw conv width -> n (horizontal stride/padding/dilation, output outH x outW)
 *   channel : kh x kw conv c -> width + 1x1 conv width -> n, both at the output size
 * The bias (when the layer has one) moves to the last stage; `addBias` counts
 * one there for a bias-free layer (bias correction gives it one).
 */
export function replacementCost(layer: CostedConv, method: Method, rank: number, addBias = false): Cost {
  checkLayerGeometry(layer);
  if (layer.groups !== 1) {
    throw new DacError('EINVAL', `${method} replaces ungrouped convolutions only (groups=${layer.groups})`, {
      layer: layer.name,
      field: 'groups',
    });
  }
  checkRank(rank, method, maxRank(layer, method), { layer: layer.name });
  const { n, c, kh, kw, outH, outW } = layer;
  const out = outH * outW;
  const bias = hasBias(layer) || addBias ? n : 0;
  switch (method) {
    case 'dac':
      return {
        macs: out * c * rank * kh * kw + out * n * c * rank,
        params: c * rank * kh * kw + n * c * rank + bias,
      };
    case 'spatial': {
      const mid = spatialIntermediateSize(layer);
      return {
        macs: mid.h * mid.w * rank * c * kh + out * n * rank * kw,
        params: rank * c * kh + n * rank * kw + bias,
      };
    }
    case 'channel':
      return {
        macs: out * rank * c * kh * kw + out * n * rank,
        params: rank * c * kh * kw + n * rank + bias,
      };
  }
}

/**
 * The paper's width for spatial/channel that matches DAC rank r in cost
 * (per output pixel, stride 1): DAC costs r*c*(kh*kw + n), channel costs
 * w*(c*kh*kw + n), spatial w*(c*kh + n*kw). Rounded, clamped to 1..max.
 */
export function matchingWidth(layer: ConvShape, method: Method, dacRank: number): number {
  const { n, c, kh, kw } = layer;
  const dac = dacRank * c * (kh * kw + n);
  let w: number;
  switch (method) {
    case 'dac':
      w = dacRank;
      break;
    case 'channel':
      w = dac / (c * kh * kw + n);
      break;
    case 'spatial':
      w = dac / (c * kh + n * kw);
      break;
  }
  return Math.min(maxRank(layer, method), Math.max(1, Math.round(w)));
}

export interface ModelCost {
  convs: Cost;
  other: Cost;
  total: Cost;
}

/**
 * Totals of a model: convolutions (replaced per the plan where it says so)
 * plus everything else. With a plan, a layer it names is counted at the
 * method/rank it chose; layers it does not name, or keeps, at their original cost.
 */
export function modelCost(
  convs: CostedConv[],
  other: OtherCost,
  plan?: { layers: Pick<LayerPlan, 'name' | 'method' | 'rank' | 'biasAdded'>[] },
): ModelCost {
  const byName = new Map<string, Pick<LayerPlan, 'name' | 'method' | 'rank' | 'biasAdded'>>();
  for (const lp of plan?.layers ?? []) byName.set(lp.name, lp);
  const names = new Set(convs.map((c) => c.name));
  for (const name of byName.keys()) {
    if (!names.has(name)) throw new DacError('EINVAL', 'the plan names a layer that is not a conv of the model', { layer: name });
  }
  const conv: Cost = { macs: 0, params: 0 };
  for (const layer of convs) {
    const lp = byName.get(layer.name);
    const cost = lp && lp.method !== 'keep' ? replacementCost(layer, lp.method, lp.rank, lp.biasAdded === true) : convCost(layer);
    conv.macs += cost.macs;
    conv.params += cost.params;
  }
  return {
    convs: conv,
    other: { macs: other.macs, params: other.params },
    total: { macs: conv.macs + other.macs, params: conv.params + other.params },
  };
}
