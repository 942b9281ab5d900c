// Whole-output placement. An output is a set of files: a TF.js folder
// (model.json, shards, maybe report.json) or an .onnx file (and its report).
//
// Design: the file a reader opens first is the commit point. Every other
// file gets a name that is new for new content (TF.js shards are named by
// their hash, see versionShards), so the new files go in beside the
// old ones without touching them, and one rename of model.json (or of the
// .onnx file) switches from the old output to the new one. At every instant
// the path holds a whole model, the old one or the new one: no window where
// it is missing, unlike renaming a folder aside and another in its place
// (Node has no renameat2(RENAME_EXCHANGE)), and no symlink pointer that a
// copy or an archive would not follow. Old files are deleted only after the
// switch. The report is renamed in right after the model.
//
// Ownership: a marker file (.dac-output.json in a TF.js folder,
// .<name>.dac-output.json beside an .onnx file) lists every file of ours with
// its size and SHA-256, and before the first new file goes in, the files
// about to go in ("pending"). We only ever rename over or delete files
// the marker lists (or our own temporaries), so a folder or file that dac
// did not write is refused by name, never replaced. A kill at any point
// leaves the old or the new output whole, and the next run finishes the job
// and removes what the killed one left. verifyOutput() checks a finished
// output against the hashes (what zoo resume uses before skipping a model).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DacError, toDacError } from '../errors.js';
import { isInside } from './limits.js';

export const MARKER_VERSION = 1;
const FOLDER_MARKER = '.dac-output.json';

export type OutputKind = 'folder' | 'file';

export interface OutputSpec {
  /** TF.js: the output folder; ONNX: the .onnx file. */
  target: string;
  kind: OutputKind;
  /** Where the report goes (a file path), or none. */
  report?: string;
  /**
   * Files and folders the output must never write, rename over or delete
   * (the input model: model.json, shards, its folder, or the .onnx file).
   * Compared by real path and by device + inode, so symlinks and hard links count.
   */
  inputs: string[];
  /**
   * An existing target folder must be empty or an output of ours (the CLI's
   * -o). Off for zoo's mirrored folders, which hold other models' outputs:
   * there only the file names we write must be free or ours.
   */
  requireOwnedFolder?: boolean;
  /**
   * Refuse any output file inside an input model's folder (the CLI), not
   * only the input's own files. Off for zoo, whose output root may lie in
   * the zoo folder; the input files themselves are refused either way.
   */
  refuseInInputFolder?: boolean;
  /** Names the output will write in its folder (checked before any work; more may come with the files). */
  names?: string[];
  /** What the error messages call the target ('output' for -o, 'report' for --report). */
  field?: string;
}

export interface FileHash {
  size: number;
  sha256: string;
}

interface MarkerJson {
  tool: 'dac-conv';
  version: number;
  kind: OutputKind;
  /** Our files, relative to the marker's folder ('/' separated; the report may be elsewhere: '../r.json'). */
  files: Record<string, FileHash>;
  /** Written (or being written) by a run that has not finished. */
  pending: string[];
}

/** The folder an output's files (and its marker) live in. */
export function outputDir(spec: Pick<OutputSpec, 'target' | 'kind'>): string {
  const t = path.resolve(spec.target);
  return spec.kind === 'folder' ? t : path.dirname(t);
}

export function markerPath(spec: Pick<OutputSpec, 'target' | 'kind'>): string {
  const t = path.resolve(spec.target);
  return spec.kind === 'folder' ? path.join(t, FOLDER_MARKER) : path.join(path.dirname(t), `.${path.basename(t)}.dac-output.json`);
}

/**
 * Where the lock of one output lives (src/io/lock.ts, taken by src/write.ts
 * for the whole run, from the path checks to the last rename): a file in a
 * folder of this user's under the temp folder, named by the output's real
 * path. Not beside the output: a failed run must leave nothing there, not
 * even a folder made for the lock, and -o may name folders that do not exist yet.
 */
