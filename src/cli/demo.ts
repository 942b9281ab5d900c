// `dac demo`: the whole story on the embedded model (fashion-vgg, a 13-conv
// VGG trained on Fashion-MNIST) and 500 embedded test images: decompose at
// about half the MACs with no data, then accuracy, MACs and latency before
// and after, measured with the same runtime on the same input.
import { performance } from 'node:perf_hooks';
import { normalizeImages, readIdxImages, readIdxLabels } from '../data/idx.js';
import { decomposeLoaded } from '../decompose-model.js';
import { loadModel } from '../formats/index.js';
import { getBackend } from '../index.js';
import { explainPlan, type LayerChoice } from '../plan/explain.js';
import { prepareWrite, writeDecomposed } from '../write.js';
import { createRunner, type Runner, type TfjsBackendName } from '../runtime/index.js';
import { argmax, demoAssets, fmtInt, fmtPct, fmtSaving, intOption, median, parse, UsageError, type Options } from './common.js';
import { settingsFrom } from './settings.js';

export const demoOptions: Options = {
  'flops-saved': { type: 'string' },
  method: { type: 'string', short: 'm' },
  weighting: { type: 'string' },
  'depth-penalty': { type: 'string' },
  paper: { type: 'boolean' },
  'fold-bn': { type: 'boolean' },
  images: { type: 'string', short: 'n' },
  runs: { type: 'string' },
  'tfjs-backend': { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
};

export const demoHelp = `Usage: dac-conv demo [options]

Decomposes the embedded demo model (fashion-vgg: 13 3x3 convs + BatchNorm,
trained on Fashion-MNIST, 16.4M MACs) without any data, then prints accuracy
on the embedded Fashion-MNIST test images, MACs, and latency before and after
(same TF.js runtime, same input batch, median of several runs).

The defaults are the best data-free setting measured on this model (all
10,000 Fashion-MNIST test images: 93.10% -> 92.62% at 50% of the MACs, see
docs/auto.md); see dac-conv decompose --help for the knobs.

Options:
  --flops-saved F     fraction of MACs to save (default 0.5)
  -m, --method M      auto (default), dac, spatial or channel
  --weighting W       planning error model: bn (default) or plain
  --depth-penalty X   extra weight of early-layer errors (default here 2)
  --paper             the decompositions exactly as published (plain SVDs, original
                      bias, no corrections; planned on the plain weight error)
  --fold-bn           fold BatchNormalization into the convs first
  -n, --images N      images to evaluate, 1..500 (default 500)
  --runs K            timed runs per model after one warm-up (default 5)
  --tfjs-backend B    tensorflow, wasm or cpu (default: the fastest installed)
  -o, --output DIR    also write the decomposed model (TF.js folder + report.json)
  --json              machine-readable output
  -h, --help          this help
`;

export interface DemoResult {
  model: string;
  images: number;
  engine: string;
  method: string;
  flopsSaved: number;
  weighting: string;
  depthPenalty: number;
  backend: string;
  before: { accuracy: number; macs: number; params: number; latencyMs: number };
  after: { accuracy: number; macs: number; params: number; latencyMs: number };
  top1Agreement: number;
  layers: { name: string; method: string; rank: number }[];
  /** 'paper' (--paper) or 'ours': which decomposition built the layers. */
  mode: string;
  /** Per decomposable layer: each method's option at the chosen cost, and why DAC was or was not chosen. */
  choices: LayerChoice[];
}

async function timeRuns(runner: Runner, x: Float32Array, n: number, runs: number): Promise<{ y: Float32Array; ms: number }> {
  const y = await runner.run(x, n);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await runner.run(x, n);
    times.push(performance.now() - t0);
  }
  return { y, ms: median(times) };
}

