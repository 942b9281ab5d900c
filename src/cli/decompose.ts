// `dac decompose`: plan ranks (src/plan), build the replacement weights on
// the native/WASM backend, rewrite the model in its own format, and write
// report.json with exact MACs and the real weight error of every layer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convCost, maxRank } from '../cost.js';
import { DacError } from '../errors.js';
import { detectFormat, loadModel, type LoadedModel } from '../formats/index.js';
import { TfjsModel } from '../formats/tfjs/model.js';
import { getBackend, type Backend } from '../index.js';
import { checkOutputPath, writeFileAtomic } from '../io/atomic.js';
import { reconstructWeights, relativeError } from '../model/reconstruct.js';
import type { LayerReplacement, Method } from '../model/types.js';
import { buildReplacements, planModel, type ModelPlan, type PlanOptions } from '../plan/index.js';
import {
  floatOption,
  fmtInt,
  fmtSaving,
  fractionOption,
  intOption,
  listOption,
  parse,
  ranksOption,
  UsageError,
  type Options,
} from './common.js';

export const decomposeOptions: Options = {
  output: { type: 'string', short: 'o' },
  method: { type: 'string', short: 'm' },
  rank: { type: 'string', short: 'r' },
  ranks: { type: 'string' },
  energy: { type: 'string' },
  'flops-saved': { type: 'string' },
  'params-saved': { type: 'string' },
  'skip-first': { type: 'boolean' },
  layers: { type: 'string' },
  'fold-bn': { type: 'boolean' },
  weighting: { type: 'string' },
  'depth-penalty': { type: 'string' },
  'no-bias-correction': { type: 'boolean' },
  report: { type: 'string' },
  threads: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
};

export const decomposeHelp = `Usage: dac decompose <model> -o <out> [policy] [options]

Replaces the model's KxK convolutions by cheaper pairs and writes the result
in the input's format: a folder with model.json + shards for TF.js Layers, an
.onnx file for ONNX. report.json goes beside the model (inside the TF.js
folder; next to the .onnx file). Never overwrites the input; writes
atomically; on any error nothing is written and the exit code is non-zero.

Methods (--method, default dac):
  dac       depthwise KxK (rank r per input channel) + pointwise 1x1  [Li et al. 2019]
  spatial   Kx1 (c' filters) + 1xK                                      [Jaderberg et al. 2014]
  channel   KxK (c' filters) + 1x1                                      [Zhang et al. 2016]
  auto      per layer the best of the three (or keep), under a budget policy

Policy (exactly one):
  -r, --rank N           DAC rank N in every layer (1..kh*kw; spatial/channel get the
                         width of the same cost); applied as asked even where it adds
                         MACs (a warning says so): --rank 9 on 3x3 convs is exact
  --ranks a=3,b=4|F.json per-layer rank (DAC) or width (spatial/channel); F.json is an
                         object {name: rank} or a report.json; unnamed layers are kept
  --energy E             per layer the smallest rank keeping predicted energy >= E (0..1]
  --flops-saved F        save at least fraction F of the model's MACs (e.g. 0.5 or 50%)
  --params-saved F       save at least fraction F of the parameters
                         (--flops-saved and --params-saved may be combined)

Options:
  -o, --output PATH      output folder (TF.js) or .onnx file (ONNX); required
  -m, --method M         dac (default), spatial, channel or auto (see above)
  --skip-first           keep the first conv (few input channels, little to gain)
  --layers a,b           decompose only these convs (names as dac inspect prints)
  --fold-bn              fold BatchNormalization into the preceding convs first
  --weighting bn|plain   error model for planning: weigh by the surrounding BatchNorms
                         (bn, default) or plain Frobenius error on the weights
  --depth-penalty X      budget policies: how much more early-layer errors cost (>= 0, default 0)
  --no-bias-correction   do not fold the predicted mean shift into the biases
  --report PATH          where to write report.json instead of beside the model
  --threads N            threads for the decompositions (native backend)
  -q, --quiet            no summary on stdout
  -h, --help             this help

report.json: { method, input, output, format, flops: {before, after}, params: {before, after},
  layers: [{ name, method, rank, macsBefore, macsAfter, paramsBefore, paramsAfter,
             relError, predictedError, reason? }] }
  MACs are exact (from real output sizes, one image); relError = ||W - W_approx|| / ||W||.
`;

export interface LayerReport {
  name: string;
  method: Method | 'keep';
  rank: number;
  macsBefore: number;
  macsAfter: number;
  paramsBefore: number;
  paramsAfter: number;
  relError: number;
  predictedError: number;
  reason?: string;
}

