// Rank planning: which method and rank each conv gets, from the weights alone.
//
// Policies (PlanOptions):
//   rank        uniform DAC rank r; spatial/channel get the width matching r in cost
//   ranks       explicit per-layer rank (DAC) or width (spatial/channel), as report.json lists them
//   energy      per layer the smallest rank whose predicted relative error is <= 1 - E
//   flopsSaved  the model (all MACs, convs and the rest) saves at least this fraction,
//   paramsSaved   ... or of its parameters; ranks chosen to minimise the summed predicted
//               error, each layer's weighted by how strongly the next layer passes errors on
//   method auto per layer the best of dac / spatial / channel / keep under the same objective
// The input model is in stats.ts, the error model in error-model.ts, the budget solver in
// budget.ts; docs/auto.md has the design and the measurements behind it.

import { DacError, type ErrorContext } from '../errors.js';
import type { ConvLayerInfo, LayerPlan, Method, OtherCost } from '../model/types.js';
import { convCost, matchingWidth, modelCost, replacementCost } from '../cost.js';
import { maxRank } from '../geometry.js';
import { getBackend } from '../backend/loader.js';
import type { DecomposeBackend } from './backend.js';
import { mixTensor, LayerErrorModel, type ErrorModelOptions } from './error-model.js';
import { defaultWeighting, layerErrorModel, errorModelSet, type ErrorModelSet, type PlanErrorModel } from './error-model-set.js';
export { defaultWeighting } from './error-model-set.js';
import { FEATURE_CORRELATION } from './stats.js';
import { solveBudget, type BudgetOption } from './budget.js';
import { checkLatencies, fasterTime, type LayerLatency } from './latency.js';
import type { DecompositionMode } from './paper.js';

export type { DecomposeBackend } from './backend.js';
export { buildReplacements, type BuildOptions } from './build.js';
export { paperReplacement, type DecompositionMode } from './paper.js';
import { correctsBias, factorLayers, type FactorRequest } from './build.js';
import { scratchFor } from './scratch.js';

export type PlanMethod = Method | 'auto';

export interface PlanOptions extends ErrorModelOptions {
  method: PlanMethod;
  rank?: number;
  ranks?: Record<string, number>;
  energy?: number;
  flopsSaved?: number;
  paramsSaved?: number;
  skipFirst?: boolean;
  layers?: string[];
  /**
   * Extra weight on early layers on top of the consumer gains: layer k of L
   * decomposable layers is weighed (1 + depthPenalty * (L-1-k)/(L-1)) more. Default 0.
   */
  depthPenalty?: number;
  /**
   * The replacements will be built with bias correction (default true), which
   * gives a bias-free conv's replacement a bias: the plan counts its parameters.
   */
  biasCorrection?: boolean;
  /**
   * The decompositions exactly as published (src/plan/paper.ts): plain SVDs,
   * original bias, no corrections; planned under the plain Frobenius error.
   */
  paper?: boolean;
  /**
   * Measured times of one runtime per conv (src/plan/latency.ts, from `dac bench`):
   * budget policies then never choose a replacement that was not measured faster.
   */
  latency?: Record<string, LayerLatency>;
  /** Save at least this fraction of the measured conv time (needs latency). */
  latencySaved?: number;
}

export interface ModelPlan {
  method: PlanMethod;
  layers: LayerPlan[];
  flops: { before: number; after: number };
  params: { before: number; after: number };
  /** Sum over layers of the weighted predicted errors (the quantity budget policies minimise). */
  predictedLoss: number;
  /** The error model the ranks were chosen under; buildReplacements builds under the same one. */
  errorModel: PlanErrorModel;
  /** Whether the parameter counts assume bias correction (buildReplacements then applies it by default). */
  biasCorrection: boolean;
  /** Which decomposition buildReplacements applies: the papers' or this project's. */
  mode: DecompositionMode;
}

export const DEFAULT_DEPTH_PENALTY = 0;

