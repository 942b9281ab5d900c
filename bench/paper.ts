// The DAC paper's experiments (Li et al., WACV 2019) on fashion-vgg, our
// CIFAR-VGG analog, with the decomposition as published (`paper: true`) and
// ours (weighted, refitted, corrected) side by side:
//   Table 1  one conv at a time, DAC rank 1..5, accuracy;
//   Table 2  all convs but the first, accuracy at 30/40/50/60% of the MACs saved, for DAC,
//            spatial and channel: uniform (one DAC rank / matching width scale, the least
//            compression meeting the budget: the paper's setting) and automatic (--flops-saved);
//   ablation (a) depthwise vs pointwise: which stage of DAC our changes act on, at uniform rank 3
//            and 4: depthwise filters from the plain per-channel SVD (the paper's, and ours) or the
//            one weighted by the error model (our choice before), pointwise stage U_r S_r / plain
//            least squares (paper) or refitted under the input model (ours); no corrections in
//            these four cells;
//   ablation (b) the paper's first-k vs last-k experiment: DAC rank 2 on the first or last k convs.
// Accuracy is measured as bench/accuracy.ts does (its accuracyOf, uniformAtBudget). Writes
// bench/results/paper.{md,json} and paper-table1.svg, paper-table2.svg, paper-ablation.svg.
//
//   npm run bench:paper                     everything on the 10,000 test images
//   PAPER_IMAGES=2000 npm run bench:paper   the first 2000 images (noted in the output)
//   PAPER_PARTS=2a npm run bench:paper      only some parts (1, 2, m = Table 2 at matched widths, a, b); the others keep earlier results
import * as fs from 'node:fs';
import * as path from 'node:path';

import { getBackend } from '../src/index.js';
import type { LoadedModel } from '../src/formats/index.js';
import { buildReplacements, planModel, type ModelPlan, type PlanOptions } from '../src/plan/index.js';
import { layerErrorModel, errorModelSet } from '../src/plan/error-model-set.js';
import { mixTensor } from '../src/plan/error-model.js';
import { maxRank } from '../src/geometry.js';
import type { ConvLayerInfo, DacReplacement, Method } from '../src/model/types.js';
import { accuracyOf, fashionVggAssets, loadTestSet, uniformAtBudget } from './accuracy.js';

const root = path.resolve(__dirname, '..');
const { modelPath, dataDir, outDir, images } = fashionVggAssets('PAPER');
const parts = new Set((process.env.PAPER_PARTS ?? '12mab').split(''));
const MATCHED_RANKS = [5, 4, 3];
const BUDGETS = [0.3, 0.4, 0.5, 0.6];
const METHODS: Method[] = ['dac', 'spatial', 'channel'];
const MODES = ['paper', 'ours'] as const;
type Mode = (typeof MODES)[number];
const ABLATION_RANKS = [3, 4];
const FIRST_LAST_K = [3, 6, 9];
const FIRST_LAST_RANK = 2;

interface Row {
  part: '1' | '2' | 'm' | 'a' | 'b';
  mode: Mode | string;
  method: string;
  policy: string;
  layer: string | null;
  rank: number | null;
  budget: number | null;
  flopsSaved: number;
  accuracy: number;
  /** Test images this row was measured on (parts may be run on different subsets). */
  images: number;
}

type Result = {
  model: string;
  backend: string;
  date: string;
  seconds: number;
  /** Baseline accuracy on each image count used. */
  baselines: Record<string, number>;
  rows: Row[];
};

const modeOptions = (mode: Mode): Partial<PlanOptions> => (mode === 'paper' ? { paper: true } : {});

