// One conv layer and its replacements as runnable programs in each runtime
// `dac bench` times: our kernels (the fused depthwise+pointwise kernel for
// DAC, our dense conv for everything else), onnxruntime-node and TF.js. The
// runtimes are optional peers, loaded only when asked for. Every program
// takes the layer's real geometry (input size, stride, padding, dilation);
// weights are random (time does not depend on their values).
import { spatialIntermediateSize } from '../geometry.js';
import { DacError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { conv2d, fusedDepthwisePointwise, type Activation, type Nhwc } from '../kernels.js';
import type { ConvLayerInfo, Method } from '../model/types.js';
import { mulberry32 } from '../random.js';
import { loadTf, optionalRequire, ortSessionOptions } from '../runtime/index.js';
import type { TfjsBackendName } from '../runtime/tfjs-backend.js';
import {
  create,
  DataType,
  encodeModel,
  floatTensor,
  intAttr,
  intsAttr,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../formats/index.js';

export type RuntimeId = 'ours' | 'ort' | 'tfjs';
export const RUNTIMES: readonly RuntimeId[] = ['ours', 'ort', 'tfjs'];

/** What a layer becomes: the original conv, or a method at a rank/width. */
export interface Variant {
  method: Method | 'original';
  rank: number;
}

/** One convolution of a variant, in the layer's terms. */
export type ConvGeometry = Pick<
  ConvLayerInfo,
  'n' | 'c' | 'kh' | 'kw' | 'groups' | 'strides' | 'dilations' | 'pads' | 'inH' | 'inW'
>;

/** One convolution of a variant, in the layer's terms (groups: 1, or c for a depthwise conv). */
export type Stage = ConvGeometry;

/** A prepared program: `run` computes the variant once; `dispose` frees what it holds. */
export interface Program {
  run(): void | Promise<void>;
  dispose(): void | Promise<void>;
}

export interface Engine {
  readonly id: RuntimeId;
  /** Runtime and version, e.g. "onnxruntime-node 1.20.1". */
  readonly name: string;
  /** A program for the variant, or null when this runtime cannot run it (the reason is returned instead). */
  prepare(layer: ConvLayerInfo, variant: Variant, batch: number): Promise<Program | string>;
  dispose(): void;
}

/** The convs a variant runs, in order (DAC as its depthwise + pointwise pair). */
export function stagesOf(layer: ConvLayerInfo, v: Variant): Stage[] {
  const { n, c, kh, kw, strides, dilations, pads, inH, inW, outH, outW } = layer;
  const one: Pick<Stage, 'kh' | 'kw' | 'groups' | 'strides' | 'dilations' | 'pads'> = {
    kh: 1,
    kw: 1,
    groups: 1,
    strides: [1, 1],
    dilations: [1, 1],
    pads: [0, 0, 0, 0],
  };
  switch (v.method) {
    case 'original':
      return [{ n, c, kh, kw, groups: layer.groups, strides, dilations, pads, inH, inW }];
    case 'dac':
      return [
        { n: c * v.rank, c, kh, kw, groups: c, strides, dilations, pads, inH, inW },
        { ...one, n, c: c * v.rank, inH: outH, inW: outW },
      ];
    case 'channel':
      return [
        { n: v.rank, c, kh, kw, groups: 1, strides, dilations, pads, inH, inW },
        { ...one, n, c: v.rank, inH: outH, inW: outW },
      ];
    case 'spatial': {
      const mid = spatialIntermediateSize(layer);
      return [
        { n: v.rank, c, kh, kw: 1, groups: 1, strides: [strides[0], 1], dilations: [dilations[0], 1], pads: [pads[0], 0, pads[2], 0], inH, inW },
        {
          n,
          c: v.rank,
          kh: 1,
          kw,
          groups: 1,
          strides: [1, strides[1]],
          dilations: [1, dilations[1]],
          pads: [0, pads[1], 0, pads[3]],
          inH: mid.h,
          inW: mid.w,
        },
      ];
    }
  }
}

function stageOut(s: Stage): [number, number] {
  const len = (size: number, k: number, st: number, d: number, a: number, b: number) => Math.floor((size + a + b - (d * (k - 1) + 1)) / st) + 1;
  return [len(s.inH, s.kh, s.strides[0], s.dilations[0], s.pads[0], s.pads[2]), len(s.inW, s.kw, s.strides[1], s.dilations[1], s.pads[1], s.pads[3])];
}

function random(count: number, seed: number, scale: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

/** Random OIHW weights of a stage, scaled so activations keep their size through the stages. */
function stageWeights(s: Stage, seed: number): Float32Array {
  const fanIn = (s.c / s.groups) * s.kh * s.kw;
  return random(s.n * fanIn, seed, 1 / Math.sqrt(fanIn));
}

/** The fused activation the layer carries, where every runtime has it. */
function activationOf(layer: ConvLayerInfo): Activation {
  return layer.activation === 'relu' || layer.activation === 'relu6' ? layer.activation : 'none';
}

function inputOf(layer: ConvLayerInfo, batch: number): Float32Array {
  return random(batch * layer.inH * layer.inW * layer.c, 7 + layer.index, 1);
}

// ---------- ours ----------

export function oursEngine(backend: Backend, threads: number): Engine {
  return {
    id: 'ours',
    name: `dac-conv ${backend.name} (dwpw ${backend.info().kernels.dwpw}, conv2d ${backend.info().kernels.conv2d})`,
    async prepare(layer, v, batch) {
      if (layer.groups !== 1) return 'grouped convolutions are not in our dense kernel';
      const x = inputOf(layer, batch);
      const act = activationOf(layer);
      const bias = layer.bias ? random(layer.n, 3, 0.1) : null;
      const shape: Nhwc = [batch, layer.inH, layer.inW, layer.c];
      const opts = { strides: layer.strides, dilations: layer.dilations, padding: layer.pads, threads, backend } as const;
      if (v.method === 'dac') {
        const { n, c, kh, kw } = layer;
        const weights = {
          rank: v.rank,
          depthwise: random(c * v.rank * kh * kw, 11, 1 / Math.sqrt(kh * kw)),
          pointwise: random(n * c * v.rank, 13, 1 / Math.sqrt(c * v.rank)),
        };
        const output = new Float32Array(batch * layer.outH * layer.outW * n);
        return {
          run: () => void fusedDepthwisePointwise(x, shape, weights, { n, c, kh, kw }, { ...opts, bias, activation: act, output }),
          dispose: () => undefined,
        };
      }
      const stages = stagesOf(layer, v).map((s, i) => {
        const [oh, ow] = stageOut(s);
        return { s, w: stageWeights(s, 17 + i), out: new Float32Array(batch * oh * ow * s.n) };
      });
      return {
        run: () => {
          let cur = x;
          stages.forEach(({ s, w, out }, i) => {
            const last = i === stages.length - 1;
            conv2d(cur, [batch, s.inH, s.inW, s.c], w, { n: s.n, c: s.c, kh: s.kh, kw: s.kw }, {
              strides: s.strides,
              dilations: s.dilations,
              padding: s.pads,
              bias: last ? bias : null,
              activation: last ? act : 'none',
              threads,
              backend,
              output: out,
            });
            cur = out;
          });
        },
        dispose: () => undefined,
      };
    },
    dispose: () => undefined,
  };
}

// ---------- onnxruntime ----------

type Ort = typeof import('onnxruntime-node');

function valueInfo(name: string, dims: number[]): ValueInfoProto {
  return create<ValueInfoProto>('ValueInfoProto', {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  });
}

/** An ONNX model (NCHW) of the variant's convs, bias and activation on the last. */
export function onnxProgramBytes(layer: ConvLayerInfo, v: Variant, batch: number): Uint8Array {
  const stages = stagesOf(layer, v);
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let cur = 'x';
  stages.forEach((s, i) => {
    const last = i === stages.length - 1;
    const w = `w${i}`;
    inits.push(floatTensor(w, [s.n, s.c / s.groups, s.kh, s.kw], stageWeights(s, 17 + i)));
    const inputs = [cur, w];
    if (last && layer.bias) {
      inits.push(floatTensor('b', [s.n], random(s.n, 3, 0.1)));
      inputs.push('b');
    }
    const out = last && activationOf(layer) === 'none' ? 'y' : `t${i}`;
    nodes.push(
      create<NodeProto>('NodeProto', {
        input: inputs,
        output: [out],
        name: `conv${i}`,
        op_type: 'Conv',
        attribute: [
          intsAttr('kernel_shape', [s.kh, s.kw]),
          intsAttr('strides', s.strides),
          intsAttr('dilations', s.dilations),
          intsAttr('pads', s.pads),
          intAttr('group', s.groups),
        ],
      }),
    );
    cur = out;
  });
  const act = activationOf(layer);
  if (act === 'relu') nodes.push(create<NodeProto>('NodeProto', { input: [cur], output: ['y'], name: 'relu', op_type: 'Relu', attribute: [] }));
  if (act === 'relu6') {
    inits.push(floatTensor('lo', [], new Float32Array([0])), floatTensor('hi', [], new Float32Array([6])));
    nodes.push(create<NodeProto>('NodeProto', { input: [cur, 'lo', 'hi'], output: ['y'], name: 'relu6', op_type: 'Clip', attribute: [] }));
  }
  const graph = create<GraphProto>('GraphProto', {
    name: 'layer',
    node: nodes,
    initializer: inits,
    input: [valueInfo('x', [batch, layer.c, layer.inH, layer.inW])],
    output: [valueInfo('y', [batch, layer.n, layer.outH, layer.outW])],
  });
  return encodeModel(create<ModelProto>('ModelProto', { ir_version: 8, producer_name: 'dac-conv bench', opset_import: [{ domain: '', version: 13 }], graph }));
}

export function ortEngine(threads: number): Engine | string {
  const ort = optionalRequire<Ort>('onnxruntime-node');
  if (!ort) return 'onnxruntime-node is not installed';
  const version = optionalRequire<{ version: string }>('onnxruntime-node/package.json')?.version ?? '';
  return {
    id: 'ort',
    name: `onnxruntime-node ${version}`.trim(),
    async prepare(layer, v, batch) {
      let session: import('onnxruntime-node').InferenceSession;
      try {
        session = await ort.InferenceSession.create(onnxProgramBytes(layer, v, batch), ortSessionOptions(threads));
      } catch (err) {
        return `onnxruntime cannot run it: ${(err as Error).message.split('\n')[0]}`;
      }
      // Layout does not change the cost of a random input: no transpose needed.
      const x = new ort.Tensor('float32', inputOf(layer, batch), [batch, layer.c, layer.inH, layer.inW]);
      return {
        run: async () => void (await session.run({ x })),
        dispose: () => session.release(),
      };
    },
    dispose: () => undefined,
  };
}

// ---------- TF.js ----------

type Tf = typeof import('@tensorflow/tfjs');

/** OIHW -> HWIO (for depthwise: [kh][kw][c][multiplier]). */
function hwio(w: Float32Array, s: Stage): Float32Array {
  const cin = s.c / s.groups;
  const out = new Float32Array(w.length);
  for (let o = 0; o < s.n; o++)
    for (let i = 0; i < cin; i++)
      for (let t = 0; t < s.kh * s.kw; t++) out[(t * cin + i) * s.n + o] = w[(o * cin + i) * s.kh * s.kw + t];
  return out;
}

export async function tfjsEngine(threads: number, backend?: TfjsBackendName): Promise<Engine | string> {
  let loaded: { tf: Tf; backend: TfjsBackendName };
  try {
    loaded = await loadTf(backend);
  } catch (err) {
    return err instanceof DacError ? err.message : String(err);
  }
  const { tf } = loaded;
  // tfjs-wasm and tfjs-cpu run on the calling thread in Node: --threads does not apply to them.
  const single = loaded.backend !== 'tensorflow' && threads > 1 ? ', 1 thread' : '';
  return {
    id: 'tfjs',
    name: `tfjs-${loaded.backend} ${tf.version.tfjs}${single}`,
    async prepare(layer, v, batch) {
      const stages = stagesOf(layer, v);
      if (stages.some((s) => s.groups !== 1 && s.groups !== s.c)) return 'TF.js has no grouped convolution';
      const tensors: import('@tensorflow/tfjs').Tensor[] = [];
      const x = tf.tensor4d(inputOf(layer, batch), [batch, layer.inH, layer.inW, layer.c]);
      tensors.push(x);
      const ops = stages.map((s, i) => {
        const kernel = s.groups === 1 ? [s.kh, s.kw, s.c, s.n] : [s.kh, s.kw, s.c, s.n / s.c];
        const f = tf.tensor4d(hwio(stageWeights(s, 17 + i), s), kernel as [number, number, number, number]);
        tensors.push(f);
        const pad: [[number, number], [number, number], [number, number], [number, number]] = [
          [0, 0],
          [s.pads[0], s.pads[2]],
          [s.pads[1], s.pads[3]],
          [0, 0],
        ];
        return (t: import('@tensorflow/tfjs').Tensor4D) =>
          s.groups === 1
            ? tf.conv2d(t, f as import('@tensorflow/tfjs').Tensor4D, s.strides, pad, 'NHWC', s.dilations)
            : tf.depthwiseConv2d(t, f as import('@tensorflow/tfjs').Tensor4D, s.strides, pad, 'NHWC', s.dilations);
      });
      const bias = layer.bias ? tf.tensor1d(random(layer.n, 3, 0.1)) : null;
      if (bias) tensors.push(bias);
      const act = activationOf(layer);
      const run = () =>
        tf.tidy(() => {
          let y = x as import('@tensorflow/tfjs').Tensor4D;
          for (const op of ops) y = op(y);
          if (bias) y = tf.add(y, bias);
          if (act === 'relu') y = tf.relu(y);
          if (act === 'relu6') y = tf.relu6(y);
          y.dataSync();
        });
      try {
        run();
      } catch (err) {
        tf.dispose(tensors);
        return `TF.js cannot run it: ${(err as Error).message.split('\n')[0]}`;
      }
      return { run, dispose: () => tf.dispose(tensors) };
    },
    dispose: () => undefined,
  };
}
