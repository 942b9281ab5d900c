// Whole-model latency: does a decomposed model run faster than the original,
// in the runtimes users have?
//
// For fashion-vgg (/work/shared/models/fashion-vgg, TF.js + ONNX) and a
// VGG16-sized model (VGG16's 13 convs and 1000-way head, random weights,
// bench/synthetic.ts), at batch 1 and 32, 1 and 2 threads:
//   TF.js form, in tfjs-wasm and tfjs-cpu: original, decomposed with stock layers, decomposed with DacConv2D
//   ONNX form, in onnxruntime: original, decomposed, and the --latency-saved 0.5 and 0.25 plans (dac and auto)
//     measured by `dac bench` in onnxruntime at the same batch and threads
// all decomposed at --flops-saved 0.5 (method dac) unless said otherwise. Within one (model, batch,
// threads, runtime) group the variants are timed interleaved, round by round, and the best
// rounds compared (other processes only add time), so every ratio comes from one run under one machine load (`uptime` load is recorded
// beside each group). fashion-vgg's accuracy on the 10,000 test images is measured for every
// ONNX variant. Writes bench/results/model.{md,json,svg}.
//
//   npm run bench:model
//   BENCH_MODELS=fashion BENCH_BATCHES=32 BENCH_THREADS=1 BENCH_REPS=5 npm run bench:model
//   BENCH_RUNTIMES=wasm,ort (any of wasm, cpu, ort); BENCH_VGG_CPU=1 adds tfjs-cpu for VGG16 (hours at batch 32)
//   BENCH_LATENCY_SAVED=0.5,0.25: the --latency-saved budgets planned (default both)
//   BENCH_TABLE_REPS=1: rounds of the per-layer onnxruntime table behind the --latency-saved plans (default 3)
// A run keeps the earlier results of the (model, batch, threads, runtime) groups it did not redo.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as TfType from '@tensorflow/tfjs';

import { decomposeLoaded, type DecomposeSettings } from '../src/decompose-model.js';
import { loadModel, type LoadedModel, type OnnxModel, type TfjsModel } from '../src/formats/index.js';
import { memoryHandler } from '../src/formats/tfjs/io.js';
import { benchModel, planLatencies } from '../src/latency/index.js';
import * as ort from 'onnxruntime-node';
import { createRunner, loadTf, ortSessionOptions } from '../src/runtime/index.js';
import { normalizeImages, readIdxImages, readIdxLabels } from '../src/data/idx.js';
import { mulberry32 } from '../src/random.js';
import { vgg16Spec, writeOnnxNet, writeTfjsNet } from './synthetic.js';

const root = path.resolve(__dirname, '..');
const shared = path.resolve(root, '..', 'shared');
const outDir = path.join(root, 'bench/results');
const cacheDir = path.join(root, '.cache/bench-model');
const MODELS = (process.env.BENCH_MODELS ?? 'fashion,vgg16').split(',');
const BATCHES = (process.env.BENCH_BATCHES ?? '1,32').split(',').map(Number);
const THREADS = (process.env.BENCH_THREADS ?? '1,2').split(',').map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? 'wasm,cpu,ort').split(',');
const TABLE_REPS = Number(process.env.BENCH_TABLE_REPS ?? 3);
/** The --latency-saved budgets planned on the onnxruntime table (the target is on 0.5; smaller ones show the accuracy trade-off). */
const LATENCY_SAVED = (process.env.BENCH_LATENCY_SAVED ?? '0.5,0.25').split(',').map(Number);
const PLAN: DecomposeSettings = { method: 'dac', flopsSaved: 0.5 };

interface Row {
  model: string;
  batch: number;
  threads: number;
  runtime: string;
  variant: string;
  macs: number;
  ms: number;
  /** ms / the original's ms in the same group. */
  ratio: number;
  /** (1 - ratio) / (1 - MACs ratio): the fraction of the ideal saving realised (whole-model MACs). */
  realisedOverIdeal: number | null;
  accuracy: number | null;
  load: string;
  note?: string;
}

function best(xs: number[]): number {
  return Math.min(...xs);
}

const load = () => os.loadavg().map((v) => v.toFixed(1)).join(' / ');