async function main(): Promise<void> {
  const started = Date.now();
  const set = await loadTestSet('bench:paper', modelPath, dataDir, images);
  if (!set) return;
  const { model, x, labels, count } = set;
  const backend = getBackend();
  const accuracy = (m: LoadedModel) => accuracyOf(m, x, labels, count);
  const evaluate = (plan: ModelPlan) => accuracy(model.apply(buildReplacements(model.convs, plan, backend)));
  const saved = (plan: ModelPlan) => 1 - plan.flops.after / plan.flops.before;
  const rows: Row[] = [];
  const log = (entry: Omit<Row, 'images'>) => {
    const r: Row = { ...entry, images: count };
    rows.push(r);
    const where = r.layer ?? (r.budget !== null ? `${Math.round(100 * r.budget)}%` : '');
    console.log(`[${r.part}] ${r.method.padEnd(8)} ${r.mode.padEnd(18)} ${r.policy.padEnd(10)} ${where.padEnd(22)} r=${r.rank ?? '-'}  ${(100 * r.flopsSaved).toFixed(1)}% saved  acc ${r.accuracy.toFixed(2)}`);
  };
  const baseline = await accuracy(model);
  console.log(`baseline ${baseline.toFixed(2)}% on ${count} images, backend ${backend.name}`);
  const decomposable = model.convs.filter((c) => !c.skipReason && c.groups === 1);
  const allButFirst = decomposable.filter((c) => c.index !== 0).map((c) => c.name);

  if (parts.has('1')) {
    for (const layer of decomposable) {
      for (let r = 1; r <= Math.min(5, maxRank(layer, 'dac')); r++) {
        for (const mode of MODES) {
          const plan = planModel(model.convs, model.other, { ...modeOptions(mode), method: 'dac', ranks: { [layer.name]: r } }, backend);
          log({ part: '1', mode, method: 'dac', policy: 'one layer', layer: layer.name, rank: r, budget: null, flopsSaved: saved(plan), accuracy: await evaluate(plan) });
        }
      }
    }
  }

  if (parts.has('2')) {
    for (const F of BUDGETS) {
      for (const method of METHODS) {
        for (const mode of MODES) {
          const uniform = uniformAtBudget(model.convs, model.other, allButFirst, method, F, backend, modeOptions(mode));
          if (uniform) {
            const rank = method === 'dac' ? uniform.layers.find((l) => l.method === 'dac')!.rank : null;
            log({ part: '2', mode, method, policy: 'uniform', layer: null, rank, budget: F, flopsSaved: saved(uniform), accuracy: await evaluate(uniform) });
          }
          const auto = planModel(model.convs, model.other, { ...modeOptions(mode), method, flopsSaved: F, layers: allButFirst }, backend);
          log({ part: '2', mode, method, policy: 'automatic', layer: null, rank: null, budget: F, flopsSaved: saved(auto), accuracy: await evaluate(auto) });
        }
      }
    }
  }

  if (parts.has('m')) {
    for (const r of MATCHED_RANKS) {
      for (const method of METHODS) {
        for (const mode of MODES) {
          const plan = planModel(model.convs, model.other, { ...modeOptions(mode), method, rank: r, layers: allButFirst }, backend);
          log({ part: 'm', mode, method, policy: 'matched', layer: null, rank: r, budget: null, flopsSaved: saved(plan), accuracy: await evaluate(plan) });
        }
      }
    }
  }

  if (parts.has('a')) {
    for (const r of ABLATION_RANKS) {
      const ranks = Object.fromEntries(allButFirst.map((name) => [name, r]));
      const paperPlan = planModel(model.convs, model.other, { method: 'dac', ranks, paper: true }, backend);
      const oursPlan = planModel(model.convs, model.other, { method: 'dac', ranks }, backend);
      const cells = stageAblation(model.convs, oursPlan, backend);
      const at = (mode: string, m: LoadedModel) => accuracy(m).then((acc) =>
        log({ part: 'a', mode, method: 'dac', policy: 'uniform', layer: null, rank: r, budget: null, flopsSaved: saved(oursPlan), accuracy: acc }));
      await at('paper dw + paper pw', model.apply(buildReplacements(model.convs, paperPlan, backend)));
      await at('paper dw + ours pw', model.apply(buildReplacements(model.convs, oursPlan, backend, { biasCorrection: false, varianceCorrection: false })));
      await at('weighted dw + paper pw', model.apply(cells.weightedLeastSquares));
      await at('weighted dw + ours pw', model.apply(cells.weightedRefit));
      await at('ours (corrected)', model.apply(buildReplacements(model.convs, oursPlan, backend)));
    }
  }

  if (parts.has('b')) {
    for (const k of FIRST_LAST_K) {
      for (const side of ['first', 'last'] as const) {
        const names = side === 'first' ? allButFirst.slice(0, k) : allButFirst.slice(-k);
        for (const mode of MODES) {
          const ranks = Object.fromEntries(names.map((name) => [name, FIRST_LAST_RANK]));
          const plan = planModel(model.convs, model.other, { ...modeOptions(mode), method: 'dac', ranks }, backend);
          log({ part: 'b', mode, method: 'dac', policy: `${side} ${k}`, layer: null, rank: FIRST_LAST_RANK, budget: null, flopsSaved: saved(plan), accuracy: await evaluate(plan) });
        }
      }
    }
  }

  const previous = readPrevious();
  const result: Result = {
    model: path.relative(root, modelPath),
    backend: backend.name,
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    baselines: { ...(previous?.baselines ?? {}), [count]: baseline },
    rows: [...(previous ? previous.rows.filter((r) => !parts.has(r.part)) : []), ...rows],
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'paper.json'), JSON.stringify(result, null, 1) + '\n');
  fs.writeFileSync(path.join(outDir, 'paper.md'), markdown(result));
  fs.writeFileSync(path.join(outDir, 'paper-table1.svg'), table1Svg(result));
  fs.writeFileSync(path.join(outDir, 'paper-table2.svg'), table2Svg(result));
  fs.writeFileSync(path.join(outDir, 'paper-ablation.svg'), ablationSvg(result));
  console.log(`wrote ${path.relative(root, outDir)}/paper.{md,json} and paper-*.svg in ${result.seconds} s`);
}

