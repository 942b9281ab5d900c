// What a zoo worker does with one model: load it (within the size limit),
// decompose it as `dac decompose` would, save the result and its report, and
// write the completion marker last. A failure is recorded in the marker too,
// so a re-run does not redo it. Runs inside a worker thread (worker.ts), so a
// model that throws, hangs or exhausts memory takes down only its worker.
import * as path from 'node:path';
import { getBackend } from '../backend/loader.js';
import { decomposeLoaded, type DecomposeResult, type ModelSettings, type Report, type StageHooks } from '../decompose-model.js';
import { DacError } from '../errors.js';
import { loadModel, type LoadedModel } from '../formats/index.js';
import { exclusion, rankBeyondEvery } from '../plan/index.js';
import { prepareWrite, writeDecomposed, type WritePlan } from '../write.js';
import type { ZooEntry } from './discover.js';
import { outputPaths, resetModel, stampInputs, stampOutputs, writeMarker, type FileStamp, type RunLimits } from './resume.js';
import type { ModelRecord } from './summary.js';
import { deserializeError, serializeError } from './pool.js';
import { applyTfjsLayer, type ModelLatency, type ZooLatencySettings } from './latency.js';

/** What `dac decompose` does to one model (same settings, --fold-bn, --tfjs-layer and the latency flags included). */
export type ZooSettings = ModelSettings & ZooLatencySettings;

export interface ZooJob {
  entry: ZooEntry;
  outRoot: string;
  settings: ZooSettings;
  optionsHash: string;
  limits: RunLimits;
  /** Threads for the native SVDs of this model, unless the settings name them. */
  threads: number;
  /** Package version: a failure recorded by another version is retried. */
  toolVersion: string;
  /** With --latency-saved or --latency-table: the convs' measured times (zoo/latency.ts), or why they are missing. */
  latency?: ModelLatency;
}

const relTo = (root: string, p: string): string => path.relative(root, p).split(path.sep).join('/');

/**
 * Why no conv of the model is a candidate under these settings (all 1x1,
 * grouped, dilated in TF.js, or excluded by --skip-first/--layers: the
 * planner's exclusion), or why a uniform --rank fits none of them (above
 * each one's largest DAC rank, as in an already-decomposed model's 3x1
 * convs), or null when some conv is one. Such a model is skipped, not
 * failed: a zoo holds them.
 */
function nothingToDecompose(model: LoadedModel, s: ZooSettings): string | null {
  const why = new Map<string, string>();
  const candidates = model.convs.filter((c) => {
    const reason = exclusion(c, s);
    if (reason !== null) why.set(c.name, reason);
    return reason === null;
  });
  if (candidates.length > 0) {
    const beyond = rankBeyondEvery(candidates, s.rank);
    return beyond && `no conv to decompose at this rank: ${beyond}`;
  }
  if (why.size === 0) return 'no conv to decompose: the model has no 2-D convolution';
  const shown = [...why].slice(0, 3).map(([name, r]) => `${name}: ${r}`);
  return `no conv to decompose (${shown.join('; ')}${why.size > 3 ? `; and ${why.size - 3} more` : ''})`;
}

/** A failed record for `err`: its DacError code (or error name) and message. */
export function failure(record: ModelRecord, err: unknown, seconds?: number): ModelRecord {
  const e = serializeError(err);
  return {
    ...record,
    status: 'failed',
    code: e.code ?? e.name,
    reason: err instanceof DacError ? e.message : `${e.name}: ${e.message}`,
    ...(seconds === undefined ? {} : { seconds }),
  };
}

/** Records a model's outcome (done, skipped or failed) in its completion marker. */
export function recordOutcome(job: Pick<ZooJob, 'entry' | 'outRoot' | 'optionsHash' | 'toolVersion' | 'limits'>, inputs: FileStamp[], outputs: FileStamp[], record: ModelRecord): Promise<void> {
  const { entry } = job;
  return writeMarker(entry, job.outRoot, {
    model: entry.rel,
    format: entry.format,
    optionsHash: job.optionsHash,
    toolVersion: job.toolVersion,
    inputs,
    outputs,
    record,
    limits: job.limits,
  });
}

/**
 * Loads and decomposes the job's model, with the output's paths checked
 * before the work; or why there is nothing to decompose. The model as read
 * stays in here: while the result is written, only what the result shares
 * with it is kept in memory.
 */