const PLAN_KEYS = [
  'method',
  'rank',
  'ranks',
  'energy',
  'flopsSaved',
  'paramsSaved',
  'skipFirst',
  'layers',
  'weighting',
  'spatialCorrelation',
  'depthPenalty',
  'biasCorrection',
  'paper',
  'latency',
  'latencySaved',
] as const satisfies readonly (keyof PlanOptions)[];

/** The planning fields of a larger settings object (a command's), leaving out absent ones. */
export function planOptionsFrom(settings: PlanOptions): PlanOptions {
  const out: Record<string, unknown> = {};
  for (const key of PLAN_KEYS) if (settings[key] !== undefined) out[key] = settings[key];
  return out as unknown as PlanOptions;
}

/** Relative error below which a rank counts as exact (float32 weights). */
const EXACT_TOLERANCE = 1e-7;

const METHODS: Method[] = ['dac', 'spatial', 'channel'];

function fail(msg: string, context: ErrorContext = {}): never {
  throw new DacError('EINVAL', msg, context);
}

function checkFraction(name: string, v: number | undefined, allowOne: boolean): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1 || (!allowOne && v >= 1)) {
    fail(`must be a number in (0, ${allowOne ? '1]' : '1)'}, got ${String(v)}`, { field: name });
  }
}

/** What planModel may be asked for: one method, or auto (per layer the best of the three, or keep). */
export const PLAN_METHODS: readonly PlanMethod[] = ['dac', 'spatial', 'channel', 'auto'];

/**
 * A combination of options that names no single usable policy. The rules
 * live here only (policyProblem); each front end words them in its own
 * spelling: planModel in option names (below), the CLI in its flags
 * (src/cli/settings.ts).
 */
export type PolicyProblem =
  | 'no-policy'
  | 'several-policies'
  | 'auto-with-ranks'
  | 'latency-and-budget'
  | 'paper-weighted'
  | 'paper-corrected';

/** The first policy rule the options break, or null when they name exactly one usable policy. */
export function policyProblem(o: PlanOptions): PolicyProblem | null {
  if (o.paper && o.weighting === 'bn') return 'paper-weighted';
  if (o.paper && o.biasCorrection) return 'paper-corrected';
  if (o.latencySaved !== undefined && (o.flopsSaved !== undefined || o.paramsSaved !== undefined)) return 'latency-and-budget';
  const explicit = o.rank !== undefined || o.ranks !== undefined;
  const budget = o.flopsSaved !== undefined || o.paramsSaved !== undefined || o.latencySaved !== undefined;
  const policies = [explicit, o.energy !== undefined, budget].filter(Boolean).length;
  if (policies === 0) return 'no-policy';
  if (policies > 1) return 'several-policies';
  if (o.method === 'auto' && explicit) return 'auto-with-ranks';
  return null;
}

const POLICY_PROBLEMS: Record<PolicyProblem, [string, ErrorContext]> = {
  'no-policy': ['give one policy: rank, ranks, energy, flopsSaved, paramsSaved or latencySaved', {}],
  'several-policies': ['give only one policy: rank/ranks, energy, or flopsSaved/paramsSaved/latencySaved', {}],
  'auto-with-ranks': ['auto chooses ranks itself: use flopsSaved, paramsSaved or energy', { field: 'method' }],
  'latency-and-budget': ['give latencySaved or flopsSaved/paramsSaved, not both', {}],
  'paper-weighted': ['paper decompositions are unweighted: weighting bn does not apply', { field: 'weighting' }],
  'paper-corrected': ['paper decompositions keep the original bias: biasCorrection does not apply', { field: 'biasCorrection' }],
};

