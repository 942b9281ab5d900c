// A DAC replacement in a TF.js graph model as one custom op node, 'DacConv2D',
// which runs our fused depthwise+pointwise kernel once `dac-conv/tfjs` has
// registered it with tf.registerOp (src/tfjs-layer/dac-conv2d-op.ts). This
// file owns the node's contract: the op name, its inputs and attributes.
//   inputs: x (NHWC), depthwise [kh, kw, c, r], pointwise [1, 1, c*r, n], bias [n] (optional)
//   attrs:  as Conv2D's, NHWC: strides [1, sh, sw, 1], dilations [1, dh, dw, 1],
//           padding SAME | VALID | EXPLICIT, explicit_paddings [0, 0, top, bottom,
//           left, right, 0, 0] (EXPLICIT only), data_format NHWC, T DT_FLOAT;
//           and rank r, activation linear | relu | relu6
// Conv2D's attributes let the graph reader size the op's output with the conv rule
// (shapes.ts), the output channels being the pointwise kernel's last dimension.
// The kernels have Keras SeparableConv2D's layouts (src/tfjs-layer/kernel-layout.ts),
// as the DacConv2D layer's do, so one conversion serves both.
import { toSeparableKernels } from '../../tfjs-layer/kernel-layout.js';
import type { ConvLayerInfo, DacReplacement } from '../../model/types.js';
import { uniqueName } from '../model.js';
import type { Quantization, WeightEntry } from '../tfjs/manifest.js';
import { balanced } from '../tfjs/model.js';
import { encodedEntry } from '../tfjs/quantize.js';
import { attrString, encodeString, intList, type AttrValue, type GraphNode } from './graph.js';

export const DAC_CONV_OP = 'DacConv2D';

/** The fused activations the op runs (TF names of the original's fused ops -> the op's attr). */
const DAC_NODE_ACTIVATIONS: Record<string, string> = { '': 'linear', Relu: 'relu', Relu6: 'relu6' };

/** The conv being replaced, as the graph reader found it. */
export interface DacNodeSource {
  info: ConvLayerInfo;
  node: GraphNode;
  /** The bias Const of the original (fused BiasAdd), or null. */
  bias: string | null;
  /** The fused ops after BiasAdd, as TF names (['Relu']). */
  activationOps: string[];
}

/**
 * New Const nodes and their weights, under names not yet `taken`: what a
 * replacement adds to the graph (here and in model.ts's stock node pairs).
 */
export function graphConstants(taken: Set<string>): {
  nodes: GraphNode[];
  entries: WeightEntry[];
  constant(base: string, shape: number[], values: Float32Array, how: Quantization | undefined): string;
} {
  const nodes: GraphNode[] = [];
  const entries: WeightEntry[] = [];
  const constant = (base: string, shape: number[], values: Float32Array, how: Quantization | undefined): string => {
    const name = uniqueName(base, taken);
    entries.push(encodedEntry(name, shape, values, how));
    nodes.push({
      name,
      op: 'Const',
      attr: {
        value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: shape.map((d) => ({ size: String(d) })) } } },
        dtype: { type: 'DT_FLOAT' },
      },
    });
    return name;
  };
  return { nodes, entries, constant };
}

/** Whether the op can stand in for this conv: other fused activations keep the stock node pair. */
export function fitsDacNode(src: DacNodeSource): boolean {
  return src.activationOps.length <= 1 && (src.activationOps[0] ?? '') in DAC_NODE_ACTIVATIONS;
}

/**
 * The Const nodes and the DacConv2D node replacing `src`, and their weights.
 * The op node takes the original's name, so every consumer still reads it.
 * Quantized storage (uint8/uint16) gets balanced factors, as the Layers
 * writer stores them; float16 and float32 are stored as they are.
 */
export function dacConvNodes(
  src: DacNodeSource,
  rep: DacReplacement,
  storage: Quantization | undefined,
  taken: Set<string>,
): { nodes: GraphNode[]; entries: WeightEntry[] } {
  const { name, n, c, kh, kw } = src.info;
  const orig = src.node;
  const { nodes, entries, constant } = graphConstants(taken);
  const integer = storage?.dtype === 'uint8' || storage?.dtype === 'uint16';
  const sep = toSeparableKernels(integer ? balanced(rep, n, c, kh * kw) : rep, { n, c, kh, kw });
  const r = rep.rank;
  const dw = constant(`${name}_dac/depthwise`, [kh, kw, c, r], sep.depthwiseKernel, storage);
  const pw = constant(`${name}_dac/pointwise`, [1, 1, c * r, n], sep.pointwiseKernel, storage);
  const inputs = [orig.input![0], dw, pw];
  if (rep.bias) {
    const same = src.bias && src.info.bias && rep.bias.every((v, i) => Object.is(v, src.info.bias![i]));
    inputs.push(same ? src.bias! : constant(`${name}_dac/bias`, [n], rep.bias, undefined));
  }
  const padding = attrString(orig, 'padding') ?? 'VALID';
  const [top, left, bottom, right] = src.info.pads;
  const attr: Record<string, AttrValue> = {
    T: orig.attr?.T ?? { type: 'DT_FLOAT' },
    data_format: { s: encodeString('NHWC') },
    strides: intList([1, ...src.info.strides, 1]),
    dilations: intList([1, ...src.info.dilations, 1]),
    padding: { s: encodeString(padding) },
    rank: { i: String(r) },
    activation: { s: encodeString(DAC_NODE_ACTIVATIONS[src.activationOps[0] ?? '']) },
  };
  if (padding === 'EXPLICIT') attr.explicit_paddings = intList([0, 0, top, bottom, left, right, 0, 0]);
  // Control inputs of the original stay on the op.
  for (const ctl of (orig.input ?? []).filter((s) => s.startsWith('^'))) inputs.push(ctl);
  nodes.push({ name: orig.name, op: DAC_CONV_OP, input: inputs, attr });
  return { nodes, entries };
}
