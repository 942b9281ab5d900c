// A tf.io handler for Node files that needs only pure-JS @tensorflow/tfjs:
// tf.loadLayersModel(fileHandler('m/model.json')) and
// model.save(fileHandler('out/')) without @tensorflow/tfjs-node. Reading goes
// through the same validated manifest reader as the rest of the package.
import * as nodePath from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { DacError } from '../../errors.js';
import { writeFolderAtomic } from '../../io/atomic.js';
import { serializeArtifacts, type ModelJson, type WeightEntry, type WeightSpec, storedBytes } from './manifest.js';
import { loadTfjs, type TfjsModel } from './model.js';

function concatWeightData(data: ArrayBuffer | ArrayBuffer[] | undefined): Uint8Array {
  if (!data) return new Uint8Array(0);
  if (!Array.isArray(data)) return new Uint8Array(data);
  const total = data.reduce((a, b) => a + b.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of data) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out;
}

/** Artifacts of an already loaded model (no file access): a Layers TfjsModel or a graph model. */
export function memoryHandler(model: Pick<TfjsModel, 'artifacts'> | { artifacts(): object }): io.IOHandler {
  return {
    load: async () => model.artifacts() as unknown as io.ModelArtifacts,
  };
}

/**
 * `path`: a model.json file or a folder. load() reads it; save() writes
 * model.json and shards into the folder atomically.
 */
export function fileHandler(path: string): io.IOHandler {
  return {
    load: async () => (await loadTfjs(path)).artifacts() as unknown as io.ModelArtifacts,
    save: async (artifacts: io.ModelArtifacts): Promise<io.SaveResult> => {
      const dir = /\.json$/i.test(path) ? nodePath.dirname(path) : path;
      if (!artifacts.modelTopology || artifacts.modelTopology instanceof ArrayBuffer) {
        throw new DacError('EINVAL', 'only Layers models (JSON topology) can be saved', { model: path });
      }
      const data = concatWeightData(artifacts.weightData as ArrayBuffer | ArrayBuffer[] | undefined);
      const specs = (artifacts.weightSpecs ?? []) as unknown as WeightSpec[];
      const weights: WeightEntry[] = [];
      let offset = 0;
      for (const spec of specs) {
        const size = storedBytes(spec);
        weights.push({ spec, bytes: data.subarray(offset, offset + size) });
        offset += size;
      }
      if (offset !== data.length) {
        throw new DacError('ESHAPE', `weight data has ${data.length} bytes, the specs describe ${offset}`, { model: path });
      }
      const json: ModelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology as Record<string, unknown>,
      };
      await writeFolderAtomic(nodePath.resolve(dir), serializeArtifacts(json, weights));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: data.length,
        },
      };
    },
  };
}
