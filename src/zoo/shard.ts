// Splitting a zoo run across machines: `dac zoo --shard K/N` works on the
// models whose path (relative to the zoo folder) hashes to K of N, so every
// machine, and every re-run, computes the same split from the path alone,
// whatever order the folders are listed in. Each shard has its own lock and
// summary (summary-K-of-N.json) in the output folder, so
// N shards can share one output folder on a shared filesystem; the models'
// completion markers need no sharing, as no two shards own the same model.
// `dac zoo --merge` combines the shards' summaries into one.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';
import { MAX_JSON_BYTES, readFileBounded } from '../io/limits.js';
import { hashOptions } from './resume.js';
import { summarize, writeSummary, type ModelRecord, type Shard, type ShardRun, type ZooSummary } from './summary.js';

/** Parses 'K/N' (1 <= K <= N <= 1e6); null when malformed. */
export function parseShard(text: string): Shard | null {
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(text.trim());
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > 1_000_000 || index < 1 || index > count) return null;
  return { index, count };
}

export const shardLabel = (s: Shard): string => `${s.index}/${s.count}`;
/** File-name form of a shard, for its lock and summary. */
export const shardTag = (s: Shard): string => `${s.index}-of-${s.count}`;

/**
 * The shard (1-based, of `count`) a model belongs to: the first 48 bits of
 * the SHA-256 of its '/'-separated path relative to the zoo folder (in
 * Unicode NFC: a macOS client may list a name decomposed that Linux lists
 * composed), modulo `count`. A pure function of the path, so the same on
 * every machine wherever the zoo is mounted.
 */
export function shardOf(rel: string, count: number): number {
  const h = crypto.createHash('sha256').update(rel.normalize('NFC'), 'utf8').digest();
  return (h.readUIntBE(0, 6) % count) + 1;
}

export function inShard(rel: string, shard: Shard | undefined): boolean {
  return !shard || shard.count === 1 || shardOf(rel, shard.count) === shard.index;
}

/** Name of the summary a run writes (without extension): 'summary', or 'summary-K-of-N' for a shard. */
export function summaryBase(shard: Shard | undefined): string {
  return shard ? `summary-${shardTag(shard)}` : 'summary';
}

const SHARD_SUMMARY = /^summary-(\d+)-of-(\d+)\.json$/;

/** Every shard summary in the given output folders. */
function findShardSummaries(dirs: string[]): { file: string; summary: ZooSummary }[] {
  const found: { file: string; summary: ZooSummary }[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      throw new DacError('ENOENT', `cannot read the output folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`, { field: 'dir' });
    }
    for (const name of names.filter((n) => SHARD_SUMMARY.test(n)).sort()) {
      const file = path.join(dir, name);
      let summary: ZooSummary;
      try {
        summary = JSON.parse(readFileBounded(file, MAX_JSON_BYTES).toString('utf8')) as ZooSummary;
      } catch (err) {
        throw new DacError('EPARSE', `shard summary ${file} cannot be read: ${(err as Error).message}`, { field: 'dir' });
      }
      const shard = summary?.shard;
      const m = SHARD_SUMMARY.exec(name)!;
      if (!shard || shard.index !== Number(m[1]) || shard.count !== Number(m[2]) || !Array.isArray(summary.models)) {
        throw new DacError('EFORMAT', `${file} is not the summary of shard ${m[1]}/${m[2]}`, { field: 'dir' });
      }
      found.push({ file, summary });
    }
  }
  return found;
}

/**
 * Combines the summaries of shards 1..N of one split, found in `dirs`, into
 * the summary a single run over the whole zoo would have written (timings
 * aside: the wall time is from the first shard's start to the last one's
 * end, and the jobs are the shards' added up). Refuses a missing or doubled
 * shard, shards of different splits, options or versions, and a model
 * claimed by two shards.
 */
export function mergeShardSummaries(dirs: string[], out: string): ZooSummary {
  const found = findShardSummaries(dirs);
  if (found.length === 0) {
    throw new DacError('ENOENT', `no shard summary (summary-K-of-N.json) in ${dirs.join(', ')}`, { field: 'dir' });
  }
  const first = found[0].summary;
  const count = first.shard!.count;
  const byIndex = new Map<number, string>();
  for (const { file, summary } of found) {
    const s = summary.shard!;
    if (s.count !== count) {
      throw new DacError('EINVAL', `${file} is shard ${shardLabel(s)}, ${found[0].file} is of ${count} shards: one split at a time`, { field: 'dir' });
    }
    if (byIndex.has(s.index)) throw new DacError('EINVAL', `shard ${shardLabel(s)} found twice: ${byIndex.get(s.index)} and ${file}`, { field: 'dir' });
    byIndex.set(s.index, file);
    if (hashOptions(summary.options) !== hashOptions(first.options)) {
      throw new DacError('EINVAL', `${file} was run with other options than ${found[0].file}`, { field: 'dir' });
    }
    if (summary.version !== first.version) {
      throw new DacError('EINVAL', `${file} was written by version ${summary.version}, ${found[0].file} by ${first.version}`, { field: 'dir' });
    }
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length) {
    const shown = missing.slice(0, 10).map((i) => `${i}/${count}`).join(', ');
    throw new DacError('EINVAL', `missing shard summaries: ${shown}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''} (not run yet, still running, or killed)`, {
      field: 'dir',
    });
  }

  const owner = new Map<string, string>();
  const records: ModelRecord[] = [];
  const notes: string[] = [];
  const shards: ShardRun[] = [];
  let start = Infinity;
  let end = -Infinity;
  let jobs = 0;
  for (const { file, summary } of found.sort((a, b) => a.summary.shard!.index - b.summary.shard!.index)) {
    const label = shardLabel(summary.shard!);
    for (const r of summary.models) {
      const other = owner.get(r.model);
      if (other !== undefined) throw new DacError('EINVAL', `model ${r.model} is in shard ${other} and in shard ${label} (${file})`, { field: 'dir' });
      owner.set(r.model, label);
      records.push(r);
    }
    for (const n of summary.notes ?? []) notes.push(`shard ${label}: ${n}`);
    const t = Date.parse(summary.startedAt);
    start = Math.min(start, t);
    end = Math.max(end, t + summary.seconds * 1000);
    jobs += summary.jobs;
    shards.push({ shard: label, out: summary.out, jobs: summary.jobs, startedAt: summary.startedAt, seconds: summary.seconds, models: summary.models.length });
  }
  const merged = summarize(records, {
    version: first.version,
    root: first.root,
    out: path.resolve(out),
    options: first.options,
    jobs,
    startedAt: new Date(start).toISOString(),
    seconds: (end - start) / 1000,
  });
  merged.shards = shards;
  if (notes.length) merged.notes = notes;
  return merged;
}

/** `dac zoo --merge`: merges and writes summary.json and summary.md to `out`. */
export async function mergeShards(dirs: string[], out: string): Promise<ZooSummary> {
  const merged = mergeShardSummaries(dirs, out);
  fs.mkdirSync(out, { recursive: true });
  await writeSummary(merged, out);
  return merged;
}
