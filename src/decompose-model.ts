// Decomposing a loaded model, with no file access: plan ranks (src/plan),
// build the replacement weights on the native/WASM backend, rewrite the
// model in memory, and describe it in a report with exact MACs and the real
// weight error of every layer. `dac decompose` and the zoo's workers both
// come here, so a zoo result is what `dac decompose` writes for that model.
import { convCost } from './cost.js';
import { DacError, toDacError } from './errors.js';
import type { LoadedModel } from './formats/model.js';
import type { Backend } from './backend/backend.js';
import { getBackend } from './backend/loader.js';
import type { ConvLayerInfo, LayerPlan, LayerReplacement, Method } from './model/types.js';
import { buildReplacements, planModel, planOptionsFrom, type DecompositionMode, type ModelPlan, type PlanOptions } from './plan/index.js';

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

/**
 * ||W - W'|| / ||W|| of a replacement pair, W' the single conv it equals
 * (what src/model/reconstruct.ts builds). Computed slice by slice into a
 * small scratch, with the factors in locals, instead of building W' whole:
 * on a VGG16-sized model that halves the time of the report's error column,
 * the largest part of a decomposition outside planning. Given a backend,
 * spatial and channel pairs are formed by its GEMM instead (residualByGemm).
 */
export function replacementError(
  rep: LayerReplacement,
  conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw' | 'weights'>,
  backend?: Pick<Backend, 'matmul'>,
): number {
  const w = conv.weights;
  const num =
    rep.method === 'dac'
      ? dacResidual(w, conv.n, conv.c, conv.kh * conv.kw, rep.rank, rep.depthwise, rep.pointwise)
      : backend
        ? residualByGemm(rep, conv, backend)
        : rep.method === 'spatial'
        ? spatialResidual(w, conv.n, conv.c, conv.kh, conv.kw, rep.width, rep.vertical, rep.horizontal)
        : channelResidual(w, conv.n, conv.c * conv.kh * conv.kw, rep.width, rep.first, rep.second);
  let den = 0;
  for (let q = 0; q < w.length; q++) den += w[q] * w[q];
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

/** ||W - W'||^2, W'[o,i] = sum_m pw[o,i,m] dw[i,m]: one (o, i) slice of K taps at a time. */
function dacResidual(w: Float32Array, n: number, c: number, K: number, r: number, dw: Float32Array, pw: Float32Array): number {
  const s = new Float64Array(K);
  let num = 0;
  for (let oi = 0; oi < n * c; oi++) {
    const i = oi % c;
    for (let t = 0; t < K; t++) s[t] = w[oi * K + t];
    for (let m = 0; m < r; m++) {
      const a = pw[oi * r + m];
      if (a === 0) continue;
      const d = (i * r + m) * K;
      for (let t = 0; t < K; t++) s[t] -= a * dw[d + t];
    }
    for (let t = 0; t < K; t++) num += s[t] * s[t];
  }
  return num;
}

/**
 * ||W - W'||^2 of a spatial or channel pair, W' as one matrix product on the
 * backend: (c*kh x w)(w x n*kw) for spatial, (n x w)(w x c*kh*kw) for
 * channel. The slice loops below do the same multiply-adds in JavaScript,
 * some 10x slower on the wide layers auto plans give these methods.
 */
function residualByGemm(
  rep: Extract<LayerReplacement, { method: 'spatial' | 'channel' }>,
  conv: Pick<ConvLayerInfo, 'n' | 'c' | 'kh' | 'kw' | 'weights'>,
  backend: Pick<Backend, 'matmul'>,
): number {
  const { n, c, kh, kw, weights: w } = conv;
  const width = rep.width;
  let num = 0;
  if (rep.method === 'channel') {
    const per = c * kh * kw;
    const approx = backend.matmul(Float64Array.from(rep.second), Float64Array.from(rep.first), n, per, width);
    for (let q = 0; q < w.length; q++) num += (w[q] - approx[q]) ** 2;
    return num;
  }
  // vertical [w][c*kh] is op(A) transposed; horizontal [n][w][kw] regrouped as [w][n*kw].
  const cols = n * kw;
  const h = new Float64Array(width * cols);
  for (let o = 0; o < n; o++) for (let j = 0; j < width; j++) for (let x = 0; x < kw; x++) h[j * cols + o * kw + x] = rep.horizontal[(o * width + j) * kw + x];
  const approx = backend.matmul(Float64Array.from(rep.vertical), h, c * kh, cols, width, { transA: true });
  for (let o = 0; o < n; o++) {
    for (let i = 0; i < c; i++) {
      for (let y = 0; y < kh; y++) {
        const row = (i * kh + y) * cols + o * kw;
        const base = ((o * c + i) * kh + y) * kw;
        for (let x = 0; x < kw; x++) num += (w[base + x] - approx[row + x]) ** 2;
      }
    }
  }
  return num;
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

/** Checks a uniform rank against the layers it applies to, before any work. */
/** A uniform rank must have some conv to act on (planModel checks the rank's range). */
function checkEligible(model: LoadedModel, s: DecomposeSettings): void {
  if (s.rank === undefined) return;
  const eligible = model.convs.filter(
    (c) => !c.skipReason && c.groups === 1 && !(s.skipFirst && c.index === 0) && (!s.layers || s.layers.includes(c.name)),
  );
  if (eligible.length === 0) throw new DacError('EINVAL', 'no conv can be decomposed with these options', { model: model.path });
}

/** Plans, decomposes and applies; the input model is untouched. */
export function decomposeLoaded(model: LoadedModel, s: DecomposeSettings, backend: Backend = getBackend()): DecomposeResult {
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
    plan = planModel(model.convs, model.other, options, backend);
  } catch (err) {
    if (err instanceof DacError) throw err;
    throw toDacError(err, { model: model.path });
  }
  const warnings: string[] = [...(model.notes ?? [])];
  for (const lp of plan.layers) {
    if (lp.method !== 'keep' && lp.macsAfter >= lp.macsBefore) {
      warnings.push(
        `layer ${lp.name}: ${lp.method} rank ${lp.rank} does not save MACs (${fmtInt(lp.macsBefore)} -> ${fmtInt(lp.macsAfter)}); applied as asked`,
      );
    }
  }
  const replacements = buildReplacements(model.convs, plan, backend, {
    biasCorrection: s.biasCorrection ?? true,
    threads: s.threads,
  });
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
      relError: rep ? replacementError(rep, conv, backend) : 0,
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
