// `dac bench`: per-conv and whole-model latency of the user's model on this
// device (src/latency), written as latency.json, latency.md and latency.svg;
// and the --latency-* planning flags inspect and decompose share, which read
// such a table (or measure one first).
import * as path from 'node:path';
import * as fs from 'node:fs';
import { DacError } from '../errors.js';
import { loadModel, type LoadedModel } from '../formats/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { benchModel, DEFAULT_BENCH_PLAN, latencyMarkdown, latencySvg, planLatencies, readLatencyTable, RUNTIMES, convTotals, type RuntimeId } from '../latency/index.js';
import type { Method } from '../model/types.js';
import type { ModelSettings } from '../decompose-model.js';
import type { TfjsBackendName } from '../runtime/index.js';
import { intOption, listOption, parse, UsageError, type Options } from './common.js';
import { inputShapeFlag, inputShapeFrom, planFlags, settingsFrom } from './settings.js';

/** The flags that plan by measured latency (inspect and decompose). */
export const latencyFlags: Options = {
  'latency-saved': { type: 'string' },
  'latency-table': { type: 'string' },
  runtime: { type: 'string' },
};

export const latencyFlagsHelp = `Latency planning (with a policy; see dac-conv bench --help):
  --latency-saved F      save at least fraction F of the model's conv time measured in
                         --runtime (a policy on its own, like --flops-saved)
  --latency-table FILE   latency.json from dac-conv bench for this model; without it,
                         --latency-saved measures first (batch 1; minutes on big models)
  --runtime R            ours, ort or tfjs (default: ort for ONNX models, ours with
                         --tfjs-layer dac, else tfjs). With a table, no budget policy
                         (--latency-saved, --flops-saved, --params-saved) ever picks a
                         replacement that was not measured faster than the original
`;

export const benchOptions: Options = {
  ...planFlags,
  batch: { type: 'string' },
  threads: { type: 'string' },
  runtime: { type: 'string' },
  methods: { type: 'string' },
  reps: { type: 'string' },
  'no-model': { type: 'boolean' },
  'tfjs-backend': { type: 'string' },
  json: { type: 'boolean' },
  out: { type: 'string' },
  ...inputShapeFlag,
};

export const benchHelp = `Usage: dac-conv bench <model> [policy] [--batch N] [--threads N] [--runtime ours,ort,tfjs] [--json] [--out DIR]

Times every convolution of the model on this device, with its real input
size, stride, padding and dilation: the original conv, DAC at every rank
1..min(n, kh*kw) (our fused depthwise+pointwise kernel in 'ours'), spatial and
channel at the widths matching those ranks in cost. Then the whole model,
original against decomposed under the policy (default --method dac
--flops-saved 0.5), in each runtime that runs its format (TF.js models: tfjs,
also with DacConv2D layers; ONNX models: ort).

Runtimes (--runtime, default all; the ones not installed are listed and skipped):
  ours   this package's kernels (native addon, else WASM)
  ort    onnxruntime-node (optional peer)
  tfjs   @tensorflow/tfjs (tfjs-node, else tfjs-backend-wasm, else cpu; optional peer)

Options:
  --batch N              images per call (default 1)
  --threads N            threads for ours and ort (default 1; tfjs-wasm/cpu use one)
  --methods a,b          replacement methods to time (default dac,spatial,channel)
  --reps N               interleaved rounds per measurement, best one kept (default 5)
  --layers a,b           only these convs
  --no-model             skip the whole-model timing
  --tfjs-backend B       tensorflow, wasm or cpu (default: DAC_TFJS_BACKEND, else the best installed)
  --input-shape HxW[xC]  input size for a model that leaves height/width free (required for one)
  --out DIR              where latency.json, latency.md and latency.svg go (default ./dac-bench)
  --json                 print latency.json on stdout instead of the summary
  policy flags           as dac decompose: the plan whose whole model is timed
  -h, --help             this help

Progress goes to stderr. Per layer and runtime latency.json holds each replacement's
MACs ratio, time ratio (to the original conv timed in the same rounds) and realised/ideal
= (1 - time ratio) / (1 - MACs ratio). Feed it to inspect/decompose with --latency-table.
`;

function runtimeList(value: string | boolean | undefined): RuntimeId[] | undefined {
  const list = listOption(value, '--runtime');
  for (const r of list ?? []) if (!RUNTIMES.includes(r as RuntimeId)) throw new UsageError(`--runtime must list ours, ort or tfjs, got '${r}'`);
  return list as RuntimeId[] | undefined;
}