function validate(convs: ConvLayerInfo[], options: PlanOptions): void {
  if (!options || typeof options !== 'object') fail('options must be an object');
  const { method } = options;
  if (!PLAN_METHODS.includes(method)) {
    fail(`must be dac, spatial, channel or auto, got '${String(method)}'`, { field: 'method' });
  }
  const names = new Set<string>();
  for (const c of convs) {
    if (names.has(c.name)) fail('two convs have this name', { layer: c.name });
    names.add(c.name);
  }
  if (options.rank !== undefined && (!Number.isInteger(options.rank) || options.rank < 1)) {
    fail(`must be a positive integer, got ${String(options.rank)}`, { field: 'rank' });
  }
  if (options.ranks !== undefined) {
    for (const [name, r] of Object.entries(options.ranks)) {
      if (!names.has(name)) fail('not a conv of the model', { layer: name, field: 'ranks' });
      if (!Number.isInteger(r) || r < 1) fail(`must be a positive integer, got ${String(r)}`, { layer: name, field: 'ranks' });
    }
  }
  for (const name of options.layers ?? []) {
    if (!names.has(name)) fail('not a conv of the model', { layer: name, field: 'layers' });
  }
  checkFraction('energy', options.energy, true);
  checkFraction('flopsSaved', options.flopsSaved, false);
  checkFraction('paramsSaved', options.paramsSaved, false);
  if (options.paper !== undefined && typeof options.paper !== 'boolean') fail(`must be a boolean, got ${String(options.paper)}`, { field: 'paper' });
  if (options.depthPenalty !== undefined && !(options.depthPenalty >= 0 && Number.isFinite(options.depthPenalty))) {
    fail(`must be a finite number >= 0, got ${String(options.depthPenalty)}`, { field: 'depthPenalty' });
  }
  checkFraction('latencySaved', options.latencySaved, false);
  checkLatencies(options.latency, options.latencySaved);
  const problem = policyProblem(options);
  if (problem) fail(...POLICY_PROBLEMS[problem]);
}

/**
 * Why a layer is not a candidate for decomposition under these options, or
 * null when it is: the eligibility rule, here only (decompose-model.ts and
 * the zoo ask it before any work).
 */
export function exclusion(layer: ConvLayerInfo, options: Pick<PlanOptions, 'skipFirst' | 'layers'>): string | null {
  if (layer.skipReason) return layer.skipReason;
  if (layer.groups !== 1) return `grouped convolution (groups=${layer.groups})`;
  if (options.skipFirst && layer.index === 0) return 'first conv (skipFirst)';
  if (options.layers && !options.layers.includes(layer.name)) return 'not among the selected layers';
  return null;
}

/**
 * Why a uniform `rank` fits none of the candidate convs (it is above the
 * largest DAC rank, min(n, kh*kw), of them all), or null when it fits one;
 * a layer whose own bound is lower takes its bound. Spatial and channel read
 * `rank` as the DAC rank whose cost their width matches, so the DAC bound applies.
 */
export function rankBeyondEvery(candidates: ConvLayerInfo[], rank: number | undefined): string | null {
  if (rank === undefined || candidates.length === 0) return null;
  const max = Math.max(...candidates.map((l) => maxRank(l, 'dac')));
  return rank > max ? `rank ${rank} is out of range 1..${max} (largest DAC rank, min(n, kh*kw), of the layers)` : null;
}

/**
 * How strongly the layer that consumes a conv's output passes on an error
 * relative to the signal: white noise (independent channels and taps) against
 * the modelled input, both through the consumer's D-weighted weights. Errors
 * are spread over all directions while the signal sits where the consumer's
 * filters respond, so this is < 1, and smaller deeper in a network.
 */