async function interleaved(runs: (() => Promise<void>)[], reps: number): Promise<number[]> {
  for (const r of runs) await r();
  const times = runs.map(() => [] as number[]);
  for (let k = 0; k < reps; k++) {
    for (let i = 0; i < runs.length; i++) {
      const t0 = performance.now();
      await runs[i]();
      times[i].push(performance.now() - t0);
    }
  }
  return times.map(best);
}

interface Forms {
  id: string;
  tfjs: TfjsModel;
  onnx: LoadedModel;
  accuracy: { x: Float32Array; labels: Uint8Array | number[]; count: number } | null;
}

async function forms(id: string): Promise<Forms | null> {
  if (id === 'fashion') {
    const dir = path.join(shared, 'models/fashion-vgg');
    if (!fs.existsSync(dir)) {
      process.stderr.write(`skipping fashion-vgg: ${dir} is missing\n`);
      return null;
    }
    const data = path.join(shared, 'data/fashion-mnist');
    let accuracy: Forms['accuracy'] = null;
    if (fs.existsSync(data)) {
      const imgs = readIdxImages(path.join(data, 't10k-images-idx3-ubyte.gz'));
      const labels = readIdxLabels(path.join(data, 't10k-labels-idx1-ubyte.gz'));
      accuracy = { x: normalizeImages(imgs, 0.286, 0.353, imgs.count), labels: labels as unknown as Uint8Array, count: imgs.count };
    }
    return {
      id: 'fashion-vgg',
      tfjs: (await loadModel(path.join(dir, 'tfjs'))) as TfjsModel,
      onnx: await loadModel(path.join(dir, 'model.onnx')),
      accuracy,
    };
  }
  if (id === 'vgg16') {
    const tfjsDir = path.join(cacheDir, 'vgg16-tfjs');
    const onnxFile = path.join(cacheDir, 'vgg16.onnx');
    if (!fs.existsSync(path.join(tfjsDir, 'model.json'))) writeTfjsNet(tfjsDir, vgg16Spec('vgg16_tfjs'), 16);
    if (!fs.existsSync(onnxFile)) writeOnnxNet(onnxFile, vgg16Spec('vgg16_onnx'), 17);
    return { id: 'vgg16-sized', tfjs: (await loadModel(tfjsDir)) as TfjsModel, onnx: await loadModel(onnxFile), accuracy: null };
  }
  throw new Error(`unknown model ${id}`);
}

async function accuracyOf(m: LoadedModel, a: NonNullable<Forms['accuracy']>): Promise<number> {
  const runner = await createRunner(m, { chunk: 1000 });
  try {
    const out = await runner.run(a.x, a.count);
    let ok = 0;
    for (let i = 0; i < a.count; i++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (out[i * 10 + k] > out[i * 10 + best]) best = k;
      if (best === a.labels[i]) ok++;
    }
    return (100 * ok) / a.count;
  } finally {
    runner.dispose();
  }
}

function input(m: LoadedModel, batch: number): Float32Array {
  const next = mulberry32(5);
  return Float32Array.from({ length: batch * m.inputShape.reduce((a, b) => a * b, 1) }, () => next() * 2 - 1);
}

function rowsOf(
  f: Forms,
  batch: number,
  threads: number,
  runtime: string,
  variants: { name: string; macs: number; accuracy?: number | null; note?: string }[],
  ms: number[],
  loadText: string,
): Row[] {
  return variants.map((v, i) => {
    const ratio = ms[i] / ms[0];
    const macsRatio = v.macs / variants[0].macs;
    return {
      model: f.id,
      batch,
      threads,
      runtime,
      variant: v.name,
      macs: v.macs,
      ms: ms[i],
      ratio,
      realisedOverIdeal: macsRatio < 1 ? (1 - ratio) / (1 - macsRatio) : null,
      accuracy: v.accuracy ?? null,
      load: loadText,
      ...(v.note ? { note: v.note } : {}),
    };
  });
}

