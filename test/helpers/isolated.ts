// What the tests run inside a worker of the zoo pool (isolated-worker.ts), so
// that hostile input that crashes, hangs or exhausts memory takes down only
// the worker: loading (and decomposing, saving, reloading) a model, and the
// public decomposition calls with arbitrary arguments.
import * as path from 'node:path';
import { getBackend } from '../../src/backend/loader.js';
import { decomposeLoaded, type ModelSettings } from '../../src/decompose-model.js';
import { DacError } from '../../src/errors.js';
import { loadModel } from '../../src/formats/index.js';
import { decomposeChannel, decomposeDac, decomposeDacBatch, decomposeSpatial } from '../../src/index.js';

/** The worker script answering 'probe' and 'call' requests (for WorkerPool's second argument). */
export const ISOLATED_WORKER = path.join(__dirname, 'isolated-worker.ts');

export interface ProbeRequest {
  path: string;
  maxModelBytes: number;
  /** Also plan, decompose and apply (in memory) with these settings. */
  decompose?: ModelSettings;
  /** With decompose: save the result here and load it back. */
  saveTo?: string;
}

export interface ProbeResult {
  name: string;
  format: string;
  convs: number;
  decomposable: number;
  inputShape: number[];
  flops?: { before: number; after: number };
  replaced?: number;
  /** Convs of the saved-and-reloaded result. */
  reloadedConvs?: number;
}

/** Loads (and optionally decomposes, saves and reloads) a model and describes it. */
export async function probeModel(req: ProbeRequest): Promise<ProbeResult> {
  const model = await loadModel(req.path, { maxBytes: req.maxModelBytes });
  const out: ProbeResult = {
    name: model.name,
    format: model.format,
    convs: model.convs.length,
    decomposable: model.convs.filter((c) => !c.skipReason).length,
    inputShape: [...model.inputShape],
  };
  if (req.decompose) {
    const { foldBn, ...settings } = req.decompose;
    const result = decomposeLoaded(foldBn ? model.foldBatchNorm() : model, settings, getBackend());
    out.flops = result.report.flops;
    out.replaced = result.report.layers.filter((l) => l.method !== 'keep').length;
    if (req.saveTo) {
      await result.model.save(req.saveTo);
      out.reloadedConvs = (await loadModel(req.saveTo)).convs.length;
    }
  }
  return out;
}

const isolated = { decomposeDac, decomposeSpatial, decomposeChannel, decomposeDacBatch } as const;

export interface CallRequest {
  fn: keyof typeof isolated;
  args: unknown[];
}

/** Runs one public decomposition call with untrusted arguments. */
export function callIsolated(req: CallRequest): unknown {
  const fn = isolated[req.fn] as ((...a: unknown[]) => unknown) | undefined;
  if (!Object.prototype.hasOwnProperty.call(isolated, req.fn) || !fn) {
    throw new DacError('EINVAL', `unknown function '${String(req.fn)}'`, { field: 'fn' });
  }
  return fn(...req.args);
}
