// Atomic writes: everything goes to a temporary sibling first and is renamed
// into place only once complete, so a failure leaves either the old output or
// nothing, never a half-written model. Inputs are never overwritten.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';
import { checkAgainstInputs, fsyncDir, placeOutput, writeDurable } from './output.js';

function tempSibling(target: string, tag: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(target), `.${path.basename(target)}.${tag}-${process.pid}-${rand}`);
}

/** The folder a write to `target` needs must exist: checked before any work, and again at the write. */
export function ensureParent(target: string): void {
  const parent = path.dirname(path.resolve(target));
  if (!fs.existsSync(parent)) {
    throw new DacError('ENOENT', `output folder ${parent} does not exist`, { field: 'output' });
  }
}

/** Writes one file: temp file in the same folder, fsync, rename over the target. */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  ensureParent(target);
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    throw new DacError('EISDIR', `${target} is a folder, expected a file path`, { field: 'output' });
  }
  const tmp = tempSibling(target, 'tmp');
  try {
    writeDurable(tmp, data);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(path.resolve(target)));
}

/**
 * Writes a folder of files whole (src/io/output.ts): a TF.js model.json is
 * switched in last, its shards renamed by content first, so the folder holds
 * the old model or the new one at every instant. An existing folder is
 * replaced only if it is empty or an earlier output of dac; anything else
 * is refused, not deleted.
 */
export async function writeFolderAtomic(target: string, files: Map<string, Uint8Array | string>, inputs: string[] = []): Promise<void> {
  const model = files.has('model.json');
  const commit = model ? 'model.json' : [...files.keys()].pop();
  if (commit === undefined) throw new DacError('EINVAL', 'nothing to write', { field: 'output' });
  await placeOutput({ target, kind: 'folder', inputs, requireOwnedFolder: true }, { files, commit, contentNames: model });
}

/**
 * Refuses an output path that would overwrite or delete an input: the same
 * file (also through a symlink or a hard link), or a folder that contains one
 * of the input files.
 */
export function checkOutputPath(output: string, inputs: string[]): void {
  checkAgainstInputs(output, inputs, 'output');
}