export function outputLockPath(spec: Pick<OutputSpec, 'target' | 'kind'>): string {
  const user = typeof process.getuid === 'function' ? String(process.getuid()) : os.userInfo().username;
  const key = crypto.createHash('sha256').update(realish(markerPath(spec))).digest('hex').slice(0, 32);
  return path.join(os.tmpdir(), `dac-conv-locks-${user}`, `${key}.lock`);
}

/** Prefix of this output's temporaries in its folder; leftovers of a killed run start with it too. */
function tempPrefix(spec: Pick<OutputSpec, 'target' | 'kind'>): string {
  return spec.kind === 'folder' ? '.dac-stage-' : `.${path.basename(path.resolve(spec.target))}.dac-stage-`;
}

const relKey = (dir: string, file: string): string => path.relative(dir, file).split(path.sep).join('/');

function readMarker(spec: Pick<OutputSpec, 'target' | 'kind'>): MarkerJson | null {
  let m: MarkerJson;
  try {
    m = JSON.parse(fs.readFileSync(markerPath(spec), 'utf8')) as MarkerJson;
  } catch {
    return null;
  }
  if (!m || m.tool !== 'dac-conv' || m.version !== MARKER_VERSION || typeof m.files !== 'object' || !m.files || !Array.isArray(m.pending)) return null;
  return m;
}

/** Every file the marker says is ours (finished or pending), absolute. */
function ownedFiles(spec: Pick<OutputSpec, 'target' | 'kind'>, m: MarkerJson | null): Set<string> {
  const dir = outputDir(spec);
  const out = new Set<string>();
  if (!m) return out;
  for (const k of [...Object.keys(m.files), ...m.pending]) if (typeof k === 'string') out.add(path.resolve(dir, k));
  return out;
}

function lstat(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

function stat(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/** Real path of `p`, or of its nearest existing ancestor with the rest appended. */
export function realish(p: string): string {
  let abs = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(abs), ...rest.reverse());
    } catch {
      const parent = path.dirname(abs);
      if (parent === abs) return path.join(abs, ...rest.reverse());
      rest.push(path.basename(abs));
      abs = parent;
    }
  }
}

export interface InputId {
  given: string;
  real: string;
  dev?: number;
  ino?: number;
  isDir: boolean;
}

function inputIds(inputs: string[]): InputId[] {
  return inputs.map((given) => {
    const st = stat(given);
    return { given, real: realish(given), dev: st?.dev, ino: st?.ino, isDir: st?.isDirectory() ?? false };
  });
}

/**
 * Refuses a path we would write (a file, or the output folder) that is an
 * input or would replace one: same real path, same device + inode (a hard
 * link), a folder holding an input, or a file inside an input model's folder.
 */
export function checkAgainstInputs(p: string, inputs: string[] | InputId[], field: string, refuseInInputFolder = true): void {
  const ids = inputs.length && typeof inputs[0] === 'string' ? inputIds(inputs as string[]) : (inputs as InputId[]);
  const real = realish(p);
  const st = stat(p);
  for (const id of ids) {
    const same = real === id.real || (st !== null && id.ino !== undefined && st.dev === id.dev && st.ino === id.ino);
    if (same) throw new DacError('ECLASH', `${p} is the input ${id.given}; refusing to write over an input`, { field });
    if (isInside(real, id.real)) throw new DacError('ECLASH', `${p} contains the input ${id.given}; refusing to replace it`, { field });
    if (refuseInInputFolder && id.isDir && isInside(id.real, real)) {
      throw new DacError('ECLASH', `${p} is inside the input model's folder ${id.given}; write outputs elsewhere`, { field });
    }
  }
}

/** Is this file a report dac wrote (so a later run may replace it)? */
function isDacReport(file: string): boolean {
  try {
    const st = fs.lstatSync(file);
    // Only a regular file is read: a FIFO would block, a device never end.
    if (!st.isFile() || st.size > 64 * 1024 * 1024) return false;
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { method?: unknown; flops?: { before?: unknown }; layers?: unknown };
    return typeof j.method === 'string' && typeof j.flops?.before === 'number' && Array.isArray(j.layers);
  } catch {
    return false;
  }
}

