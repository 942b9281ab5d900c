// Why a plan chose what it chose, per layer: each method's option at about the
// cost of the chosen one, with its predicted error and predicted error per MAC
// saved. Within one layer every option's error carries the same layer weight
// in the objective, so comparing these numbers is comparing what the budget
// solver compared. `dac demo` prints them.

import { convCost, replacementCost } from '../cost.js';
import { maxRank } from '../geometry.js';
import type { ConvLayerInfo, Method } from '../model/types.js';
import type { DecomposeBackend } from './backend.js';
import type { ModelPlan } from './index.js';
import { layerErrorModel, errorModelSet } from './error-model-set.js';

export interface MethodOption {
  method: Method;
  /** DAC rank or spatial/channel width: the least compression whose MACs do not exceed the reference cost. */
  rank: number;
  macs: number;
  predictedError: number;
  /** predictedError / (MACs saved by this option). */
  errorPerMacSaved: number;
}

export interface LayerChoice {
  name: string;
  method: Method | 'keep';
  rank: number;
  macsBefore: number;
  /** The cost the options are compared at: the chosen option's MACs, or (kept layers) half the layer's. */
  referenceMacs: number;
  options: MethodOption[];
  /** One sentence: why DAC was or was not chosen. */
  why: string;
}

const METHODS: Method[] = ['dac', 'spatial', 'channel'];

/** The options of each method at (at most) the reference cost, for every layer the plan decomposed or kept by choice. */
export function explainPlan(convs: ConvLayerInfo[], plan: ModelPlan, backend: DecomposeBackend): LayerChoice[] {
  const set = errorModelSet(convs, plan.errorModel, backend);
  const plain = plan.errorModel.weighting === 'plain';
  const byName = new Map(convs.map((c) => [c.name, c]));
  const out: LayerChoice[] = [];
  for (const lp of plan.layers) {
    const layer = byName.get(lp.name);
    // Layers kept for a reason other than the budget (excluded, grouped, 1x1) had no options.
    if (!layer || (lp.method === 'keep' && !lp.reason?.startsWith('kept: decomposing'))) continue;
    const before = convCost(layer).macs;
    const reference = lp.method === 'keep' ? before / 2 : lp.macsAfter;
    const model = layerErrorModel(set, layer, plain);
    const options: MethodOption[] = [];
    for (const method of METHODS) {
      let best: MethodOption | null = null;
      for (let r = 1; r <= maxRank(layer, method); r++) {
        const macs = replacementCost(layer, method, r).macs;
        if (macs > reference || macs >= before) break;
        const e = model.curve(method)[r];
        best = { method, rank: r, macs, predictedError: e, errorPerMacSaved: e / (before - macs) };
      }
      if (best) options.push(best);
    }
    out.push({ name: lp.name, method: lp.method, rank: lp.rank, macsBefore: before, referenceMacs: reference, options, why: why(plan.method, lp.method, options) });
  }
  return out;
}

function why(asked: ModelPlan['method'], chosen: Method | 'keep', options: MethodOption[]): string {
  const show = (o: MethodOption) =>
    `${o.method} ${o.method === 'dac' ? 'rank' : 'width'} ${o.rank}: error ${o.predictedError.toPrecision(3)}, ${(o.errorPerMacSaved * 1e6).toPrecision(3)} per million MACs saved`;
  const dac = options.find((o) => o.method === 'dac');
  const all = options.map(show).join('; ');
  if (asked !== 'auto') return chosen === 'keep' ? `kept (${all})` : `${chosen} as asked (${all})`;
  if (!dac) return `DAC not chosen: no DAC rank saves MACs at this cost (${all})`;
  if (chosen === 'dac') return `DAC chosen (${all})`;
  if (chosen === 'keep') return `kept: every option, DAC included, costs more predicted error than the budget needs (${all})`;
  const winner = options.find((o) => o.method === chosen);
  const lower = winner !== undefined && winner.errorPerMacSaved < dac.errorPerMacSaved;
  return `DAC not chosen: ${chosen} has ${lower ? 'lower' : 'no lower'} predicted error per MAC saved (${all})`;
}
