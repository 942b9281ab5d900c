// Finds the models of a zoo: every TF.js Layers model (a folder's
// model.json) and every .onnx file under a root. The walk never leaves the
// root: symlinked folders are not entered (they would escape it or visit a
// folder twice), and a symlinked model file is taken only if its target is
// inside the root. The output folder is skipped when it lies inside the root,
// so a second run does not decompose the first run's results.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFormat } from '../model/types.js';
import { DacError } from '../errors.js';
import { isInside } from '../io/limits.js';

export interface ZooEntry {
  /** Path relative to the root, '/'-separated: 'a/b/model.json' or 'a/x.onnx'. */
  rel: string;
  /** Absolute path of the model.json or .onnx file. */
  path: string;
  format: ModelFormat;
}

export interface Ignored {
  rel: string;
  reason: string;
}

export interface Discovery {
  models: ZooEntry[];
  /** Things that looked like models but were left out, with why (reported as skipped). */
  ignored: Ignored[];
}

function formatOf(name: string): ModelFormat | null {
  if (name === 'model.json') return 'tfjs';
  if (name.toLowerCase().endsWith('.onnx')) return 'onnx';
  return null;
}

/** Every model under `root`, sorted by relative path, never descending into `skipDir`. */
export async function discoverModels(root: string, skipDir?: string): Promise<Discovery> {
  let realRoot: string;
  try {
    realRoot = await fs.promises.realpath(root);
  } catch (err) {
    throw new DacError('ENOENT', `zoo folder ${root} cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      field: 'dir',
    });
  }
  if (!(await fs.promises.stat(realRoot)).isDirectory()) {
    throw new DacError('EINVAL', `zoo folder ${root} is not a folder`, { field: 'dir' });
  }
  let realSkip: string | null = null;
  if (skipDir) {
    try {
      realSkip = await fs.promises.realpath(skipDir);
    } catch {
      realSkip = path.resolve(skipDir);
    }
  }

  const models: ZooEntry[] = [];
  const ignored: Ignored[] = [];
  const pending: string[] = [realRoot];
  while (pending.length) {
    const dir = pending.pop()!;
    if (realSkip !== null && dir === realSkip) continue;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (err) {
      ignored.push({ rel: relOf(realRoot, dir), reason: `folder cannot be read (${(err as NodeJS.ErrnoException).code ?? err})` });
      continue;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        pending.push(full);
        continue;
      }
      const format = formatOf(e.name);
      if (!format) continue;
      const rel = relOf(realRoot, full);
      if (e.isSymbolicLink()) {
        let target: string;
        try {
          target = await fs.promises.realpath(full);
        } catch {
          ignored.push({ rel, reason: 'dangling symlink' });
          continue;
        }
        if (!isInside(realRoot, target)) {
          ignored.push({ rel, reason: `symlink to ${target}, outside the zoo folder` });
          continue;
        }
        if (realSkip !== null && isInside(realSkip, target)) continue;
        if (!(await fs.promises.stat(target)).isFile()) continue;
      } else if (!e.isFile()) {
        continue;
      }
      models.push({ rel, path: full, format });
    }
  }
  const byRel = (a: { rel: string }, b: { rel: string }): number => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
  models.sort(byRel);
  ignored.sort(byRel);
  return { models, ignored };
}

function relOf(root: string, p: string): string {
  return path.relative(root, p).split(path.sep).join('/');
}