export interface Report {
  method: string;
  input: string;
  output: string | null;
  format: string;
  backend: string;
  foldedBatchNorm: boolean;
  flops: { before: number; after: number };
  params: { before: number; after: number };
  layers: LayerReport[];
}

export interface DecomposeSettings {
  method: Method | 'auto';
  rank?: number;
  ranks?: Record<string, number>;
  energy?: number;
  flopsSaved?: number;
  paramsSaved?: number;
  skipFirst?: boolean;
  layers?: string[];
  weighting?: 'bn' | 'plain';
  depthPenalty?: number;
  biasCorrection?: boolean;
  threads?: number;
}

export interface DecomposeResult {
  model: LoadedModel;
  plan: ModelPlan;
  report: Report;
  warnings: string[];
}

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

/** Checks --rank against the layers it applies to, before any work. */
function checkRank(model: LoadedModel, s: DecomposeSettings): void {
  if (s.rank === undefined) return;
  const eligible = model.convs.filter(
    (c) => !c.skipReason && c.groups === 1 && !(s.skipFirst && c.index === 0) && (!s.layers || s.layers.includes(c.name)),
  );
  if (eligible.length === 0) throw new DacError('EINVAL', 'no conv can be decomposed with these options', { model: model.path });
  // For spatial/channel, --rank is the DAC rank whose cost the width matches, so the DAC bound applies.
  const max = Math.max(...eligible.map((c) => maxRank(c, 'dac')));
  if (s.rank < 1 || s.rank > max) {
    throw new DacError('ERANGE', `rank ${s.rank} is out of range 1..${max} (largest DAC rank, min(n, kh*kw), of the layers)`, {
      model: model.path,
      field: 'rank',
    });
  }
}