function consumerGain(consumer: LayerErrorModel): number {
  const { layer, input } = consumer;
  const { n, c, kh, kw } = layer;
  const K = kh * kw;
  const w = layer.weights;
  // White noise through the taps' validity: w_ji^T (pairH (x) pairW) w_ji per channel slice.
  const mixed = mixTensor(consumer.backend, w, n, c, kh, kw, null, input.pairH, input.pairW, null);
  let noise = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let q = j * c * K; q < (j + 1) * c * K; q++) s += w[q] * mixed[q];
    noise += consumer.d[j] * consumer.d[j] * s;
  }
  let trV = 0;
  for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) trV += input.pairH[y * kh + y] * input.pairW[x * kw + x];
  let signal = 0;
  consumer.outputEnergy(w).forEach((e, j) => (signal += consumer.d[j] * consumer.d[j] * e));
  let trA = 0;
  for (let i = 0; i < c; i++) trA += input.A[i * c + i];
  let trT = 0;
  for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) trT += input.th[y * kh + y] * input.tw[x * kw + x];
  const noiseGain = noise / (c * trV);
  const signalGain = signal / (trA * trT);
  return signalGain > 0 && noiseGain > 0 ? noiseGain / signalGain : 1;
}

/** Objective weight of each eligible layer: consumer gain (bn weighting) times the optional depth penalty. */
function layerWeights(
  eligible: ConvLayerInfo[],
  convs: ConvLayerInfo[],
  set: ErrorModelSet,
  errOpts: Required<ErrorModelOptions>,
  depthPenalty: number,
): number[] {
  const plain = errOpts.weighting === 'plain';
  const byName = new Map(convs.map((c) => [c.name, c]));
  const gains: (number | null)[] = eligible.map((layer) => {
    if (plain) return 1;
    const consumer = set.consumerOf.get(layer.name);
    return consumer ? consumerGain(layerErrorModel(set, byName.get(consumer)!, plain)) : null;
  });
  const known = gains.filter((g): g is number => g !== null);
  // The last conv (or one feeding something other than a conv) is weighed like the least sensitive known layer.
  const fallback = known.length > 0 ? Math.min(...known) : 1;
  const count = eligible.length;
  return gains.map((g, k) => (g ?? fallback) * (1 + (count > 1 ? (depthPenalty * (count - 1 - k)) / (count - 1) : 0)));
}

/** Smallest rank whose predicted error is <= limit (limit 0 means exact). */
function rankFor(curve: Float64Array, limit: number): number {
  for (let r = 1; r < curve.length; r++) if (curve[r] <= limit + EXACT_TOLERANCE) return r;
  return curve.length - 1;
}

function keepPlan(layer: ConvLayerInfo, reason: string): LayerPlan {
  const cost = convCost(layer);
  return {
    name: layer.name,
    method: 'keep',
    rank: 0,
    macsBefore: cost.macs,
    macsAfter: cost.macs,
    paramsBefore: cost.params,
    paramsAfter: cost.params,
    predictedError: 0,
    reason,
  };
}

function decomposedPlan(model: LayerErrorModel, method: Method, rank: number, biasCorrection: boolean, error = model.curve(method)[rank]): LayerPlan {
  const layer = model.layer;
  const before = convCost(layer);
  const biasAdded = !layer.bias && correctsBias(model, biasCorrection);
  const after = replacementCost(layer, method, rank, biasAdded);
  const lp: LayerPlan = {
    name: layer.name,
    method,
    rank,
    macsBefore: before.macs,
    macsAfter: after.macs,
    paramsBefore: before.params,
    paramsAfter: after.params,
    predictedError: error,
  };
  if (biasAdded) lp.biasAdded = true;
  if (after.macs >= before.macs) lp.reason = 'asked for, though it does not save MACs';
  return lp;
}

interface Candidate {
  method: Method | 'keep';
  rank: number;
  macs: number;
  params: number;
  error: number;
  /** Measured time, when planning with latencies. */
  ms?: number;
}

/** fn's result, with the model's layer-sized caches dropped after it: planning keeps a layer's curves, not its tensors. */
/** The curves every layer's candidates will need, several layers at a time (LayerErrorModel.prefetchCurves). */
function prefetchCurves(eligible: ConvLayerInfo[], models: Map<string, LayerErrorModel>, methods: Method[], threads: number): void {
  LayerErrorModel.prefetchCurves(eligible.map((layer) => models.get(layer.name)!), methods, threads);
}

