// Writing a decomposed model and its report, for `dac decompose`, `dac demo`
// and each `dac zoo` job alike: one place that checks the paths before any
// work (prepareWrite), and then writes the output whole, self-checked, never
// over an input or a file dac did not write (writeDecomposed; the protocol is
// in src/io/output.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from './errors.js';
import { loadWritten, modelFiles, type LoadedModel, type LoadOptions, type ModelFiles } from './formats/index.js';
import { MAX_JSON_BYTES, readFileBounded, resolveInside } from './io/limits.js';
import { acquireLock } from './io/lock.js';
import { outputLockPath, placeOutput, preflightOutput, type FileHash, type OutputKind, type OutputSpec } from './io/output.js';

/** Where the report goes by default: inside a TF.js folder, `<name>.report.json` beside an .onnx file. */
export function defaultReportPath(kind: OutputKind, output: string): string {
  return kind === 'folder' ? path.join(output, 'report.json') : path.join(path.dirname(output), `${path.basename(output).replace(/\.onnx$/i, '')}.report.json`);
}

/**
 * The files a model is read from, which no output may touch: a TF.js
 * model.json, the shards its manifest names, and its folder; an .onnx file.
 */
export function inputFiles(input: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch {
    return [input];
  }
  if (!st.isDirectory() && /\.onnx$/i.test(input)) return [input];
  const json = st.isDirectory() ? path.join(input, 'model.json') : input;
  const dir = path.dirname(json);
  const files = [json, dir];
  try {
    const manifest = (JSON.parse(readFileBounded(json, MAX_JSON_BYTES).toString('utf8')) as { weightsManifest?: unknown }).weightsManifest;
    for (const group of Array.isArray(manifest) ? manifest : []) {
      const paths = (group as { paths?: unknown } | null)?.paths;
      for (const p of Array.isArray(paths) ? paths : []) {
        try {
          files.push(resolveInside(dir, p));
        } catch {
          // The reader refuses such a path; the folder is protected as a whole anyway.
        }
      }
    }
  } catch {
    // Unreadable: the reader says why; the folder and model.json are protected.
  }
  return files;
}

export interface WritePlan {
  spec: OutputSpec;
  /** Where the report goes (null: none). */
  report: string | null;
  /** Gives up the output's lock; the caller calls it when done, whether or not the write happened. */
  release(): void;
}

export interface PrepareOptions {
  /** The input model as given (a TF.js folder or model.json, an .onnx file). */
  input: string;
  /** -o: a folder (TF.js) or an .onnx file path. */
  output: string;
  kind: OutputKind;
  /** Report path; default beside the model (defaultReportPath); null for none. */
  report?: string | null;
  /**
   * The CLI's -o: an existing folder must be empty or ours, and nothing is
   * written inside the input model's folder. Off for zoo, whose mirrored
   * folders hold other models' outputs and whose output root may lie inside
   * the zoo; the input files themselves are refused either way.
   */
  requireOwnedFolder?: boolean;
  /**
   * Lock the output until release() (default true), so a second run writing
   * to it fails at once, naming the first. Off for a zoo job: its run holds
   * the lock of the whole output folder.
   */
  lock?: boolean;
}

/**
 * Checks, before any work, that the output and report can be written:
 * neither is, contains, or lies inside an input (real paths, hard links),
 * they do not clash with each other, what exists there was written by dac,
 * and the folders are writable; and locks the output first. Throws a
 * DacError naming the path (ELOCKED: another run is writing it).
 */
