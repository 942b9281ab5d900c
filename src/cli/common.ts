// Shared pieces of the `dac` commands: argument parsing with node:util,
// usage errors, number formatting, the embedded demo assets, seeded inputs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DacError } from '../errors.js';
import { mulberry32 } from '../random.js';

/** A mistake in the command line (exit code 2), as opposed to bad input data (exit code 1). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(command: string, args: string[], options: Options): Parsed {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0], command);
  }
}

export function intOption(value: string | boolean | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  if (!/^-?\d+$/.test(s)) throw new UsageError(`${flag} must be an integer, got '${s}'`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`${flag} must be in ${min}..${max}, got ${n}`);
  return n;
}

export function fractionOption(value: string | boolean | undefined, flag: string, allowOne: boolean): number | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  const n = Number(s.endsWith('%') ? s.slice(0, -1) : s) / (s.endsWith('%') ? 100 : 1);
  if (!Number.isFinite(n) || n <= 0 || n > 1 || (!allowOne && n >= 1)) {
    throw new UsageError(`${flag} must be a fraction in (0, 1${allowOne ? ']' : ')'} (or a percentage), got '${s}'`);
  }
  return n;
}

export function floatOption(value: string | boolean | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${String(value)}'`);
  return n;
}

/** "a,b,c" -> ['a','b','c'] (empty items rejected). */
export function listOption(value: string | boolean | undefined, flag: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = String(value).split(',').map((s) => s.trim());
  if (items.some((s) => !s)) throw new UsageError(`${flag} must be a comma-separated list of names, got '${String(value)}'`);
  return items;
}

/** "--ranks a=3,b=4" or "--ranks file.json" (an object, or a report.json whose layers list name and rank). */
export function ranksOption(value: string | boolean | undefined): Record<string, number> | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  let entries: [string, unknown][];
  if (/\.json$/i.test(s)) {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(s, 'utf8'));
    } catch (err) {
      throw new DacError('EFORMAT', `cannot read --ranks file: ${(err as Error).message}`, { field: 'ranks' });
    }
    const layers = (json as { layers?: { name: string; rank: number; method?: string }[] }).layers;
    entries = Array.isArray(layers)
      ? layers.filter((l) => l.method !== 'keep').map((l) => [l.name, l.rank])
      : Object.entries(json as Record<string, unknown>);
  } else {
    entries = s.split(',').map((item) => {
      const eq = item.lastIndexOf('=');
      if (eq <= 0) throw new UsageError(`--ranks items must look like name=rank, got '${item}'`);
      return [item.slice(0, eq).trim(), item.slice(eq + 1).trim()];
    });
  }
  const out: Record<string, number> = {};
  for (const [name, r] of entries) {
    const n = Number(r);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--ranks: rank of ${name} must be a positive integer, got '${String(r)}'`);
    out[name] = n;
  }
  return out;
}

/**
 * Progress of a long command on stderr (stdout stays for results): one line
 * per phase as it starts, with the time so far, once the command has run
 * for a second; earlier phases are printed then too, so a quick run prints
 * nothing. The decomposition itself is synchronous, so a timer alone would
 * not fire during it: phase boundaries check the time as well. Silent with --quiet / --json.
 */
export class Progress {
  private readonly t0 = performance.now();
  private held: string[] = [];
  private shown = false;

  private readonly silent: boolean;

  /**
   * Shown on a terminal (or with DAC_PROGRESS=1): a script reading stderr
   * gets the one-line error contract (main.ts) and nothing else.
   */
  constructor(quiet: boolean) {
    const silent = quiet || !(process.stderr.isTTY || process.env.DAC_PROGRESS === '1');
    this.silent = silent;
    // Covers the asynchronous phases (reading, writing) between boundaries.
    if (!silent) setTimeout(() => this.flushIfSlow(), 1000).unref();
  }

  step(what: string): void {
    if (this.silent) return;
    const line = `dac: ${what} (${((performance.now() - this.t0) / 1000).toFixed(1)} s)\n`;
    if (this.shown || this.flushIfSlow()) process.stderr.write(line);
    else this.held.push(line);
  }

  /** The final line, if anything was shown. */
  done(): void {
    if (this.silent) return;
    if (this.shown || this.flushIfSlow()) process.stderr.write(`dac: done in ${((performance.now() - this.t0) / 1000).toFixed(1)} s\n`);
  }

  private flushIfSlow(): boolean {
    if (performance.now() - this.t0 < 1000) return false;
    for (const l of this.held) process.stderr.write(l);
    this.held = [];
    this.shown = true;
    return true;
  }
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtPct(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

/** "40.0% saved" or "18.2% more" for a before -> after change. */
export function fmtSaving(before: number, after: number): string {
  return after <= before ? `${fmtPct(1 - after / before)} saved` : `${fmtPct(after / before - 1)} more`;
}

/** The package root: src/cli or dist/cli are two levels below it. */
export const packageRoot = path.resolve(__dirname, '..', '..');

export const demoAssets = {
  model: path.join(packageRoot, 'demo', 'fashion-vgg'),
  images: path.join(packageRoot, 'demo', 'fashion-mnist-t500-images-idx3-ubyte.gz'),
  labels: path.join(packageRoot, 'demo', 'fashion-mnist-t500-labels-idx1-ubyte.gz'),
};

/** Deterministic N(0, 1) samples (mulberry32 + Box-Muller), so `dac compare` inputs are reproducible. */
export function seededNormal(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Index of the largest of `classes` values starting at row*classes. */
export function argmax(values: Float32Array, row: number, classes: number): number {
  let best = 0;
  for (let j = 1; j < classes; j++) if (values[row * classes + j] > values[row * classes + best]) best = j;
  return best;
}

export function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
