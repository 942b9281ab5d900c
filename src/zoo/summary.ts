// What a zoo run reports: one record per model (written to summary.json and
// a readable summary.md), plus totals.
import * as path from 'node:path';
import type { ModelFormat } from '../model/types.js';
import { writeFileAtomic } from '../io/atomic.js';

export type ModelStatus = 'ok' | 'failed' | 'skipped';

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** What a merged summary says about each shard it was made of. */
export interface ShardRun {
  shard: string;
  out: string;
  jobs: number;
  startedAt: string;
  seconds: number;
  models: number;
}

export interface ModelRecord {
  /** Path relative to the zoo folder. */
  model: string;
  format: ModelFormat | null;
  status: ModelStatus;
  /** Why it failed or was skipped. */
  reason?: string;
  /** DacError code of a failure, 'EWORKER' when the worker died, 'ETIMEOUT' when it hung. */
  code?: string;
  /**
   * True when the outcome is from an earlier run: a model decomposed then
   * (status 'skipped', reason 'up to date ...'), or skipped or failed then
   * (same status, code and reason as then; failures are retried with
   * --retry-failed, or when their files, the options or the limit they
   * failed on change).
   */
  cached?: boolean;
  inputBytes?: number;
  flopsBefore?: number;
  flopsAfter?: number;
  /** 1 - flopsAfter / flopsBefore */
  flopsSaved?: number;
  paramsBefore?: number;
  paramsAfter?: number;
  layersDecomposed?: number;
  layersTotal?: number;
  /** Output model and report, relative to the output folder. */
  output?: string;
  report?: string;
  /** What `dac decompose` would warn about (e.g. a rank that does not save MACs). */
  warnings?: string[];
  /** Wall time of this model in its worker (of the run that produced it, when cached). */
  seconds?: number;
}

export interface ZooSummary {
  version: string;
  root: string;
  out: string;
  options: unknown;
  jobs: number;
  startedAt: string;
  seconds: number;
  counts: { total: number; ok: number; failed: number; skipped: number; cached: number };
  /** Over every model that has a result (ok and cached). */
  flops: { before: number; after: number; saved: number };
  params: { before: number; after: number };
  inputBytes: number;
  /** What the run wants its user to know besides the models (e.g. a stale lock taken over). */
  notes?: string[];
  /** A `--shard K/N` run: which one (its models are those of the zoo that fall in it). */
  shard?: Shard;
  /** A merged summary (`--merge`): the shard runs it combines. */
  shards?: ShardRun[];
  models: ModelRecord[];
}

export function summarize(
  records: ModelRecord[],
  meta: Pick<ZooSummary, 'version' | 'root' | 'out' | 'options' | 'jobs' | 'startedAt' | 'seconds'>,
): ZooSummary {
  const models = [...records].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  const counts = { total: models.length, ok: 0, failed: 0, skipped: 0, cached: 0 };
  const flops = { before: 0, after: 0, saved: 0 };
  const params = { before: 0, after: 0 };
  let inputBytes = 0;
  for (const r of models) {
    counts[r.status]++;
    if (r.cached) counts.cached++;
    if (r.flopsBefore !== undefined && r.flopsAfter !== undefined) {
      flops.before += r.flopsBefore;
      flops.after += r.flopsAfter;
    }
    if (r.paramsBefore !== undefined && r.paramsAfter !== undefined) {
      params.before += r.paramsBefore;
      params.after += r.paramsAfter;
    }
    inputBytes += r.inputBytes ?? 0;
  }
  flops.saved = flops.before > 0 ? 1 - flops.after / flops.before : 0;
  return { ...meta, counts, flops, params, inputBytes, models };
}

const pct = (x: number | undefined): string => (x === undefined ? '' : `${(x * 100).toFixed(1)}%`);
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');

export function summaryMarkdown(s: ZooSummary): string {
  const c = s.counts;
  const lines = [
    `# dac zoo summary`,
    '',
    `- zoo: \`${s.root}\`, output: \`${s.out}\``,
    ...(s.shard ? [`- shard ${s.shard.index}/${s.shard.count} of the zoo (\`dac zoo --merge\` combines the shards)`] : []),
    ...(s.shards ? [`- merged from ${s.shards.length} shard runs (\`shards\` in summary.json lists each one's folder, start and wall time)`] : []),
    `- options: \`${JSON.stringify(s.options)}\`, jobs: ${s.jobs}`,
    `- models: ${c.total} (ok ${c.ok}, failed ${c.failed}, skipped ${c.skipped}); outcomes known from an earlier run: ${c.cached}`,
    `- FLOPs (MACs) of the models with a result: ${s.flops.before} -> ${s.flops.after} (${pct(s.flops.saved)} saved)`,
    `- wall time: ${s.seconds.toFixed(1)} s, started ${s.startedAt}`,
    ...(s.notes ?? []).map((n) => `- note: ${n}`),
    '',
    '| model | format | status | FLOPs saved | layers | time (s) | reason |',
    '|---|---|---|---:|---:|---:|---|',
  ];
  for (const r of s.models) {
    const layers = r.layersTotal === undefined ? '' : `${r.layersDecomposed}/${r.layersTotal}`;
    const time = r.seconds === undefined ? '' : r.seconds.toFixed(2);
    lines.push(
      `| ${cell(r.model)} | ${r.format ?? ''} | ${r.status} | ${pct(r.flopsSaved)} | ${layers} | ${time} | ${cell(r.reason ?? '')} |`,
    );
  }
  return lines.join('\n') + '\n';
}

/** Writes `<base>.json` and `<base>.md` (base: 'summary', or 'summary-K-of-N' for a shard). */
export async function writeSummary(s: ZooSummary, outRoot: string, base = 'summary'): Promise<void> {
  await writeFileAtomic(path.join(outRoot, `${base}.json`), JSON.stringify(s, null, 1));
  await writeFileAtomic(path.join(outRoot, `${base}.md`), summaryMarkdown(s));
}
