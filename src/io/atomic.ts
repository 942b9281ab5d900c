// Atomic writes: everything goes to a temporary sibling first and is renamed
// into place only once complete, so a failure leaves either the old output or
// nothing, never a half-written model. Inputs are never overwritten.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';

function tempSibling(target: string, tag: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(target), `.${path.basename(target)}.${tag}-${process.pid}-${rand}`);
}

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Directories cannot be fsynced on every platform; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeDurable(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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
  fsyncPath(path.dirname(path.resolve(target)));
}

/**
 * Writes a folder of files: a temp folder beside the target, then renamed into
 * place. An existing target is replaced only if it is empty or holds a
 * model.json (a previous output); anything else is refused, not deleted.
 */
export async function writeFolderAtomic(target: string, files: Map<string, Uint8Array | string>): Promise<void> {
  ensureParent(target);
  for (const name of files.keys()) {
    if (name !== path.basename(name) || name === '.' || name === '..') {
      throw new DacError('EINVAL', `file name ${name} must be a plain name inside the folder`, { field: 'output' });
    }
  }
  let old: string | null = null;
  if (fs.existsSync(target)) {
    const st = fs.statSync(target);
    if (!st.isDirectory()) {
      throw new DacError('ENOTDIR', `${target} exists and is not a folder`, { field: 'output' });
    }
    const entries = fs.readdirSync(target);
    if (entries.length > 0 && !entries.includes('model.json')) {
      throw new DacError('EEXIST', `${target} is a non-empty folder without model.json; refusing to replace it`, {
        field: 'output',
      });
    }
    old = tempSibling(target, 'old');
  }
  const tmp = tempSibling(target, 'tmp');
  try {
    fs.mkdirSync(tmp);
    for (const [name, data] of files) writeDurable(path.join(tmp, name), data);
    fsyncPath(tmp);
    if (old) fs.renameSync(target, old);
    try {
      fs.renameSync(tmp, target);
    } catch (err) {
      if (old) fs.renameSync(old, target);
      old = null;
      throw err;
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
  fsyncPath(path.dirname(path.resolve(target)));
}

function realOrResolved(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    // Not there yet: resolve the parent, which must exist for the write anyway.
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}

/**
 * Refuses an output path that would overwrite or delete an input: the same
 * file, or a folder that contains one of the input files.
 */
export function checkOutputPath(output: string, inputs: string[]): void {
  const out = realOrResolved(output);
  for (const input of inputs) {
    const inp = realOrResolved(input);
    if (inp === out) {
      throw new DacError('EINVAL', `output ${output} is the input ${input}; refusing to overwrite the input`, {
        field: 'output',
      });
    }
    const rel = path.relative(out, inp);
    if (rel && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)) {
      throw new DacError('EINVAL', `output ${output} contains the input ${input}; refusing to replace it`, {
        field: 'output',
      });
    }
  }
}
