// Error models of a conv list, shared by planning and building so a plan is
// built under exactly the model it was made with, and cached while the conv
// list lives (benchmarks and `dac decompose` plan and build from one list),
// per error model and backend (whose linear algebra the models use).

import type { ConvLayerInfo } from '../model/types.js';
import type { DecomposeBackend } from './backend.js';
import { LayerErrorModel, type ErrorModelOptions } from './error-model.js';
import { estimateInputs, type InputModel } from './stats.js';

export interface ModelSet {
  backend: DecomposeBackend;
  models: Map<string, LayerErrorModel>;
  /** Consumer of each conv's output through its BatchNorm, if any. */
  consumerOf: Map<string, string>;
  inputs: Map<string, InputModel>;
}

const cache = new WeakMap<ConvLayerInfo[], Map<string, ModelSet>>();

export function modelSet(convs: ConvLayerInfo[], errOpts: Required<ErrorModelOptions>, backend: DecomposeBackend): ModelSet {
  const key = `${errOpts.weighting}:${errOpts.spatialCorrelation}:${backend.name}`;
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
    set = { backend, models: new Map(), consumerOf, inputs };
    byKey.set(key, set);
  }
  return set;
}

export function layerModel(set: ModelSet, layer: ConvLayerInfo, plain: boolean): LayerErrorModel {
  let m = set.models.get(layer.name);
  if (!m) {
    const input = set.inputs.get(layer.name);
    if (!input) throw new Error(`plan: internal error: no input model for layer '${layer.name}'`);
    m = new LayerErrorModel(layer, input, plain, set.backend);
    set.models.set(layer.name, m);
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