async function tfjsGroup(f: Forms, stock: LoadedModel, dac: LoadedModel, macs: [number, number], batch: number, threads: number, backend: 'wasm' | 'cpu'): Promise<Row[]> {
  const { tf } = await loadTf(backend);
  const { DacConv2D } = await import('../src/tfjs-layer/dac-conv2d-layer.js');
  const nets: TfType.LayersModel[] = [];
  for (const m of [f.tfjs, stock, dac]) nets.push(await tf.loadLayersModel(memoryHandler(m as TfjsModel)));
  // The fused layers take the thread count; tfjs-wasm and tfjs-cpu run their own ops on one thread in Node.
  for (const l of nets[2].layers) if (l instanceof DacConv2D) l.threads = threads;
  const [h, w, c] = f.tfjs.inputShape;
  const x = tf.tensor4d(input(f.tfjs, batch), [batch, h, w, c]);
  const runs = nets.map((net) => async () => {
    const y = net.predict(x) as TfType.Tensor;
    await y.data();
    y.dispose();
  });
  const before = load();
  const ms = await interleaved(runs, REPS);
  x.dispose();
  nets.forEach((n) => n.dispose());
  return rowsOf(
    f,
    batch,
    threads,
    `tfjs-${backend}`,
    [
      { name: 'original', macs: macs[0] },
      { name: 'decomposed (stock layers)', macs: macs[1] },
      { name: 'decomposed (DacConv2D)', macs: macs[1] },
    ],
    ms,
    `${before} -> ${load()}`,
  );
}

async function ortGroup(f: Forms, decomposed: { name: string; model: LoadedModel; macs: number; accuracy: number | null; note?: string }[], batch: number, threads: number): Promise<Row[]> {
  // Sessions made here rather than by a src/runtime runner, which would time its NHWC -> NCHW transpose
  // too; with src/runtime's options (spinning off: interleaved sessions would hold each other's cores).
  const sessions: ort.InferenceSession[] = [];
  for (const d of decomposed) sessions.push(await ort.InferenceSession.create((d.model as OnnxModel).bytes(), ortSessionOptions(threads)));
  const [h, w, c] = f.onnx.inputShape;
  // A model with a fixed batch size runs the batch in calls of that size, as src/runtime does.
  const per = (f.onnx as OnnxModel).fixedBatch ?? batch;
  // Time does not depend on the values: the NHWC random input is fed as NCHW without a transpose.
  const x = new ort.Tensor('float32', input(f.onnx, per), [per, c, h, w]);
  const name = (f.onnx as OnnxModel).inputName;
  const before = load();
  const runAll = (s: ort.InferenceSession) => async () => {
    for (let done = 0; done < batch; done += per) await s.run({ [name]: x });
  };
  const ms = await interleaved(sessions.map(runAll), REPS);
  for (const s of sessions) await s.release();
  return rowsOf(f, batch, threads, 'onnxruntime', decomposed, ms, `${before} -> ${load()}`);
}

const f2 = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(2));
const f3 = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));

function markdown(rows: Row[], info: string[], plans: string[]): string {
  const lines = ['# Whole-model latency: original vs decomposed', '', ...info, '', ...plans, ''];
  lines.push(
    '| model | batch | threads | runtime | variant | MACs/image | ms (best round) | vs original | realised / ideal | accuracy | load (1/5/15 min, before -> after) |',
    '|---|---:|---:|---|---|---:|---:|---:|---:|---:|---|',
  );
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${r.batch} | ${r.threads} | ${r.runtime} | ${r.variant} | ${r.macs.toLocaleString('en-US')} | ${f2(r.ms)} | ${f3(r.ratio)} | ${f2(r.realisedOverIdeal)} | ${r.accuracy === null ? '' : `${r.accuracy.toFixed(2)}%`} | ${r.load} |`,
    );
  }
  lines.push('', '## Targets', '');
  for (const r of rows.filter((x) => x.variant === 'decomposed (DacConv2D)' && x.batch === 32)) {
    const v = r.realisedOverIdeal ?? -Infinity;
    lines.push(`- ${r.model}, ${r.runtime}, batch 32, ${r.threads} thread(s): DacConv2D model realises **${f2(r.realisedOverIdeal)}** of the ideal MACs saving (target >= 0.8: ${v >= 0.8 ? 'met' : 'missed'}).`);
  }
  for (const r of rows.filter((x) => x.runtime === 'onnxruntime' && /latency-saved 0\.5 /.test(x.variant))) {
    lines.push(`- ${r.model}, onnxruntime, batch ${r.batch}, ${r.threads} thread(s), ${r.variant}: ${f3(r.ratio)} x the original's time (target < 1: ${r.ratio < 1 ? 'met' : 'missed'})${r.note ? ` (${r.note})` : ''}.`);
  }
  return lines.join('\n') + '\n';
}

