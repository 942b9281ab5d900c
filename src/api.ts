// The whole-model API: load a TF.js Layers or ONNX model (from a path or
// from bytes), plan, decompose, save (to a path or to bytes) and report, the
// same steps `dac-conv decompose` takes, as functions of the package root.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { modelCost, type ModelCost } from './cost.js';
import { decomposeLoaded, type DecomposeResult, type ModelSettings } from './decompose-model.js';
import { DacError } from './errors.js';
import { detectFormat as detect, GraphModel, loadModel as load, OnnxModel, parseOnnx, TfjsModel, type LoadedModel, type LoadOptions } from './formats/index.js';
import { checkByteLimit, DEFAULT_MAX_MODEL_BYTES } from './io/limits.js';
import type { ModelFormat } from './model/types.js';
import { planModel, planOptionsFrom, type ModelPlan, type PlanOptions } from './plan/index.js';

export { NOMINAL_FREE_SIZE, type LoadedModel, type LoadOptions } from './formats/index.js';
export type { DecomposeResult, DecomposeSettings, LayerReport, ModelSettings, Report } from './decompose-model.js';
export type { ModelPlan, PlanMethod, PlanOptions } from './plan/index.js';
export type { ModelCost } from './cost.js';
export type { ConvLayerInfo, LayerPlan, Method, ModelFormat } from './model/types.js';

/** The format a path holds (a folder or model.json: TF.js; .onnx: ONNX), or an error saying why it is neither. */
export function detectFormat(file: string): ModelFormat {
  return detect(file);
}

/** Loads a TF.js model (a folder or its model.json; Layers or graph) or an ONNX file. */
export function loadModel(file: string, options: LoadOptions = {}): Promise<LoadedModel> {
  return load(file, options);
}

/**
 * A TF.js model as its files: `model.json` (text or UTF-8 bytes) and
 * the weight shards it names, by file name.
 */
export type ModelFiles = Record<string, Uint8Array | string>;

/** A model in memory: an ONNX file's bytes, or a TF.js model's files. */
export type ModelBytes = Uint8Array | ModelFiles;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

function byteLength(v: Uint8Array | string): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : v.byteLength;
}

/**
 * Loads a model from memory: ONNX bytes, or a TF.js model's files, with the
 * same checks and options as loadModel (TF.js files pass through a private
 * temporary folder, removed before this returns, so the one validated reader
 * reads them). `options.name` names the model in messages (default 'model').
 */
export async function loadModelFromBytes(data: ModelBytes, options: LoadOptions & { name?: string } = {}): Promise<LoadedModel> {
  const maxBytes = checkByteLimit(options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES, 'maxBytes');
  const name = options.name ?? 'model';
  if (typeof name !== 'string' || name !== nodePath.basename(name) || name === '.' || name === '..' || name === '') {
    throw new DacError('EINVAL', 'name must be a plain file name', { field: 'name' });
  }
  if (isBytes(data)) {
    if (data.byteLength > maxBytes) {
      throw new DacError('ETOOBIG', `model has ${data.byteLength} bytes, more than maxBytes ${maxBytes}`, { model: name });
    }
    return parseOnnx(data, /\.onnx$/i.test(name) ? name : `${name}.onnx`);
  }
  if (!data || typeof data !== 'object' || !('model.json' in data)) {
    throw new DacError('EINVAL', 'expected ONNX bytes (a Uint8Array) or TF.js files ({ "model.json": ..., shards })', { field: 'data' });
  }
  const files = Object.keys(data);
  for (const file of files) {
    if (file !== nodePath.basename(file) || file === '.' || file === '..') {
      throw new DacError('EINVAL', `file name ${file} must be a plain name (no folders)`, { model: name, field: 'data' });
    }
  }
  const total = files.reduce((a, f) => a + byteLength(data[f]), 0);
  if (total > maxBytes) throw new DacError('ETOOBIG', `model files have ${total} bytes, more than maxBytes ${maxBytes}`, { model: name });
  const tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'dac-conv-'));
  try {
    // The folder's name is the model's name (TF.js models are named after their folder).
    const dir = nodePath.join(tmp, name);
    fs.mkdirSync(dir);
    for (const file of files) fs.writeFileSync(nodePath.join(dir, file), data[file]);
    return await load(dir, { ...options, maxBytes });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The method and rank of every conv under a policy (what `dac-conv inspect` prints); nothing is built. */
export function planDecomposition(model: LoadedModel, options: PlanOptions): ModelPlan {
  return planModel(model.convs, model.other, planOptionsFrom(options));
}

/**
 * Plans, builds the replacements and rewrites the model in memory; the input
 * model is untouched. `result.report` is what `dac-conv decompose` writes as
 * its report (with `output` null).
 */
export function decomposeModel(model: LoadedModel, settings: ModelSettings): DecomposeResult {
  const source = settings.foldBn ? model.foldBatchNorm() : model;
  const result = decomposeLoaded(source, settings);
  return { ...result, report: { ...result.report, input: model.path, foldedBatchNorm: settings.foldBn === true } };
}

/** MACs and parameters of a model (convs, the rest, the total) at `model.inputShape`: with `model.freeInput`, the nominal size. */
export function modelReport(model: LoadedModel): ModelCost {
  return modelCost(model.convs, model.other);
}

/** Writes a model atomically: TF.js to a folder (model.json + shards), ONNX to a file; never over its input. */
export async function saveModel(model: LoadedModel, outPath: string): Promise<void> {
  await model.save(outPath);
}

/** A model as bytes: ONNX as one Uint8Array, TF.js as its files (what saveModel would write). */
export function modelToBytes(model: OnnxModel): Uint8Array;
export function modelToBytes(model: TfjsModel | GraphModel): ModelFiles;
export function modelToBytes(model: LoadedModel): ModelBytes;
export function modelToBytes(model: LoadedModel): ModelBytes {
  if (model instanceof OnnxModel) return model.bytes();
  if (model instanceof TfjsModel || model instanceof GraphModel) return Object.fromEntries(model.outputFiles());
  throw new DacError('EINVAL', `cannot encode a model of format ${model.format}`, { model: model.path });
}
