// `dac bench`: times every conv of the user's model, with its real shapes,
// and its replacements at every rank, in each runtime on this device; then
// the whole model, original against decomposed. Measurements are interleaved
// (the original conv and one replacement alternate round by round) and the
// best round is kept: on a shared machine other processes only ever add
// time, so the fastest of N rounds is the least disturbed estimate, and the
// alternation makes both sides of a ratio see the same conditions.
import * as os from 'node:os';
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/loader.js';
import { convCost, matchingWidth, replacementCost } from '../cost.js';
import { maxRank } from '../geometry.js';
import { decomposeLoaded, type DecomposeSettings } from '../decompose-model.js';
import { DacError } from '../errors.js';
import { GraphModel, TfjsModel, type LoadedModel } from '../formats/index.js';
import type { ConvLayerInfo, Method } from '../model/types.js';
import { exclusion } from '../plan/index.js';
import { mulberry32 } from '../random.js';
import { createRunner, type Runner } from '../runtime/index.js';
import type { TfjsBackendName } from '../runtime/tfjs-backend.js';
import { oursEngine, ortEngine, tfjsEngine, type Engine, type Program, type RuntimeId, type Variant } from './engines.js';
import { LATENCY_TABLE_VERSION, type LatencyTable, type LayerLatency, type LayerTimes, type VariantTime, type WholeModelTime } from './table.js';

export interface BenchOptions {
  /** Images per call (default 1). */
  batch?: number;
  /** Threads for our kernels and onnxruntime (default 1). */
  threads?: number;
  /** Runtimes to time (default: all three; the missing ones are listed as unavailable). */
  runtimes?: RuntimeId[];
  /** Replacement methods to time per layer (default all three). */
  methods?: Method[];
  /** Interleaved rounds per measurement (default 5). */
  reps?: number;
  /** Only these convs (default: all). */
  layers?: string[];
  /** The policy of the decomposed model timed whole; null skips whole-model timing. Default: dac at 50% MACs saved. */
  plan?: DecomposeSettings | null;
  tfjsBackend?: TfjsBackendName;
  backend?: Backend;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

export const DEFAULT_BENCH_PLAN: DecomposeSettings = { method: 'dac', flopsSaved: 0.5 };

function best(xs: number[]): number {
  return Math.min(...xs);
}

/** Runs each program once (warm-up), then `reps` rounds of all of them in turn; returns each one's times. */
async function interleaved(programs: { run(): void | Promise<void> }[], reps: number): Promise<number[][]> {
  for (const p of programs) await p.run();
  const times = programs.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < programs.length; i++) {
      const t0 = performance.now();
      await programs[i].run();
      times[i].push(performance.now() - t0);
    }
  }
  return times;
}

/** Every variant a layer is timed at: DAC at ranks 1..min(n, kh*kw), spatial and channel at the widths matching those ranks. */
export function variantsOf(layer: ConvLayerInfo, methods: Method[]): (Variant & { method: Method; dacRank: number })[] {
  const out: (Variant & { method: Method; dacRank: number })[] = [];
  for (const method of methods) {
    const seen = new Set<number>();
    for (let r = 1; r <= maxRank(layer, 'dac'); r++) {
      const rank = method === 'dac' ? r : matchingWidth(layer, method, r);
      if (seen.has(rank)) continue;
      seen.add(rank);
      out.push({ method, rank, dacRank: r });
    }
  }
  return out;
}

