// Accuracy benchmark: what each policy keeps of fashion-vgg's accuracy on the
// 10,000 Fashion-MNIST test images, for the FLOPs it saves.
//   (a) uniform rank r = 1..8 over all 3x3 convs but the first, per method (the paper's Table 2 / Fig 3);
//   (b) accuracy at 20..70% of the model's MACs saved for: auto, and per method the automatic
//       policy (--flops-saved) and the uniform one (the least compression that meets the budget);
//   (c) one layer at a time, DAC rank 1..5 (the paper's Table 1);
//   (f) the model with its BatchNorms folded into the convs (as exporters deliver models): DAC rank 4
//       (all 3x3 convs but the first), and auto / dac automatic / uniform at 30% and 50%, planned with the
//       default weighting, with bn forced and with plain.
// Every model is planned, decomposed (buildReplacements, default corrections), applied to the ONNX
// model and run by onnxruntime-node through src/runtime. Writes bench/results/accuracy.{md,json,svg}.
//
//   npm run bench:accuracy                   everything, 10k images (about 20 minutes)
//   ACC_IMAGES=2000 npm run bench:accuracy   quick mode on the first 2000 images
//   ACC_PARTS=b npm run bench:accuracy       only some parts (any of a, b, c, f); others keep earlier results
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getBackend } from '../src/index.js';
import { loadModel, type LoadedModel } from '../src/formats/index.js';
import { createRunner } from '../src/runtime/index.js';
import { normalizeImages, readIdxImages, readIdxLabels } from '../src/data/idx.js';
import { buildReplacements, planModel, type ModelPlan, type PlanOptions } from '../src/plan/index.js';
import { matchingWidth } from '../src/cost.js';
import { maxRank } from '../src/geometry.js';
import type { ConvLayerInfo, Method } from '../src/model/types.js';

const root = path.resolve(__dirname, '..');

/** The fashion-vgg benches' inputs (../shared), overridable by <prefix>_MODEL, _DATA, _IMAGES. */
export function fashionVggAssets(prefix: string): { modelPath: string; dataDir: string; outDir: string; images: number } {
  const shared = path.resolve(root, '..', 'shared');
  return {
    modelPath: process.env[`${prefix}_MODEL`] ?? path.join(shared, 'models/fashion-vgg/model.onnx'),
    dataDir: process.env[`${prefix}_DATA`] ?? path.join(shared, 'data/fashion-mnist'),
    outDir: path.join(root, 'bench/results'),
    images: Number(process.env[`${prefix}_IMAGES`] ?? 10000),
  };
}

const { modelPath, dataDir, outDir, images } = fashionVggAssets('ACC');
const parts = new Set((process.env.ACC_PARTS ?? 'abcf').split(''));
const BUDGETS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
const METHODS: Method[] = ['dac', 'spatial', 'channel'];

interface Row {
  policy: string;
  method: string;
  budget: number | null;
  rank: number | null;
  layer: string | null;
  flopsSaved: number;
  accuracy: number | null;
  plan: string;
  note?: string;
  /** Part (f): the weighting asked for ('default', 'bn' or 'plain') on the BN-folded model. */
  weighting?: string;
  /** When and where the row was measured (rows kept from earlier runs may lack it). */
  measured?: string;
}

function planText(plan: ModelPlan): string {
  return plan.layers.map((l) => (l.method === 'keep' ? 'k' : `${l.method[0]}${l.rank}`)).join(' ');
}

/** The fashion-vgg model and its first `images` test images, normalised; null (said on stderr) without the shared assets. */
export async function loadTestSet(
  bench: string,
  modelPath: string,
  dataDir: string,
  images: number,
): Promise<{ model: LoadedModel; x: Float32Array; labels: Uint8Array; count: number } | null> {
  if (!fs.existsSync(modelPath) || !fs.existsSync(dataDir)) {
    console.error(`${bench} needs ${modelPath} and ${dataDir} (the shared fashion-vgg assets)`);
    process.exitCode = 1;
    return null;
  }
  const model = await loadModel(modelPath);
  const imgs = readIdxImages(path.join(dataDir, 't10k-images-idx3-ubyte.gz'));
  const labels = readIdxLabels(path.join(dataDir, 't10k-labels-idx1-ubyte.gz'));
  const count = Math.min(images, imgs.count);
  return { model, x: normalizeImages(imgs, 0.286, 0.353, count), labels, count };
}