function releasing<T>(model: LayerErrorModel, fn: (model: LayerErrorModel) => T): T {
  try {
    return fn(model);
  } finally {
    model.release();
  }
}

/** Every way to treat a layer under an automatic policy; decompositions that do not save MACs are left out. */
function candidates(model: LayerErrorModel, methods: Method[], biasCorrection: boolean, threads: number): Candidate[] {
  const layer = model.layer;
  const full = convCost(layer);
  const biasAdded = !layer.bias && correctsBias(model, biasCorrection);
  const out: Candidate[] = [{ method: 'keep', rank: 0, macs: full.macs, params: full.params, error: 0 }];
  for (const m of methods) {
    const max = maxRank(layer, m);
    for (let r = 1; r <= max; r++) {
      const cost = replacementCost(layer, m, r, biasAdded);
      if (cost.macs >= full.macs) break;
      out.push({ method: m, rank: r, macs: cost.macs, params: cost.params, error: model.curve(m, threads)[r] });
    }
  }
  return out;
}

/** With measured latencies: keep, and only the replacements measured faster than the original, each with its time. */
function timed(cs: Candidate[], layer: ConvLayerInfo, latency: Record<string, LayerLatency> | undefined): Candidate[] {
  if (!latency) return cs;
  const lat = latency[layer.name];
  const out: Candidate[] = [];
  for (const c of cs) {
    const ms = c.method === 'keep' ? (lat?.original ?? 0) : fasterTime(lat, c.method, c.rank);
    if (ms !== null) out.push({ ...c, ms });
  }
  return out;
}

/**
 * Plans method and rank for every conv of a model. `other` is the cost of
 * everything that is not a conv (it counts in the budget's denominator).
 * `backend` (default getBackend()) computes the spectra and the dense linear
 * algebra of the error model; `threads` are its threads for the
 * factorisations an explicit-rank plan makes (buildReplacements reuses them)
 * and for the spectra of spatial and channel error curves.
 */
export function planModel(
  convs: ConvLayerInfo[],
  other: OtherCost,
  options: PlanOptions,
  backend: DecomposeBackend = getBackend(),
  threads = 1,
): ModelPlan {
  return scratchFor(convs).within(() => planConvs(convs, other, options, backend, threads));
}

