// latency.json: what `dac bench` measured on this device, per conv and per
// runtime, and how the planner reads it back (--latency-table).
import * as fs from 'node:fs';
import { DacError } from '../errors.js';
import type { ConvLayerInfo, Method } from '../model/types.js';
import type { LayerLatency as PlanLayerLatency } from '../plan/latency.js';
import { RUNTIMES, type ConvGeometry, type RuntimeId } from './engines.js';

export const LATENCY_TABLE_VERSION = 1;

/** One replacement of one layer in one runtime. */
export interface VariantTime {
  method: Method;
  /** DAC rank, or the spatial/channel width (matched to DAC rank `dacRank` in cost). */
  rank: number;
  dacRank: number;
  macs: number;
  /** Best-round ms, or null when the runtime cannot run it (see note). */
  ms: number | null;
  /** The original conv's best-round ms in the same interleaved rounds (the denominator of timeRatio). */
  originalMs: number | null;
  /** macs / original MACs. */
  macsRatio: number;
  /** ms / originalMs. */
  timeRatio: number | null;
  /** (1 - timeRatio) / (1 - macsRatio): the fraction of the ideal saving realised; null where the ideal saves nothing. */
  realisedOverIdeal: number | null;
  note?: string;
}

export interface LayerTimes {
  /** Best-round ms of the original conv over all its rounds, or null when the runtime cannot run it. */
  original: number | null;
  note?: string;
  variants: VariantTime[];
}

export interface LayerLatency extends ConvGeometry {
  name: string;
  index: number;
  outH: number;
  outW: number;
  macs: number;
  skipReason: string | null;
  runtimes: Partial<Record<RuntimeId, LayerTimes>>;
}

export interface WholeModelTime {
  runtime: RuntimeId;
  engine: string;
  variant: 'original' | 'decomposed' | 'decomposed (DacConv2D)';
  ms: number | null;
  macs: number;
  note?: string;
}

export interface LatencyTable {
  version: number;
  model: string;
  format: string;
  inputShape: number[];
  batch: number;
  threads: number;
  reps: number;
  machine: { cpu: string; cores: number; memGiB: number; node: string; loadStart: number[]; loadEnd: number[] };
  runtimes: { id: RuntimeId; name: string }[];
  /** Runtimes asked for that could not be used, and why. */
  unavailable: { id: RuntimeId; why: string }[];
  layers: LayerLatency[];
  /** The plan whose whole model was timed, layer by layer (method 'keep' where unchanged). */
  plan: { policy: Record<string, unknown>; layers: { name: string; method: string; rank: number }[] } | null;
  whole: WholeModelTime[];
}

function bad(msg: string, file: string): never {
  throw new DacError('EFORMAT', msg, { model: file, field: 'latency-table' });
}

/** Reads and checks latency.json (structure only; numbers are what they are). */
export function readLatencyTable(file: string): LatencyTable {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DacError('EFORMAT', `cannot read the latency table: ${(err as Error).message}`, { model: file, field: 'latency-table' });
  }
  const t = json as LatencyTable;
  if (!t || typeof t !== 'object' || t.version !== LATENCY_TABLE_VERSION || !Array.isArray(t.layers)) {
    bad(`not a latency.json of version ${LATENCY_TABLE_VERSION} (written by dac bench)`, file);
  }
  for (const l of t.layers) {
    if (!l || typeof l.name !== 'string' || typeof l.runtimes !== 'object' || l.runtimes === null) bad('a layer has no name or runtimes', file);
    for (const [id, times] of Object.entries(l.runtimes)) {
      if (!RUNTIMES.includes(id as RuntimeId)) bad(`layer ${l.name}: unknown runtime ${id}`, file);
      if (!times || !Array.isArray(times.variants)) bad(`layer ${l.name}: runtime ${id} has no variants`, file);
      for (const v of times.variants) {
        if (!['dac', 'spatial', 'channel'].includes(v.method) || !Number.isInteger(v.rank) || v.rank < 1) bad(`layer ${l.name}: a bad variant`, file);
        if (v.ms !== null && !(typeof v.ms === 'number' && v.ms >= 0)) bad(`layer ${l.name}: a variant time is not a number`, file);
      }
    }
  }
  return t;
}

/** One layer's times as the planner takes them (the replacements that ran), or null when the original did not run. */
export function planTimes(times: LayerTimes | undefined): PlanLayerLatency | null {
  if (!times || times.original === null) return null;
  return {
    original: times.original,
    options: times.variants.filter((v) => v.ms !== null).map((v) => ({ method: v.method, rank: v.rank, ms: v.ms as number })),
  };
}

/**
 * What a conv's time depends on, as a key: the runtime and the conv's
 * geometry (sizes, kernel, groups, stride, padding, dilation). Convs of
 * different models with the same key take the same time (`dac zoo` measures
 * each key once).
 */
export function geometryKey(runtime: RuntimeId, g: ConvGeometry & { outH: number; outW: number }): string {
  return `${runtime}:${g.n}x${g.c}x${g.kh}x${g.kw}/g${g.groups} in ${g.inH}x${g.inW} out ${g.outH}x${g.outW} s${g.strides.join(',')} d${g.dilations.join(',')} p${g.pads.join(',')}`;
}

/**
 * The per-layer times of one runtime, for the planner. The table must have
 * been measured on this model: every conv it lists must exist with the same
 * shape, stride, padding and dilation.
 */
export function planLatencies(table: LatencyTable, runtime: RuntimeId, convs: ConvLayerInfo[], file: string): Record<string, PlanLayerLatency> {
  const byName = new Map(convs.map((c) => [c.name, c]));
  const out: Record<string, PlanLayerLatency> = {};
  let any = false;
  for (const l of table.layers) {
    const c = byName.get(l.name);
    const same =
      c &&
      c.n === l.n &&
      c.c === l.c &&
      c.kh === l.kh &&
      c.kw === l.kw &&
      c.inH === l.inH &&
      c.inW === l.inW &&
      c.strides.join() === l.strides.join() &&
      c.dilations.join() === l.dilations.join() &&
      c.pads.join() === l.pads.join();
    if (!same) {
      throw new DacError('EINVAL', `the latency table was measured on another model: conv ${l.name} ${c ? 'differs in shape' : 'is not in this model'}`, {
        model: file,
        layer: l.name,
        field: 'latency-table',
      });
    }
    const times = planTimes(l.runtimes[runtime]);
    if (!times) continue;
    any = true;
    out[l.name] = times;
  }
  if (!any) {
    throw new DacError('EINVAL', `the latency table has no times for runtime ${runtime} (measured: ${table.runtimes.map((r) => r.id).join(', ') || 'none'})`, {
      model: file,
      field: 'runtime',
    });
  }
  return out;
}
