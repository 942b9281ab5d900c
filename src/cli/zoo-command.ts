// `dac zoo <dir> -o <outdir>`: decompose every model under a folder. The
// policy and method flags are `dac decompose`'s (same names, same checks);
// --jobs, --force, --retry-failed and --timeout are the zoo's.
import { DEFAULT_MAX_MODEL_MB } from '../io/limits.js';
import { releaseOnSignals } from '../zoo/lock.js';
import { DEFAULT_TIMEOUT_MS, runZoo } from '../zoo/run.js';
import { mergeShards, parseShard, summaryBase } from '../zoo/shard.js';
import type { ZooSummary } from '../zoo/summary.js';
import { decomposeOptions } from './decompose.js';
import { floatOption, fmtPct, intOption, parse, UsageError, type Options } from './common.js';
import { maxModelBytesFrom, settingsFrom } from './settings.js';

// The decompose flags a zoo run implements. Not: --report (each model's report goes beside its
// output), --json (a run prints its summary), --tfjs-layer, and the latency policy (its table is
// measured per model), which the zoo does not pass on: refused as unknown rather than ignored.
const NOT_IN_ZOO = new Set(['report', 'json', 'tfjs-layer', 'latency-saved', 'latency-table', 'runtime']);
export const zooOptions: Options = {
  ...Object.fromEntries(Object.entries(decomposeOptions).filter(([name]) => !NOT_IN_ZOO.has(name))),
  jobs: { type: 'string', short: 'j' },
  force: { type: 'boolean' },
  'retry-failed': { type: 'boolean' },
  timeout: { type: 'string' },
  shard: { type: 'string' },
  merge: { type: 'boolean' },
};

export const zooHelp = `Usage: dac zoo <dir> -o <outdir> [policy] [options] [--shard K/N]
       dac zoo --merge <outdir>... [-o <dir>]

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
whole-zoo run, are refused on an <outdir> where a shard is running.
--merge combines the shard summaries found in the given output folders (all N
shards of one split, same options) into summary.json + summary.md, written to
-o (default: the one folder given); exit code 1 if any model failed.

Policy and method: as dac decompose, see dac decompose --help:
  -m, --method M, -r, --rank N, --ranks, --energy, --flops-saved,
  --params-saved, --skip-first, --layers, --fold-bn, --weighting,
  --depth-penalty, --no-bias-correction, --paper

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
  -q, --quiet            no progress (a bar on a terminal, a line per model otherwise)
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
  const settings = settingsFrom(values, 'zoo');
  const maxModelBytes = maxModelBytesFrom(values, 'zoo');
  const timeout = floatOption(values.timeout, '--timeout');
  if (timeout !== undefined && !(timeout >= 0 && Number.isFinite(timeout))) throw new UsageError('--timeout must be a number of seconds >= 0', 'zoo');

  const jobs = intOption(values.jobs, '--jobs', 1, 1024);
  const shard = values.shard === undefined ? undefined : parseShard(String(values.shard));
  if (shard === null) throw new UsageError(`--shard must be K/N with 1 <= K <= N, got '${values.shard}'`, 'zoo');

  // Ctrl-C or a kill ends the run without leaving its output folder locked.
  const undoSignals = releaseOnSignals();
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
      progress: values.quiet ? null : process.stderr,
      shard,
    });
  } finally {
    undoSignals();
  }
  return report(s);
}

/** Prints the outcome of a run or a merge; its exit code. */
function report(s: ZooSummary): number {
  const c = s.counts;
  const summaryFile = `${summaryBase(s.shard)}.md`;
  process.stdout.write(
    `dac zoo: ${c.total} models: ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped` +
      ` (${c.cached} known from an earlier run); ${fmtPct(s.flops.saved)} of their MACs saved; ${s.seconds.toFixed(1)} s\n` +
      `  summary ${s.out}/${summaryFile}\n`,
  );
  for (const n of s.notes ?? []) process.stdout.write(`  note: ${n}\n`);
  const failed = s.models.filter((r) => r.status === 'failed');
  for (const r of failed) process.stdout.write(`  failed ${r.model}${r.cached ? ' (in an earlier run)' : ''}: ${r.reason}\n`);
  if (failed.some((r) => r.cached)) process.stdout.write('  models that failed in an earlier run were not retried; --retry-failed retries them\n');
  return failed.length > 0 ? 1 : 0;
}

/** `dac zoo --merge <outdir>... [-o dir]`: one summary from the shards' summaries. */
async function mergeCommand(values: Record<string, string | boolean | undefined>, dirs: string[]): Promise<number> {
  if (dirs.length === 0) throw new UsageError('--merge takes the output folder(s) of the shards', 'zoo');
  const clash = ['shard', 'jobs', 'force', 'retry-failed', 'timeout'].find((f) => values[f] !== undefined);
  if (clash) throw new UsageError(`--merge runs nothing: --${clash} does not apply`, 'zoo');
  const out = (values.output as string | undefined) ?? (dirs.length === 1 ? dirs[0] : undefined);
  if (!out) throw new UsageError('--merge of several folders needs -o <dir> for the merged summary', 'zoo');
  return report(await mergeShards(dirs, out));
}
