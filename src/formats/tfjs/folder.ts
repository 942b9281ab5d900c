// What TF.js Layers and graph models share as files: a model.json and its
// weight shards, held as the manifest's entries, handed to TF.js as tf.io
// artifacts and written whole into a folder (src/io/output.ts).
import { DacError, type ErrorContext } from '../../errors.js';
import { placeOutput, versionShards, type FileData } from '../../io/output.js';
import { artifactFiles, entryBytes, serializeArtifacts, type ModelJson, type WeightEntry } from './manifest.js';

export abstract class TfjsFolderModel {
  protected readonly ctx: ErrorContext;

  constructor(
    readonly path: string,
    protected readonly json: ModelJson,
    /** Set once more by TfjsModel, with its kernels held as OIHW values and the rest copied out of the file's bytes. */
    protected weights: WeightEntry[],
    /** The files this model came from, which save() must never overwrite. */
    protected readonly sources: string[],
  ) {
    this.ctx = { model: path };
  }

  /** Every weight's bytes in manifest order, in one buffer: the weightData of tf.io artifacts. */
  protected weightData(): ArrayBuffer {
    const data = new Uint8Array(this.weights.reduce((a, w) => a + entryBytes(w), 0));
    let offset = 0;
    for (const w of this.weights) {
      const bytes = w.bytes;
      data.set(bytes, offset);
      offset += bytes.length;
    }
    return data.buffer;
  }

  /**
   * The files save() writes: model.json and its shards, each shard named by
   * its content (group1-shard1of2.<sha256 prefix>.bin), so a new output's
   * shards go in beside an old output's and model.json switches between
   * them in one rename (src/io/output.ts). In memory; writers use outputSources().
   */
  outputFiles(): Map<string, Uint8Array | string> {
    return versionShards(serializeArtifacts(this.json, this.weights));
  }

  /**
   * What outputFiles() holds, as placeOutput() writes it with contentNames:
   * the shards under their plain names, as the weights' own bytes (written
   * chunk by chunk, never joined), named by their content as they are written.
   */
  outputSources(): Map<string, FileData> {
    return artifactFiles(this.json, this.weights);
  }

  /**
   * Writes the model folder whole (src/io/output.ts): never over an input, a
   * folder dac did not write, or a file it did not create. `extraFiles`
   * (plain names, e.g. a report) go into the same folder.
   */
  async save(outPath: string, extraFiles: Map<string, string | Uint8Array> = new Map()): Promise<void> {
    if (/\.json$/i.test(outPath)) {
      throw new DacError('EINVAL', `a TF.js model is written to a folder; got ${outPath} (drop the file name)`, { field: 'output' });
    }
    const files = this.outputFiles();
    for (const [name, data] of extraFiles) {
      if (files.has(name)) throw new DacError('EINVAL', `extra file ${name} would replace a model file`, { field: 'extraFiles' });
      files.set(name, data);
    }
    await placeOutput({ target: outPath, kind: 'folder', inputs: this.sources, requireOwnedFolder: true }, { files, commit: 'model.json' });
  }
}