/** The nearest existing ancestor must be a writable folder: probed by creating (and removing) a temporary folder in it. */
function checkWritable(dir: string, field: string): void {
  let d = path.resolve(dir);
  while (!lstat(d)) {
    const parent = path.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  const st = stat(d);
  if (!st) throw new DacError('ENOENT', `cannot create ${dir}: ${d} does not exist`, { field });
  if (!st.isDirectory()) throw new DacError('ENOTDIR', `cannot create ${dir}: ${d} is not a folder`, { field });
  try {
    fs.rmdirSync(fs.mkdtempSync(path.join(d, '.dac-probe-')));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new DacError(code === 'ENOSPC' ? 'EIO' : 'EACCES', `cannot write to folder ${d}: ${code}`, { field });
  }
}

/**
 * Everything that can be known before the work: the output and report
 * clash with no input and with each other, existing files there are ours,
 * and the folders are writable. Throws a DacError naming the path.
 */
export function preflightOutput(spec: OutputSpec): void {
  const field = spec.field ?? 'output';
  const target = path.resolve(spec.target);
  const ids = inputIds(spec.inputs);
  const strict = spec.refuseInInputFolder ?? true;
  checkAgainstInputs(target, ids, field, strict);
  const dir = outputDir(spec);
  const marker = readMarker(spec);
  const owned = ownedFiles(spec, marker);
  const tst = lstat(target);
  if (spec.kind === 'folder') {
    if (tst && !tst.isDirectory()) {
      throw new DacError(tst.isSymbolicLink() ? 'EEXIST' : 'ENOTDIR', `${spec.target} exists and is not a folder${tst.isSymbolicLink() ? ' (a symlink)' : ''}; refusing to replace it`, { field });
    }
    if (tst && !marker) {
      // What a run killed before its claim left (staged files, no marker yet) is ours: cleaned, not a reason to refuse.
      const entries = fs.readdirSync(target).filter((n) => !isTemporary(spec, n));
      if (spec.requireOwnedFolder && entries.length > 0) {
        const what = entries.includes('model.json') ? 'holds a model.json that dac did not write' : `is a non-empty folder (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`;
        throw new DacError('EEXIST', `${spec.target} ${what}; refusing to replace it (choose a new folder, or remove it)`, { field });
      }
    }
    for (const name of spec.names ?? []) {
      const file = path.join(target, name);
      const st = lstat(file);
      if (st && !owned.has(file)) {
        throw new DacError('EEXIST', `${file} exists and was not written by dac; refusing to replace it`, { field });
      }
      if (st) checkAgainstInputs(file, ids, field, strict);
    }
  } else {
    if (tst && tst.isDirectory()) throw new DacError('EISDIR', `${spec.target} is a folder; expected a file path`, { field });
    if (tst && !owned.has(target)) {
      throw new DacError('EEXIST', `${spec.target} exists and was not written by dac; refusing to replace it (choose another name, or remove it)`, { field });
    }
  }
  checkWritable(dir, field);
  if (spec.report !== undefined) {
    const report = path.resolve(spec.report);
    const rfield = 'report';
    if (realish(report) === realish(target)) throw new DacError('ECLASH', `the report ${spec.report} is the output itself`, { field: rfield });
    checkAgainstInputs(report, ids, rfield, strict);
    // The model's own files in its folder: model.json and the shards (*.bin).
    if (spec.kind === 'folder' && path.dirname(realish(report)) === realish(target) && /^model\.json$|\.bin$/i.test(path.basename(report))) {
      throw new DacError('ECLASH', `the report ${spec.report} would replace a file of the model`, { field: rfield });
    }
    const rst = lstat(report);
    if (rst && rst.isDirectory()) throw new DacError('EISDIR', `the report ${spec.report} is a folder; expected a file path`, { field: rfield });
    if (rst && !owned.has(report) && !isDacReport(report)) {
      throw new DacError('EEXIST', `${spec.report} exists and is not a dac report; refusing to replace it`, { field: rfield });
    }
    checkWritable(path.dirname(report), rfield);
  }
}

/**
 * Test hook (DAC_TEST_PAUSE_AT=n): at the n-th step of this process's output
 * writes, say so on stderr and block until killed, so a test can kill -9 a
 * writer at an exact point. Steps are counted per thread.
 */
let pauseCount = 0;
function step(label: string): void {
  const at = process.env.DAC_TEST_PAUSE_AT;
  if (!at) return;
  pauseCount++;
  if (pauseCount !== Number(at)) return;
  fs.writeSync(2, `dac-test: paused at step ${pauseCount} (${label})\n`);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}

/**
 * A file's contents: bytes, text, or chunks made as the file is written, so
 * that a large output (a model's weights) is never held whole in memory
 * twice (chunks() may be called more than once, and gives the same bytes).
 */
export type FileData = Uint8Array | string | FileChunks;
export interface FileChunks {
  chunks(): Iterable<Uint8Array>;
}

function chunksOf(data: FileData): Iterable<Uint8Array> {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  return data instanceof Uint8Array ? [data] : data.chunks();
}

/** Writes a new file (never an existing one) and flushes it to disk. */
export function writeDurable(file: string, data: FileData): void {
  writeChunks(file, data, null);
}

/** writeDurable, hashing the bytes as they are written: the file's size and SHA-256. */
function writeHashed(file: string, data: FileData): FileHash {
  const hash = crypto.createHash('sha256');
  const size = writeChunks(file, data, hash);
  return { size, sha256: hash.digest('hex') };
}

function writeChunks(file: string, data: FileData, hash: crypto.Hash | null): number {
  let size = 0;
  const fd = fs.openSync(file, 'wx');
  try {
    for (const chunk of chunksOf(data)) {
      hash?.update(chunk);
      for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done);
      size += chunk.length;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return size;
}

/** Flushes a folder's entries (renames) to disk where the platform allows. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Not every platform can fsync a folder; the renames are atomic regardless.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * A TF.js folder's files with every shard renamed by its content
 * (group1-shard1of2.<sha256 prefix>.bin) and model.json pointing at the new
 * names: a new output's shards then never replace an old one's, and
 * model.json switches between them in one rename.
 */
export function versionShards<T extends FileData>(files: Map<string, T>): Map<string, T | string> {
  const renamed = new Map<string, string>();
  const out = new Map<string, T | string>();
  for (const [name, data] of files) {
    if (name === 'model.json') continue;
    const next = versionedName(name, hashBytes(data));
    renamed.set(name, next);
    out.set(next, data);
  }
  out.set('model.json', renameShards(files.get('model.json')!, renamed));
  return out;
}

/** A shard's name with its content's hash in it: group1-shard1of2.<sha256 prefix>.bin. */
function versionedName(name: string, hash: FileHash): string {
  return name.replace(/(\.bin)?$/, `.${hash.sha256.slice(0, 16)}$1`);
}

/** model.json text with its manifest's shard paths renamed. */
function renameShards(modelJson: FileData, renamed: Map<string, string>): string {
  const text = typeof modelJson === 'string' ? modelJson : Buffer.concat([...chunksOf(modelJson)]).toString('utf8');
  const json = JSON.parse(text) as { weightsManifest?: Array<{ paths: string[] }> };
  for (const group of json.weightsManifest ?? []) group.paths = group.paths.map((p) => renamed.get(p) ?? p);
  return JSON.stringify(json);
}

export function hashBytes(data: FileData): FileHash {
  const hash = crypto.createHash('sha256');
  let size = 0;
  for (const chunk of chunksOf(data)) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex') };
}

function writeMarker(spec: OutputSpec, m: MarkerJson): void {
  const file = markerPath(spec);
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    writeDurable(tmp, JSON.stringify(m, null, 1));
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** `dir` and those of its ancestors that do not exist yet, outermost first. */
function missingFolders(dir: string): string[] {
  const out: string[] = [];
  for (let d = path.resolve(dir); !lstat(d); d = path.dirname(d)) {
    out.unshift(d);
    if (path.dirname(d) === d) break;
  }
  return out;
}

/** Is `name` (in the output's folder) one of this output's temporaries: a staging folder or a marker being written? */
function isTemporary(spec: Pick<OutputSpec, 'target' | 'kind'>, name: string): boolean {
  return name.startsWith(tempPrefix(spec)) || name.startsWith(`${path.basename(markerPath(spec))}.tmp-`);
}

/** Removes what a killed run of this output left: its staging folders and marker temporaries. */
function cleanTemporaries(spec: OutputSpec): void {
  const dir = outputDir(spec);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (isTemporary(spec, n)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}

export interface PlaceOptions {
  /** The output's files by name within its folder (TF.js), or one entry for the file (ONNX). */
  files: Map<string, FileData>;
  /**
   * A TF.js folder: every file but the commit file (model.json) is named by
   * its content as it is staged (versionShards), and model.json points at
   * those names; each file is hashed once, as it is written.
   */
  contentNames?: boolean;
  /** The file renamed last among the model's files: model.json, or the .onnx file's own name. */
  commit: string;
  reportText?: string;
  /** Runs on the staged copy (path of the staged commit file) before anything is renamed into place. */
  selfCheck?: (stagedCommit: string) => Promise<void>;
}

export interface PlacedOutput {
  /** Absolute paths of every file written (model files, then the report), with their hashes. */
  files: Array<{ path: string } & FileHash>;
}

/**
 * Writes an output whole: preflight again, then stage every file in a
 * temporary folder beside it (hashing each as it is written), self-check, claim the names in the marker,
 * rename the files in (the commit file last among the model's), delete the
 * previous output's files that the new one does not reuse, and record the
 * new files in the marker.
 */
export async function placeOutput(spec: OutputSpec, opts: PlaceOptions): Promise<PlacedOutput> {
  const field = spec.field ?? 'output';
  const given = [...opts.files.keys()];
  for (const name of given) {
    if (name !== path.basename(name) || name === '.' || name === '..' || name.startsWith('.dac-')) {
      throw new DacError('EINVAL', `file name ${name} must be a plain name inside the folder`, { field });
    }
  }
  if (!opts.files.has(opts.commit)) throw new DacError('EINTERNAL', `the commit file ${opts.commit} is not among the output's files`, { field });
  const target = path.resolve(spec.target);
  const dir = outputDir(spec);
  if (spec.kind === 'file' && (given.length !== 1 || opts.commit !== path.basename(target) || opts.contentNames)) {
    throw new DacError('EINTERNAL', `a file output is one file named ${path.basename(target)}`, { field });
  }
  try {
    const report = spec.report === undefined ? undefined : path.resolve(spec.report);
    const reportNames = report && path.dirname(report) === dir ? [path.basename(report)] : [];
    // Content-named files are checked once staged, under their names.
    preflightOutput({ ...spec, names: [...(opts.contentNames ? [opts.commit] : given), ...reportNames] });
    // Folders this call creates (-o may name missing parents): removed again if it fails before the claim.
    const created = [...new Set([...missingFolders(dir), ...(report ? missingFolders(path.dirname(report)) : [])])];
    fs.mkdirSync(dir, { recursive: true });
    if (report) fs.mkdirSync(path.dirname(report), { recursive: true });
    cleanTemporaries(spec);
    const old = readMarker(spec);
    const oldOwned = ownedFiles(spec, old);

    // The files' final names (content names are known once written) and hashes, taken as they are written.
    const names: string[] = [];
    const hashes = new Map<string, FileHash>();

    // 1. Stage everything in a temporary folder of ours, and check the staged model loads as
    // expected: a failure up to here leaves nothing behind (not even the folders made for it).
    const stage = path.join(dir, `${tempPrefix(spec)}${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    const stagedReport = path.join(stage, '.report');
    try {
      fs.mkdirSync(stage);
      const renamed = new Map<string, string>();
      const stageFile = (n: string, data: FileData): void => {
        const h = writeHashed(path.join(stage, n), data);
        let name = n;
        if (opts.contentNames && n !== opts.commit) {
          name = versionedName(n, h);
          // Two files of the same content share one name.
          fs.renameSync(path.join(stage, n), path.join(stage, name));
          renamed.set(n, name);
        }
        if (!names.includes(name)) names.push(name);
        hashes.set(path.join(dir, name), h);
      };
      for (const n of given) if (n !== opts.commit) stageFile(n, opts.files.get(n)!);
      const commitData = opts.files.get(opts.commit)!;
      stageFile(opts.commit, opts.contentNames ? renameShards(commitData, renamed) : commitData);
      if (report && opts.reportText !== undefined) hashes.set(report, writeHashed(stagedReport, opts.reportText));
      fsyncDir(stage);
      if (opts.contentNames) preflightOutput({ ...spec, names: [...names, ...reportNames] });
      step('staged');
      if (opts.selfCheck) await opts.selfCheck(path.join(stage, opts.commit));
    } catch (err) {
      fs.rmSync(stage, { recursive: true, force: true });
      for (const d of created.sort((a, b) => b.length - a.length)) {
        try {
          fs.rmdirSync(d);
        } catch {
          // Not empty (something else appeared there): left alone.
        }
      }
      throw err;
    }
    const dests = names.map((n) => path.join(dir, n));
    const all = report ? [...dests, report] : dests;
    try {
      // 2. Claim the names: from here a kill leaves files a re-run knows are ours.
      writeMarker(spec, { tool: 'dac-conv', version: MARKER_VERSION, kind: spec.kind, files: old?.files ?? {}, pending: [...new Set([...(old?.pending ?? []), ...all.map((f) => relKey(dir, f))])] });
      step('claimed');

      // 3. Rename in: the model's other files, the commit file, then the report.
      const order = [...names.filter((n) => n !== opts.commit), opts.commit];
      for (const n of order) {
        fs.renameSync(path.join(stage, n), path.join(dir, n));
        step(`renamed ${n}`);
      }
      fsyncDir(dir);
      if (report && opts.reportText !== undefined) {
        try {
          fs.renameSync(stagedReport, report);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
          // Another file system: stage beside the report instead.
          const tmp = `${report}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
          try {
            writeDurable(tmp, opts.reportText);
            fs.renameSync(tmp, report);
          } catch (e) {
            fs.rmSync(tmp, { force: true });
            throw e;
          }
        }
        fsyncDir(path.dirname(report));
        step('renamed report');
      }
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }

    // 4. Drop the old files the new output does not reuse, then record it: a kill in between
    // leaves them claimed (pending) by the marker, so the next run still knows they are ours.
    const keep = new Set(all);
    for (const f of oldOwned) {
      if (!keep.has(f) && isInside(dir, f) && lstat(f)?.isFile()) fs.rmSync(f, { force: true });
    }
    fsyncDir(dir);
    step('cleaned');
    const files: MarkerJson['files'] = {};
    for (const f of all) if (hashes.has(f)) files[relKey(dir, f)] = hashes.get(f)!;
    writeMarker(spec, { tool: 'dac-conv', version: MARKER_VERSION, kind: spec.kind, files, pending: [] });
    step('recorded');
    return { files: all.filter((f) => hashes.has(f)).map((f) => ({ path: f, ...hashes.get(f)! })) };
  } catch (err) {
    throw toDacError(err, { field });
  }
}

/**
 * Is the output at `target` whole as recorded: a finished marker, and every
 * file it lists present with its size and SHA-256? (A kill after the switch
 * but before the record leaves the output whole but unverified: redone.)
 */
export function verifyOutput(spec: Pick<OutputSpec, 'target' | 'kind'>): boolean {
  const m = readMarker(spec);
  if (!m || m.pending.length > 0 || Object.keys(m.files).length === 0) return false;
  const dir = outputDir(spec);
  for (const [rel, h] of Object.entries(m.files)) {
    const file = path.resolve(dir, rel);
    let data: Buffer;
    try {
      if (fs.statSync(file).size !== h.size) return false;
      data = fs.readFileSync(file);
    } catch {
      return false;
    }
    if (hashBytes(data).sha256 !== h.sha256) return false;
  }
  return true;
}
