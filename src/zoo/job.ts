// What a zoo worker does with one model: load it (within the size limit),
// decompose it as `dac decompose` would, save the result and its report, and
// write the completion marker last. A failure is recorded in the marker too,
// so a re-run does not redo it. Runs inside a worker thread (worker.ts), so a
// model that throws, hangs or exhausts memory takes down only its worker.
import * as path from 'node:path';
import { getBackend } from '../backend/loader.js';
import { decomposeLoaded, type ModelSettings, type Report } from '../decompose-model.js';
import { DacError } from '../errors.js';
import { loadModel } from '../formats/index.js';
import type { LoadedModel } from '../formats/model.js';
import { decomposeChannel, decomposeDac, decomposeDacBatch, decomposeSpatial } from '../index.js';
import { prepareWrite, writeDecomposed } from '../write.js';
import type { ZooEntry } from './discover.js';
import { outputPaths, resetModel, stampInputs, stampOutputs, writeMarker, type FileStamp, type RunLimits } from './resume.js';
import type { ModelRecord } from './summary.js';
import { serializeError } from './pool.js';

/** What `dac decompose` does to one model (same settings, --fold-bn included). */
export type ZooSettings = ModelSettings;

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
}

const relTo = (root: string, p: string): string => path.relative(root, p).split(path.sep).join('/');

/**
 * Why no conv of the model is a candidate under these settings (all 1x1,
 * grouped, dilated in TF.js, or excluded by --skip-first/--layers), or null
 * when some is. Such a model is skipped, not failed: a zoo holds them.
 */
function nothingToDecompose(model: LoadedModel, s: ZooSettings): string | null {
  const why = new Map<string, string>();
  for (const c of model.convs) {
    const reason =
      c.skipReason ??
      (c.groups !== 1 ? `grouped (groups=${c.groups})` : s.skipFirst && c.index === 0 ? 'first conv (--skip-first)' : s.layers && !s.layers.includes(c.name) ? 'not in --layers' : null);
    if (reason === null) return null;
    why.set(c.name, reason);
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

export async function runZooJob(job: ZooJob): Promise<ModelRecord> {
  const t0 = performance.now();
  const seconds = (): number => (performance.now() - t0) / 1000;
  const { entry, outRoot } = job;
  let record: ModelRecord = { model: entry.rel, format: entry.format, status: 'failed' };
  // The old marker goes first: from here until the new one is written the model is not done.
  resetModel(entry, outRoot);
  const inputs = stampInputs(entry.path, entry.format);
  record.inputBytes = inputs.reduce((s, f) => s + Math.max(0, f.size), 0);
  try {
    const loaded = await loadModel(entry.path, { maxBytes: job.limits.maxModelBytes, inputShape: job.settings.inputShape });
    const model = job.settings.foldBn ? loaded.foldBatchNorm() : loaded;
    const { foldBn, ...settings } = job.settings;
    const nothing = nothingToDecompose(model, settings);
    if (nothing) {
      record = { ...record, status: 'skipped', reason: nothing, seconds: seconds() };
      await recordOutcome(job, inputs, [], record);
      return record;
    }
    const paths = outputPaths(entry, outRoot);
    // Written as `dac decompose` writes (src/write.ts), paths checked before the work; the
    // mirrored folder may hold other models' outputs, so only our own file names must be free.
    const output = entry.format === 'tfjs' ? path.dirname(paths.model) : paths.model;
    const plan = prepareWrite({ input: entry.path, output, kind: entry.format === 'onnx' ? 'file' : 'folder', report: paths.report, requireOwnedFolder: false });
    const result = decomposeLoaded(model, { ...settings, threads: settings.threads ?? job.threads }, getBackend());
    const { flops, params } = result.report;
    // The report `dac decompose` writes, so a zoo result reads like a single decomposition.
    const report: Report = { ...result.report, input: entry.path, output, foldedBatchNorm: foldBn === true };
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

export interface InspectRequest {
  path: string;
  maxModelBytes: number;
  /** Also plan, decompose and apply (in memory) with these settings. */
  decompose?: ZooSettings;
  /** With decompose: save the result here and load it back. */
  saveTo?: string;
}

export interface InspectResult {
  name: string;
  format: string;
  convs: number;
  decomposable: number;
  inputShape: number[];
  flops?: { before: number; after: number };
  replaced?: number;
  /** Convs of the saved-and-reloaded result. */
  reloadedConvs?: number;
}

/** Loads (and optionally decomposes) a model in isolation and describes it; the zoo tests and fuzzing use it. */
export async function inspectModel(req: InspectRequest): Promise<InspectResult> {
  const model = await loadModel(req.path, { maxBytes: req.maxModelBytes });
  const out: InspectResult = {
    name: model.name,
    format: model.format,
    convs: model.convs.length,
    decomposable: model.convs.filter((c) => !c.skipReason).length,
    inputShape: [...model.inputShape],
  };
  if (req.decompose) {
    const { foldBn, ...settings } = req.decompose;
    const result = decomposeLoaded(foldBn ? model.foldBatchNorm() : model, settings, getBackend());
    out.flops = result.report.flops;
    out.replaced = result.report.layers.filter((l) => l.method !== 'keep').length;
    if (req.saveTo) {
      await result.model.save(req.saveTo);
      out.reloadedConvs = (await loadModel(req.saveTo)).convs.length;
    }
  }
  return out;
}

const isolated = { decomposeDac, decomposeSpatial, decomposeChannel, decomposeDacBatch } as const;

export interface CallRequest {
  fn: keyof typeof isolated;
  args: unknown[];
}

/**
 * Runs one public decomposition call in the worker, so a caller can feed it
 * untrusted arguments without risking its own process.
 */
export function callIsolated(req: CallRequest): unknown {
  const fn = isolated[req.fn] as ((...a: unknown[]) => unknown) | undefined;
  if (!Object.prototype.hasOwnProperty.call(isolated, req.fn) || !fn) {
    throw new DacError('EINVAL', `unknown function '${String(req.fn)}'`, { field: 'fn' });
  }
  return fn(...req.args);
}