function tfjsBackendOf(value: string | boolean | undefined): TfjsBackendName | undefined {
  if (value === undefined) return undefined;
  if (value !== 'tensorflow' && value !== 'wasm' && value !== 'cpu') throw new UsageError(`--tfjs-backend must be tensorflow, wasm or cpu, got '${String(value)}'`);
  return value;
}

export async function runBench(args: string[]): Promise<number> {
  const { values, positionals } = parse('bench', args, benchOptions);
  if (values.help) {
    process.stdout.write(benchHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('bench takes exactly one model path', 'bench');
  const anyPolicy = Object.keys(planFlags).some((f) => values[f] !== undefined);
  const plan = anyPolicy ? settingsFrom(values, 'bench') : DEFAULT_BENCH_PLAN;
  const methods = listOption(values.methods, '--methods');
  for (const m of methods ?? []) if (!['dac', 'spatial', 'channel'].includes(m)) throw new UsageError(`--methods must list dac, spatial or channel, got '${m}'`, 'bench');
  const out = (values.out as string | undefined) ?? 'dac-bench';
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new DacError('EINVAL', `--out ${out} is a file, expected a folder`, { field: 'out' });
  const model = await loadModel(positionals[0], { inputShape: inputShapeFrom(values, 'bench') });
  const table = await benchModel(model, {
    batch: intOption(values.batch, '--batch', 1, 4096),
    threads: intOption(values.threads, '--threads', 1, 1024),
    reps: intOption(values.reps, '--reps', 1, 1000),
    runtimes: runtimeList(values.runtime),
    methods: methods as Method[] | undefined,
    layers: listOption(values.layers, '--layers'),
    plan: values['no-model'] ? null : plan,
    tfjsBackend: tfjsBackendOf(values['tfjs-backend']),
    progress: (line) => process.stderr.write(`dac bench: ${line}\n`),
  });
  fs.mkdirSync(out, { recursive: true });
  const json = `${JSON.stringify(table, null, 2)}\n`;
  await writeFileAtomic(path.join(out, 'latency.json'), json);
  await writeFileAtomic(path.join(out, 'latency.md'), latencyMarkdown(table));
  await writeFileAtomic(path.join(out, 'latency.svg'), latencySvg(table));
  if (values.json) {
    process.stdout.write(json);
    return 0;
  }
  const totals = convTotals(table);
  const lines = [`wrote ${path.join(out, 'latency.json')}, latency.md, latency.svg (${table.layers.length} convs, batch ${table.batch}, ${table.threads} thread(s))`];
  for (const r of table.runtimes) lines.push(`  ${r.id.padEnd(5)} conv time ${(totals[r.id] ?? 0).toFixed(2)} ms  (${r.name})`);
  for (const w of table.whole) if (w.ms !== null) lines.push(`  whole model, ${w.engine}, ${w.variant}: ${w.ms.toFixed(2)} ms`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/**
 * Adds the measured latencies --latency-table / --latency-saved ask for to
 * planning settings: read from the table, or measured now in the runtime.
 */
export async function withLatency(
  settings: ModelSettings,
  values: Record<string, string | boolean | undefined>,
  model: LoadedModel,
  defaultRuntime: RuntimeId,
  command: string,
): Promise<ModelSettings> {
  const tableFile = values['latency-table'] as string | undefined;
  const runtimeFlag = values.runtime as string | undefined;
  if (runtimeFlag !== undefined && !RUNTIMES.includes(runtimeFlag as RuntimeId)) {
    throw new UsageError(`--runtime must be ours, ort or tfjs, got '${runtimeFlag}'`, command);
  }
  if (tableFile === undefined && settings.latencySaved === undefined) {
    if (runtimeFlag !== undefined) throw new UsageError('--runtime needs --latency-table or --latency-saved', command);
    return settings;
  }
  const runtime = (runtimeFlag as RuntimeId | undefined) ?? defaultRuntime;
  let table;
  if (tableFile !== undefined) table = readLatencyTable(tableFile);
  else {
    process.stderr.write(`dac ${command}: no --latency-table: measuring the convs in ${runtime} first\n`);
    table = await benchModel(model, {
      runtimes: [runtime],
      methods: settings.method === 'auto' ? undefined : [settings.method],
      plan: null,
      threads: settings.threads,
      progress: (line) => process.stderr.write(`dac ${command}: ${line}\n`),
    });
  }
  return { ...settings, latency: planLatencies(table, runtime, model.convs, tableFile ?? model.path) };
}