function planConvs(convs: ConvLayerInfo[], other: OtherCost, options: PlanOptions, backend: DecomposeBackend, threads: number): ModelPlan {
  validate(convs, options);
  if (!other || !Number.isFinite(other.macs) || !Number.isFinite(other.params) || other.macs < 0 || other.params < 0) {
    fail('must have finite, non-negative macs and params', { field: 'other' });
  }
  const correct = !options.paper && (options.biasCorrection ?? true);
  const errOpts: PlanErrorModel = {
    // Under the plain model a paper decomposition's predicted error is exactly its weight error.
    weighting: options.paper ? 'plain' : (options.weighting ?? defaultWeighting(convs)),
    spatialCorrelation: options.spatialCorrelation ?? FEATURE_CORRELATION,
    // Bias correction adds the modelled mean shift back: errors count as they are after it.
    centred: correct,
  };
  const plain = errOpts.weighting === 'plain';
  const plans = new Map<string, LayerPlan>();
  const eligible: ConvLayerInfo[] = [];
  for (const layer of convs) {
    const why = exclusion(layer, options);
    if (why) plans.set(layer.name, keepPlan(layer, why));
    else eligible.push(layer);
  }
  const beyond = rankBeyondEvery(eligible, options.rank);
  if (beyond) throw new DacError('ERANGE', beyond, { field: 'rank' });
  const set = errorModelSet(convs, errOpts, backend);
  const models = new Map(eligible.map((layer) => [layer.name, layerErrorModel(set, layer, plain)]));
  const method = options.method;
  const methods = method === 'auto' ? METHODS : [method];
  const weights = layerWeights(eligible, convs, set, errOpts, options.depthPenalty ?? DEFAULT_DEPTH_PENALTY);

  if (options.rank !== undefined || options.ranks !== undefined) {
    const m = method as Method;
    const work: FactorRequest[] = [];
    for (const layer of eligible) {
      const explicit = options.ranks?.[layer.name];
      if (explicit !== undefined) {
        const max = maxRank(layer, m);
        if (explicit > max) fail(`${explicit} is out of range 1..${max} for ${m}`, { layer: layer.name, field: 'ranks' });
        work.push({ layer, method: m, rank: explicit });
      } else if (options.rank !== undefined) {
        const r = m === 'dac' ? Math.min(options.rank, maxRank(layer, m)) : matchingWidth(layer, m, options.rank);
        work.push({ layer, method: m, rank: r });
      } else {
        plans.set(layer.name, keepPlan(layer, 'not named in ranks'));
      }
    }
    // Nothing to choose from: each layer's predicted error is that of the factors the build will use (made here
    // once, kept for it; under plain weighting a DAC pair's is its curve's, which is cheaper than a refit and no
    // other curve is made); paper plans, built by paper.ts, read it off the curve.
    const errors = options.paper
      ? work.map(({ layer, rank }) => releasing(models.get(layer.name)!, (model) => model.curve(m, threads)[rank]))
      : factorLayers(set, work, plain, threads).map((f) => f.error);
    work.forEach(({ layer, rank }, k) => plans.set(layer.name, decomposedPlan(models.get(layer.name)!, m, rank, correct, errors[k])));
  } else if (options.energy !== undefined) {
    prefetchCurves(eligible, models, methods, threads);
    const limit = 1 - options.energy;
    for (const layer of eligible) {
      const model = models.get(layer.name)!;
      if (method !== 'auto') {
        const r = rankFor(releasing(model, (x) => x.curve(method, threads)), limit);
        plans.set(
          layer.name,
          replacementCost(layer, method, r).macs < convCost(layer).macs
            ? decomposedPlan(model, method, r, correct)
            : keepPlan(layer, `kept: ${method} needs rank ${r} to keep that energy, which does not save MACs`),
        );
        continue;
      }
      let best: Candidate | null = null;
      for (const c of releasing(model, (x) => candidates(x, METHODS, correct, threads))) {
        if (c.method !== 'keep' && c.error <= limit + EXACT_TOLERANCE && (!best || c.macs < best.macs)) best = c;
      }
      plans.set(
        layer.name,
        best && best.method !== 'keep'
          ? decomposedPlan(model, best.method, best.rank, correct)
          : keepPlan(layer, 'no method keeps that energy and saves MACs'),
      );
    }
  } else {
    planBudget(convs, other, options, eligible, models, methods, weights, plans, threads);
  }

  const layers = convs.map((c) => plans.get(c.name)!);
  const before = modelCost(convs, other);
  const after = modelCost(convs, other, { layers });
  let predictedLoss = 0;
  eligible.forEach((layer, k) => (predictedLoss += weights[k] * plans.get(layer.name)!.predictedError));
  return {
    method,
    layers,
    flops: { before: before.total.macs, after: after.total.macs },
    params: { before: before.total.params, after: after.total.params },
    predictedLoss,
    errorModel: errOpts,
    biasCorrection: correct,
    mode: options.paper ? 'paper' : 'ours',
  };
}

