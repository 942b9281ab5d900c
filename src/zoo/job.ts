// What a zoo worker does with one model: check its size before reading it,
// load, plan, decompose, save the result and its report, then write the
// completion marker last. Runs inside a worker thread (worker.ts), so a
// model that throws, hangs or exhausts memory takes down only its worker.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getBackend } from '../backend/loader.js';
import { decomposeLoaded, type DecomposeSettings, type Report } from '../cli/decompose.js';
import { DacError } from '../errors.js';
import { loadModel } from '../formats/index.js';
import type { LoadedModel } from '../formats/model.js';
import { decomposeChannel, decomposeDac, decomposeDacBatch, decomposeSpatial } from '../index.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { ZooEntry } from './discover.js';
import { checkConvSizes } from './limits.js';
import { modelFiles, outputPaths, resetModel, STATE_DIR, stampFile, stampOutputs, writeMarker, type FileStamp } from './resume.js';
import type { ModelRecord } from './summary.js';
import { serializeError } from './pool.js';

/** What `dac decompose` does to one model (same settings), plus its --fold-bn. */
export interface ZooSettings extends DecomposeSettings {
  foldBn?: boolean;
}

export interface ZooJob {
  entry: ZooEntry;
  outRoot: string;
  settings: ZooSettings;
  optionsHash: string;
  maxModelBytes: number;
  /** Threads for the native SVDs of this model, unless the settings name them. */
  threads: number;
  /** Package version: a failure recorded by another version is retried. */
  toolVersion: string;
}

/** Failures that say nothing about the model's content: never remembered as its outcome. */
const RETRIED_CODES = new Set(['ETOOBIG', 'EWORKER', 'ETIMEOUT', 'ENOBACKEND']);

const relTo = (root: string, p: string): string => path.relative(root, p).split(path.sep).join('/');

/** Loads a model after the size checks every zoo model gets. */
export async function loadChecked(file: string, format: 'tfjs' | 'onnx', maxBytes: number, name: string): Promise<{ model: LoadedModel; inputs: FileStamp[] }> {
  const inputs = modelFiles(file, format, maxBytes, name);
  return { model: await loadModel(file), inputs };
}

/**
 * Saves a decomposed model to its mirrored place. TF.js goes through a
 * scratch folder under the state folder and its files are then renamed into
 * the mirrored folder one by one, model.json last: saving straight to the
 * mirrored folder would replace the whole folder, and with it any other
 * model's output that lives below it.
 */