/** Plans, decomposes and applies; the input model is untouched. */
export function decomposeLoaded(input: LoadedModel, s: DecomposeSettings, backend: Backend = getBackend()): DecomposeResult {
  const model = input;
  const names = new Set(model.convs.map((c) => c.name));
  for (const name of [...(s.layers ?? []), ...Object.keys(s.ranks ?? {})]) {
    if (!names.has(name)) {
      throw new DacError('EINVAL', `no conv named '${name}' (dac inspect lists them)`, { model: model.path, field: 'layers' });
    }
  }
  checkRank(model, s);
  const options: PlanOptions = {
    method: s.method,
    rank: s.rank,
    ranks: s.ranks,
    energy: s.energy,
    flopsSaved: s.flopsSaved,
    paramsSaved: s.paramsSaved,
    skipFirst: s.skipFirst,
    layers: s.layers,
    weighting: s.weighting,
    depthPenalty: s.depthPenalty,
  };
  for (const k of Object.keys(options) as (keyof PlanOptions)[]) if (options[k] === undefined) delete options[k];
  let plan: ModelPlan;
  try {
    plan = planModel(model.convs, model.other, options, backend);
  } catch (err) {
    if (err instanceof DacError) throw err;
    throw new DacError('EINVAL', (err as Error).message, { model: model.path });
  }
  const warnings: string[] = [];
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
  const byName = new Map<string, LayerReplacement>(replacements.map((r) => [r.name, r]));
  const layers = plan.layers.map((lp): LayerReport => {
    const conv = model.convs.find((c) => c.name === lp.name)!;
    const rep = byName.get(lp.name);
    const entry: LayerReport = {
      name: lp.name,
      method: lp.method,
      rank: lp.rank,
      macsBefore: lp.macsBefore,
      macsAfter: lp.macsAfter,
      paramsBefore: lp.paramsBefore,
      paramsAfter: lp.paramsAfter,
      relError: rep ? relativeError(conv.weights, reconstructWeights(rep, conv)) : 0,
      predictedError: lp.predictedError,
    };
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
  return {
    model: out,
    plan,
    warnings,
    report: {
      method: s.method,
      input: model.path,
      output: null,
      format: model.format,
      backend: backend.name,
      foldedBatchNorm: false,
      flops: { before: before.macs, after: after.macs },
      params: { before: before.params, after: after.params },
      layers,
    },
  };
}

function settingsFrom(values: Record<string, string | boolean | undefined>): DecomposeSettings {
  const method = (values.method as string | undefined) ?? 'dac';
  if (!['dac', 'spatial', 'channel', 'auto'].includes(method)) {
    throw new UsageError(`--method must be dac, spatial, channel or auto, got '${method}'`, 'decompose');
  }
  const weighting = values.weighting as string | undefined;
  if (weighting !== undefined && weighting !== 'bn' && weighting !== 'plain') {
    throw new UsageError(`--weighting must be bn or plain, got '${weighting}'`, 'decompose');
  }
  const s: DecomposeSettings = {
    method: method as DecomposeSettings['method'],
    rank: intOption(values.rank, '--rank', 0),
    ranks: ranksOption(values.ranks),
    energy: fractionOption(values.energy, '--energy', true),
    flopsSaved: fractionOption(values['flops-saved'], '--flops-saved', false),
    paramsSaved: fractionOption(values['params-saved'], '--params-saved', false),
    skipFirst: values['skip-first'] === true,
    layers: listOption(values.layers, '--layers'),
    weighting: weighting as DecomposeSettings['weighting'],
    depthPenalty: floatOption(values['depth-penalty'], '--depth-penalty'),
    biasCorrection: values['no-bias-correction'] !== true,
    threads: intOption(values.threads, '--threads', 1, 1024),
  };
  if (s.rank === 0) throw new UsageError('--rank must be at least 1, got 0', 'decompose');
  if (s.depthPenalty !== undefined && s.depthPenalty < 0) throw new UsageError('--depth-penalty must be >= 0', 'decompose');
  const explicit = s.rank !== undefined || s.ranks !== undefined;
  const budget = s.flopsSaved !== undefined || s.paramsSaved !== undefined;
  const policies = [explicit, s.energy !== undefined, budget].filter(Boolean).length;
  if (s.rank !== undefined && s.ranks !== undefined) throw new UsageError('give --rank or --ranks, not both', 'decompose');
  if (policies === 0) throw new UsageError('give a policy: --rank, --ranks, --energy, --flops-saved or --params-saved', 'decompose');
  if (policies > 1) throw new UsageError('give only one policy: --rank/--ranks, --energy, or --flops-saved/--params-saved', 'decompose');
  if (s.method === 'auto' && explicit) throw new UsageError('--method auto picks ranks itself: use --flops-saved, --params-saved or --energy', 'decompose');
  return s;
}

/** Where report.json goes for an output path. */
export function defaultReportPath(format: string, output: string): string {
  return format === 'tfjs' ? path.join(output, 'report.json') : path.join(path.dirname(output), 'report.json');
}

export async function runDecompose(args: string[]): Promise<number> {
  const { values, positionals } = parse('decompose', args, decomposeOptions);
  if (values.help) {
    process.stdout.write(decomposeHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('decompose takes exactly one model path', 'decompose');
  const inputPath = positionals[0];
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('-o/--output is required', 'decompose');
  const settings = settingsFrom(values);

  // Output checks come before any work, so a bad path fails fast and leaves nothing behind.
  const format = detectFormat(inputPath);
  if (format === 'onnx' && !/\.onnx$/i.test(output)) {
    throw new DacError('EINVAL', `output for an ONNX model must be a .onnx file path, got ${output}`, { field: 'output' });
  }
  if (format === 'tfjs' && /\.json$/i.test(output)) {
    throw new DacError('EINVAL', `output for a TF.js model is a folder; got ${output} (drop the file name)`, { field: 'output' });
  }
  const inputFiles = [inputPath];
  if (format === 'tfjs') {
    const dir = fs.statSync(inputPath).isDirectory() ? inputPath : path.dirname(inputPath);
    inputFiles.push(dir);
  }
  checkOutputPath(output, inputFiles);
  const reportPath = (values.report as string | undefined) ?? defaultReportPath(format, output);
  if (values.report !== undefined || format === 'onnx') checkOutputPath(reportPath, inputFiles);

  let model = await loadModel(inputPath);
  if (values['fold-bn']) model = model.foldBatchNorm();
  const result = decomposeLoaded(model, settings);
  for (const w of result.warnings) process.stderr.write(`dac: warning: ${w}\n`);
  const report: Report = { ...result.report, input: inputPath, output, foldedBatchNorm: values['fold-bn'] === true };
  const reportText = `${JSON.stringify(report, null, 2)}\n`;

  if (result.model instanceof TfjsModel && values.report === undefined) {
    await result.model.save(output, new Map([['report.json', reportText]]));
  } else {
    await result.model.save(output);
    try {
      await writeFileAtomic(reportPath, reportText);
    } catch (err) {
      fs.rmSync(output, { recursive: true, force: true });
      throw err;
    }
  }
  if (!values.quiet) {
    const { flops, params } = report;
    const changed = report.layers.filter((l) => l.method !== 'keep').length;
    process.stdout.write(
      `wrote ${output} (${format}): ${changed} of ${report.layers.length} convs replaced (${settings.method})\n` +
        `  MACs   ${fmtInt(flops.before)} -> ${fmtInt(flops.after)} (${fmtSaving(flops.before, flops.after)})\n` +
        `  params ${fmtInt(params.before)} -> ${fmtInt(params.after)} (${fmtSaving(params.before, params.after)})\n` +
        `  report ${reportPath}\n`,
    );
  }
  return 0;
}
