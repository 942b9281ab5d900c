// `dac zoo <dir> -o <outdir>`: decompose every model under a folder. The
// policy and method flags are `dac decompose`'s (same names, same checks);
// --jobs, --force, --max-model-mb and --timeout are the zoo's.
import { decomposeOptions, type DecomposeSettings } from './decompose.js';
import {
  floatOption,
  fmtPct,
  fractionOption,
  intOption,
  listOption,
  parse,
  ranksOption,
  UsageError,
  type Options,
} from './common.js';
import type { ZooSettings } from '../zoo/job.js';
import { DEFAULT_MAX_MODEL_MB, DEFAULT_TIMEOUT_MS, runZoo } from '../zoo/run.js';

// Every decompose flag but --report: each model's report goes beside its output.
export const zooOptions: Options = {
  ...Object.fromEntries(Object.entries(decomposeOptions).filter(([name]) => name !== 'report')),
  jobs: { type: 'string', short: 'j' },
  force: { type: 'boolean' },
  'max-model-mb': { type: 'string' },
  timeout: { type: 'string' },
};

export const zooHelp = `Usage: dac zoo <dir> -o <outdir> [policy] [options]

Decomposes every TF.js Layers model (a model.json with its shards) and every
.onnx file under <dir>, in parallel worker threads, into <outdir>: the tree is
mirrored (TF.js: model.json, shards and report.json in the model's folder;
ONNX: x.onnx and x.report.json), and summary.json + summary.md list each
model as ok, failed (with the reason) or skipped. A failing model does not
stop the run; the exit code is 1 if any failed.

Resumable: a model counts as done only once its completion marker is written
(last, atomically, in <outdir>/.dac-zoo), recording its files' sizes and
times and the options. Re-running skips done models and models that failed
for their content, unless their files or the options changed (or --force).
Symlinks leading out of <dir> are not followed; <outdir> is skipped if it
lies inside <dir>.

Policy and method: as dac decompose (--method, --rank, --ranks, --energy,
--flops-saved, --params-saved, --skip-first, --layers, --fold-bn,
--weighting, --depth-penalty, --no-bias-correction); see dac decompose --help.

Options:
  -o, --output DIR       output folder (required)
  -j, --jobs N           worker threads, i.e. models in memory at once (default: cores)
  --force                redo every model, even those already done
  --max-model-mb M       refuse models whose files add up to more than M MB, before
                         reading them (default ${DEFAULT_MAX_MODEL_MB})
  --timeout S            stop a model after S seconds and record it as failed
                         (default ${DEFAULT_TIMEOUT_MS / 1000}; 0: no limit)
  --threads N            decomposition threads per model (default: cores / jobs)
  -q, --quiet            no progress (a bar on a terminal, a line per model otherwise)
  -h, --help             this help
`;

/** The decomposition settings from decompose's flags, with decompose's rules. */
function zooSettings(values: Record<string, string | boolean | undefined>): ZooSettings {
  const method = (values.method as string | undefined) ?? 'dac';
  if (!['dac', 'spatial', 'channel', 'auto'].includes(method)) {
    throw new UsageError(`--method must be dac, spatial, channel or auto, got '${method}'`, 'zoo');
  }
  const weighting = values.weighting as string | undefined;
  if (weighting !== undefined && weighting !== 'bn' && weighting !== 'plain') {
    throw new UsageError(`--weighting must be bn or plain, got '${weighting}'`, 'zoo');
  }
  const s: ZooSettings = {
    method: method as DecomposeSettings['method'],
    rank: intOption(values.rank, '--rank', 1),
    ranks: ranksOption(values.ranks),
    energy: fractionOption(values.energy, '--energy', true),
    flopsSaved: fractionOption(values['flops-saved'], '--flops-saved', false),
    paramsSaved: fractionOption(values['params-saved'], '--params-saved', false),
    skipFirst: values['skip-first'] === true || undefined,
    layers: listOption(values.layers, '--layers'),
    weighting: weighting as DecomposeSettings['weighting'],
    depthPenalty: floatOption(values['depth-penalty'], '--depth-penalty'),
    biasCorrection: values['no-bias-correction'] === true ? false : undefined,
    threads: intOption(values.threads, '--threads', 1, 1024),
    foldBn: values['fold-bn'] === true || undefined,
  };
  if (s.depthPenalty !== undefined && s.depthPenalty < 0) throw new UsageError('--depth-penalty must be >= 0', 'zoo');
  const explicit = s.rank !== undefined || s.ranks !== undefined;
  const budget = s.flopsSaved !== undefined || s.paramsSaved !== undefined;
  const policies = [explicit, s.energy !== undefined, budget].filter(Boolean).length;
  if (s.rank !== undefined && s.ranks !== undefined) throw new UsageError('give --rank or --ranks, not both', 'zoo');
  if (policies === 0) throw new UsageError('give a policy: --rank, --ranks, --energy, --flops-saved or --params-saved', 'zoo');
  if (policies > 1) throw new UsageError('give only one policy: --rank/--ranks, --energy, or --flops-saved/--params-saved', 'zoo');
  if (s.method === 'auto' && explicit) throw new UsageError('--method auto picks ranks itself: use --flops-saved, --params-saved or --energy', 'zoo');
  // Absent keys, not undefined ones: the options hash of the resume markers is over what is set.
  for (const k of Object.keys(s) as (keyof ZooSettings)[]) if (s[k] === undefined) delete s[k];
  return s;
}

/** `dac zoo`: 0 when every model is ok or skipped, 1 when any failed; usage errors throw UsageError (exit 2). */
export async function runZooCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('zoo', args, zooOptions);
  if (values.help) {
    process.stdout.write(zooHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('zoo takes exactly one folder', 'zoo');
  const out = values.output as string | undefined;
  if (!out) throw new UsageError('-o/--output is required', 'zoo');
  const settings = zooSettings(values);
  const maxMb = floatOption(values['max-model-mb'], '--max-model-mb');
  if (maxMb !== undefined && !(maxMb > 0)) throw new UsageError('--max-model-mb must be > 0', 'zoo');
  const timeout = floatOption(values.timeout, '--timeout');
  if (timeout !== undefined && !(timeout >= 0)) throw new UsageError('--timeout must be >= 0 seconds', 'zoo');

  const s = await runZoo({
    root: positionals[0],
    out,
    settings,
    jobs: intOption(values.jobs, '--jobs', 1, 1024),
    force: values.force === true,
    maxModelMb: maxMb,
    timeoutMs: timeout === undefined ? undefined : timeout * 1000,
    progress: values.quiet ? null : process.stderr,
  });
  const c = s.counts;
  process.stdout.write(
    `dac zoo: ${c.total} models: ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped` +
      ` (${c.cached} known from an earlier run); ${fmtPct(s.flops.saved)} of their MACs saved; ${s.seconds.toFixed(1)} s\n` +
      `  summary ${s.out}/summary.md\n`,
  );
  for (const r of s.models) if (r.status === 'failed') process.stdout.write(`  failed ${r.model}: ${r.reason}\n`);
  return c.failed > 0 ? 1 : 0;
}
