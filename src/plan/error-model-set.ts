// Error models of a conv list, shared by planning and building so a plan is
// built under exactly the model it was made with, and cached while the conv
// list lives (benchmarks and `dac decompose` plan and build from one list),
// per error model and backend (whose linear algebra the models use).

import type { ConvLayerInfo } from '../model/types.js';
import type { DecomposeBackend } from './backend.js';
import { LayerErrorModel, type ErrorModelOptions } from './error-model.js';
import { scratchFor, type ScratchPool } from './scratch.js';
import { estimateInputs, type InputModel } from './stats.js';

/**
 * One layer's two stages before the corrections, laid out as its
 * LayerReplacement's (dac: depthwise, pointwise; spatial: vertical,
 * horizontal; channel: first, second), and the pair's predicted error under
 * the error model.
 */
export interface LayerFactors {
  first: Float32Array;
  last: Float32Array;
  error: number;
}

export interface ErrorModelSet {
  backend: DecomposeBackend;
  /** Each conv's error model, by layer name, made on first use. */
  byLayer: Map<string, LayerErrorModel>;
  /** Consumer of each conv's output through its BatchNorm, if any. */
  consumerOf: Map<string, string>;
  inputs: Map<string, InputModel>;
  /** Factors made but not yet built into replacements (build.ts factorLayers), by layer, method and rank. */
  factors: Map<string, LayerFactors>;
  /** The layer-sized buffers the set's models lend each other (a lent buffer is its borrower's alone until given back). */
  scratch: ScratchPool;
}

const cache = new WeakMap<ConvLayerInfo[], Map<string, ErrorModelSet>>();

/**
 * The error model a plan was made under: the options, and whether errors are
 * measured after bias correction (centred input moments, stats.ts), which the
 * planner derives from the plan's bias correction rather than taking as an option.
 */
export interface PlanErrorModel extends Required<ErrorModelOptions> {
  centred: boolean;
}

export function errorModelSet(convs: ConvLayerInfo[], errOpts: Required<ErrorModelOptions> & { centred?: boolean }, backend: DecomposeBackend): ErrorModelSet {
  // Plain weighting has no input moments to centre: one set serves both, so a plan's factors reach its build.
  const centred = errOpts.weighting === 'bn' && errOpts.centred === true;
  const key = `${errOpts.weighting}:${errOpts.spatialCorrelation}:${centred}:${backend.name}`;
  let byKey = cache.get(convs);
  if (!byKey) {
    byKey = new Map();
    cache.set(convs, byKey);
  }
  let set = byKey.get(key);
  if (!set) {
    const { inputs, producerOf } = estimateInputs(convs, backend, errOpts);
    const consumerOf = new Map<string, string>();
    // A grouped or depthwise consumer has no c x c weights to weigh an error with: its producer gets the fallback gain.
    const grouped = new Set(convs.filter((c) => c.groups !== 1).map((c) => c.name));
    for (const [consumer, producer] of producerOf) if (!consumerOf.has(producer) && !grouped.has(consumer)) consumerOf.set(producer, consumer);
    set = { backend, byLayer: new Map(), consumerOf, inputs, factors: new Map(), scratch: scratchFor(convs) };
    byKey.set(key, set);
  }
  return set;
}

export function layerErrorModel(set: ErrorModelSet, layer: ConvLayerInfo, plain: boolean): LayerErrorModel {
  let m = set.byLayer.get(layer.name);
  if (!m) {
    const input = set.inputs.get(layer.name);
    if (!input) throw new Error(`plan: internal error: no input model for layer '${layer.name}'`);
    m = new LayerErrorModel(layer, input, plain, set.backend, set.scratch);
    set.byLayer.set(layer.name, m);
  }
  return m;
}

/**
 * 'bn' where the model has BatchNorm statistics to read; 'plain' where it has
 * none (BN folded into the convs, as exporters do): there the bn model has
 * nothing to weigh with, and its priors alone planned worse than plain
 * (fashion-vgg folded, DAC rank 4: 61.3% against 85.1%; docs/auto.md).
 */
export function defaultWeighting(convs: ConvLayerInfo[]): 'bn' | 'plain' {
  return convs.some((c) => c.bnBefore || c.bnAfter) ? 'bn' : 'plain';
}