export function prepareWrite(o: PrepareOptions): WritePlan {
  if (o.kind === 'file' && !/\.onnx$/i.test(o.output)) {
    throw new DacError('EINVAL', `output for an ONNX model must be a .onnx file path, got ${o.output}`, { field: 'output' });
  }
  if (o.kind === 'folder' && /\.json$/i.test(o.output)) {
    throw new DacError('EINVAL', `output for a TF.js model is a folder; got ${o.output} (drop the file name)`, { field: 'output' });
  }
  const report = o.report === null ? null : path.resolve(o.report ?? defaultReportPath(o.kind, o.output));
  const names = o.kind === 'folder' ? ['model.json'] : [];
  if (report && o.kind === 'folder' && path.dirname(report) === path.resolve(o.output)) names.push(path.basename(report));
  const spec: OutputSpec = {
    target: path.resolve(o.output),
    kind: o.kind,
    report: report ?? undefined,
    inputs: inputFiles(o.input),
    requireOwnedFolder: o.requireOwnedFolder ?? true,
    refuseInInputFolder: o.requireOwnedFolder ?? true,
    names,
  };
  if (o.lock === false) {
    preflightOutput(spec);
    return { spec, report, release: () => undefined };
  }
  // The lock first: while another run writes here, what it has written so far is no reason to give.
  const file = outputLockPath(spec);
  // Only this user's runs lock there, so nobody else can plant a lock that blocks them.
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const lock = acquireLock(file, { subject: o.output, holder: 'dac run writing it' }, { field: 'output' });
  try {
    preflightOutput(spec);
  } catch (err) {
    lock.release();
    throw err;
  }
  return { spec, report, release: () => lock.release() };
}

export interface WrittenOutput {
  /** Every file written (model files, then the report), absolute, with size and SHA-256. */
  files: Array<{ path: string } & FileHash>;
  report: string | null;
}

/** The model's files for the planned output (a folder or one file). */
function filesOf(model: LoadedModel, plan: WritePlan): ModelFiles {
  const out = modelFiles(model, plan.spec.kind, path.basename(plan.spec.target));
  if (!out) throw new DacError('EUNSUPPORTED', `cannot write a ${model.format} model as a ${plan.spec.kind}`, { model: model.path, field: 'output' });
  return out;
}

/**
 * Re-reads the staged copy and compares it with the model in memory (the
 * one the report describes): every conv, by name and weight shape. Exit 0
 * then means the written model loads with the layers the report states.
 * The weights' values are not scanned again: they were checked finite in
 * memory and written from there as they are (loadWritten).
 */
async function selfCheck(staged: string, model: LoadedModel, loadOptions: LoadOptions): Promise<void> {
  let back: LoadedModel;
  try {
    back = await loadWritten(staged, loadOptions);
  } catch (err) {
    throw new DacError('EINTERNAL', `self-check: the written model does not load: ${(err as Error).message}`, { model: model.path, field: 'output' });
  }
  const sig = (m: LoadedModel) => m.convs.map((c) => `${c.name}:${c.n}x${c.c}x${c.kh}x${c.kw}/g${c.groups}`);
  const want = sig(model);
  const got = sig(back);
  const i = want.findIndex((s, k) => s !== got[k]);
  if (want.length !== got.length || i >= 0) {
    throw new DacError(
      'EINTERNAL',
      `self-check: the written model has ${got.length} convs, expected ${want.length}${i >= 0 ? ` (conv ${i}: ${got[i] ?? 'missing'}, expected ${want[i]})` : ''}`,
      { model: model.path, field: 'output' },
    );
  }
}

export interface WriteOptions {
  /** Options the self-check loads the written model with (e.g. the stated inputShape). */
  loadOptions?: LoadOptions;
}

/**
 * Writes the decomposed model and its report as planned by prepareWrite:
 * staged, re-read and checked, then switched in so that the path holds the
 * old output or the new one, whole, at every instant.
 */
export async function writeDecomposed(plan: WritePlan, model: LoadedModel, report: object | null, opts: WriteOptions = {}): Promise<WrittenOutput> {
  const { files, commit, contentNames } = filesOf(model, plan);
  const reportText = plan.report && report ? `${JSON.stringify(report, null, 2)}\n` : undefined;
  const placed = await placeOutput(
    { ...plan.spec, report: reportText === undefined ? undefined : plan.spec.report },
    { files, commit, contentNames, reportText, selfCheck: (staged) => selfCheck(staged, model, opts.loadOptions ?? {}) },
  );
  return { files: placed.files, report: reportText === undefined ? null : plan.report };
}