export async function runDemo(args: string[]): Promise<number> {
  const { values, positionals } = parse('demo', args, demoOptions);
  if (values.help) {
    process.stdout.write(demoHelp);
    return 0;
  }
  if (positionals.length) throw new UsageError('demo takes no positional arguments', 'demo');
  // The demo's defaults, then the flags as every command reads them.
  const paper = values.paper === true;
  const defaults = { method: 'auto', 'flops-saved': '0.5', 'depth-penalty': '2', weighting: paper ? 'plain' : 'bn' };
  const { foldBn, ...settings } = settingsFrom({ ...defaults, ...values }, 'demo');
  // All four are set: by the flags or by the defaults above.
  const { method, flopsSaved, weighting, depthPenalty } = settings as Required<typeof settings>;
  const count = intOption(values.images, '--images', 1, 500) ?? 500;
  const runs = intOption(values.runs, '--runs', 1, 100) ?? 5;
  const log = (s: string) => {
    if (!values.json) process.stdout.write(`${s}\n`);
  };

  // The output's paths are checked before any work, as `dac decompose` does.
  const plan = values.output === undefined ? null : prepareWrite({ input: demoAssets.model, output: String(values.output), kind: 'folder' });
  try {
    const original = await loadModel(demoAssets.model);
    const model = foldBn ? original.foldBatchNorm() : original;
    const images = readIdxImages(demoAssets.images);
    const labels = readIdxLabels(demoAssets.labels);
    const n = Math.min(count, images.count);
    const x = normalizeImages(images, 0.286, 0.353, n);
    const backend = getBackend();
    log(`demo model: fashion-vgg (${model.convs.length} convs), ${n} Fashion-MNIST test images, decomposition backend: ${backend.name}`);

    const t0 = performance.now();
    const result = decomposeLoaded(model, settings, backend);
    const decomposeMs = performance.now() - t0;
    log(`decomposed (method ${method}, --flops-saved ${flopsSaved}, --weighting ${weighting}, --depth-penalty ${depthPenalty}${foldBn ? ', --fold-bn' : ''}${paper ? ', --paper' : ''}) in ${decomposeMs.toFixed(0)} ms, no data used`);
    // Which method each layer got and why DAC was or was not it: every method's predicted error at the chosen cost.
    const choices = explainPlan(model.convs, result.plan, backend);
    const why = new Map(choices.map((c) => [c.name, c.why]));
    for (const l of result.report.layers) {
      log(`  ${l.name.padEnd(12)} ${l.method === 'keep' ? 'kept' : `${l.method} ${l.method === 'dac' ? 'rank' : 'width'} ${l.rank}`}`);
      if (why.has(l.name)) log(`      ${why.get(l.name)}`);
    }
    if (plan) {
      const report = { ...result.report, input: demoAssets.model, output: String(values.output) };
      await writeDecomposed(plan, result.model, report);
      log(`wrote ${String(values.output)}`);
    }

    const tfjsBackend = values['tfjs-backend'] as TfjsBackendName | undefined;
    const before = await createRunner(original, { tfjsBackend });
    const after = await createRunner(result.model, { tfjsBackend });
    try {
      const a = await timeRuns(before, x, n, runs);
      const b = await timeRuns(after, x, n, runs);
      let accA = 0;
      let accB = 0;
      let agree = 0;
      for (let i = 0; i < n; i++) {
        const pa = argmax(a.y, i, 10);
        const pb = argmax(b.y, i, 10);
        if (pa === labels[i]) accA++;
        if (pb === labels[i]) accB++;
        if (pa === pb) agree++;
      }
      const { flops, params } = result.report;
      const out: DemoResult = {
        model: demoAssets.model,
        images: n,
        engine: before.engine,
        method,
        flopsSaved,
        weighting,
        depthPenalty,
        backend: backend.name,
        before: { accuracy: accA / n, macs: flops.before, params: params.before, latencyMs: a.ms },
        after: { accuracy: accB / n, macs: flops.after, params: params.after, latencyMs: b.ms },
        top1Agreement: agree / n,
        layers: result.report.layers.map((l) => ({ name: l.name, method: l.method, rank: l.rank })),
        mode: result.report.mode,
        choices,
      };
      if (values.json) {
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        return 0;
      }
      log('');
      log(`                before        after`);
      log(`accuracy        ${fmtPct(out.before.accuracy).padEnd(13)} ${fmtPct(out.after.accuracy)}   (top-1 agreement ${fmtPct(out.top1Agreement)})`);
      log(`MACs/image      ${fmtInt(out.before.macs).padEnd(13)} ${fmtInt(out.after.macs)}   (${fmtSaving(out.before.macs, out.after.macs)})`);
      log(`params          ${fmtInt(out.before.params).padEnd(13)} ${fmtInt(out.after.params)}`);
      log(
        `latency         ${`${out.before.latencyMs.toFixed(1)} ms`.padEnd(13)} ${out.after.latencyMs.toFixed(1)} ms   ` +
          `(${n} images per batch, median of ${runs}, ${out.engine}; ${(out.before.latencyMs / out.after.latencyMs).toFixed(2)}x)`,
      );
    } finally {
      before.dispose();
      after.dispose();
    }
    return 0;
  } finally {
    plan?.release();
  }
}