/** Bars of time relative to the original, one group per (model, batch, threads, runtime). */
function svg(rows: Row[]): string {
  const groups: Row[][] = [];
  for (const r of rows) {
    const g = groups.find((x) => x[0].model === r.model && x[0].batch === r.batch && x[0].threads === r.threads && x[0].runtime === r.runtime);
    if (g) g.push(r);
    else groups.push([r]);
  }
  const barH = 10;
  const gap = 8;
  const left = 330;
  const W = 760;
  const plotW = W - left - 60;
  const max = Math.max(1.2, ...rows.map((r) => r.ratio)) * 1.05;
  const colors: Record<string, string> = {
    'decomposed (stock layers)': '#d95f02',
    'decomposed (DacConv2D)': '#1b9e77',
    decomposed: '#d95f02',
  };
  const height = 60 + groups.reduce((a, g) => a + (g.length - 1) * barH + gap + 14, 0);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif" font-size="10">`,
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">Decomposed model time / original time (lower is faster; dashed: 1 = original)</text>`,
  ];
  const sx = (v: number) => +(left + (v / max) * plotW).toFixed(1);
  let y = 34;
  for (const g of groups) {
    out.push(`<text x="4" y="${y + 9}" font-weight="bold">${g[0].model}, batch ${g[0].batch}, ${g[0].threads} thr, ${g[0].runtime}</text>`);
    y += 12;
    for (const r of g.slice(1)) {
      out.push(`<text x="${left - 4}" y="${y + 8}" text-anchor="end">${r.variant}</text>`);
      out.push(`<rect x="${left}" y="${y}" width="${(sx(r.ratio) - left).toFixed(1)}" height="${barH - 2}" fill="${colors[r.variant] ?? '#7570b3'}"/>`);
      out.push(`<text x="${sx(r.ratio) + 3}" y="${y + 8}">${r.ratio.toFixed(2)}</text>`);
      y += barH;
    }
    y += gap;
  }
  out.push(`<line x1="${sx(1)}" y1="30" x2="${sx(1)}" y2="${y}" stroke="#444" stroke-dasharray="4 3"/>`);
  out.push(`<line x1="${sx(0.5)}" y1="30" x2="${sx(0.5)}" y2="${y}" stroke="#bbb" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${sx(0.5)}" y="${y + 12}" text-anchor="middle" fill="#888">0.5</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

async function main(): Promise<void> {
  const started = Date.now();
  const rows: Row[] = [];
  const plans: string[] = [];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const info = [
    `- Machine: ${cpu}, ${os.cpus().length} hardware threads, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; shared with other sessions: the load column is \`uptime\`'s load average before -> after each group.`,
    `- ${REPS} interleaved rounds per variant after a warm-up, best round of each; ratios within a group come from the same rounds.`,
    `- Decomposed = --method dac --flops-saved 0.5 (bias correction on). "realised / ideal" = (1 - time ratio) / (1 - MACs ratio) with whole-model MACs (convs and the rest).`,
    '- tfjs-wasm and tfjs-cpu run their own ops on one thread in Node; "threads" applies to the DacConv2D layers (our kernel) and to onnxruntime.',
    '- onnxruntime: sessions with allow_spinning off (interleaved sessions would otherwise spin on the cores the next one needs); the VGG16-sized ONNX model has a fixed batch of 1, so its batch 32 is 32 calls.',
  ];
  for (const id of MODELS) {
    const f = await forms(id);
    if (!f) continue;
    process.stderr.write(`${f.id}: decomposing\n`);
    const stock = decomposeLoaded(f.tfjs, PLAN);
    const dac = decomposeLoaded(f.tfjs.withTfjsLayer('dac'), PLAN);
    const onnxDec = decomposeLoaded(f.onnx, PLAN);
    const macs: [number, number] = [stock.report.flops.before, stock.report.flops.after];
    const acc = async (m: LoadedModel) => (f.accuracy ? accuracyOf(m, f.accuracy) : null);
    const baseAcc = await acc(f.onnx);
    const decAcc = await acc(onnxDec.model);
    for (const batch of BATCHES) {
      for (const threads of THREADS) {
        for (const backend of ['wasm', 'cpu'] as const) {
          if (!RUNTIMES.includes(backend)) continue;
          if (backend === 'cpu' && f.id === 'vgg16-sized' && process.env.BENCH_VGG_CPU !== '1') continue;
          process.stderr.write(`${f.id} batch ${batch} threads ${threads}: tfjs-${backend}\n`);
          rows.push(...(await tfjsGroup(f, stock.model, dac.model, macs, batch, threads, backend)));
        }
        if (!RUNTIMES.includes('ort')) continue;
        // The latency plans are measured in onnxruntime at this batch (VGG16: batch 1, its layers are large enough) and threads.
        const tableBatch = f.id === 'vgg16-sized' ? 1 : batch;
        process.stderr.write(`${f.id} batch ${batch} threads ${threads}: dac bench in onnxruntime (batch ${tableBatch})\n`);
        const table = await benchModel(f.onnx, { runtimes: ['ort'], batch: tableBatch, threads, reps: TABLE_REPS, plan: null });
        const latency = planLatencies(table, 'ort', f.onnx.convs, f.onnx.path);
        const variants: { name: string; model: LoadedModel; macs: number; accuracy: number | null; note?: string }[] = [
          { name: 'original', model: f.onnx, macs: onnxDec.report.flops.before, accuracy: baseAcc },
          { name: 'decomposed (dac, 50% MACs)', model: onnxDec.model, macs: onnxDec.report.flops.after, accuracy: decAcc },
        ];
        for (const fraction of LATENCY_SAVED) {
          for (const method of ['dac', 'auto'] as const) {
            const policy = `--latency-saved ${fraction} --method ${method}`;
            try {
              const d = decomposeLoaded(f.onnx, { method, latencySaved: fraction, latency });
              variants.push({ name: `--latency-saved ${fraction} (${method})`, model: d.model, macs: d.report.flops.after, accuracy: await acc(d.model) });
              plans.push(
                `- ${f.id}, batch ${batch}, ${threads} thread(s), ${policy} (table at batch ${tableBatch}): ` +
                  (d.report.layers.filter((l) => l.method !== 'keep').map((l) => `${l.name} ${l.method} ${l.rank}`).join(', ') || 'nothing replaced'),
              );
            } catch (err) {
              plans.push(`- ${f.id}, batch ${batch}, ${threads} thread(s), ${policy}: not possible: ${(err as Error).message}`);
            }
          }
        }
        process.stderr.write(`${f.id} batch ${batch} threads ${threads}: onnxruntime\n`);
        rows.push(...(await ortGroup(f, variants, batch, threads)));
      }
    }
  }
  const thisRun = `- This run (${MODELS.join(', ')}; batch ${BATCHES.join(', ')}; threads ${THREADS.join(', ')}; ${RUNTIMES.join(', ')})`;
  info.push(`${thisRun}: ${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC, ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  fs.mkdirSync(outDir, { recursive: true });
  // A run of some models keeps the earlier results of the others.
  const previous = path.join(outDir, 'model.json');
  if (fs.existsSync(previous)) {
    const old = JSON.parse(fs.readFileSync(previous, 'utf8')) as { info: string[]; plans: string[]; rows: Row[] };
    const group = (r: { model: string; batch: number; threads: number }) => `- ${r.model}, batch ${r.batch}, ${r.threads} thread(s)`;
    const key = (r: Row) => `${group(r)} ${r.runtime}`;
    const ran = new Set(rows.map(key));
    const ranPlans = new Set(rows.filter((r) => r.runtime === 'onnxruntime').map(group));
    const kept = old.rows.filter((r) => !ran.has(key(r)));
    rows.unshift(...kept);
    plans.unshift(...old.plans.filter((p) => ![...ranPlans].some((g) => p.startsWith(`${g},`))));
    if (kept.length) info.push(...old.info.filter((l) => l.startsWith('- This run') && !l.startsWith(thisRun)));
  }
  fs.writeFileSync(path.join(outDir, 'model.json'), `${JSON.stringify({ date: new Date().toISOString(), info, plans, rows }, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'model.md'), markdown(rows, info, plans));
  fs.writeFileSync(path.join(outDir, 'model.svg'), svg(rows));
  process.stdout.write(markdown(rows, info, plans).split('## Targets')[1] ?? '');
  process.stdout.write(`wrote bench/results/model.{md,json,svg}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