/** Earlier results, whose parts not run now are kept (each row says on how many images it was measured). */
function readPrevious(): Result | null {
  const file = path.join(outDir, 'paper.json');
  if (!fs.existsSync(file)) return null;
  try {
    const prev = JSON.parse(fs.readFileSync(file, 'utf8')) as Result & { images?: number; baseline?: number };
    // Files written before rows carried their image count: one count for all.
    if (!prev.baselines && prev.images !== undefined && prev.baseline !== undefined) {
      prev.baselines = { [prev.images]: prev.baseline };
      for (const r of prev.rows) r.images ??= prev.images;
    }
    return prev;
  } catch {
    return null;
  }
}

/** The image count of a part's rows and the baseline on those images. */
function partImages(res: Result, part: Row['part']): { images: number; baseline: number; text: string } {
  const counts = [...new Set(res.rows.filter((r) => r.part === part).map((r) => r.images))];
  const images = counts.length ? Math.min(...counts) : 10000;
  const baseline = res.baselines[images] ?? NaN;
  const which = images >= 10000 ? 'all 10,000 test images' : `the first ${images} of the 10,000 test images (a fixed subset: the CPU was shared)`;
  const mixed = counts.length > 1 ? ` (rows measured on ${counts.join(' and ')} images: rerun this part)` : '';
  return { images, baseline, text: `${which}, baseline ${baseline.toFixed(2)}%${mixed}` };
}

/**
 * The cells of the depthwise/pointwise ablation with the weighted depthwise
 * filters (our choice before 2026-12-03: per channel the top right singular
 * vectors of the slice weighted by the following BatchNorm's scale and the
 * modelled tap correlations, D W (Lh (x) Lw)), from the plan's DAC ranks: with
 * the pointwise stage refitted under the plan's input model, and with the plain
 * least-squares pointwise stage (what U_r S_r is for orthonormal filters).
 */
function stageAblation(convs: ConvLayerInfo[], plan: ModelPlan, backend: ReturnType<typeof getBackend>) {
  const set = errorModelSet(convs, plan.errorModel, backend);
  const weightedRefit: DacReplacement[] = [];
  const weightedLeastSquares: DacReplacement[] = [];
  for (const lp of plan.layers) {
    if (lp.method !== 'dac') continue;
    const layer = convs.find((c) => c.name === lp.name)!;
    const { n, c, kh, kw } = layer;
    const r = lp.rank;
    const lm = layerErrorModel(set, layer, false);
    const weighted = Float32Array.from(mixTensor(backend, layer.weights, n, c, kh, kw, null, lm.mh, lm.mw, (j) => lm.d[j]));
    const filters = backend.decomposeDac(weighted, { n, c, kh, kw }, r, { context: { layer: layer.name } });
    const fit = lm.fitPointwise(Float64Array.from(filters.depthwise), r);
    const depthwise = Float32Array.from(fit.depthwise);
    const base = { method: 'dac' as const, name: layer.name, rank: r, depthwise, bias: layer.bias };
    weightedRefit.push({ ...base, pointwise: Float32Array.from(fit.pointwise) });
    weightedLeastSquares.push({ ...base, pointwise: leastSquaresPointwise(layer, depthwise, r) });
  }
  return { weightedRefit, weightedLeastSquares };
}

/** Per input channel i, P_i = W_i F_i^T (F_i F_i^T)^-1: the best pointwise stage for fixed filters under the Frobenius norm. */
function leastSquaresPointwise(layer: ConvLayerInfo, dw: Float32Array, r: number): Float32Array {
  const { n, c, kh, kw } = layer;
  const K = kh * kw;
  const out = new Float32Array(n * c * r);
  const G = new Float64Array(r * r);
  const rhs = new Float64Array(r);
  for (let i = 0; i < c; i++) {
    for (let a = 0; a < r; a++)
      for (let b = 0; b < r; b++) {
        let s = 0;
        for (let t = 0; t < K; t++) s += dw[(i * r + a) * K + t] * dw[(i * r + b) * K + t];
        G[a * r + b] = s + (a === b ? 1e-12 : 0);
      }
    for (let j = 0; j < n; j++) {
      for (let a = 0; a < r; a++) {
        let s = 0;
        for (let t = 0; t < K; t++) s += layer.weights[(j * c + i) * K + t] * dw[(i * r + a) * K + t];
        rhs[a] = s;
      }
      const p = solveSmall(G, rhs, r);
      for (let a = 0; a < r; a++) out[j * c * r + i * r + a] = p[a];
    }
  }
  return out;
}

