// Planning a zoo by measured latency (--latency-saved, --latency-table).
// Before any model is decomposed, the convs are timed one model at a time in
// a worker (isolated like a decomposition, and alone on the machine as far
// as the run goes), each distinct conv geometry once per runtime: a zoo
// repeats its shapes (VGG-style stacks, variants of one network), and a time
// measured for one model serves every conv of the same sizes, kernel,
// stride, padding and dilation. A --latency-table (dac bench's latency.json
// of any model) supplies the geometries it holds; the others are measured.
import { loadModel, withTfjsLayer, type LoadedModel, type TfjsLayerKind } from '../formats/index.js';
import { benchModel, geometryKey, planTimes, readLatencyTable, type RuntimeId } from '../latency/index.js';
import type { Method, ModelFormat } from '../model/types.js';
import { exclusion } from '../plan/index.js';
import type { LayerLatency as PlanLayerLatency } from '../plan/latency.js';
import type { ZooEntry } from './discover.js';
import { WorkerPool, serializeError, type SerializedError } from './pool.js';
import type { ProgressSink } from './progress.js';

/** The zoo's latency and writer settings, beside dac decompose's (all hashed into the resume markers). */
export interface ZooLatencySettings {
  /** How DAC replacements are written into TF.js models (--tfjs-layer). */
  tfjsLayer?: TfjsLayerKind;
  /** The runtime whose times plan (--runtime); default per model, as dac decompose picks it. */
  runtime?: RuntimeId;
  /** latency.json whose conv geometries need no measuring (--latency-table). */
  latencyTable?: string;
}

/** The model as the zoo decomposes it: --tfjs-layer applies to the zoo's TF.js models (its ONNX models have no such choice). */
export function applyTfjsLayer(model: LoadedModel, tfjsLayer: TfjsLayerKind | undefined): LoadedModel {
  return tfjsLayer === undefined || model.format === 'onnx' ? model : withTfjsLayer(model, tfjsLayer);
}

/** The runtime a model is planned for: --runtime, else ort for ONNX, ours for DacConv2D output, else tfjs (as dac decompose). */
export function runtimeFor(format: ModelFormat, s: ZooLatencySettings): RuntimeId {
  return s.runtime ?? (format === 'onnx' ? 'ort' : s.tfjsLayer === 'dac' ? 'ours' : 'tfjs');
}

export interface MeasureRequest {
  path: string;
  format: ModelFormat;
  maxModelBytes: number;
  inputShape?: number[];
  tfjsLayer?: TfjsLayerKind;
  runtime: RuntimeId;
  /** Methods timed per conv (the plan's, all three for auto). */
  methods: Method[];
  threads?: number;
  /** Geometry keys already measured (or in the table): not timed again. */
  known: string[];
}

export interface MeasureReply {
  /** Each decomposable conv's geometry key, by name. */
  keys: Record<string, string>;
  /** Times of the keys measured by this request. */
  measured: Record<string, PlanLayerLatency>;
}

/** Worker side: times the model's convs whose geometry is not known yet. */
export async function measureZooModel(req: MeasureRequest): Promise<MeasureReply> {
  const model = applyTfjsLayer(await loadModel(req.path, { maxBytes: req.maxModelBytes, inputShape: req.inputShape }), req.tfjsLayer);
  const known = new Set(req.known);
  const keys: Record<string, string> = {};
  const todo = new Map<string, string>();
  for (const c of model.convs) {
    // Only convs the planner may decompose need timing.
    if (exclusion(c, {}) !== null) continue;
    const key = geometryKey(req.runtime, c);
    keys[c.name] = key;
    if (!known.has(key) && !todo.has(key)) todo.set(key, c.name);
  }
  const measured: Record<string, PlanLayerLatency> = {};
  if (todo.size === 0) return { keys, measured };
  const table = await benchModel(model, { runtimes: [req.runtime], methods: req.methods, plan: null, threads: req.threads, layers: [...todo.values()] });
  for (const l of table.layers) {
    const times = planTimes(l.runtimes[req.runtime]);
    if (times) measured[geometryKey(req.runtime, l)] = times;
  }
  return { keys, measured };
}

/** A model's latencies for the planner, by conv name, or why they could not be measured. */
export type ModelLatency = { latency: Record<string, PlanLayerLatency> } | { error: SerializedError };

/** Per model, by its rel path. */
export type ZooLatencies = Map<string, ModelLatency>;

/** Main side: measures the models' convs one model at a time, each geometry once; the table's geometries are taken as they are. */
export async function measureLatencies(
  entries: ZooEntry[],
  settings: ZooLatencySettings & { method: Method | 'auto'; inputShape?: number[]; threads?: number },
  limits: { maxModelBytes: number; timeoutMs: number },
  sink: ProgressSink | null,
): Promise<ZooLatencies> {
  const cache = new Map<string, PlanLayerLatency>();
  if (settings.latencyTable !== undefined) {
    const table = readLatencyTable(settings.latencyTable);
    for (const l of table.layers) {
      for (const r of table.runtimes) {
        const times = planTimes(l.runtimes[r.id]);
        if (times) cache.set(geometryKey(r.id, l), times);
      }
    }
  }
  const methods: Method[] = settings.method === 'auto' ? ['dac', 'spatial', 'channel'] : [settings.method];
  const out: ZooLatencies = new Map();
  const pool = new WorkerPool({ size: 1, timeoutMs: limits.timeoutMs });
  try {
    for (const [i, entry] of entries.entries()) {
      const runtime = runtimeFor(entry.format, settings);
      sink?.write(`dac zoo: measuring conv times in ${runtime} [${i + 1}/${entries.length}] ${entry.rel}\n`);
      try {
        const reply = await pool.run<MeasureReply>('measure', {
          path: entry.path,
          format: entry.format,
          maxModelBytes: limits.maxModelBytes,
          inputShape: settings.inputShape,
          tfjsLayer: settings.tfjsLayer,
          runtime,
          methods,
          threads: settings.threads,
          known: [...cache.keys()],
        } satisfies MeasureRequest);
        for (const [key, times] of Object.entries(reply.measured)) cache.set(key, times);
        const latency: Record<string, PlanLayerLatency> = {};
        for (const [name, key] of Object.entries(reply.keys)) {
          const times = cache.get(key);
          if (times) latency[name] = times;
        }
        out.set(entry.rel, { latency });
      } catch (err) {
        out.set(entry.rel, { error: serializeError(err) });
      }
    }
  } finally {
    await pool.close();
  }
  return out;
}
