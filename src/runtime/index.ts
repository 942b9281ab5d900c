// Running a model on real inputs: TF.js Layers and graph models with @tensorflow/tfjs
// (tfjs-node when installed, else the WASM backend when installed, else the
// pure-JS CPU backend),
// ONNX models with onnxruntime-node. Every runner takes NHWC float32 images and
// returns the first output's values, [batch][classes] for a classifier.
import { DacError } from '../errors.js';
import { loadModel, OnnxModel, type GraphModel, type LoadedModel, type TfjsModel } from '../formats/index.js';
// The TF.js IO handlers are their own entry (dac-conv/tfjs-io), not re-exported by formats/index.ts:
// their types name @tensorflow/tfjs, an optional peer the package root's types must not need.
import { memoryHandler } from '../formats/tfjs/io.js';
import type { TfjsBackendName } from './tfjs-backend.js';

export type { TfjsBackendName } from './tfjs-backend.js';

export interface RunnerOptions {
  /**
   * TF.js backend: 'tensorflow' (needs @tensorflow/tfjs-node), 'cpu' (pure JS)
   * or 'wasm' (needs @tensorflow/tfjs-backend-wasm). Default: DAC_TFJS_BACKEND,
   * else the first of tensorflow, wasm, cpu that is installed.
   */
  tfjsBackend?: TfjsBackendName;
  /** onnxruntime intra-op threads (default: onnxruntime's own choice). */
  threads?: number;
  /** Images per call into the runtime (default 64), bounding memory. */
  chunk?: number;
}

export interface Runner {
  /** What runs the model, e.g. "tfjs-cpu" or "onnxruntime-node 1.20.0". */
  readonly engine: string;
  /** [H, W, C] of one image. */
  readonly inputShape: number[];
  /** input: NHWC float32 [batch][H][W][C]; returns the first output, [batch][...]. */
  run(input: Float32Array, batch: number): Promise<Float32Array>;
  dispose(): void;
}

type Tf = typeof import('@tensorflow/tfjs');

/** A package that may be missing (the runtimes are optional peers), or null. */
export function optionalRequire<T>(name: string): T | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch {
    return null;
  }
}

let tfCache: { tf: Tf; backend: TfjsBackendName } | null = null;

/** The TF.js namespace with a backend set (once per process: TF.js keeps one global engine). */
export async function loadTf(requested?: TfjsBackendName): Promise<{ tf: Tf; backend: TfjsBackendName }> {
  const env = process.env.DAC_TFJS_BACKEND as TfjsBackendName | undefined;
  const want = requested ?? (env && env.length ? env : undefined);
  if (want !== undefined && !['tensorflow', 'cpu', 'wasm'].includes(want)) {
    throw new DacError('EINVAL', `TF.js backend must be tensorflow, cpu or wasm, got ${want}`, { field: 'tfjsBackend' });
  }
  if (tfCache && (want === undefined || want === tfCache.backend)) return tfCache;
  let tf: Tf | null = null;
  let backend: TfjsBackendName;
  if (want === 'tensorflow' || want === undefined) {
    tf = optionalRequire<Tf>('@tensorflow/tfjs-node');
    if (!tf && want === 'tensorflow') {
      throw new DacError('ENOTFOUND', 'TF.js backend tensorflow needs @tensorflow/tfjs-node, which is not installed', { field: 'tfjsBackend' });
    }
  }
  if (tf) backend = 'tensorflow';
  else {
    tf = optionalRequire<Tf>('@tensorflow/tfjs');
    if (!tf) throw new DacError('ENOTFOUND', 'running TF.js models needs @tensorflow/tfjs (npm install @tensorflow/tfjs)', {});
    const hasWasm = optionalRequire('@tensorflow/tfjs-backend-wasm') !== null;
    backend = want ?? (hasWasm ? 'wasm' : 'cpu');
    if (backend === 'wasm' && !hasWasm) {
      throw new DacError('ENOTFOUND', 'TF.js backend wasm needs @tensorflow/tfjs-backend-wasm, which is not installed', { field: 'tfjsBackend' });
    }
  }
  // The CPU backend prints a "install tfjs-node" banner on first use; production mode keeps stdout clean.
  tf.env().set('PROD', true);
  if (!(await tf.setBackend(backend))) {
    throw new DacError('ENOTFOUND', `TF.js backend ${backend} failed to initialize`, { field: 'tfjsBackend' });
  }
  await tf.ready();
  // The runners run what dac writes, `--tfjs-layer dac` outputs included: register our DacConv2D layer
  // and graph op, as a program that imports dac-conv/tfjs would.
  await import('../tfjs-layer/dac-conv2d-layer.js');
  tfCache = { tf, backend };
  return tfCache;
}

