// Resume bookkeeping. A model counts as done only when its completion marker
// exists, and the marker is written last, atomically, after the decomposed
// model and its report: an interrupted run leaves no marker (or the previous
// one, removed before any output is touched), so nothing half-written is
// taken for done. The marker records every input file's size and mtime and a
// hash of the options, so an edited model or a different policy is redone,
// and every output file's size, so a deleted or truncated output is redone.
// A failure is recorded the same way (with the limits it ran under), so a
// re-run reports it again without redoing it until something changes.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFormat } from '../model/types.js';
import { MAX_JSON_BYTES, readFileBounded, resolveInside } from '../io/limits.js';
import type { ZooEntry } from './discover.js';
import type { ModelRecord } from './summary.js';
import { writeFileAtomic } from '../io/atomic.js';
import { verifyOutput } from '../io/output.js';

export const MARKER_VERSION = 1;
/** Bookkeeping lives in this folder of the output root, out of the mirrored tree. */
export const STATE_DIR = '.dac-zoo';

export interface FileStamp {
  /** Relative to the model's folder (inputs) or to the output root (outputs). */
  file: string;
  size: number;
  mtimeMs: number;
}

/** The limits a model ran under: a failure they caused is retried once they are raised. */
export interface RunLimits {
  maxModelBytes: number;
  /** 0: none. */
  timeoutMs: number;
}

export interface Marker {
  version: number;
  model: string;
  format: ModelFormat;
  optionsHash: string;
  /** Package version that wrote it (a recorded failure is only trusted by the same version). */
  toolVersion: string;
  inputs: FileStamp[];
  outputs: FileStamp[];
  record: ModelRecord;
  limits?: RunLimits;
}

export interface ReadDoneOptions {
  /** Recorded failures count as not done (retried). */
  retryFailed?: boolean;
  /** This run's limits: a failure for size or time under lower ones is retried. */
  limits?: RunLimits;
}

/** Was a recorded failure caused by a limit this run raises? */
function limitRaised(m: Marker, limits: RunLimits | undefined): boolean {
  if (!limits) return false;
  const was = m.limits;
  if (m.record.code === 'ETOOBIG') return !was || limits.maxModelBytes > was.maxModelBytes;
  if (m.record.code === 'ETIMEOUT') return !was || limits.timeoutMs === 0 || (was.timeoutMs !== 0 && limits.timeoutMs > was.timeoutMs);
  return false;
}

export interface OutputPaths {
  /** What the model is saved to: <out>/<dir>/model.json (TF.js) or <out>/<rel>.onnx. */
  model: string;
  report: string;
  marker: string;
}

export function outputPaths(entry: ZooEntry, outRoot: string): OutputPaths {
  const relParts = entry.rel.split('/');
  const model = path.join(outRoot, ...relParts);
  const report =
    entry.format === 'tfjs'
      ? path.join(path.dirname(model), 'report.json')
      : path.join(path.dirname(model), path.basename(model).replace(/\.onnx$/i, '') + '.report.json');
  const marker = path.join(outRoot, STATE_DIR, 'done', ...relParts) + '.done';
  return { model, report, marker };
}

/** Stable hash of the options that decide the output (key order does not matter). */
export function hashOptions(options: unknown): string {
  return crypto.createHash('sha256').update(stableJson(options)).digest('hex');
}

/**
 * The hash a completion marker records for a run's settings. Threads change
 * the speed, not the result, so they are left out.
 */
