// `dac decompose`: load a model, decompose it (src/decompose-model.ts: plan,
// build, rewrite, report), and write the result in its own format with
// report.json beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decomposeLoaded, type Report } from '../decompose-model.js';
import { DacError } from '../errors.js';
import { detectFormat, loadModel } from '../formats/index.js';
import { TfjsModel } from '../formats/tfjs/model.js';
import { checkOutputPath, ensureParent, writeFileAtomic } from '../io/atomic.js';
import { DEFAULT_MAX_MODEL_MB } from '../io/limits.js';
import { fmtInt, fmtSaving, parse, UsageError, type Options } from './common.js';
import { maxModelBytesFrom, planFlags, settingsFrom } from './settings.js';

export const decomposeOptions: Options = {
  output: { type: 'string', short: 'o' },
  ...planFlags,
  'fold-bn': { type: 'boolean' },
  'no-bias-correction': { type: 'boolean' },
  report: { type: 'string' },
  threads: { type: 'string' },
  'max-model-mb': { type: 'string' },
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
  --max-model-mb M       refuse a model whose files (model.json + shards, or the .onnx
                         file) add up to more than M MB, before reading them
                         (default ${DEFAULT_MAX_MODEL_MB})
  -q, --quiet            no summary on stdout
  -h, --help             this help

report.json: { method, input, output, format, flops: {before, after}, params: {before, after},
  layers: [{ name, method, rank, macsBefore, macsAfter, paramsBefore, paramsAfter,
             relError, predictedError, reason? }] }
  MACs are exact (from real output sizes, one image); relError = ||W - W_approx|| / ||W||.
`;

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
  const { foldBn, ...settings } = settingsFrom(values, 'decompose');
  const maxBytes = maxModelBytesFrom(values, 'decompose');

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
  ensureParent(output);
  const reportPath = (values.report as string | undefined) ?? defaultReportPath(format, output);
  if (values.report !== undefined || format === 'onnx') {
    checkOutputPath(reportPath, inputFiles);
    ensureParent(reportPath);
  }

  let model = await loadModel(inputPath, { maxBytes });
  if (foldBn) model = model.foldBatchNorm();
  const result = decomposeLoaded(model, settings);
  for (const w of result.warnings) process.stderr.write(`dac: warning: ${w}\n`);
  const report: Report = { ...result.report, input: inputPath, output, foldedBatchNorm: foldBn === true };
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
