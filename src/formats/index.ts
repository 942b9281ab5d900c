// Format-neutral entry: loadModel() picks the reader from the path.
//   a folder, or a *.json file   -> TF.js Layers (model.json + shards)
//   a *.onnx file                -> ONNX
import { checkConvSizes } from '../zoo/limits.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';
import type { ModelFormat } from '../model/types.js';
import type { LoadedModel } from './model.js';
import { loadOnnx } from './onnx/model.js';
import { loadTfjs } from './tfjs/model.js';

export type { LoadedModel } from './model.js';
export { OnnxModel, parseOnnx } from './onnx/model.js';
export { TfjsModel } from './tfjs/model.js';
export { fileHandler, memoryHandler } from './tfjs/io.js';

/** The format a path holds, or an error saying why it is neither. */
export function detectFormat(file: string): ModelFormat {
  if (!fs.existsSync(file)) throw new DacError('ENOENT', 'no such file or folder', { model: file });
  const st = fs.statSync(file);
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(file, 'model.json'))) return 'tfjs';
    throw new DacError('EFORMAT', 'folder has no model.json (expected a TF.js Layers model)', { model: file });
  }
  if (/\.onnx$/i.test(file)) return 'onnx';
  if (/\.json$/i.test(file)) return 'tfjs';
  throw new DacError('EFORMAT', 'unknown model format: expected a folder or model.json (TF.js) or a .onnx file', { model: file });
}

export async function loadModel(file: string): Promise<LoadedModel> {
  if (typeof file !== 'string' || file.length === 0) {
    throw new DacError('EINVAL', 'model path must be a non-empty string', { field: 'path' });
  }
  const model = await (detectFormat(file) === 'onnx' ? loadOnnx(file) : loadTfjs(file));
  // Absurd declared sizes would make cost accounting and planning walk them.
  checkConvSizes(model.convs, path.basename(file));
  return model;
}