async function decomposeJob(job: ZooJob, output: string, hooks: JobHooks): Promise<{ skipped: string } | { result: Omit<DecomposeResult, 'plan'>; plan: WritePlan }> {
  const { entry } = job;
  const loaded = applyTfjsLayer(await loadModel(entry.path, { maxBytes: job.limits.maxModelBytes, inputShape: job.settings.inputShape }), job.settings.tfjsLayer);
  const model = job.settings.foldBn ? loaded.foldBatchNorm() : loaded;
  const { foldBn, tfjsLayer, runtime, latencyTable, ...settings } = job.settings;
  if (job.latency && 'error' in job.latency) throw deserializeError(job.latency.error);
  if (job.latency) settings.latency = job.latency.latency;
  const nothing = nothingToDecompose(model, settings);
  if (nothing) return { skipped: nothing };
  // Written as `dac decompose` writes (src/write.ts), paths checked before the work; the
  // mirrored folder may hold other models' outputs, so only our own file names must be free.
  const plan = prepareWrite({ input: entry.path, output, kind: entry.format === 'onnx' ? 'file' : 'folder', report: outputPaths(entry, job.outRoot).report, requireOwnedFolder: false, lock: false });
  // The plan (and the error model it holds) is not kept either.
  const { model: out, report, warnings } = decomposeLoaded(model, { ...settings, threads: settings.threads ?? job.threads }, getBackend(), hooks);
  return { result: { model: out, report, warnings }, plan };
}

/** What the worker running a job lends it (worker.ts): a full garbage collection, where the process exposes one (prepareZooProcess). */
export type JobHooks = StageHooks;

export async function runZooJob(job: ZooJob, hooks: JobHooks = {}): Promise<ModelRecord> {
  const t0 = performance.now();
  const seconds = (): number => (performance.now() - t0) / 1000;
  const { entry, outRoot } = job;
  let record: ModelRecord = { model: entry.rel, format: entry.format, status: 'failed' };
  // The old marker goes first: from here until the new one is written the model is not done.
  resetModel(entry, outRoot);
  const inputs = stampInputs(entry.path, entry.format);
  record.inputBytes = inputs.reduce((s, f) => s + Math.max(0, f.size), 0);
  try {
    const paths = outputPaths(entry, outRoot);
    const output = entry.format === 'tfjs' ? path.dirname(paths.model) : paths.model;
    const done = await decomposeJob(job, output, hooks);
    if ('skipped' in done) {
      record = { ...record, status: 'skipped', reason: done.skipped, seconds: seconds() };
      await recordOutcome(job, inputs, [], record);
      return record;
    }
    const { result, plan } = done;
    // The model as read is garbage from here; collected before the write reads the output back, the two
    // are never in memory together (about 20-30 MiB off a VGG16-sized job's peak).
    hooks.collect?.();
    const { flops, params } = result.report;
    // The report `dac decompose` writes, so a zoo result reads like a single decomposition.
    const report: Report = { ...result.report, input: entry.path, output, foldedBatchNorm: job.settings.foldBn === true };
    const written = await writeDecomposed(plan, result.model, report, { loadOptions: { inputShape: job.settings.inputShape } });

    record = {
      ...record,
      status: 'ok',
      flopsBefore: flops.before,
      flopsAfter: flops.after,
      flopsSaved: flops.before > 0 ? 1 - flops.after / flops.before : 0,
      paramsBefore: params.before,
      paramsAfter: params.after,
      layersDecomposed: report.layers.filter((l) => l.method !== 'keep').length,
      layersTotal: report.layers.length,
      output: relTo(outRoot, paths.model),
      report: relTo(outRoot, paths.report),
      seconds: seconds(),
    };
    if (result.warnings.length) record.warnings = result.warnings;
    await recordOutcome(job, inputs, stampOutputs(written.files.map((f) => f.path), outRoot), record);
    return record;
  } catch (err) {
    record = failure(record, err, seconds());
    // Remembered whatever the cause (a re-run skips it unless --retry-failed,
    // or its files, the options or the limit it failed on change); a marker
    // that cannot be written leaves the model due, which is safe.
    await recordOutcome(job, inputs, [], record).catch(() => undefined);
    return record;
  }
}