async function timeLayer(engine: Engine, layer: ConvLayerInfo, methods: Method[], batch: number, reps: number): Promise<LayerTimes> {
  const original = await engine.prepare(layer, { method: 'original', rank: 0 }, batch);
  if (typeof original === 'string') return { original: null, note: original, variants: [] };
  const macs = convCost(layer).macs;
  const originalTimes: number[] = [];
  const variants: VariantTime[] = [];
  try {
    if (exclusion(layer, {}) === null) {
      for (const v of variantsOf(layer, methods)) {
        const vm = replacementCost(layer, v.method, v.rank).macs;
        const entry: VariantTime = {
          method: v.method,
          rank: v.rank,
          dacRank: v.dacRank,
          macs: vm,
          ms: null,
          originalMs: null,
          macsRatio: vm / macs,
          timeRatio: null,
          realisedOverIdeal: null,
        };
        const prog: Program | string = await engine.prepare(layer, v, batch);
        if (typeof prog === 'string') {
          entry.note = prog;
        } else {
          try {
            const [o, t] = await interleaved([original, prog], reps);
            originalTimes.push(...o);
            entry.ms = best(t);
            entry.originalMs = best(o);
            entry.timeRatio = entry.ms / entry.originalMs;
            entry.realisedOverIdeal = entry.macsRatio < 1 ? (1 - entry.timeRatio) / (1 - entry.macsRatio) : null;
          } finally {
            await prog.dispose();
          }
        }
        variants.push(entry);
      }
    }
    if (originalTimes.length === 0) originalTimes.push(...(await interleaved([original], reps))[0]);
  } finally {
    await original.dispose();
  }
  return { original: best(originalTimes), variants };
}

async function engines(opts: BenchOptions, threads: number): Promise<{ list: Engine[]; unavailable: { id: RuntimeId; why: string }[] }> {
  const list: Engine[] = [];
  const unavailable: { id: RuntimeId; why: string }[] = [];
  for (const id of opts.runtimes ?? (['ours', 'ort', 'tfjs'] as RuntimeId[])) {
    const e = id === 'ours' ? oursEngine(opts.backend ?? getBackend(), threads) : id === 'ort' ? ortEngine(threads) : await tfjsEngine(threads, opts.tfjsBackend);
    if (typeof e === 'string') unavailable.push({ id, why: e });
    else list.push(e);
  }
  return { list, unavailable };
}

function checkOptions(model: LoadedModel, o: BenchOptions): { batch: number; threads: number; reps: number } {
  const int = (v: number | undefined, field: string, dflt: number, max: number) => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < 1 || v > max) throw new DacError('EINVAL', `${field} must be an integer in 1..${max}, got ${v}`, { field });
    return v;
  };
  for (const name of o.layers ?? []) {
    if (!model.convs.some((c) => c.name === name)) throw new DacError('EINVAL', `no conv named '${name}'`, { model: model.path, field: 'layers' });
  }
  if (model.freeInput) {
    throw new DacError('EINVAL', 'the model declares free input sizes: state one (its latency depends on it)', { model: model.path, field: 'inputShape' });
  }
  return { batch: int(o.batch, 'batch', 1, 4096), threads: int(o.threads, 'threads', 1, 1024), reps: int(o.reps, 'reps', 5, 1000) };
}

/** Times the model whole in each runtime that runs its format: original, decomposed, and (TF.js) decomposed with DacConv2D layers or op nodes. */
async function timeWhole(
  model: LoadedModel,
  settings: DecomposeSettings,
  list: Engine[],
  batch: number,
  threads: number,
  reps: number,
  tfjsBackend: TfjsBackendName | undefined,
  backend: Backend,
  progress: (line: string) => void,
): Promise<{ whole: WholeModelTime[]; planLayers: { name: string; method: string; rank: number }[] }> {
  const stock = decomposeLoaded(model, settings, backend);
  const variants: { variant: WholeModelTime['variant']; model: LoadedModel; macs: number }[] = [
    { variant: 'original', model, macs: stock.report.flops.before },
    { variant: 'decomposed', model: stock.model, macs: stock.report.flops.after },
  ];
  if (model instanceof TfjsModel || model instanceof GraphModel) {
    variants.push({ variant: 'decomposed (DacConv2D)', model: decomposeLoaded(model.withTfjsLayer('dac'), settings, backend).model, macs: stock.report.flops.after });
  }
  const whole: WholeModelTime[] = [];
  const [h, w, c] = model.inputShape;
  const next = mulberry32(99);
  const input = Float32Array.from({ length: batch * h * w * c }, () => next());
  for (const engine of list) {
    const runs = model.format === 'onnx' ? engine.id === 'ort' : engine.id === 'tfjs';
    if (!runs) {
      const why = engine.id === 'ours' ? 'our kernels run convs only; the whole model runs in tfjs with DacConv2D' : `${engine.name} does not run ${model.format} models`;
      whole.push({ runtime: engine.id, engine: engine.name, variant: 'original', ms: null, macs: variants[0].macs, note: why });
      continue;
    }
    progress(`whole model in ${engine.name}: ${variants.map((v) => v.variant).join(', ')}`);
    const runners: Runner[] = [];
    try {
      for (const v of variants) runners.push(await createRunner(v.model, { tfjsBackend, threads, chunk: batch }));
      const times = await interleaved(
        runners.map((r) => ({ run: async () => void (await r.run(input, batch)) })),
        reps,
      );
      variants.forEach((v, i) => whole.push({ runtime: engine.id, engine: runners[i].engine, variant: v.variant, ms: best(times[i]), macs: v.macs }));
    } finally {
      runners.forEach((r) => r.dispose());
    }
  }
  return { whole, planLayers: stock.report.layers.map((l) => ({ name: l.name, method: l.method, rank: l.rank })) };
}

