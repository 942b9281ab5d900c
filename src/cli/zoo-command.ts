// `dac zoo <dir> -o <outdir>`: decompose every model under a folder. The
// policy and method flags are `dac decompose`'s (same names, same checks);
// --jobs, --force, --retry-failed and --timeout are the zoo's.
import * as path from 'node:path';
import { DEFAULT_MAX_MODEL_MB } from '../io/limits.js';
import { releaseOnSignals } from '../io/lock.js';
import { DEFAULT_TIMEOUT_MS, prepareZooProcess, runZoo } from '../zoo/run.js';
import { mergeShards, parseShard, summaryBase } from '../zoo/shard.js';
import type { ZooSummary } from '../zoo/summary.js';
import { decomposeOptions } from './decompose.js';
import { floatOption, fmtPct, intOption, parse, UsageError, type Options } from './common.js';
import { maxModelBytesFrom, settingsFrom, tfjsLayerFrom } from './settings.js';
import { readLatencyTable, RUNTIMES, type RuntimeId } from '../latency/index.js';
import type { ZooSettings } from '../zoo/job.js';
import type { ZooLatencySettings } from '../zoo/latency.js';

// The decompose flags a zoo run implements: all but --report (each model's report goes beside its
// output), refused as unknown rather than ignored.
const NOT_IN_ZOO = new Set(['report']);
export const zooOptions: Options = {
  ...Object.fromEntries(Object.entries(decomposeOptions).filter(([name]) => !NOT_IN_ZOO.has(name))),
  jobs: { type: 'string', short: 'j' },
  force: { type: 'boolean' },
  'retry-failed': { type: 'boolean' },
  timeout: { type: 'string' },
  shard: { type: 'string' },
  merge: { type: 'boolean' },
};

export const zooHelp = `Usage: dac-conv zoo <dir> -o <outdir> [policy] [options] [--shard K/N]
       dac-conv zoo --merge <outdir>... [-o <dir>]

Decomposes every TF.js Layers model (a model.json with its shards) and every
.onnx file under <dir>, in parallel worker threads, into <outdir>: the tree is
mirrored (TF.js: model.json, shards and report.json in the model's folder;
ONNX: x.onnx and x.report.json), and summary.json + summary.md list each
model as ok, failed (with the reason) or skipped. A failing model does not
stop the run; the exit code is 1 if any failed.

Resumable: a model's outcome counts only once its marker is written (last,
atomically, in <outdir>/.dac-zoo), recording its files' sizes and times and
the options. Re-running skips models done before, and reports models that
failed before (for their content, their size, a timeout or a crash) as failed
again without redoing them, unless their files or the options changed, the
limit they failed on was raised, --retry-failed or --force. Symlinks leading
out of <dir> are not followed; <outdir> is skipped if it lies inside <dir>.

One run at a time per <outdir>: a run holds <outdir>/.dac-zoo/lock (its pid,
host and start time) and a second run fails naming it. A lock left by a run
that is gone (its pid no longer runs on this host) is taken over, with a note;
a run refreshes its lock every minute, and another host's lock left
unrefreshed for 10 minutes (its machine died) is taken over too.

Across machines: --shard K/N works on the models whose path (relative to
<dir>) hashes to K of N: the same split on every machine and every re-run.
Each shard has its own lock and summary-K-of-N.json/.md, so N shards
(one per machine, job array task or ssh host) may share one <outdir> on a
shared filesystem, or write to separate ones. Runs of different splits, or a
whole-zoo run, are refused on an <outdir> where a shard is running. A shard
has finished when its summary-K-of-N.json exists (removed when it starts);
README.md shows Kubernetes, Slurm and GNU parallel runs.
--merge combines the shard summaries found in the given output folders (all N
shards of one split, same options) into summary.json + summary.md, written to
-o (default: the one folder given); exit code 1 if any model failed.

Policy and method: as dac-conv decompose, see dac-conv decompose --help:
  -m, --method M, -r, --rank N, --ranks, --energy, --flops-saved,
  --params-saved, --skip-first, --layers, --fold-bn, --weighting,
  --depth-penalty, --no-bias-correction, --paper, --tfjs-layer

Latency (see dac decompose --help and dac bench --help):
  --latency-saved F      save fraction F of each model's conv time measured in --runtime
  --latency-table FILE   a dac bench latency.json: its convs' times serve every conv of
                         the same geometry in any model; the others are measured
  --runtime R            ours, ort or tfjs (default per model, as dac decompose)
  Before any model is decomposed, the convs are timed one model at a time (batch 1),
  each distinct geometry (sizes, kernel, stride, padding, dilation) once per runtime.

Options:
  -o, --output DIR       output folder (required)
  -j, --jobs N           worker threads, i.e. models in memory at once (default: cores)
  --force                redo every model, even those done or failed before
  --retry-failed         redo the models that failed before (done ones stay done)
  --input-shape HxW[xC]  input size for models that leave height/width free (a model
                         fixing a different size fails); default: costs per input pixel
  --max-model-mb M       refuse a model whose files (model.json + shards, or the .onnx
                         file) add up to more than M MB, before reading them
                         (default ${DEFAULT_MAX_MODEL_MB})
  --timeout S            stop a model after S seconds and record it as failed
                         (default ${DEFAULT_TIMEOUT_MS / 1000}; 0: no limit)
  --threads N            decomposition threads per model (default: cores / jobs)
  --shard K/N            only shard K of N (1 <= K <= N) of the zoo's models
  --merge                combine shard summaries (see above)
  -q, --quiet            nothing on stdout, no progress on stderr; only the failed models
                         (one line each) and errors on stderr
  --json                 the summary (summary.json's content) as JSON on stdout; no progress
  -h, --help             this help
`;