async function main(): Promise<void> {
  const started = Date.now();
  const set = await loadTestSet('bench:accuracy', modelPath, dataDir, images);
  if (!set) return;
  const { model, x, labels, count } = set;
  const backend = getBackend();

  const accuracy = (m: LoadedModel) => accuracyOf(m, x, labels, count);

  async function evaluate(plan: ModelPlan, m: LoadedModel = model): Promise<number> {
    const reps = buildReplacements(m.convs, plan, backend);
    return accuracy(m.apply(reps));
  }

  const saved = (plan: ModelPlan) => 1 - plan.flops.after / plan.flops.before;
  const rows: Row[] = [];
  const measured = `${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} vCPUs)`;
  const log = (r: Row) => {
    r.measured = measured;
    rows.push(r);
    const acc = r.accuracy === null ? '   -  ' : r.accuracy.toFixed(2);
    console.log(`${r.policy.padEnd(18)} ${(100 * r.flopsSaved).toFixed(1).padStart(5)}% saved  acc ${acc}  ${r.note ?? r.plan}`);
  };
  const baseline = await accuracy(model);
  console.log(`baseline ${baseline.toFixed(2)}% on ${count} images, backend ${backend.name}`);

  const threeByThree = model.convs.filter((c) => c.kh === 3 && c.kw === 3 && !c.skipReason && c.index !== 0).map((c) => c.name);

  if (parts.has('a')) {
    for (const method of METHODS) {
      for (let r = 1; r <= 8; r++) {
        const plan = planModel(model.convs, model.other, { method, rank: r, layers: threeByThree }, backend);
        log({ policy: `${method} uniform`, method, budget: null, rank: r, layer: null, flopsSaved: saved(plan), accuracy: await evaluate(plan), plan: planText(plan) });
      }
    }
  }

  if (parts.has('b')) {
    for (const F of BUDGETS) {
      for (const method of ['auto', ...METHODS] as PlanOptions['method'][]) {
        const policy = method === 'auto' ? 'auto' : `${method} automatic`;
        let plan: ModelPlan;
        try {
          plan = planModel(model.convs, model.other, { method, flopsSaved: F }, backend);
        } catch (err) {
          log({ policy, method, budget: F, rank: null, layer: null, flopsSaved: 0, accuracy: null, plan: '', note: (err as Error).message });
          continue;
        }
        log({ policy, method, budget: F, rank: null, layer: null, flopsSaved: saved(plan), accuracy: await evaluate(plan), plan: planText(plan) });
      }
      for (const method of METHODS) {
        const plan = uniformAtBudget(model.convs, model.other, threeByThree, method, F, backend);
        const policy = `${method} uniform`;
        if (!plan) {
          log({ policy, method, budget: F, rank: null, layer: null, flopsSaved: 0, accuracy: null, plan: '', note: 'no uniform rank meets the budget' });
          continue;
        }
        log({ policy, method, budget: F, rank: null, layer: null, flopsSaved: saved(plan), accuracy: await evaluate(plan), plan: planText(plan) });
      }
    }
  }

  if (parts.has('c')) {
    for (const layer of model.convs.filter((c) => !c.skipReason)) {
      for (let r = 1; r <= Math.min(5, maxRank(layer, 'dac')); r++) {
        const plan = planModel(model.convs, model.other, { method: 'dac', ranks: { [layer.name]: r } }, backend);
        log({ policy: 'dac one layer', method: 'dac', budget: null, rank: r, layer: layer.name, flopsSaved: saved(plan), accuracy: await evaluate(plan), plan: `${layer.name} r=${r}` });
      }
    }
  }

  if (parts.has('f')) {
    const folded = model.foldBatchNorm();
    console.log(`BN-folded baseline ${(await accuracy(folded)).toFixed(2)}%`);
    for (const weighting of ['default', 'bn', 'plain'] as const) {
      const w: Partial<PlanOptions> = weighting === 'default' ? {} : { weighting };
      const add = async (policy: string, method: string, budget: number | null, rank: number | null, plan: ModelPlan | null, note?: string) =>
        log({
          policy,
          method,
          budget,
          rank,
          layer: null,
          weighting,
          flopsSaved: plan ? saved(plan) : 0,
          accuracy: plan ? await evaluate(plan, folded) : null,
          plan: plan ? planText(plan) : '',
          note: note ?? `${weighting}: ${plan ? planText(plan) : ''}`,
        });
      await add('folded dac r4', 'dac', null, 4, planModel(folded.convs, folded.other, { method: 'dac', rank: 4, skipFirst: true, ...w }, backend));
      for (const F of [0.3, 0.5]) {
        for (const method of ['auto', 'dac'] as const) {
          await add(method === 'auto' ? 'folded auto' : 'folded dac automatic', method, F, null, planModel(folded.convs, folded.other, { method, flopsSaved: F, ...w }, backend));
        }
        for (const method of METHODS) {
          const plan = uniformAtBudget(folded.convs, folded.other, threeByThree, method, F, backend, w);
          await add(`folded ${method} uniform`, method, F, null, plan, plan ? undefined : 'no uniform rank meets the budget');
        }
      }
    }
  }

  const previous = readPrevious();
  const kept = previous ? previous.rows.filter((r) => !parts.has(partOf(r))) : [];
  const result = {
    model: path.relative(root, modelPath),
    images: count,
    baseline,
    backend: backend.name,
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    parts: [...parts].sort().join(''),
    rows: [...kept, ...rows],
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'accuracy.json'), JSON.stringify(result, null, 1) + '\n');
  fs.writeFileSync(path.join(outDir, 'accuracy.md'), markdown(result));
  fs.writeFileSync(path.join(outDir, 'accuracy.svg'), svg(result));
  console.log(`wrote ${path.relative(root, outDir)}/accuracy.{md,json,svg} in ${result.seconds} s`);
}