/** Measures the model on this device: per conv and replacement in each runtime, then the whole model. */
export async function benchModel(model: LoadedModel, options: BenchOptions = {}): Promise<LatencyTable> {
  const { batch, threads, reps } = checkOptions(model, options);
  const progress = options.progress ?? (() => undefined);
  const methods = options.methods ?? (['dac', 'spatial', 'channel'] as Method[]);
  const backend = options.backend ?? getBackend();
  const loadStart = os.loadavg();
  const { list, unavailable } = await engines({ ...options, backend }, threads);
  for (const u of unavailable) progress(`runtime ${u.id} unavailable: ${u.why}`);
  if (list.length === 0) throw new DacError('ENOTFOUND', 'none of the runtimes asked for is available', { field: 'runtime' });
  const convs = model.convs.filter((c) => !options.layers || options.layers.includes(c.name));
  const layers: LayerLatency[] = [];
  for (const [i, conv] of convs.entries()) {
    const entry: LayerLatency = {
      name: conv.name,
      index: conv.index,
      n: conv.n,
      c: conv.c,
      kh: conv.kh,
      kw: conv.kw,
      groups: conv.groups,
      strides: conv.strides,
      dilations: conv.dilations,
      pads: conv.pads,
      inH: conv.inH,
      inW: conv.inW,
      outH: conv.outH,
      outW: conv.outW,
      macs: convCost(conv).macs,
      skipReason: conv.skipReason,
      runtimes: {},
    };
    for (const engine of list) {
      progress(`[${i + 1}/${convs.length}] ${conv.name} (${conv.inH}x${conv.inW}x${conv.c} -> ${conv.n}, ${conv.kh}x${conv.kw}) in ${engine.name}`);
      entry.runtimes[engine.id] = await timeLayer(engine, conv, methods, batch, reps);
    }
    layers.push(entry);
  }
  let whole: WholeModelTime[] = [];
  let plan: LatencyTable['plan'] = null;
  const settings = options.plan === undefined ? DEFAULT_BENCH_PLAN : options.plan;
  if (settings) {
    const r = await timeWhole(model, settings, list, batch, threads, reps, options.tfjsBackend, backend, progress);
    whole = r.whole;
    plan = { policy: { ...settings }, layers: r.planLayers };
  }
  list.forEach((e) => e.dispose());
  const cpus = os.cpus();
  return {
    version: LATENCY_TABLE_VERSION,
    model: model.path,
    format: model.format,
    inputShape: model.inputShape,
    batch,
    threads,
    reps,
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadStart,
      loadEnd: os.loadavg(),
    },
    runtimes: list.map((e) => ({ id: e.id, name: e.name })),
    unavailable,
    layers,
    plan,
    whole,
  };
}
