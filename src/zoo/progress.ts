// Progress of a zoo run. On a TTY: one redrawn line with a bar, counts,
// rate and ETA (at most ~10 redraws a second). Otherwise (a log file, CI):
// one plain line per finished model, nothing redrawn.
import type { ModelRecord } from './summary.js';

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class Progress {
  private done = 0;
  private worked = 0;
  private counts = { ok: 0, failed: 0, skipped: 0 };
  private readonly t0: number;
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly total: number,
    /** Models that actually need work (not up to date): the rate and ETA are over these. */
    private readonly toDo: number,
    private readonly out: ProgressSink,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.t0 = now();
  }

  /** Draws the empty bar (TTY), so the run shows before the first model ends. */
  start(): void {
    if (this.out.isTTY) this.draw(true);
  }

  /** One model finished (or was found up to date). */
  update(r: ModelRecord): void {
    this.done++;
    this.counts[r.status]++;
    // Models known from an earlier run, and files that are not models we may read, took no work.
    if (!r.cached && r.status !== 'skipped') this.worked++;
    if (this.out.isTTY) {
      if (r.status === 'failed') this.printAbove(`failed ${r.model}: ${r.reason ?? ''}`);
      this.draw(false);
    } else if (!r.cached) {
      this.out.write(`[${this.done}/${this.total}] ${this.describe(r)}\n`);
    }
  }

  /** Final line (TTY: the bar at 100% and a newline). */
  finish(): void {
    if (this.out.isTTY) {
      this.draw(true);
      this.out.write('\n');
    }
  }

  /** Models per second over the models that needed work, and seconds left at that rate. */
  rate(): { perSecond: number; etaSeconds: number } {
    const elapsed = (this.now() - this.t0) / 1000;
    const perSecond = elapsed > 0 ? this.worked / elapsed : 0;
    const left = Math.max(0, this.toDo - this.worked);
    return { perSecond, etaSeconds: perSecond > 0 ? left / perSecond : left === 0 ? 0 : NaN };
  }

  line(width = 80): string {
    const { perSecond, etaSeconds } = this.rate();
    const frac = this.total > 0 ? this.done / this.total : 1;
    const stats =
      ` ${this.done}/${this.total} ${(frac * 100).toFixed(0).padStart(3)}%` +
      ` ${perSecond.toFixed(2)} models/s ETA ${formatDuration(etaSeconds)}` +
      ` ok ${this.counts.ok} fail ${this.counts.failed} skip ${this.counts.skipped}`;
    const barWidth = Math.max(10, Math.min(30, width - stats.length - 3));
    const filled = Math.round(frac * barWidth);
    return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${stats}`;
  }

  private describe(r: ModelRecord): string {
    if (r.status === 'ok') {
      const saved = r.flopsSaved === undefined ? '' : ` ${(r.flopsSaved * 100).toFixed(1)}% FLOPs saved`;
      return `ok ${r.model}${saved} (${(r.seconds ?? 0).toFixed(2)} s)`;
    }
    return `${r.status} ${r.model}: ${r.reason ?? ''}`;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!force && this.drawn && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.drawn = true;
    const width = this.out.columns ?? 80;
    this.out.write(`\r${this.line(width).slice(0, width - 1)}\x1b[K`);
  }

  private printAbove(msg: string): void {
    this.out.write(`\r\x1b[K${msg}\n`);
    this.drawn = false;
  }
}