/** Top-1 accuracy (%) of a model on the first `count` images of x (normalised NCHW) against labels, by onnxruntime/tfjs through src/runtime. */
export async function accuracyOf(m: LoadedModel, x: Float32Array, labels: ArrayLike<number>, count: number): Promise<number> {
  const runner = await createRunner(m, { chunk: 1000 });
  try {
    const out = await runner.run(x, count);
    let ok = 0;
    for (let i = 0; i < count; i++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (out[i * 10 + k] > out[i * 10 + best]) best = k;
      if (best === labels[i]) ok++;
    }
    return (100 * ok) / count;
  } finally {
    runner.dispose();
  }
}

export type Result = { model: string; images: number; baseline: number; backend: string; date: string; seconds: number; parts?: string; rows: Row[] };

function partOf(r: Row): string {
  if (r.weighting !== undefined) return 'f';
  if (r.layer !== null) return 'c';
  return r.budget === null ? 'a' : 'b';
}

function readPrevious(): Result | null {
  const file = path.join(outDir, 'accuracy.json');
  if (!fs.existsSync(file)) return null;
  try {
    const prev = JSON.parse(fs.readFileSync(file, 'utf8')) as Result;
    return prev.images === images ? prev : null;
  } catch {
    return null;
  }
}

/**
 * The least-compressed uniform plan that saves at least F: DAC the largest
 * rank r that meets it; spatial/channel the largest (fractional) DAC-equivalent
 * rank whose matching widths, rounded per layer, meet it.
 */
export function uniformAtBudget(
  convs: ConvLayerInfo[],
  other: { macs: number; params: number },
  layers: string[],
  method: Method,
  F: number,
  backend: ReturnType<typeof getBackend>,
  extra: Partial<PlanOptions> = {},
): ModelPlan | null {
  const planFor = (rank: number) => {
    const ranks: Record<string, number> = {};
    for (const l of convs) if (layers.includes(l.name)) ranks[l.name] = method === 'dac' ? Math.min(Math.round(rank), maxRank(l, 'dac')) : matchingWidth(l, method, rank);
    return planModel(convs, other, { ...extra, method, ranks, layers }, backend);
  };
  const meets = (p: ModelPlan) => 1 - p.flops.after / p.flops.before >= F - 1e-12;
  if (method === 'dac') {
    for (let r = 9; r >= 1; r--) {
      const p = planFor(r);
      if (meets(p)) return p;
    }
    return null;
  }
  let lo = 0.01;
  let hi = 9;
  if (!meets(planFor(lo))) return null;
  for (let it = 0; it < 40; it++) {
    const mid = (lo + hi) / 2;
    if (meets(planFor(mid))) lo = mid;
    else hi = mid;
  }
  return planFor(lo);
}

const POLICIES = ['auto', 'dac automatic', 'dac uniform', 'spatial automatic', 'spatial uniform', 'channel automatic', 'channel uniform'];

function fmt(v: number | null, digits = 2): string {
  return v === null ? '-' : v.toFixed(digits);
}

