// `dac decompose`: load a model, decompose it (src/decompose-model.ts: plan,
// build, rewrite, report), and write the result in its own format with
// report.json beside it.
import * as os from 'node:os';
import * as path from 'node:path';
import { decomposeLoaded, type Report } from '../decompose-model.js';
import { detectFormat, loadModel, withTfjsLayer } from '../formats/index.js';
import { DEFAULT_MAX_MODEL_MB } from '../io/limits.js';
import { prepareWrite, writeDecomposed } from '../write.js';
import { fmtInt, fmtSaving, parse, Progress, UsageError, type Options } from './common.js';
import { latencyFlags, latencyFlagsHelp, withLatency } from './bench.js';
import { inputShapeFlag, maxModelBytesFrom, planFlags, settingsFrom, tfjsLayerFrom } from './settings.js';

export const decomposeOptions: Options = {
  output: { type: 'string', short: 'o' },
  ...planFlags,
  'fold-bn': { type: 'boolean' },
  'no-bias-correction': { type: 'boolean' },
  report: { type: 'string' },
  threads: { type: 'string' },
  'max-model-mb': { type: 'string' },
  'tfjs-layer': { type: 'string' },
  ...latencyFlags,
  ...inputShapeFlag,
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
};

export const decomposeHelp = `Usage: dac-conv decompose <model> -o <out> [policy] [options]

Replaces the model's KxK convolutions by cheaper pairs and writes the result
in the input's format: a folder with model.json + shards for TF.js Layers, an
.onnx file for ONNX (missing parent folders are created). The report goes
beside the model: report.json inside the TF.js folder, <name>.report.json
next to <name>.onnx. Checks the paths before any work: never writes over,
renames over or deletes an input (symlinks and hard links included) or a
file dac did not write (an existing -o folder must be empty or an earlier
dac output). Writes whole: until the new output is complete and re-read,
the earlier one stays in place; on any error the exit code is non-zero and
nothing changed. One run at a time per output: a second run writing the
same -o fails at once, naming the first.

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
  --layers a,b           decompose only these convs (names as dac-conv inspect prints)
  --fold-bn              fold BatchNormalization into the preceding convs first
  --input-shape HxW[xC]  input size for a model that leaves height/width free (null);
                         without it costs are per input pixel (shapes evaluated at
                         1024x1024) and the written model keeps its free sizes either way
  --weighting bn|plain   error model for planning: weigh by the surrounding BatchNorms
                         (bn, default) or plain Frobenius error on the weights (the
                         default for a model with no BatchNorm statistics: BN folded)
  --depth-penalty X      budget policies: how much more early-layer errors cost (>= 0, default 0)
  --paper                the decompositions exactly as published: plain SVDs (DAC: per input
                         channel, pointwise = U_r S_r), original bias, no refit or corrections;
                         planned on the plain weight error; report.json says mode "paper"
  --no-bias-correction   do not fold the predicted mean shift into the biases
  --report PATH          where to write report.json instead of beside the model
  --tfjs-layer stock|dac TF.js output: write each DAC replacement as stock
                         DepthwiseConv2D + Conv2D (default; loads anywhere) or as one
                         DacConv2D layer (Layers models) or DacConv2D op node (graph
                         models) running our fused kernel (loads in a program that
                         imports 'dac-conv/tfjs'; Layers: also decomposes dilated convs;
                         convs with activations other than linear/relu/relu6 stay stock)
  --threads N            threads for planning and the decompositions (native backend;
                         default: every core)
  --max-model-mb M       refuse a model whose files (model.json + shards, or the .onnx
                         file) add up to more than M MB, before reading them
                         (default ${DEFAULT_MAX_MODEL_MB})
  -q, --quiet            no summary on stdout, no progress on stderr
  --json                 the summary as JSON on stdout (output, report, files with sizes and
                         SHA-256, MACs, params, layers); no progress on stderr
  -h, --help             this help

${latencyFlagsHelp}
report.json: { method, mode, input, output, format, inputShape, freeInput, weightDtype, flops: {before, after},
  flopsPerInputPixel?, params: {before, after},
  layers: [{ name, method, mode, rank, macsBefore, macsAfter, paramsBefore, paramsAfter,
             relError, predictedError, biasAdded?, reason? }], warnings? }
  MACs are exact (from real output sizes, one image of inputShape); a model with free
  input sizes and no --input-shape has freeInput true, is counted at 1024x1024 and
  flopsPerInputPixel gives MACs per input pixel; relError = ||W - W_approx|| / ||W||;
  biasAdded: bias correction gave a bias-free conv's replacement a bias; weightDtype: how the
  convs' weights are stored (float16 weights are decomposed in float32, written as float16);
  mode (decomposed layers): "paper" (--paper) or "ours" (weighted, refitted, corrected);
  warnings: what was also printed (e.g. a TF.js graph model's quantized conv whose factors
  are stored as float32 because requantizing would add too much error).
`;

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
  const { foldBn, inputShape, ...policy } = settingsFrom(values, 'decompose');
  // One model at a time: it may have every core (a zoo job gets cores / jobs).
  policy.threads ??= os.availableParallelism();
  const maxBytes = maxModelBytesFrom(values, 'decompose');
  const tfjsLayer = tfjsLayerFrom(values, 'decompose');

  if (tfjsLayer !== undefined && detectFormat(inputPath) !== 'tfjs') {
    throw new UsageError('--tfjs-layer applies to TF.js models only', 'decompose');
  }
  // Output checks come before any work, so a bad path fails fast and leaves nothing behind.
  const format = detectFormat(inputPath);
  const plan = prepareWrite({ input: inputPath, output, kind: format === 'onnx' ? 'file' : 'folder', report: values.report as string | undefined });
  try {
    const json = values.json === true;
    const progress = new Progress(values.quiet === true || json);

    progress.step(`loading ${inputPath}`);
    let model = await loadModel(inputPath, { maxBytes, inputShape });
    if (tfjsLayer !== undefined) model = withTfjsLayer(model, tfjsLayer);
    if (foldBn) model = model.foldBatchNorm();
    const settings = await withLatency(policy, values, model, format === 'onnx' ? 'ort' : tfjsLayer === 'dac' ? 'ours' : 'tfjs', 'decompose');
    progress.step(`decomposing ${model.convs.length} convs (${settings.method})`);
    const result = decomposeLoaded(model, settings);
    for (const w of result.warnings) process.stderr.write(`dac: warning: ${w}\n`);
    const report: Report = { ...result.report, input: inputPath, output, foldedBatchNorm: foldBn === true };
    progress.step(`writing ${output}`);
    const written = await writeDecomposed(plan, result.model, report, { loadOptions: { inputShape } });
    progress.done();
    const changed = report.layers.filter((l) => l.method !== 'keep').length;
    if (json) {
      const files = written.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 }));
      process.stdout.write(`${JSON.stringify({ output: path.resolve(output), report: written.report, format, replaced: changed, flops: report.flops, params: report.params, files, layers: report.layers }, null, 2)}\n`);
    } else if (!values.quiet) {
      const { flops, params } = report;
      process.stdout.write(
        `wrote ${output} (${format}): ${changed} of ${report.layers.length} convs replaced (${settings.method})\n` +
          (report.flopsPerInputPixel
            ? `  MACs per input pixel (free input size) ${fmtInt(report.flopsPerInputPixel.before)} -> ${fmtInt(report.flopsPerInputPixel.after)} (${fmtSaving(flops.before, flops.after)})\n`
            : `  MACs   ${fmtInt(flops.before)} -> ${fmtInt(flops.after)} (${fmtSaving(flops.before, flops.after)})\n`) +
          `  params ${fmtInt(params.before)} -> ${fmtInt(params.after)} (${fmtSaving(params.before, params.after)})\n` +
          `  report ${written.report}\n`,
      );
    }
    return 0;
  } finally {
    plan.release();
  }
}