async function saveMirrored(model: LoadedModel, target: string, outRoot: string): Promise<string[]> {
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  if (model.format === 'onnx') {
    await model.save(target);
    return [target];
  }
  const scratchRoot = path.join(outRoot, STATE_DIR, 'tmp');
  await fs.promises.mkdir(scratchRoot, { recursive: true });
  const scratch = await fs.promises.mkdtemp(path.join(scratchRoot, 'save-'));
  try {
    const folder = path.join(scratch, 'model');
    await model.save(folder);
    const names = (await fs.promises.readdir(folder)).sort((a, b) => Number(a === 'model.json') - Number(b === 'model.json'));
    const dest = path.dirname(target);
    for (const name of names) await fs.promises.rename(path.join(folder, name), path.join(dest, name));
    return names.map((n) => path.join(dest, n));
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}

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

export async function runZooJob(job: ZooJob): Promise<ModelRecord> {
  const t0 = performance.now();
  const { entry, outRoot } = job;
  const record: ModelRecord = { model: entry.rel, format: entry.format, status: 'failed' };
  let inputs: FileStamp[] | null = null;
  // Until saving starts, a failure comes from the model and the options alone.
  let saving = false;
  try {
    // The old marker goes first: from here until the new one is written the model is not done.
    resetModel(entry, outRoot);
    try {
      inputs = modelFiles(entry.path, entry.format, job.maxModelBytes, entry.rel);
    } catch (err) {
      // model.json itself is bad (or names a path it may not): its own stamp decides when to retry.
      if (fs.existsSync(entry.path)) inputs = [stampFile(entry.path)];
      throw err;
    }
    record.inputBytes = inputs.reduce((s, f) => s + Math.max(0, f.size), 0);
    const loaded = await loadModel(entry.path);
    checkConvSizes(loaded.convs, entry.rel);
    const model = job.settings.foldBn ? loaded.foldBatchNorm() : loaded;
    const { foldBn, ...settings } = job.settings;
    const nothing = nothingToDecompose(model, settings);
    if (nothing) {
      Object.assign(record, { status: 'skipped', reason: nothing, seconds: (performance.now() - t0) / 1000 } satisfies Partial<ModelRecord>);
      await writeMarker(entry, outRoot, {
        model: entry.rel,
        format: entry.format,
        optionsHash: job.optionsHash,
        toolVersion: job.toolVersion,
        inputs,
        outputs: [],
        record,
      });
      return record;
    }
    const result = decomposeLoaded(model, { ...settings, threads: settings.threads ?? job.threads }, getBackend());

    saving = true;
    const paths = outputPaths(entry, outRoot);
    const written = await saveMirrored(result.model, paths.model, outRoot);
    const seconds = (performance.now() - t0) / 1000;
    const { flops, params } = result.report;
    const flopsSaved = flops.before > 0 ? 1 - flops.after / flops.before : 0;
    // The report `dac decompose` writes, so a zoo result reads like a single decomposition.
    const output = entry.format === 'tfjs' ? path.dirname(paths.model) : paths.model;
    const report: Report = { ...result.report, input: entry.path, output, foldedBatchNorm: foldBn === true };
    await writeFileAtomic(paths.report, `${JSON.stringify(report, null, 2)}\n`);

    Object.assign(record, {
      status: 'ok',
      flopsBefore: flops.before,
      flopsAfter: flops.after,
      flopsSaved,
      paramsBefore: params.before,
      paramsAfter: params.after,
      layersDecomposed: report.layers.filter((l) => l.method !== 'keep').length,
      layersTotal: report.layers.length,
      output: relTo(outRoot, paths.model),
      report: relTo(outRoot, paths.report),
      seconds,
    } satisfies Partial<ModelRecord>);
    if (result.warnings.length) record.warnings = result.warnings;
    await writeMarker(entry, outRoot, {
      model: entry.rel,
      format: entry.format,
      optionsHash: job.optionsHash,
      toolVersion: job.toolVersion,
      inputs,
      outputs: stampOutputs([...written, paths.report], outRoot),
      record,
    });
    return record;
  } catch (err) {
    const e = serializeError(err);
    Object.assign(record, {
      status: 'failed',
      code: e.code ?? e.name,
      reason: err instanceof DacError ? e.message : `${e.name}: ${e.message}`,
      seconds: (performance.now() - t0) / 1000,
    } satisfies Partial<ModelRecord>);
    // A model the reader or planner rejects fails the same way next time while
    // its files and the options stay the same: remember that, so a re-run does
    // no work for it. Failures while saving (disk, permissions) and those of
    // the surroundings (size limit, lost worker, no backend) are retried.
    if (inputs && !saving && err instanceof DacError && !RETRIED_CODES.has(err.code)) {
      await writeMarker(entry, outRoot, {
        model: entry.rel,
        format: entry.format,
        optionsHash: job.optionsHash,
        toolVersion: job.toolVersion,
        inputs,
        outputs: [],
        record,
      }).catch(() => undefined);
    }
    return record;
  }
}

export interface InspectRequest {
  path: string;
  format: 'tfjs' | 'onnx';
  maxModelBytes: number;
  /** Also plan, decompose and apply (in memory) with these settings. */
  decompose?: ZooSettings;
  /** With decompose: save the result here and load it back. */
  saveTo?: string;
  /**
   * Run the zoo's size and path checks before loading and its size checks of
   * the convs after (default true); false hands the file straight to
   * loadModel and the decomposition, to test their own checks.
   */
  precheck?: boolean;
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
  const model =
    req.precheck === false ? await loadModel(req.path) : (await loadChecked(req.path, req.format, req.maxModelBytes, path.basename(req.path))).model;
  if (req.precheck !== false) checkConvSizes(model.convs, path.basename(req.path));
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
