// Decomposing a loaded model, with no file access: plan ranks (src/plan),
// build the replacement weights on the native/WASM backend, rewrite the
// model in memory, and describe it in a report with exact MACs and the real
// weight error of every layer. `dac decompose` and the zoo's workers both
// come here, so a zoo result is what `dac decompose` writes for that model.
import { convCost } from './cost.js';
import { DacError, toDacError } from './errors.js';
import type { LoadedModel } from './formats/index.js';
import type { Backend } from './backend/backend.js';
import { getBackend } from './backend/loader.js';
import { replacementError } from './model/reconstruct.js';
import type { LayerPlan, LayerReplacement } from './model/types.js';
import { buildReplacements, exclusion, planModel, planOptionsFrom, type DecompositionMode, type ModelPlan, type PlanOptions } from './plan/index.js';

/** A layer of report.json: its plan, and the real weight error of what was built. */
export interface LayerReport extends LayerPlan {
  relError: number;
  /** Which decomposition built this layer (absent for kept layers): the papers' (--paper) or ours. */
  mode?: DecompositionMode;
}

export interface Report {
  method: string;
  /** 'paper': every replacement built as published (--paper); 'ours': weighted and corrected. */
  mode: DecompositionMode;
  input: string;
  output: string | null;
  format: string;
  backend: string;
  foldedBatchNorm: boolean;
  /** The [H, W, C] costs were counted at; with freeInput, NOMINAL_FREE_SIZE stands in for the free sizes. */
  inputShape: number[];
  /** The model leaves its input height/width free and none was stated: read flopsPerInputPixel. */
  freeInput: boolean;
  /** How the convs' weights are stored; replacements are written in the same dtype (float16 stays float16). */
  weightDtype: string;
  /** MACs at inputShape (per image); with freeInput, at the nominal size. */
  flops: { before: number; after: number };
  /** With freeInput: MACs per input pixel (flops / (H*W)), the same at every input size. */
  flopsPerInputPixel?: { before: number; after: number };
  params: { before: number; after: number };
  layers: LayerReport[];
  /** The warnings of the run, when any (convs kept for an unknown size, weights stored as float32 instead of quantized, ...). */
  warnings?: string[];
}

/** A decomposition job: the plan's policy, and how the replacements are built. */
export interface DecomposeSettings extends PlanOptions {
  threads?: number;
}

/** Settings of a whole decomposition job: the above, plus folding BatchNorm into the convs first. */
export interface ModelSettings extends DecomposeSettings {
  foldBn?: boolean;
  /** [H, W] or [H, W, C] for models with free input sizes (LoadOptions.inputShape). */
  inputShape?: number[];
}

export interface DecomposeResult {
  model: LoadedModel;
  plan: ModelPlan;
  report: Report;
  warnings: string[];
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');

function totals(model: LoadedModel): { macs: number; params: number } {
  let macs = model.other.macs;
  let params = model.other.params;
  for (const c of model.convs) {
    const cost = convCost(c);
    macs += cost.macs;
    params += cost.params;
  }
  return { macs, params };
}

/** A uniform rank must have some conv to act on (planModel checks the rank's range). */
function checkEligible(model: LoadedModel, s: DecomposeSettings): void {
  if (s.rank === undefined) return;
  if (!model.convs.some((c) => exclusion(c, s) === null)) {
    throw new DacError('EINVAL', 'no conv can be decomposed with these options', { model: model.path });
  }
}

/** Lent by a caller that may collect garbage (the zoo's workers, src/zoo/worker.ts). */
export interface StageHooks {
  /** A full garbage collection, run between the stages. */
  collect?: () => void;
}

/** Plans, decomposes and applies; the input model is untouched. */
export function decomposeLoaded(model: LoadedModel, s: DecomposeSettings, backend: Backend = getBackend(), hooks: StageHooks = {}): DecomposeResult {
  const names = new Set(model.convs.map((c) => c.name));
  for (const name of [...(s.layers ?? []), ...Object.keys(s.ranks ?? {})]) {
    if (!names.has(name)) {
      throw new DacError('EINVAL', `no conv named '${name}' (dac inspect lists them)`, { model: model.path, field: 'layers' });
    }
  }
  checkEligible(model, s);
  const options = planOptionsFrom(s);
  let plan: ModelPlan;
  try {
    plan = planModel(model.convs, model.other, options, backend, s.threads);
  } catch (err) {
    // A DacError passes as it is; anything else from the planner is a bug (EINTERNAL), not bad input.
    throw toDacError(err, { model: model.path });
  }
  // Planning's layer-sized buffers are dead once it returns, but V8 collects external memory lazily: they
  // would sit under the build's factorisations (about 20 MiB of a VGG16-sized auto plan's peak).
  hooks.collect?.();
  const replacements = buildReplacements(model.convs, plan, backend, { biasCorrection: s.biasCorrection ?? true, threads: s.threads });
  const warnings: string[] = [...(model.notes ?? [])];
  for (const lp of plan.layers) {
    if (lp.method !== 'keep' && lp.macsAfter >= lp.macsBefore) {
      warnings.push(
        `layer ${lp.name}: ${lp.method} rank ${lp.rank} does not save MACs (${fmtInt(lp.macsBefore)} -> ${fmtInt(lp.macsAfter)}); applied as asked`,
      );
    }
  }
  const out = model.apply(replacements);
  // What writing the replacements changed on its own (e.g. float32 instead of the original's quantization).
  for (const note of out.notes ?? []) if (!warnings.includes(note)) warnings.push(note);
  const convs = new Map(model.convs.map((c) => [c.name, c]));
  const byName = new Map<string, LayerReplacement>(replacements.map((r) => [r.name, r]));
  const layers = plan.layers.map((lp): LayerReport => {
    const conv = convs.get(lp.name)!;
    const rep = byName.get(lp.name);
    const entry: LayerReport = {
      name: lp.name,
      method: lp.method,
      rank: lp.rank,
      macsBefore: lp.macsBefore,
      macsAfter: lp.macsAfter,
      paramsBefore: lp.paramsBefore,
      paramsAfter: lp.paramsAfter,
      relError: rep ? replacementError(rep, conv, backend, s.threads) : 0,
      predictedError: lp.predictedError,
    };
    if (lp.biasAdded) entry.biasAdded = true;
    if (rep) entry.mode = plan.mode;
    if (lp.reason) entry.reason = lp.reason;
    return entry;
  });
  const before = totals(model);
  const after = totals(out);
  if (after.macs !== plan.flops.after || after.params !== plan.params.after) {
    throw new DacError(
      'EINTERNAL',
      `the written model has ${after.macs} MACs / ${after.params} params, the plan says ${plan.flops.after} / ${plan.params.after}`,
      { model: model.path },
    );
  }
  const pixels = model.inputShape[0] * model.inputShape[1];
  return {
    model: out,
    plan,
    warnings,
    report: {
      method: s.method,
      mode: plan.mode,
      input: model.path,
      output: null,
      format: model.format,
      backend: backend.name,
      foldedBatchNorm: false,
      inputShape: model.inputShape.slice(),
      freeInput: model.freeInput,
      weightDtype: model.weightDtype ?? 'float32',
      flops: { before: before.macs, after: after.macs },
      ...(model.freeInput ? { flopsPerInputPixel: { before: before.macs / pixels, after: after.macs / pixels } } : {}),
      params: { before: before.params, after: after.params },
      layers,
      ...(warnings.length ? { warnings: warnings.slice() } : {}),
    },
  };
}