export function markdown(res: Result): string {
  const lines: string[] = [];
  lines.push('# Accuracy vs FLOPs saved: fashion-vgg on Fashion-MNIST');
  lines.push('');
  lines.push(
    `Written by \`npm run bench:accuracy\` (last run ${res.date}${res.parts ? `, parts ${res.parts}` : ''}, backend ${res.backend}, ${res.images} test images, ${res.seconds} s; ` +
      'parts not rerun keep their earlier rows, each section says when it was measured where known). ' +
      `Model: \`${res.model}\`, baseline accuracy **${res.baseline.toFixed(2)}%**. FLOPs saved is of the whole model's MACs ` +
      '(convs and the dense layer). Replacements are built by `buildReplacements` with its default corrections ' +
      '(decompositions weighted by the centred input model, DAC depthwise filters from the plain per-channel SVD but at the ' +
      "network's input, DAC pointwise refit, variance and bias correction; see docs/auto.md), applied to the model and run " +
      'by onnxruntime-node (ONNX) or tfjs (TF.js).',
  );
  const a = res.rows.filter((r) => partOf(r) === 'a');
  if (a.length) {
    lines.push('', '## (a) Uniform rank over all 3x3 convs but the first', '');
    lines.push('Spatial and channel use the paper\'s widths matching DAC rank r in cost.', '');
    if (a[0].measured) lines.push(`Measured ${a[0].measured}.`, '');
    lines.push('| r | DAC saved | DAC acc | spatial saved | spatial acc | channel saved | channel acc |');
    lines.push('|---|---|---|---|---|---|---|');
    for (let r = 1; r <= 8; r++) {
      const cell = (m: string) => a.find((x) => x.method === m && x.rank === r);
      const parts = METHODS.map((m) => {
        const c = cell(m);
        return c ? `${fmt(100 * c.flopsSaved, 1)}% | ${fmt(c.accuracy)}` : '- | -';
      });
      lines.push(`| ${r} | ${parts.join(' | ')} |`);
    }
  }
  const b = res.rows.filter((r) => partOf(r) === 'b');
  if (b.length) {
    lines.push('', '## (b) Accuracy at a FLOPs budget', '');
    lines.push('Automatic: `--flops-saved F` (data-free plan, docs/auto.md). Uniform: the least compression with one rank (DAC) ' +
      'or one DAC-equivalent width scale (spatial, channel) for all 3x3 convs but the first that meets the budget. ' +
      'Cells: accuracy % (FLOPs actually saved %).', '');
    if (b[0].measured) lines.push(`Measured ${b[0].measured}.`, '');
    lines.push(`| policy | ${BUDGETS.map((f) => `${Math.round(f * 100)}%`).join(' | ')} |`);
    lines.push(`|---|${BUDGETS.map(() => '---').join('|')}|`);
    for (const p of POLICIES) {
      const cells = BUDGETS.map((f) => {
        const r = b.find((x) => x.policy === p && x.budget === f);
        return r && r.accuracy !== null ? `${fmt(r.accuracy)} (${fmt(100 * r.flopsSaved, 1)})` : '-';
      });
      lines.push(`| ${p} | ${cells.join(' | ')} |`);
    }
    lines.push('', 'Plans (per conv: k = kept, d/s/c + rank or width):', '');
    for (const f of BUDGETS) {
      for (const p of POLICIES) {
        const r = b.find((x) => x.policy === p && x.budget === f);
        if (r && r.plan) lines.push(`- ${Math.round(f * 100)}% ${p}: \`${r.plan}\``);
      }
    }
  }
  const c = res.rows.filter((r) => partOf(r) === 'c');
  if (c.length) {
    lines.push('', '## (c) One layer at a time, DAC rank 1..5 (the paper\'s Table 1)', '');
    if (c[0].measured) lines.push(`Measured ${c[0].measured}.`, '');
    lines.push('| layer | r=1 | r=2 | r=3 | r=4 | r=5 |');
    lines.push('|---|---|---|---|---|---|');
    const names = [...new Set(c.map((r) => r.layer!))];
    for (const name of names) {
      const cells = [1, 2, 3, 4, 5].map((r) => fmt(c.find((x) => x.layer === name && x.rank === r)?.accuracy ?? null));
      lines.push(`| ${name} | ${cells.join(' | ')} |`);
    }
  }
  const f = res.rows.filter((r) => partOf(r) === 'f');
  if (f.length) {
    lines.push('', '## (f) BatchNorm folded into the convs', '');
    lines.push(
      'The same model after `foldBatchNorm()` (what exporters usually deliver): no BatchNorm statistics are left for the ' +
        '`bn` error model. Planned with the default weighting (`plain` for a model without BatchNorm statistics, ' +
        '`bn` otherwise), with `bn` forced (the default before), and with `plain`. DAC r=4: all 3x3 convs but the ' +
        'first. Cells: accuracy % (FLOPs saved %).',
      '',
    );
    if (f[0].measured) lines.push(`Measured ${f[0].measured}.`, '');
    const keys = [...new Set(f.map((r) => `${r.policy}|${r.budget ?? ''}`))];
    lines.push('| policy | budget | default | bn | plain |');
    lines.push('|---|---|---|---|---|');
    for (const key of keys) {
      const [policy, budget] = key.split('|');
      const cells = ['default', 'bn', 'plain'].map((w) => {
        const r = f.find((x) => `${x.policy}|${x.budget ?? ''}` === key && x.weighting === w);
        return r && r.accuracy !== null ? `${fmt(r.accuracy)} (${fmt(100 * r.flopsSaved, 1)})` : '-';
      });
      lines.push(`| ${policy.replace(/^folded /, '')} | ${budget ? `${Math.round(Number(budget) * 100)}%` : 'r=4'} | ${cells.join(' | ')} |`);
    }
  }
  lines.push('');
  return lines.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Accuracy vs FLOPs saved, one line per policy of part (b), baseline dashed. */
function svg(res: Result): string {
  const W = 760;
  const H = 480;
  const m = { l: 60, r: 200, t: 40, b: 50 };
  const rows = res.rows.filter((r) => partOf(r) === 'b' && r.accuracy !== null);
  const accs = rows.map((r) => r.accuracy!);
  const yMin = accs.length ? Math.max(0, Math.floor(Math.min(...accs) / 10) * 10) : 0;
  const yMax = Math.ceil((Math.max(res.baseline, ...accs) + 1) / 5) * 5;
  const xMin = 15;
  const xMax = 75;
  const X = (v: number) => m.l + ((v - xMin) / (xMax - xMin)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((v - yMin) / (yMax - yMin)) * (H - m.t - m.b);
  const style: Record<string, { color: string; dash: string }> = {
    auto: { color: '#000000', dash: '' },
    'dac automatic': { color: '#d62728', dash: '' },
    'dac uniform': { color: '#d62728', dash: '6 4' },
    'spatial automatic': { color: '#1f77b4', dash: '' },
    'spatial uniform': { color: '#1f77b4', dash: '6 4' },
    'channel automatic': { color: '#2ca02c', dash: '' },
    'channel uniform': { color: '#2ca02c', dash: '6 4' },
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="14">fashion-vgg: accuracy vs FLOPs saved (${res.images} test images)</text>`);
  for (let v = Math.ceil(yMin / 5) * 5; v <= yMax; v += 5) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 8}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  for (let v = 20; v <= 70; v += 10) {
    out.push(`<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${X(v).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle">${v}%</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">FLOPs (MACs) saved</text>`);
  out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">test accuracy %</text>`);
  const by = Y(res.baseline).toFixed(1);
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${by}" y2="${by}" stroke="#888" stroke-dasharray="2 3"/>`);
  POLICIES.forEach((p, k) => {
    const pts = rows.filter((r) => r.policy === p).sort((a, b) => a.flopsSaved - b.flopsSaved);
    const s = style[p];
    if (pts.length) {
      const d = pts.map((r, i) => `${i ? 'L' : 'M'}${X(100 * r.flopsSaved).toFixed(1)} ${Y(r.accuracy!).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
      for (const r of pts) out.push(`<circle cx="${X(100 * r.flopsSaved).toFixed(1)}" cy="${Y(r.accuracy!).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    const ly = m.t + 10 + k * 20;
    out.push(`<line x1="${W - m.r + 15}" x2="${W - m.r + 45}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    out.push(`<text x="${W - m.r + 52}" y="${ly + 4}">${escapeXml(p)}</text>`);
  });
  const ly = m.t + 10 + POLICIES.length * 20;
  out.push(`<line x1="${W - m.r + 15}" x2="${W - m.r + 45}" y1="${ly}" y2="${ly}" stroke="#888" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${W - m.r + 52}" y="${ly + 4}">baseline ${res.baseline.toFixed(2)}%</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// bench/paper.ts imports the pieces above; only a direct run benchmarks.
if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
