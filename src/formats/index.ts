// Format-neutral entry: loadModel() picks the reader from the path.
//   a folder, or a *.json file   -> TF.js (model.json + shards): Layers, or a
//                                   graph model when its "format" is "graph-model"
//   a *.onnx file                -> ONNX
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';
import { checkByteLimit, checkConvSizes, DEFAULT_MAX_MODEL_BYTES } from '../io/limits.js';
import type { FileData } from '../io/output.js';
import type { ModelFormat } from '../model/types.js';
import { FiniteValues, type LoadedModel } from './model.js';
import { loadOnnx, OnnxModel } from './onnx/model.js';
import { loadTfjs, TfjsModel, type TfjsLayerKind } from './tfjs/model.js';
import { GraphModel, isGraphModel, loadTfjsGraph } from './tfjs-graph/model.js';

export { NOMINAL_FREE_SIZE, type LoadedModel } from './model.js';
export { OnnxModel, parseOnnx } from './onnx/model.js';
export { TfjsModel, type TfjsLayerKind } from './tfjs/model.js';
export { GraphModel } from './tfjs-graph/model.js';
// ONNX protobuf builders, for code that writes small ONNX graphs of its own (src/latency).
export { create, DataType, encodeModel, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './onnx/schema.js';
export { floatTensor, intAttr, intsAttr } from './onnx/tensors.js';

/** The format a path holds, or an error saying why it is neither. */
export function detectFormat(file: string): ModelFormat {
  if (!fs.existsSync(file)) throw new DacError('ENOENT', 'no such file or folder', { model: file });
  const st = fs.statSync(file);
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(file, 'model.json'))) return 'tfjs';
    throw new DacError('EFORMAT', 'folder has no model.json (expected a TF.js model)', { model: file });
  }
  if (/\.onnx$/i.test(file)) return 'onnx';
  if (/\.json$/i.test(file)) return 'tfjs';
  throw new DacError('EFORMAT', 'unknown model format: expected a folder or model.json (TF.js) or a .onnx file', { model: file });
}

export interface LoadOptions {
  /**
   * Most bytes the model's files may take together (model.json and its
   * shards, or the .onnx file); a model over it is refused with ETOOBIG
   * before anything large is read. Default DEFAULT_MAX_MODEL_BYTES (2 GiB).
   */
  maxBytes?: number;
  /**
   * The input's [H, W] or [H, W, C], for models that declare free sizes
   * (otherwise they are evaluated at NOMINAL_FREE_SIZE and costed per input
   * pixel); must agree with every size the model does fix.
   */
  inputShape?: number[];
}

export function loadModel(file: string, options: LoadOptions = {}): Promise<LoadedModel> {
  return load(file, options, false);
}

/**
 * A model this package has just written, read back to check its structure
 * (src/write.ts): read and parsed as loadModel does, but its weights, known
 * finite from the model they were written from, are not scanned again (nor,
 * in TF.js, converted to OIHW unless asked for).
 */
export function loadWritten(file: string, options: LoadOptions = {}): Promise<LoadedModel> {
  return load(file, options, true);
}

async function load(file: string, options: LoadOptions, written: boolean): Promise<LoadedModel> {
  if (typeof file !== 'string' || file.length === 0) {
    throw new DacError('EINVAL', 'model path must be a non-empty string', { field: 'path' });
  }
  const maxBytes = checkByteLimit(options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES, 'maxBytes');
  const format = detectFormat(file);
  const model = await (format === 'onnx'
    ? loadOnnx(file, maxBytes, options.inputShape, new FiniteValues(written))
    : isGraphModel(file)
      ? loadTfjsGraph(file, { maxBytes, inputShape: options.inputShape })
      : loadTfjs(file, maxBytes, options.inputShape, new FiniteValues(written)));
  // Absurd declared sizes would make cost accounting and planning walk them.
  checkConvSizes(model.convs, path.basename(file), model.freeInput);
  return model;
}

/**
 * The same TF.js model writing its DAC replacements as `kind`: stock
 * DepthwiseConv2D + Conv2D, or one DacConv2D layer (Layers) or op node
 * (graph models). Other formats have no such choice: EUNSUPPORTED.
 */
export function withTfjsLayer(model: LoadedModel, kind: TfjsLayerKind): LoadedModel {
  if (model instanceof TfjsModel || model instanceof GraphModel) return model.withTfjsLayer(kind);
  throw new DacError('EUNSUPPORTED', `the TF.js layer kind applies to TF.js models, not ${model.format}`, { model: model.path, field: 'tfjsLayer' });
}

/**
 * A model as the files of its output, by name, and the one renamed last
 * (what a reader opens). Weights are written from the model's own bytes,
 * chunk by chunk (FileData); with contentNames the other files are named
 * by their content as they are written (TF.js shards, see placeOutput).
 */
export interface ModelFiles {
  files: Map<string, FileData>;
  commit: string;
  contentNames: boolean;
}

/**
 * What writing `model` puts in place (src/write.ts): a TF.js folder's
 * model.json and shards, or one .onnx file named `fileName`; null when the
 * model is not of the kind asked for.
 */
export function modelFiles(model: LoadedModel, kind: 'folder' | 'file', fileName: string): ModelFiles | null {
  if (kind === 'folder' && (model instanceof TfjsModel || model instanceof GraphModel)) return { files: model.outputSources(), commit: 'model.json', contentNames: true };
  if (kind === 'file' && model instanceof OnnxModel) return { files: new Map([[fileName, model.outputChunks()]]), commit: fileName, contentNames: false };
  return null;
}