/** Gaussian elimination with partial pivoting on an r x r system (r <= 9). */
function solveSmall(A: Float64Array, b: Float64Array, r: number): Float64Array {
  const M = Float64Array.from(A);
  const x = Float64Array.from(b);
  for (let k = 0; k < r; k++) {
    let p = k;
    for (let i = k + 1; i < r; i++) if (Math.abs(M[i * r + k]) > Math.abs(M[p * r + k])) p = i;
    if (p !== k) {
      for (let j = 0; j < r; j++) [M[k * r + j], M[p * r + j]] = [M[p * r + j], M[k * r + j]];
      [x[k], x[p]] = [x[p], x[k]];
    }
    const d = M[k * r + k];
    if (d === 0) continue;
    for (let i = k + 1; i < r; i++) {
      const f = M[i * r + k] / d;
      for (let j = k; j < r; j++) M[i * r + j] -= f * M[k * r + j];
      x[i] -= f * x[k];
    }
  }
  for (let k = r - 1; k >= 0; k--) {
    let s = x[k];
    for (let j = k + 1; j < r; j++) s -= M[k * r + j] * x[j];
    x[k] = M[k * r + k] === 0 ? 0 : s / M[k * r + k];
  }
  return x;
}

const fmt = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? '-' : v.toFixed(digits));
const shortName = (name: string, k: number) => `conv${k + 1} (${name})`;