export function settingsHash(settings: object): string {
  return hashOptions({ marker: MARKER_VERSION, settings: { ...settings, threads: undefined } });
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * Stamps of every file a model is made of (model.json and the shards its
 * manifest names, or the .onnx file), taken before it is loaded, so an edit
 * during or after the run makes the model due again. Best effort: a shard
 * path that is malformed or leaves the folder is left out (the reader
 * refuses the model for it) and a missing shard is stamped as missing, so a
 * recorded failure is retried once it appears. Only model.json is read, and
 * at most MAX_JSON_BYTES of it.
 */
export function stampInputs(modelPath: string, format: ModelFormat): FileStamp[] {
  let stamps: FileStamp[];
  try {
    stamps = [stampFile(modelPath)];
  } catch {
    return [];
  }
  if (format === 'onnx') return stamps;
  let manifest: unknown;
  try {
    manifest = (JSON.parse(readFileBounded(modelPath, MAX_JSON_BYTES).toString('utf8')) as { weightsManifest?: unknown }).weightsManifest;
  } catch {
    return stamps;
  }
  if (!Array.isArray(manifest)) return stamps;
  const folder = path.dirname(modelPath);
  const seen = new Set<string>();
  for (const group of manifest) {
    const paths = (group as { paths?: unknown } | null)?.paths;
    if (!Array.isArray(paths)) continue;
    for (const p of paths) {
      let file: string;
      try {
        file = resolveInside(folder, p);
      } catch {
        continue;
      }
      if (seen.has(file)) continue;
      seen.add(file);
      try {
        stamps.push(stampFile(file, folder));
      } catch {
        stamps.push(stampFile(file, folder, true));
      }
    }
  }
  return stamps;
}

/** Size and mtime of a file, named relative to `base` (default: its own folder); size -1 for a missing file. */
export function stampFile(file: string, base = path.dirname(file), missing = false): FileStamp {
  const rel = path.relative(base, file).split(path.sep).join('/');
  if (missing) return { file: rel, size: -1, mtimeMs: 0 };
  const st = fs.statSync(file);
  return { file: rel, size: st.size, mtimeMs: st.mtimeMs };
}

function sameStamps(recorded: FileStamp[], base: string): boolean {
  for (const s of recorded) {
    let st: fs.Stats;
    try {
      st = fs.statSync(path.join(base, s.file));
    } catch {
      if (s.size === -1) continue;
      return false;
    }
    if (s.size === -1) return false;
    if (!st.isFile() || st.size !== s.size || st.mtimeMs !== s.mtimeMs) return false;
  }
  return true;
}

/**
 * The record of a model finished earlier (decomposed, or failed: for its
 * content, its size, a timeout or a lost worker) with the same input and
 * options, or null if it must be (re)done. A failure is retried when asked
 * to, when another version of the tool recorded it, or when the limit that
 * caused it was raised.
 */
export function readDone(entry: ZooEntry, outRoot: string, optionsHash: string, toolVersion: string, opts: ReadDoneOptions = {}): ModelRecord | null {
  const { marker } = outputPaths(entry, outRoot);
  let m: Marker;
  try {
    m = JSON.parse(fs.readFileSync(marker, 'utf8')) as Marker;
  } catch {
    return null;
  }
  if (
    !m ||
    m.version !== MARKER_VERSION ||
    m.model !== entry.rel ||
    m.format !== entry.format ||
    m.optionsHash !== optionsHash ||
    !Array.isArray(m.inputs) ||
    !Array.isArray(m.outputs) ||
    !m.record ||
    (m.record.status === 'failed' && (opts.retryFailed || m.toolVersion !== toolVersion || limitRaised(m, opts.limits)))
  ) {
    return null;
  }
  if (!sameStamps(m.inputs, path.dirname(entry.path))) return null;
  if (!sameStamps(m.outputs, outRoot)) return null;
  // A finished output must also match the sizes and SHA-256 recorded when it was written (src/io/output.ts).
  if (m.record.status === 'ok') {
    const out = outputPaths(entry, outRoot).model;
    if (!verifyOutput(entry.format === 'onnx' ? { target: out, kind: 'file' } : { target: path.dirname(out), kind: 'folder' })) return null;
  }
  return m.record;
}

/**
 * Clears what an interrupted run may have left for this model: its marker,
 * and the temporary siblings (`.<name>.tmp-<pid>-<rand>`) that atomic writes
 * of its output, report and marker leave behind when killed mid-write.
 */
export function resetModel(entry: ZooEntry, outRoot: string): void {
  const paths = outputPaths(entry, outRoot);
  fs.rmSync(paths.marker, { force: true });
  for (const file of [paths.model, paths.report, paths.marker]) {
    const dir = path.dirname(file);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    const prefix = `.${path.basename(file)}.`;
    for (const n of names) {
      if (n.startsWith(prefix) && /^(tmp|old)-\d+-[a-z0-9]+$/.test(n.slice(prefix.length))) {
        fs.rmSync(path.join(dir, n), { recursive: true, force: true });
      }
    }
  }
}

/** Written last: from here on the model counts as done. */
export async function writeMarker(entry: ZooEntry, outRoot: string, marker: Omit<Marker, 'version'>): Promise<void> {
  const file = outputPaths(entry, outRoot).marker;
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify({ version: MARKER_VERSION, ...marker }, null, 1));
}

/** Stamps of output files, relative to the output root. */
export function stampOutputs(files: string[], outRoot: string): FileStamp[] {
  return files.map((f) => stampFile(f, outRoot));
}
