// A pool of worker threads running one job each at a time, so at most `size`
// models are in memory. A job that throws comes back as that error (its
// name, code and context kept); a worker that dies (out of memory, a crash
// in the addon that Node can report) or runs past the timeout is replaced
// and its job fails with EWORKER / ETIMEOUT, so one bad model never stops
// the others.
import * as path from 'node:path';
import { parentPort, Worker, type ResourceLimits } from 'node:worker_threads';
import { DacError, type DacErrorCode, type ErrorContext } from '../errors.js';

/** setTimeout's largest delay; a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  context?: ErrorContext;
  stack?: string;
}

export interface WorkerRequest {
  id: number;
  kind: string;
  payload: unknown;
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

export interface PoolOptions {
  size: number;
  /** A job running longer than this (ms) has its worker terminated; 0 or absent: no limit. */
  timeoutMs?: number;
  resourceLimits?: ResourceLimits;
  /** Environment of the workers (defaults to this process's). */
  env?: NodeJS.ProcessEnv;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; context?: ErrorContext };
    return {
      name: e.name,
      message: e.message,
      code: typeof e.code === 'string' ? e.code : undefined,
      context: err instanceof DacError ? err.context : undefined,
      stack: e.stack,
    };
  }
  return { name: 'Error', message: `non-Error thrown: ${String(err)}` };
}

/** Rebuilds an error from a worker: a DacError stays a DacError; other errors keep their name. */
export function deserializeError(s: SerializedError): Error {
  if (s.name === 'DacError') {
    const e = new DacError((s.code ?? 'EINTERNAL') as DacErrorCode, s.message);
    (e as { context: ErrorContext }).context = s.context ?? {};
    if (s.stack) e.stack = s.stack;
    return e;
  }
  const e = new Error(s.message) as Error & { code?: string };
  e.name = s.name;
  if (s.code) e.code = s.code;
  if (s.stack) e.stack = s.stack;
  return e;
}

/**
 * The worker side of the protocol: answers each request with the handler of
 * its kind, one at a time. Anything a handler throws goes back as a
 * serialized error; the worker itself stays up for the next request.
 */
export function serveRequests(handlers: Record<string, (payload: never) => unknown>): void {
  if (!parentPort) throw new Error('serveRequests must run in a worker thread');
  const port = parentPort;
  port.on('message', (req: WorkerRequest) => {
    void (async () => {
      let reply: WorkerReply;
      try {
        if (!Object.prototype.hasOwnProperty.call(handlers, req.kind)) throw new Error(`unknown worker request '${req.kind}'`);
        reply = { id: req.id, ok: true, result: await handlers[req.kind](req.payload as never) };
      } catch (err) {
        reply = { id: req.id, ok: false, error: serializeError(err) };
      }
      port.postMessage(reply);
    })();
  });
}

/** The worker script next to this file: worker.ts under tsx, worker.js in dist. */
export function workerScript(): string {
  return path.join(__dirname, 'worker' + path.extname(__filename));
}

/**
 * Starts a worker thread on `script`. A .ts script (running from src under
 * tsx) gets tsx's CommonJS hook registered first, so it works however the
 * parent was started (tsx CLI, node --import tsx, tap); compiled .js runs as is.
 */
export function startWorker(script: string, opts: { resourceLimits?: ResourceLimits; env?: NodeJS.ProcessEnv } = {}): Worker {
  // The parent's loader flags (tsx's --import) are not the worker's; its profiler flags are, so
  // `node --cpu-prof --cpu-prof-dir=D` profiles every worker of a zoo run too.
  const execArgv = process.execArgv.filter((a) => /^--(cpu|heap)-prof/.test(a));
  const common = { resourceLimits: opts.resourceLimits, env: opts.env ?? process.env, execArgv };
  if (script.endsWith('.ts')) {
    const tsx = require.resolve('tsx/cjs/api');
    const code = `require(${JSON.stringify(tsx)}).register();\nrequire(${JSON.stringify(script)});\n`;
    return new Worker(code, { ...common, eval: true });
  }
  return new Worker(script, common);
}

interface Slot {
  worker: Worker;
  job: Pending | null;
  timer: NodeJS.Timeout | null;
}

interface Pending {
  req: WorkerRequest;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** Workers started over the pool's life (replacements included). */
  started = 0;

  constructor(
    private readonly opts: PoolOptions,
    private readonly script: string = workerScript(),
  ) {
    if (!Number.isInteger(opts.size) || opts.size < 1) {
      throw new DacError('EINVAL', `pool size must be a positive integer, got ${opts.size}`, { field: 'jobs' });
    }
  }

  /** Runs one job of `kind` on a free worker (queued until one is free). */
  run<T>(kind: string, payload: unknown): Promise<T> {
    if (this.closed) return Promise.reject(new DacError('ECLOSED', 'worker pool is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ req: { id: this.nextId++, kind, payload }, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  /** Worker thread ids, for measuring their memory. */
  threadIds(): number[] {
    return this.slots.map((s) => s.worker.threadId);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new DacError('ECLOSED', 'worker pool closed before the job ran'));
    const slots = this.slots.splice(0);
    await Promise.all(
      slots.map((s) => {
        if (s.timer) clearTimeout(s.timer);
        if (s.job) s.job.reject(new DacError('ECLOSED', 'worker pool closed while the job ran'));
        s.job = null;
        return s.worker.terminate();
      }),
    );
  }

  private pump(): void {
    while (this.queue.length) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot) {
        if (this.slots.length >= this.opts.size) return;
        slot = this.spawn();
      }
      this.dispatch(slot, this.queue.shift()!);
    }
  }

  private spawn(): Slot {
    const worker = startWorker(this.script, { resourceLimits: this.opts.resourceLimits, env: this.opts.env });
    this.started++;
    const slot: Slot = { worker, job: null, timer: null };
    worker.on('message', (msg: WorkerReply) => {
      const job = slot.job;
      if (!job || msg.id !== job.req.id) return;
      this.finish(slot);
      if (msg.ok) job.resolve(msg.result);
      else job.reject(deserializeError(msg.error));
      this.pump();
    });
    worker.on('error', (err) => this.lose(slot, 'EWORKER', `worker failed: ${err.message}`));
    worker.on('exit', (code) => this.lose(slot, 'EWORKER', `worker exited with code ${code}`));
    this.slots.push(slot);
    return slot;
  }

  private dispatch(slot: Slot, job: Pending): void {
    slot.job = job;
    if (this.opts.timeoutMs) {
      slot.timer = setTimeout(() => {
        this.lose(slot, 'ETIMEOUT', `job did not finish within ${(this.opts.timeoutMs! / 1000).toFixed(1)} s; worker stopped`);
      }, Math.min(this.opts.timeoutMs, MAX_TIMER_MS));
    }
    slot.worker.postMessage(job.req);
  }

  private finish(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
  }

  /** A worker is gone (or being stopped): fail its job, drop it, start work on a fresh one. */
  private lose(slot: Slot, code: DacErrorCode, message: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    const job = slot.job;
    this.finish(slot);
    // The job fails only once its worker is gone, so nothing it still does can follow the caller's handling of the failure.
    const gone = slot.worker.terminate().catch(() => undefined);
    if (job) void gone.then(() => job.reject(new DacError(code, message)));
    if (!this.closed) this.pump();
  }
}