/** Spearman rank correlation of two equal-length lists (average ranks for ties). */
function spearman(a: number[], b: number[]): number {
  const rank = (v: number[]) => {
    const idx = v.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const out = new Array<number>(v.length);
    for (let i = 0; i < idx.length; ) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
      for (let k = i; k <= j; k++) out[idx[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return out;
  };
  const ra = rank(a);
  const rb = rank(b);
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const ma = mean(ra);
  const mb = mean(rb);
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : 0;
}

function markdown(res: Result): string {
  const L: string[] = [];
  // One standard error of an accuracy near 93% on this part's images, in points.
  const seOf = (part: Row['part']) => Math.sqrt((0.93 * 0.07) / partImages(res, part).images) * 100;
  L.push("# The DAC paper's experiments on fashion-vgg: the paper's decomposition and ours");
  L.push('');
  L.push(
    `Written by \`npm run bench:paper\` (${res.date}, backend ${res.backend}; the last run, of the parts it was asked for, took ${res.seconds} s). Model \`${res.model}\` ` +
      "(13 3x3 convs + BatchNorm, our analog of the paper's CIFAR-VGG) on Fashion-MNIST test images; each table says " +
      'on how many (one standard error of an accuracy near 93% is 0.26 points on 10,000 images, 0.57 on 2,000; ' +
      'differences between two decompositions on the same images are paired and less noisy). ' +
      '**paper** = `--paper`: per input channel the truncated SVD, depthwise = top-r right singular vectors, pointwise = ' +
      'U_r S_r, original bias, no refit, no correction; spatial and channel the plain SVDs of their papers\' data-free ' +
      'versions at the widths matching DAC rank r in cost. **ours** = the default: weighted by the data-free input model, ' +
      'DAC pointwise refit, variance and bias correction (docs/auto.md). FLOPs saved is of the whole model\'s MACs.',
  );

  const t1 = res.rows.filter((r) => r.part === '1');
  if (t1.length) {
    const layers = [...new Set(t1.map((r) => r.layer!))];
    L.push('', '## Table 1: one conv at a time, DAC rank 1..5', '');
    const se = seOf('1');
    L.push(`On ${partImages(res, '1').text}. Accuracy (%) with only that conv decomposed; cells: paper / ours. ![Table 1](paper-table1.svg)`, '');
    L.push('| conv | r=1 | r=2 | r=3 | r=4 | r=5 |');
    L.push('|---|---|---|---|---|---|');
    const get = (mode: Mode, layer: string, r: number) => t1.find((x) => x.mode === mode && x.layer === layer && x.rank === r)?.accuracy;
    layers.forEach((name, k) => {
      const cells = [1, 2, 3, 4, 5].map((r) => `${fmt(get('paper', name, r))} / ${fmt(get('ours', name, r))}`);
      L.push(`| ${shortName(name, k)} | ${cells.join(' | ')} |`);
    });
    L.push('', "**The paper's findings, checked:**", '');
    for (const mode of MODES) {
      // (i) accuracy grows with rank: count rank steps that lose more than one standard error.
      let steps = 0;
      let drops = 0;
      let worst = 0;
      for (const name of layers)
        for (let r = 2; r <= 5; r++) {
          const a = get(mode, name, r - 1);
          const b = get(mode, name, r);
          if (a === undefined || b === undefined) continue;
          steps++;
          if (b < a - se) drops++;
          worst = Math.max(worst, a - b);
        }
      const r1 = layers.map((name) => get(mode, name, 1) ?? NaN);
      const rho = spearman(layers.map((_, k) => k), r1);
      const lo = Math.min(...r1);
      const loAt = r1.indexOf(lo);
      L.push(
        `- ${mode}: higher rank, higher accuracy: ${drops === 0 ? 'holds' : 'does not hold everywhere'} ` +
          `(${drops} of ${steps} rank steps lose more than one standard error; the largest loss from r to r+1 is ${worst.toFixed(2)} points). ` +
          `Early convs hurt most at rank 1: Spearman correlation of depth and rank-1 accuracy ${rho.toFixed(2)} ` +
          `(${rho > 0.5 ? 'holds' : rho > 0 ? 'holds weakly' : 'does not hold'}); rank 1 is worst at ${shortName(layers[loAt], loAt)} ` +
          `(${lo.toFixed(2)}%), conv1 ${fmt(r1[0])}%, the last conv ${fmt(r1[r1.length - 1])}%.`,
      );
    }
    let oursBetter = 0;
    let total = 0;
    let meanGain = 0;
    for (const name of layers)
      for (let r = 1; r <= 5; r++) {
        const p = get('paper', name, r);
        const o = get('ours', name, r);
        if (p === undefined || o === undefined) continue;
        total++;
        meanGain += o - p;
        if (o > p) oursBetter++;
      }
    const paperAhead: string[] = [];
    layers.forEach((name, k) => {
      for (let r = 1; r <= 5; r++) {
        const p = get('paper', name, r);
        const o = get('ours', name, r);
        if (p !== undefined && o !== undefined && p > o + se) paperAhead.push(`conv${k + 1} r=${r} (${fmt(p)} vs ${fmt(o)})`);
      }
    });
    L.push(
      `- ours vs paper: ours is more accurate in ${oursBetter} of ${total} cells, by ${(meanGain / Math.max(total, 1)).toFixed(2)} points on average; ` +
        `the paper's is ahead by more than one standard error in ${paperAhead.length ? paperAhead.join(', ') : 'no cell'}.`,
    );
  }

  const t2 = res.rows.filter((r) => r.part === '2');
  if (t2.length) {
    L.push('', '## Table 2: all convs but the first, accuracy at a FLOPs budget', '');
    L.push(
      `On ${partImages(res, '2').text}. ` +
      'Uniform: one DAC rank, or one DAC-equivalent width scale for spatial/channel, for every conv but the first, the ' +
        "least compression that meets the budget (the paper's setting; DAC's integer ranks overshoot: the FLOPs actually " +
        'saved are in parentheses). Automatic: `--flops-saved F` restricted to the same convs. ![Table 2](paper-table2.svg)',
      '',
    );
    L.push(`| method | mode | policy | ${BUDGETS.map((f) => `${Math.round(100 * f)}%`).join(' | ')} |`);
    L.push(`|---|---|---|${BUDGETS.map(() => '---').join('|')}|`);
    const get = (method: string, mode: Mode, policy: string, F: number) => t2.find((x) => x.method === method && x.mode === mode && x.policy === policy && x.budget === F);
    for (const policy of ['uniform', 'automatic'])
      for (const method of METHODS)
        for (const mode of MODES) {
          const cells = BUDGETS.map((F) => {
            const r = get(method, mode, policy, F);
            return r ? `${fmt(r.accuracy)} (${fmt(100 * r.flopsSaved, 1)})` : '-';
          });
          L.push(`| ${method} | ${mode} | ${policy} | ${cells.join(' | ')} |`);
        }
    L.push('', "**The paper's ranking (DAC above spatial and channel at the same FLOPs), checked:**", '');
    for (const policy of ['uniform', 'automatic'])
      for (const mode of MODES) {
        const parts: string[] = [];
        for (const F of BUDGETS) {
          const accs = METHODS.map((m) => ({ m, r: get(m, mode, policy, F) })).filter((x) => x.r);
          if (accs.length < 3) continue;
          const order = [...accs].sort((a, b) => b.r!.accuracy - a.r!.accuracy);
          parts.push(`${Math.round(100 * F)}%: ${order.map((o) => `${o.m} ${fmt(o.r!.accuracy)}${policy === 'uniform' ? ` (${fmt(100 * o.r!.flopsSaved, 1)}%)` : ''}`).join(' > ')}`);
        }
        const dacFirst = BUDGETS.filter((F) => {
          const d = get('dac', mode, policy, F);
          return d && METHODS.every((m) => m === 'dac' || (get(m, mode, policy, F)?.accuracy ?? Infinity) <= d.accuracy);
        }).length;
        L.push(`- ${mode}, ${policy}: DAC first at ${dacFirst} of ${BUDGETS.length} budgets. ${parts.join('; ')}.`);
      }
    const tm = res.rows.filter((r) => r.part === 'm');
    if (tm.length) {
      L.push(
        '',
        `At equal cost, the paper's own pairing (on ${partImages(res, 'm').text}): uniform DAC rank r on every conv but the first, ` +
          'spatial and channel at the widths matching rank r in MACs. Cells: accuracy % (FLOPs saved %).',
        '',
      );
      L.push(`| r | ${METHODS.flatMap((m) => MODES.map((mode) => `${m} ${mode}`)).join(' | ')} |`);
      L.push(`|---|${METHODS.flatMap(() => MODES.map(() => '---')).join('|')}|`);
      for (const r of MATCHED_RANKS) {
        const cells = METHODS.flatMap((m) => MODES.map((mode) => tm.find((x) => x.rank === r && x.method === m && x.mode === mode))).map((x) => (x ? `${fmt(x.accuracy)} (${fmt(100 * x.flopsSaved, 1)})` : '-'));
        L.push(`| ${r} | ${cells.join(' | ')} |`);
      }
      L.push('');
      for (const mode of MODES) {
        const wins = MATCHED_RANKS.filter((r) => {
          const d = tm.find((x) => x.rank === r && x.method === 'dac' && x.mode === mode);
          return d && METHODS.every((m) => m === 'dac' || (tm.find((x) => x.rank === r && x.method === m && x.mode === mode)?.accuracy ?? Infinity) <= d.accuracy);
        });
        L.push(`- ${mode}, matched widths: DAC first at ${wins.length} of ${MATCHED_RANKS.length} ranks.`);
      }
    }
    L.push('', "Uniform DAC's integer ranks save more than the budget where no rank lands on it (FLOPs saved in parentheses); the automatic rows compare at equal FLOPs.");
  }

  const ta = res.rows.filter((r) => r.part === 'a');
  if (ta.length) {
    L.push('', '## Ablation (a): depthwise vs pointwise', '');
    L.push(
      `On ${partImages(res, 'a').text}. ` +
      'Uniform DAC rank r on all convs but the first. Which stage carries the gain: the depthwise filters (plain per-channel ' +
        'SVD = paper, also ours since 2026-12-03; or the SVD of the slices weighted by the following BatchNorm and the modelled ' +
        'tap correlations = weighted, our choice before) and the pointwise stage (U_r S_r, i.e. plain least squares for the ' +
        'given filters = paper, or refitted under the modelled input covariance = ours). The four cells carry no correction; ' +
        'the last row is the full default (paper dw + ours pw + corrections). ' +
        '![Ablation](paper-ablation.svg)',
      '',
    );
    L.push(`| depthwise + pointwise | ${ABLATION_RANKS.map((r) => `r=${r} (${fmt(100 * (ta.find((x) => x.rank === r)?.flopsSaved ?? NaN), 1)}% saved)`).join(' | ')} |`);
    L.push(`|---|${ABLATION_RANKS.map(() => '---').join('|')}|`);
    const cells = [...new Set(ta.map((r) => r.mode))];
    for (const cell of cells) L.push(`| ${cell} | ${ABLATION_RANKS.map((r) => fmt(ta.find((x) => x.mode === cell && x.rank === r)?.accuracy)).join(' | ')} |`);
    const acc = (cell: string, r: number) => ta.find((x) => x.mode === cell && x.rank === r)?.accuracy ?? NaN;
    L.push('');
    for (const r of ABLATION_RANKS) {
      const base = acc('paper dw + paper pw', r);
      const dw = acc('weighted dw + paper pw', r) - base;
      const pw = acc('paper dw + ours pw', r) - base;
      const both = acc('weighted dw + ours pw', r) - base;
      L.push(
        `- r=${r}: from the paper's ${fmt(base)}%, the weighted depthwise alone ${dw >= 0 ? '+' : ''}${dw.toFixed(2)}, our pointwise alone ` +
          `${pw >= 0 ? '+' : ''}${pw.toFixed(2)}, both ${both >= 0 ? '+' : ''}${both.toFixed(2)}, our default (paper dw + ours pw + corrections) ` +
          `${(acc('ours (corrected)', r) - base).toFixed(2)} points: the ${Math.abs(pw) > Math.abs(dw) ? 'pointwise' : 'depthwise'} stage carries more of it; ` +
          `the most accurate row is ${[...cells].sort((a, b) => acc(b, r) - acc(a, r))[0]} (${fmt(Math.max(...cells.map((c) => acc(c, r))))}%).`,
      );
    }
  }

  const tb = res.rows.filter((r) => r.part === 'b');
  if (tb.length) {
    L.push('', `## Ablation (b): the paper's first-k vs last-k convs, DAC rank ${FIRST_LAST_RANK}`, '');
    L.push(`On ${partImages(res, 'b').text}. Of the convs but the first; cells: accuracy % (FLOPs saved %).`, '');
    L.push('| k | first k, paper | last k, paper | first k, ours | last k, ours |');
    L.push('|---|---|---|---|---|');
    const get = (side: string, k: number, mode: Mode) => tb.find((x) => x.policy === `${side} ${k}` && x.mode === mode);
    const cell = (r: Row | undefined) => (r ? `${fmt(r.accuracy)} (${fmt(100 * r.flopsSaved, 1)})` : '-');
    for (const k of FIRST_LAST_K) L.push(`| ${k} | ${cell(get('first', k, 'paper'))} | ${cell(get('last', k, 'paper'))} | ${cell(get('first', k, 'ours'))} | ${cell(get('last', k, 'ours'))} |`);
    L.push('');
    for (const mode of MODES) {
      const holds = FIRST_LAST_K.filter((k) => (get('last', k, mode)?.accuracy ?? -1) >= (get('first', k, mode)?.accuracy ?? Infinity)).length;
      const lessSaved = FIRST_LAST_K.filter((k) => (get('last', k, mode)?.flopsSaved ?? 0) < (get('first', k, mode)?.flopsSaved ?? 0)).length;
      L.push(
        `- ${mode}: decomposing the last k loses less than the first k at ${holds} of ${FIRST_LAST_K.length} values of k; ` +
          `the last k also save fewer MACs at ${lessSaved} of them (table), so part of each difference is less compression.`,
      );
    }
  }
  L.push('');
  return L.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Series {
  label: string;
  color: string;
  dash?: string;
  points: [number, number][];
}

/** One line chart panel at (ox, oy) of size w x h; returns SVG elements. */
function panel(ox: number, oy: number, w: number, h: number, title: string, xs: { min: number; max: number; ticks: number[]; fmt: (v: number) => string; label: string }, ys: { min: number; max: number }, series: Series[], baseline: number): string[] {
  const m = { l: 50, r: 10, t: 28, b: 40 };
  const X = (v: number) => ox + m.l + ((v - xs.min) / (xs.max - xs.min)) * (w - m.l - m.r);
  const Y = (v: number) => oy + h - m.b - ((Math.max(ys.min, v) - ys.min) / (ys.max - ys.min)) * (h - m.t - m.b);
  const out: string[] = [];
  out.push(`<text x="${ox + m.l}" y="${oy + 18}" font-size="13">${escapeXml(title)}</text>`);
  const step = ys.max - ys.min > 40 ? 10 : ys.max - ys.min > 10 ? 2 : 0.5;
  for (let v = Math.ceil(ys.min / step) * step; v <= ys.max + 1e-9; v += step) {
    out.push(`<line x1="${ox + m.l}" x2="${ox + w - m.r}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${ox + m.l - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${Number(v.toFixed(1))}</text>`);
  }
  for (const v of xs.ticks) out.push(`<text x="${X(v).toFixed(1)}" y="${oy + h - m.b + 16}" text-anchor="middle">${xs.fmt(v)}</text>`);
  out.push(`<text x="${ox + (m.l + w - m.r) / 2}" y="${oy + h - 8}" text-anchor="middle">${escapeXml(xs.label)}</text>`);
  out.push(`<line x1="${ox + m.l}" x2="${ox + w - m.r}" y1="${oy + h - m.b}" y2="${oy + h - m.b}" stroke="black"/>`);
  out.push(`<line x1="${ox + m.l}" x2="${ox + m.l}" y1="${oy + m.t}" y2="${oy + h - m.b}" stroke="black"/>`);
  out.push(`<line x1="${ox + m.l}" x2="${ox + w - m.r}" y1="${Y(baseline).toFixed(1)}" y2="${Y(baseline).toFixed(1)}" stroke="#888" stroke-dasharray="2 3"/>`);
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map(([a, b], i) => `${i ? 'L' : 'M'}${X(a).toFixed(1)} ${Y(b).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const [a, b] of s.points) out.push(`<circle cx="${X(a).toFixed(1)}" cy="${Y(b).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
  }
  return out;
}

function legend(x: number, y: number, items: { label: string; color: string; dash?: string }[]): string[] {
  return items.flatMap((s, k) => [
    `<line x1="${x}" x2="${x + 26}" y1="${y + k * 18}" y2="${y + k * 18}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    `<text x="${x + 32}" y="${y + k * 18 + 4}">${escapeXml(s.label)}</text>`,
  ]);
}

function svgDoc(w: number, h: number, body: string[]): string {
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`, `<rect width="${w}" height="${h}" fill="white"/>`, ...body, '</svg>', ''].join('\n');
}

/** Early convs dark, late convs light. */
function depthColor(k: number, count: number): string {
  const t = count > 1 ? k / (count - 1) : 0;
  const c = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${c(120, 250)},${c(0, 190)},${c(30, 40)})`;
}

function table1Svg(res: Result): string {
  const t1 = res.rows.filter((r) => r.part === '1');
  const { images, baseline } = partImages(res, '1');
  const layers = [...new Set(t1.map((r) => r.layer!))];
  const accs = t1.map((r) => r.accuracy);
  const ys = { min: accs.length ? Math.max(0, Math.floor(Math.min(...accs) / 10) * 10) : 0, max: Math.ceil(baseline + 1) };
  const xs = { min: 0.7, max: 5.3, ticks: [1, 2, 3, 4, 5], fmt: (v: number) => `r=${v}`, label: 'DAC rank of the one decomposed conv' };
  const body: string[] = [];
  MODES.forEach((mode, p) => {
    const series = layers.map((name, k): Series => ({
      label: `conv${k + 1}`,
      color: depthColor(k, layers.length),
      points: t1.filter((r) => r.mode === mode && r.layer === name).sort((a, b) => a.rank! - b.rank!).map((r) => [r.rank!, r.accuracy]),
    }));
    body.push(...panel(p * 400, 0, 400, 380, `Table 1, ${mode}: one conv at a time (${images} images)`, xs, ys, series, baseline));
  });
  body.push(...legend(815, 30, layers.map((_, k) => ({ label: `conv${k + 1}`, color: depthColor(k, layers.length) }))));
  return svgDoc(900, 390, body);
}

const METHOD_COLOR: Record<string, string> = { dac: '#d62728', spatial: '#1f77b4', channel: '#2ca02c' };

function table2Svg(res: Result): string {
  const t2 = res.rows.filter((r) => r.part === '2');
  const { images, baseline } = partImages(res, '2');
  const accs = t2.map((r) => r.accuracy);
  const ys = { min: accs.length ? Math.max(0, Math.floor(Math.min(...accs) / 10) * 10) : 0, max: Math.ceil(baseline + 1) };
  const xs = { min: 25, max: 65, ticks: [30, 40, 50, 60], fmt: (v: number) => `${v}%`, label: 'MACs saved' };
  const body: string[] = [];
  ['uniform', 'automatic'].forEach((policy, p) => {
    const series: Series[] = [];
    for (const method of METHODS)
      for (const mode of MODES)
        series.push({
          label: `${method} ${mode}`,
          color: METHOD_COLOR[method],
          dash: mode === 'paper' ? '6 4' : undefined,
          points: t2.filter((r) => r.policy === policy && r.method === method && r.mode === mode).map((r) => [100 * r.flopsSaved, r.accuracy] as [number, number]).sort((a, b) => a[0] - b[0]),
        });
    body.push(...panel(p * 400, 0, 400, 380, `Table 2, ${policy} (${images} images)`, xs, ys, series, baseline));
  });
  body.push(...legend(815, 30, METHODS.flatMap((m) => MODES.map((mode) => ({ label: `${m} ${mode}`, color: METHOD_COLOR[m], dash: mode === 'paper' ? '6 4' : undefined })))));
  return svgDoc(960, 390, body);
}

function ablationSvg(res: Result): string {
  const ta = res.rows.filter((r) => r.part === 'a');
  const { images, baseline } = partImages(res, 'a');
  const cells = [...new Set(ta.map((r) => r.mode))];
  const W = 760;
  const H = 340;
  const m = { l: 50, r: 10, t: 30, b: 60 };
  const Y = (v: number) => H - m.b - (v / 100) * (H - m.t - m.b);
  const groupW = (W - m.l - m.r) / Math.max(ABLATION_RANKS.length, 1);
  const barW = (groupW - 30) / Math.max(cells.length, 1);
  const colors = ['#7f7f7f', '#9467bd', '#ff7f0e', '#d62728', '#2ca02c'];
  const body: string[] = [`<text x="${m.l}" y="18" font-size="13">Ablation: depthwise vs pointwise, uniform DAC rank (${images} images)</text>`];
  for (let v = 0; v <= 100; v += 20) {
    body.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    body.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  ABLATION_RANKS.forEach((r, g) => {
    const gx = m.l + g * groupW + 15;
    cells.forEach((cell, k) => {
      const row = ta.find((x) => x.mode === cell && x.rank === r);
      if (!row) return;
      const x = gx + k * barW;
      body.push(`<rect x="${x.toFixed(1)}" y="${Y(row.accuracy).toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(Y(0) - Y(row.accuracy)).toFixed(1)}" fill="${colors[k % colors.length]}"/>`);
      body.push(`<text x="${(x + (barW - 4) / 2).toFixed(1)}" y="${(Y(row.accuracy) - 4).toFixed(1)}" text-anchor="middle">${row.accuracy.toFixed(1)}</text>`);
    });
    body.push(`<text x="${(gx + (cells.length * barW) / 2).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">rank ${r}</text>`);
  });
  body.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(baseline)}" y2="${Y(baseline)}" stroke="#888" stroke-dasharray="2 3"/>`);
  cells.forEach((cell, k) => {
    const x = m.l + (k % 3) * 230;
    const y = H - 26 + Math.floor(k / 3) * 16;
    body.push(`<rect x="${x}" y="${y - 9}" width="12" height="10" fill="${colors[k % colors.length]}"/>`, `<text x="${x + 18}" y="${y}">${escapeXml(cell)}</text>`);
  });
  return svgDoc(W, H, body);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