/**
 * Checks a batch of NHWC images and runs it through `runChunk` in slices of
 * `chunk` images (a model that fixes its batch takes only multiples of it);
 * the outputs, concatenated.
 */
async function inChunks(
  model: Pick<LoadedModel, 'path' | 'inputShape'> & { fixedBatch?: number | null },
  input: Float32Array,
  batch: number,
  chunk: number,
  runChunk: (slice: Float32Array, n: number) => Promise<Float32Array>,
): Promise<Float32Array> {
  const ctx = { model: model.path };
  if (!(input instanceof Float32Array)) throw new DacError('EINVAL', 'input must be a Float32Array', { ...ctx, field: 'input' });
  if (!Number.isInteger(batch) || batch < 1) {
    throw new DacError('ERANGE', `batch must be a positive integer, got ${batch}`, { ...ctx, field: 'batch' });
  }
  const [h, w, c] = model.inputShape;
  const per = h * w * c;
  if (input.length !== batch * per) {
    throw new DacError('ESHAPE', `input has ${input.length} values, batch ${batch} of [${model.inputShape.join(', ')}] needs ${batch * per}`, {
      ...ctx,
      field: 'input',
    });
  }
  const fixed = model.fixedBatch ?? null;
  if (fixed !== null && batch % fixed !== 0) {
    throw new DacError('ESHAPE', `the model takes batches of exactly ${fixed}; got ${batch}`, { ...ctx, field: 'batch' });
  }
  const parts: Float32Array[] = [];
  for (let start = 0; start < batch; start += chunk) {
    const n = Math.min(chunk, batch - start);
    parts.push(await runChunk(input.subarray(start * per, (start + n) * per), n));
  }
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

async function tfjsRunner(model: TfjsModel, options: RunnerOptions): Promise<Runner> {
  const { tf, backend } = await loadTf(options.tfjsBackend);
  let net: Awaited<ReturnType<Tf['loadLayersModel']>>;
  try {
    net = await tf.loadLayersModel(memoryHandler(model));
  } catch (err) {
    throw new DacError('EFORMAT', `TF.js cannot load the model: ${(err as Error).message}`, { model: model.path });
  }
  const [h, w, c] = model.inputShape;
  return {
    engine: `tfjs-${backend}`,
    inputShape: model.inputShape,
    run: (input, batch) =>
      inChunks(model, input, batch, options.chunk ?? 64, async (slice, n) => {
        const x = tf.tensor4d(slice, [n, h, w, c]);
        const y = net.predict(x);
        const ys = Array.isArray(y) ? y : [y];
        try {
          return (await ys[0].data()) as Float32Array;
        } finally {
          tf.dispose([x, ...ys]);
        }
      }),
    dispose() {
      net.dispose();
    },
  };
}

/** TF dtypes of graph inputs as TF.js names; images given as float32 are cast to them. */
const GRAPH_DTYPES: Record<string, 'float32' | 'int32' | 'bool'> = { DT_FLOAT: 'float32', DT_INT32: 'int32', DT_UINT8: 'int32', DT_BOOL: 'bool' };

async function graphRunner(model: GraphModel, options: RunnerOptions): Promise<Runner> {
  const { tf, backend } = await loadTf(options.tfjsBackend);
  let net: Awaited<ReturnType<Tf['loadGraphModel']>>;
  try {
    net = await tf.loadGraphModel(memoryHandler(model));
  } catch (err) {
    throw new DacError('EFORMAT', `TF.js cannot load the graph model: ${(err as Error).message}`, { model: model.path });
  }
  const dtype = GRAPH_DTYPES[model.input.dtype];
  if (!dtype) {
    net.dispose();
    throw new DacError('EFORMAT', `the input has dtype ${model.input.dtype}; runners feed float32, int32 or uint8 images`, { model: model.path, field: 'signature.inputs' });
  }
  const [h, w, c] = model.inputShape;
  const output = net.outputNodes[0];
  type T = import('@tensorflow/tfjs').Tensor;
  // execute() refuses graphs with control flow or dynamic shapes, and executeAsync() logs a hint on the others: try the first once.
  let dynamic = false;
  const execute = async (x: T): Promise<T> => {
    if (!dynamic) {
      try {
        return net.execute({ [model.input.node]: x }, output) as T;
      } catch (err) {
        if (!/executeAsync/.test((err as Error).message)) throw err;
        dynamic = true;
      }
    }
    return (await net.executeAsync({ [model.input.node]: x }, output)) as T;
  };
  return {
    engine: `tfjs-${backend}`,
    inputShape: model.inputShape,
    run: (input, batch) =>
      inChunks(model, input, batch, model.fixedBatch ?? options.chunk ?? 64, async (slice, n) => {
        const data = model.inputLayout === 'NCHW' ? nhwcToNchw(slice, n, h, w, c) : slice;
        const shape = model.inputLayout === 'NCHW' ? [n, c, h, w] : [n, h, w, c];
        const x = tf.tidy(() => tf.tensor(data, shape, 'float32').cast(dtype));
        try {
          const y = await execute(x);
          const values = Float32Array.from((await y.data()) as ArrayLike<number>);
          y.dispose();
          return values;
        } catch (err) {
          throw new DacError('EFORMAT', `TF.js cannot run the graph model: ${(err as Error).message}`, { model: model.path });
        } finally {
          x.dispose();
        }
      }),
    dispose() {
      net.dispose();
    },
  };
}

type Ort = typeof import('onnxruntime-node');

/**
 * onnxruntime session options for our runs and measurements: `threads`
 * intra-op threads (default: onnxruntime's choice), operators one at a time,
 * and pool threads that sleep after a run instead of spinning. Spinning
 * threads hold the cores a timed neighbour (the other side of a ratio, the
 * next round) needs: measured on 2 cores, our fused kernel at 2 threads took
 * 9.0 ms right after a spinning onnxruntime run and 4.7 ms without.
 */
export function ortSessionOptions(threads?: number): import('onnxruntime-node').InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

async function onnxRunner(model: OnnxModel, options: RunnerOptions): Promise<Runner> {
  const ort = optionalRequire<Ort>('onnxruntime-node');
  if (!ort) throw new DacError('ENOTFOUND', 'running ONNX models needs onnxruntime-node (npm install onnxruntime-node)', {});
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(model.bytes(), ortSessionOptions(options.threads));
  } catch (err) {
    throw new DacError('EFORMAT', `onnxruntime cannot load the model: ${(err as Error).message}`, { model: model.path });
  }
  const [h, w, c] = model.inputShape;
  const version = (optionalRequire<{ version: string }>('onnxruntime-node/package.json') ?? { version: '' }).version;
  return {
    engine: `onnxruntime-node ${version}`.trim(),
    inputShape: model.inputShape,
    run: (input, batch) =>
      inChunks(model, input, batch, model.fixedBatch ?? options.chunk ?? 64, async (slice, n) => {
        const nchw = c === 1 ? slice : nhwcToNchw(slice, n, h, w, c);
        const feeds = { [model.inputName]: new ort.Tensor('float32', nchw, [n, c, h, w]) };
        const result = await session.run(feeds, [model.outputName]);
        return Float32Array.from(result[model.outputName].data as Float32Array);
      }),
    dispose() {
      void session.release();
    },
  };
}

export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++) out[((b * c + ch) * h + y) * w + xx] = x[((b * h + y) * w + xx) * c + ch];
  return out;
}

/** A runner for a loaded model or a model path. */
export async function createRunner(model: LoadedModel | string, options: RunnerOptions = {}): Promise<Runner> {
  const m = typeof model === 'string' ? await loadModel(model) : model;
  if (m instanceof OnnxModel) return onnxRunner(m, options);
  if (m.format === 'tfjs') return tfjsRunner(m as TfjsModel, options);
  if (m.format === 'tfjs-graph') return graphRunner(m as GraphModel, options);
  throw new DacError('EINVAL', `no runtime for format ${String(m.format)}`, { model: m.path });
}