/** `dac zoo`: 0 when every model is ok or skipped, 1 when any failed; usage errors throw UsageError (exit 2). */
export async function runZooCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('zoo', args, zooOptions);
  if (values.help) {
    process.stdout.write(zooHelp);
    return 0;
  }
  if (values.merge) return mergeCommand(values, positionals);
  if (positionals.length !== 1) throw new UsageError('zoo takes exactly one folder', 'zoo');
  const out = values.output as string | undefined;
  if (!out) throw new UsageError('-o/--output is required', 'zoo');
  const settings: ZooSettings = { ...settingsFrom(values, 'zoo'), ...zooLatencySettings(values) };
  const maxModelBytes = maxModelBytesFrom(values, 'zoo');
  const timeout = floatOption(values.timeout, '--timeout');
  if (timeout !== undefined && !(timeout >= 0 && Number.isFinite(timeout))) throw new UsageError('--timeout must be a number of seconds >= 0', 'zoo');

  const jobs = intOption(values.jobs, '--jobs', 1, 1024);
  const shard = values.shard === undefined ? undefined : parseShard(String(values.shard));
  if (shard === null) throw new UsageError(`--shard must be K/N with 1 <= K <= N, got '${values.shard}'`, 'zoo');

  // Ctrl-C or a kill ends the run without leaving its output folder locked.
  const undoSignals = releaseOnSignals();
  prepareZooProcess();
  let s: ZooSummary;
  try {
    s = await runZoo({
      root: positionals[0],
      out,
      settings,
      jobs,
      force: values.force === true,
      retryFailed: values['retry-failed'] === true,
      maxModelBytes,
      timeoutMs: timeout === undefined ? undefined : timeout * 1000,
      progress: values.quiet || values.json ? null : process.stderr,
      shard,
    });
  } finally {
    undoSignals();
  }
  return report(s, values);
}

/** --tfjs-layer and the latency flags as zoo settings; only the given ones (the settings are hashed into resume markers). */
function zooLatencySettings(values: Record<string, string | boolean | undefined>): ZooLatencySettings {
  const out: ZooLatencySettings = {};
  const tfjsLayer = tfjsLayerFrom(values, 'zoo');
  if (tfjsLayer !== undefined) out.tfjsLayer = tfjsLayer;
  const runtime = values.runtime as string | undefined;
  if (runtime !== undefined) {
    if (!RUNTIMES.includes(runtime as RuntimeId)) throw new UsageError(`--runtime must be ours, ort or tfjs, got '${runtime}'`, 'zoo');
    out.runtime = runtime as RuntimeId;
  }
  const table = values['latency-table'] as string | undefined;
  if (table !== undefined) {
    // Read now: a bad table fails the run before any work.
    readLatencyTable(table);
    out.latencyTable = path.resolve(table);
  }
  if (runtime !== undefined && table === undefined && values['latency-saved'] === undefined) {
    throw new UsageError('--runtime needs --latency-table or --latency-saved', 'zoo');
  }
  return out;
}

/** Prints the outcome of a run or a merge (as --quiet and --json say); its exit code. */
function report(s: ZooSummary, values: Record<string, string | boolean | undefined>): number {
  const failed = s.models.filter((r) => r.status === 'failed');
  if (values.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  else if (values.quiet) for (const r of failed) process.stderr.write(`dac zoo: failed ${r.model}${r.cached ? ' (in an earlier run)' : ''}: ${r.reason}\n`);
  else printSummary(s, failed);
  return failed.length > 0 ? 1 : 0;
}

function printSummary(s: ZooSummary, failed: ZooSummary['models']): void {
  const c = s.counts;
  const summaryFile = `${summaryBase(s.shard)}.md`;
  process.stdout.write(
    `dac zoo: ${c.total} models: ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped` +
      ` (${c.cached} known from an earlier run); ${fmtPct(s.flops.saved)} of their MACs saved; ${s.seconds.toFixed(1)} s\n` +
      `  summary ${s.out}/${summaryFile}\n`,
  );
  for (const n of s.notes ?? []) process.stdout.write(`  note: ${n}\n`);
  for (const r of failed) process.stdout.write(`  failed ${r.model}${r.cached ? ' (in an earlier run)' : ''}: ${r.reason}\n`);
  if (failed.some((r) => r.cached)) process.stdout.write('  models that failed in an earlier run were not retried; --retry-failed retries them\n');
}

/** `dac zoo --merge <outdir>... [-o dir]`: one summary from the shards' summaries. */
async function mergeCommand(values: Record<string, string | boolean | undefined>, dirs: string[]): Promise<number> {
  if (dirs.length === 0) throw new UsageError('--merge takes the output folder(s) of the shards', 'zoo');
  const clash = ['shard', 'jobs', 'force', 'retry-failed', 'timeout'].find((f) => values[f] !== undefined);
  if (clash) throw new UsageError(`--merge runs nothing: --${clash} does not apply`, 'zoo');
  const out = (values.output as string | undefined) ?? (dirs.length === 1 ? dirs[0] : undefined);
  if (!out) throw new UsageError('--merge of several folders needs -o <dir> for the merged summary', 'zoo');
  return report(await mergeShards(dirs, out), values);
}
