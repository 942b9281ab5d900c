// Exact cost accounting (multiply-accumulates and parameters) shared by every
// command: planning, `dac inspect`, report.json and the benchmarks. Costs are
// counted from the real output sizes the layer info carries, so stride,
// padding and dilation are all reflected; one MAC = one multiply-add of one
// image (batch 1). Biases count as parameters, not as MACs.

import { DacError } from './errors.js';
import type { ConvLayerInfo, LayerPlan, Method, OtherCost } from './model/types.js';

export interface Cost {
  macs: number;
  params: number;
}

/** The geometry fields the accounting needs (a subset of ConvLayerInfo). */
export type ConvShape = Pick<
  ConvLayerInfo,
  'name' | 'n' | 'c' | 'kh' | 'kw' | 'groups' | 'strides' | 'dilations' | 'pads' | 'inH' | 'inW' | 'outH' | 'outW'
> & { bias?: Float32Array | null };

function checkInt(layer: ConvShape, field: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new DacError('EINVAL', `must be an integer >= ${min}, got ${value}`, { layer: layer.name, field });
  }
}

function checkShape(layer: ConvShape): void {
  for (const f of ['n', 'c', 'kh', 'kw', 'groups', 'inH', 'inW', 'outH', 'outW'] as const) {
    checkInt(layer, f, layer[f], 1);
  }
  if (layer.c % layer.groups !== 0 || layer.n % layer.groups !== 0) {
    throw new DacError('EINVAL', `groups ${layer.groups} must divide both c=${layer.c} and n=${layer.n}`, {
      layer: layer.name,
      field: 'groups',
    });
  }
}

function hasBias(layer: ConvShape): boolean {
  return layer.bias !== undefined && layer.bias !== null;
}

/**
 * Output length of one spatial axis of a convolution; the spatial
 * decomposition needs it for its first stage, whose size differs from the
 * layer's input and output.
 */
export function convOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBefore: number,
  padAfter: number,
): number {
  const span = dilation * (kernel - 1) + 1;
  return Math.floor((inSize + padBefore + padAfter - span) / stride) + 1;
}

/** MACs and parameters of the original convolution. */
export function convCost(layer: ConvShape): Cost {
  checkShape(layer);
  const perFilter = (layer.c / layer.groups) * layer.kh * layer.kw;
  return {
    macs: layer.outH * layer.outW * layer.n * perFilter,
    params: layer.n * perFilter + (hasBias(layer) ? layer.n : 0),
  };
}

/** Largest meaningful rank (DAC) or width (spatial, channel) of a layer. */
export function maxRank(layer: Pick<ConvShape, 'n' | 'c' | 'kh' | 'kw'>, method: Method): number {
  switch (method) {
    case 'dac':
      return Math.min(layer.n, layer.kh * layer.kw);
    case 'spatial':
      return Math.min(layer.c * layer.kh, layer.n * layer.kw);
    case 'channel':
      return Math.min(layer.n, layer.c * layer.kh * layer.kw);
  }
}

/** Output size of the kh x 1 stage of the spatial decomposition (it carries the vertical stride). */
export function spatialIntermediateSize(layer: ConvShape): { h: number; w: number } {
  return {
    h: convOutputSize(layer.inH, layer.kh, layer.strides[0], layer.dilations[0], layer.pads[0], layer.pads[2]),
    w: layer.inW,
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
export function replacementCost(layer: ConvShape, method: Method, rank: number, addBias = false): Cost {
  checkShape(layer);
  if (layer.groups !== 1) {
    throw new DacError('EINVAL', `${method} replaces ungrouped convolutions only (groups=${layer.groups})`, {
      layer: layer.name,
      field: 'groups',
    });
  }
  const max = maxRank(layer, method);
  if (!Number.isInteger(rank) || rank < 1 || rank > max) {
    const field = method === 'dac' ? 'rank' : 'width';
    throw new DacError('EINVAL', `${method} ${field} must be an integer in 1..${max}, got ${rank}`, {
      layer: layer.name,
      field,
    });
  }
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
export function matchingWidth(layer: Pick<ConvShape, 'n' | 'c' | 'kh' | 'kw'>, method: Method, dacRank: number): number {
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
  convs: ConvShape[],
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
