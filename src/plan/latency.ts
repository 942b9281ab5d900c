// Planning by measured latency (`dac bench` tables): the candidates a budget
// policy may choose for a layer in one runtime, and their times. A
// replacement that was not measured faster than the original conv in that
// runtime is never a candidate, whatever the budget is on.
import { DacError } from '../errors.js';
import type { Method } from '../model/types.js';

/** One layer's measured times in one runtime (ms, any batch: only ratios and sums matter). */
export interface LayerLatency {
  original: number;
  options: { method: Method; rank: number; ms: number }[];
}

/** Measured ms of a layer's replacement, or null when it was not measured faster than the original. */
export function fasterTime(lat: LayerLatency | undefined, method: Method, rank: number): number | null {
  if (!lat) return null;
  const o = lat.options.find((x) => x.method === method && x.rank === rank);
  return o && o.ms < lat.original ? o.ms : null;
}

export function checkLatencies(latency: Record<string, LayerLatency> | undefined, latencySaved: number | undefined): void {
  if (latencySaved !== undefined && latency === undefined) {
    throw new DacError('EINVAL', 'latencySaved needs measured latencies (dac bench, or --latency-table)', { field: 'latencySaved' });
  }
  for (const [name, l] of Object.entries(latency ?? {})) {
    if (!l || !(l.original > 0) || !Array.isArray(l.options) || l.options.some((o) => !(o.ms >= 0))) {
      throw new DacError('EINVAL', 'latencies must be positive numbers', { layer: name, field: 'latency' });
    }
  }
}
