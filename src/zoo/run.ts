// `dac zoo`: decompose every model under a folder, in a pool of worker
// threads, resumably. Models already done with the same input and options
// are not redone (unless forced), nor are models that failed (unless asked
// to retry them); a model that fails is recorded and the run goes on;
// summary.json and summary.md say what happened to each. One run at a time
// works on an output folder (lock.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { getBackend } from '../backend/loader.js';
import { DacError } from '../errors.js';
import { checkByteLimit, DEFAULT_MAX_MODEL_BYTES, isInside } from '../io/limits.js';
import { discoverModels, type ZooEntry } from './discover.js';
import { failure, recordOutcome, type ZooJob, type ZooSettings } from './job.js';
import { measureLatencies } from './latency.js';
import { acquireZooLock, LOCK_NAME, refuseOtherRuns } from './lock.js';
import { WorkerPool } from './pool.js';
import { Progress, type ProgressSink } from './progress.js';
import { readDone, settingsHash, stampInputs, STATE_DIR, type RunLimits } from './resume.js';
import { inShard, shardTag, summaryBase } from './shard.js';
import { summarize, writeSummary, type ModelRecord, type Shard, type ZooSummary } from './summary.js';

/** A safety net, not a budget: far above what a VGG16-sized model takes, short of a run that never ends. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
/** Reason of a model decomposed by an earlier run (status 'skipped', cached). */
export const UP_TO_DATE = 'up to date (done by an earlier run)';

/**
 * What the zoo command does to its own process before a run (so the CLI and
 * the bench's runs, never runZoo itself), both to hold a job's memory near
 * one model's:
 * - glibc's mmap threshold held at the 128 KiB it starts from
 *   (Backend.mapLargeAllocations), so each model's weight buffers go back to
 *   the system when freed instead of staying in malloc's heaps
 *   (bench/results/zoo.md: about 75-100 MiB of RSS per job);
 * - V8's gc() given to the workers started after this (a V8 flag is read
 *   when an isolate starts), so each collects a model's garbage before it
 *   takes the next (worker.ts): left to itself, a worker's V8 frees the
 *   last model's buffers while the next one peaks.
 * Whether the C library took the threshold.
 */
export function prepareZooProcess(): boolean {
  v8.setFlagsFromString('--expose-gc');
  return getBackend().mapLargeAllocations(128 * 1024);
}