function planBudget(
  convs: ConvLayerInfo[],
  other: OtherCost,
  options: PlanOptions,
  eligible: ConvLayerInfo[],
  models: Map<string, LayerErrorModel>,
  methods: Method[],
  weights: number[],
  plans: Map<string, LayerPlan>,
  threads: number,
): void {
  prefetchCurves(eligible, models, methods, threads);
  const before = modelCost(convs, other).total;
  const eligibleNames = new Set(eligible.map((l) => l.name));
  const fixed = { macs: other.macs, params: other.params };
  for (const layer of convs) {
    if (eligibleNames.has(layer.name)) continue;
    const c = convCost(layer);
    fixed.macs += c.macs;
    fixed.params += c.params;
  }
  const cands = eligible.map((layer) =>
    timed(releasing(models.get(layer.name)!, (model) => candidates(model, methods, options.biasCorrection ?? true, threads)), layer, options.latency),
  );
  const capFor = (resource: 'macs' | 'params', fraction: number) =>
    before[resource] - Math.ceil(fraction * before[resource] - 1e-9) - fixed[resource];
  const solve = (resource: 'macs' | 'params', fraction: number): number[] | null => {
    const items: BudgetOption[][] = cands.map((cs, k) => cs.map((c) => ({ cost: c[resource], loss: weights[k] * c.error })));
    return solveBudget(items, capFor(resource, fraction));
  };
  const maxSaved = (resource: 'macs' | 'params') => {
    let least = fixed[resource];
    for (const cs of cands) least += Math.min(...cs.map((c) => c[resource]));
    return 1 - least / before[resource];
  };
  const describe = (resource: 'macs' | 'params', fraction: number) =>
    `cannot save ${(fraction * 100).toFixed(1)}% of the model's ${resource === 'macs' ? 'MACs' : 'parameters'} ` +
    `with method ${options.method}: at most ${(Math.max(0, maxSaved(resource)) * 100).toFixed(1)}% over ` +
    `${eligible.length} decomposable layer(s)`;
  const paramsOk = (pick: number[]) => {
    if (options.paramsSaved === undefined) return true;
    let total = fixed.params;
    pick.forEach((idx, k) => (total += cands[k][idx].params));
    return total <= capFor('params', options.paramsSaved) + fixed.params;
  };

  let pick: number[] | null;
  if (options.latencySaved !== undefined) {
    // Measured conv time of the model in the table's runtime; convs it has no time for count as 0.
    let fixedMs = 0;
    for (const layer of convs) if (!eligibleNames.has(layer.name)) fixedMs += options.latency![layer.name]?.original ?? 0;
    const total = cands.reduce((a, cs) => a + cs[0].ms!, fixedMs);
    const items: BudgetOption[][] = cands.map((cs, k) => cs.map((c) => ({ cost: c.ms!, loss: weights[k] * c.error })));
    pick = solveBudget(items, total * (1 - options.latencySaved) - fixedMs);
    if (!pick) {
      const least = cands.reduce((a, cs) => a + Math.min(...cs.map((c) => c.ms!)), fixedMs);
      fail(
        `cannot save ${(options.latencySaved * 100).toFixed(1)}% of the model's measured conv time with method ${options.method}: ` +
          `at most ${(Math.max(0, 1 - least / total) * 100).toFixed(1)}% with the replacements measured faster`,
      );
    }
  } else if (options.flopsSaved === undefined) {
    pick = solve('params', options.paramsSaved!);
    if (!pick) fail(describe('params', options.paramsSaved!));
  } else {
    pick = solve('macs', options.flopsSaved);
    if (!pick) fail(describe('macs', options.flopsSaved));
    if (!paramsOk(pick)) {
      // Both budgets: the smallest stricter MACs target whose plan also meets the params budget.
      let lo = options.flopsSaved;
      let hi = maxSaved('macs');
      let best = solve('macs', hi);
      if (!best || !paramsOk(best)) fail(describe('params', options.paramsSaved!) + ' together with the MACs budget');
      for (let it = 0; it < 30 && hi - lo > 1e-6; it++) {
        const mid = (lo + hi) / 2;
        const p = solve('macs', mid);
        if (p && paramsOk(p)) {
          hi = mid;
          best = p;
        } else lo = mid;
      }
      pick = best;
    }
  }
  eligible.forEach((layer, k) => {
    const c = cands[k][pick![k]];
    const model = models.get(layer.name)!;
    plans.set(
      layer.name,
      c.method === 'keep'
        ? keepPlan(layer, 'kept: decomposing it costs more accuracy than the budget needs')
        : decomposedPlan(model, c.method, c.rank, options.biasCorrection ?? true),
    );
  });
}