export interface ZooOptions {
  root: string;
  out: string;
  settings: ZooSettings;
  /** Worker threads, i.e. models in memory at once (default: number of cores). */
  jobs?: number;
  /** Redo every model, even those done or failed in an earlier run. */
  force?: boolean;
  /** Redo the models that failed in an earlier run (the done ones stay done). */
  retryFailed?: boolean;
  /** A model whose files add up to more is refused before being read (default DEFAULT_MAX_MODEL_BYTES). */
  maxModelBytes?: number;
  /** A model taking longer than this (ms) is stopped and recorded as failed (default 30 minutes; 0: no limit). */
  timeoutMs?: number;
  /** Where progress and notes go (default: stderr). */
  progress?: ProgressSink | null;
  /** Called for every model as it finishes. */
  onRecord?: (r: ModelRecord) => void;
  /** Work on this shard of the zoo only (shard.ts), with its own lock and summary. */
  shard?: Shard;
}
export function packageVersion(): string {
  try {
    // Two levels up from src/zoo and from dist/zoo alike.
    return (require(path.join(__dirname, '..', '..', 'package.json')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function checkFolders(root: string, out: string): { root: string; out: string } {
  const r = path.resolve(root);
  const o = path.resolve(out);
  let realRoot = r;
  try {
    realRoot = fs.realpathSync(r);
  } catch {
    throw new DacError('ENOENT', `zoo folder ${root} does not exist`, { field: 'dir' });
  }
  fs.mkdirSync(o, { recursive: true });
  const realOut = fs.realpathSync(o);
  if (isInside(realOut, realRoot)) {
    throw new DacError('EINVAL', `output folder ${out} contains the zoo folder ${root}; outputs could overwrite inputs`, {
      field: 'out',
    });
  }
  return { root: realRoot, out: realOut };
}

export async function runZoo(opts: ZooOptions): Promise<ZooSummary> {
  const startedAt = new Date();
  const t0 = performance.now();
  const jobs = opts.jobs ?? os.availableParallelism();
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1024) {
    throw new DacError('EINVAL', `jobs must be an integer in 1..1024, got ${jobs}`, { field: 'jobs' });
  }
  if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs >= 0)) {
    throw new DacError('EINVAL', `timeout must be a number of milliseconds >= 0, got ${opts.timeoutMs}`, { field: 'timeoutMs' });
  }
  const limits: RunLimits = {
    maxModelBytes: checkByteLimit(opts.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES, 'maxModelBytes'),
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
  const shard = opts.shard;
  if (shard && !(Number.isInteger(shard.count) && Number.isInteger(shard.index) && shard.count >= 1 && shard.index >= 1 && shard.index <= shard.count)) {
    throw new DacError('EINVAL', `shard must be K/N with 1 <= K <= N, got ${shard.index}/${shard.count}`, { field: 'shard' });
  }
  const { root, out } = checkFolders(opts.root, opts.out);
  // Without a backend every model would fail the same way: say it once, up front.
  getBackend();
  // Before anything in the output folder is touched: another run may be working there.
  // Shards of one split lock only their own part of the folder; anything else must wait for them.
  const lock = acquireZooLock(out, STATE_DIR, shard ? `${LOCK_NAME}.${shardTag(shard)}` : LOCK_NAME);
  const base = summaryBase(shard);
  const sink = opts.progress === undefined ? process.stderr : opts.progress;
  const notes: string[] = [];
  if (lock.tookOver) {
    const o = lock.tookOver;
    notes.push(`took over the lock of an earlier run that is gone (pid ${o.pid} on ${o.hostname}, started ${o.startedAt})`);
  }
  try {
    const sameSplit = (name: string): boolean => !!shard && name.endsWith(`-of-${shard.count}`) && /^lock\.\d+-of-\d+$/.test(name);
    refuseOtherRuns(lock, sameSplit, (name) => (name === LOCK_NAME ? 'the whole zoo (no --shard)' : `shard ${name.slice(LOCK_NAME.length + 1).replace('-of-', '/')}`));
    for (const n of notes) sink?.write(`dac zoo: note: ${n}\n`);
    // A model's own leftovers go when it is redone; a summary's temporary sibling when its run is.
    const leftover = new RegExp(`^\\.${base}\\.(json|md)\\.tmp-\\d+-[a-z0-9]+$`);
    for (const n of fs.readdirSync(out)) {
      if (leftover.test(n)) fs.rmSync(path.join(out, n), { force: true });
    }
    // A shard's summary from an earlier run would read as this run's to --merge until this one ends.
    if (shard) for (const ext of ['json', 'md']) fs.rmSync(path.join(out, `${base}.${ext}`), { force: true });

    const all = await discoverModels(root, out);
    const found = { models: all.models.filter((e) => inShard(e.rel, shard)), ignored: all.ignored.filter((i) => inShard(i.rel, shard)) };
    const version = packageVersion();
    const optionsHash = settingsHash(opts.settings);
    const todo: ZooEntry[] = [];
    const cached: ModelRecord[] = [];
    for (const entry of found.models) {
      const prev = opts.force ? null : readDone(entry, out, optionsHash, version, { retryFailed: opts.retryFailed, limits });
      if (!prev) todo.push(entry);
      else if (prev.status === 'ok') cached.push({ ...prev, status: 'skipped', cached: true, reason: UP_TO_DATE });
      else cached.push({ ...prev, cached: true });
    }

    const progress = sink ? new Progress(found.models.length + found.ignored.length, todo.length, sink) : null;
    progress?.start();
    const records: ModelRecord[] = [];
    const finished = (r: ModelRecord): void => {
      records.push(r);
      progress?.update(r);
      opts.onRecord?.(r);
    };
    found.ignored.forEach((i) => finished({ model: i.rel, format: null, status: 'skipped', reason: i.reason }));
    cached.forEach(finished);

    // Timed before any decomposition starts, one model at a time: the machine is as quiet as this run leaves it.
    const planByLatency = opts.settings.latencySaved !== undefined || opts.settings.latencyTable !== undefined;
    const latencies = planByLatency && todo.length ? await measureLatencies(todo, opts.settings, limits, sink) : null;
    if (todo.length) {
      const size = Math.min(jobs, todo.length);
      // Native SVD threads per model, so the workers together use the cores without oversubscribing.
      const threads = Math.max(1, Math.floor(os.availableParallelism() / size));
      const pool = new WorkerPool({ size, timeoutMs: limits.timeoutMs });
      try {
        await Promise.all(
          todo.map(async (entry) => {
            const job: ZooJob = { entry, outRoot: out, settings: opts.settings, optionsHash, limits, threads, toolVersion: version, latency: latencies?.get(entry.rel) };
            let r: ModelRecord;
            try {
              r = await pool.run<ModelRecord>('decompose', job);
            } catch (err) {
              // The worker timed out or died: its job could not record that, so it is recorded here.
              r = failure({ model: entry.rel, format: entry.format, status: 'failed' }, err);
              await recordOutcome(job, stampInputs(entry.path, entry.format), [], r).catch(() => undefined);
            }
            finished(r);
          }),
        );
      } finally {
        await pool.close();
      }
    }
    progress?.finish();

    const summary = summarize(records, {
      version,
      root,
      out,
      options: opts.settings,
      jobs,
      startedAt: startedAt.toISOString(),
      seconds: (performance.now() - t0) / 1000,
    });
    if (notes.length) summary.notes = notes;
    if (shard) summary.shard = { index: shard.index, count: shard.count };
    await writeSummary(summary, out, base);
    return summary;
  } finally {
    lock.release();
  }
}
