// The format-neutral view of a model that every command works on. The TF.js
// and ONNX readers (src/formats/*) produce it; cost accounting and rank
// planning (src/cost.ts, src/plan/*) consume it; the writers apply a plan.

/** 'tfjs': TF.js Layers; 'tfjs-graph': TF.js graph model (GraphDef); both are a folder with model.json. */
export type ModelFormat = 'tfjs' | 'tfjs-graph' | 'onnx';
export type Method = 'dac' | 'spatial' | 'channel';

export interface BatchNormParams {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

/** One 2-D convolution of the model, in canonical terms. */
export interface ConvLayerInfo {
  /** TF.js layer name or ONNX node name (unique in the model). */
  name: string;
  /** Position among the model's convs in topological order (0 = first conv). */
  index: number;
  /** Output channels, input channels (of the whole layer), kernel size. */
  n: number;
  c: number;
  kh: number;
  kw: number;
  groups: number;
  strides: [number, number];
  dilations: [number, number];
  /** Resolved padding: top, left, bottom, right. */
  pads: [number, number, number, number];
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  /** OIHW [n][c/groups][kh][kw] copy of the weights (float32, dequantized). */
  weights: Float32Array;
  bias: Float32Array | null;
  /** Fused activation after the conv, if the format carries one on the layer. */
  activation: 'linear' | 'relu' | 'relu6' | string;
  /** BatchNorm that directly consumes this conv's output, if any. */
  bnAfter: BatchNormParams | null;
  /** BatchNorm that produced this conv's input (possibly through an activation or pooling), if any. */
  bnBefore: BatchNormParams | null;
  /**
   * The conv whose output this conv reads through nothing but BatchNorm, ReLU,
   * pooling or dropout; null when the input comes from elsewhere (the model
   * input, a merge), absent when the reader does not say. Planning uses it to
   * tell a hidden layer of a BN-folded model from one reading the image.
   */
  inputConv?: string | null;
  /** Why this layer cannot be decomposed (1x1, grouped, ...), or null. */
  skipReason: string | null;
}

/** MACs and parameters of layers other than 2-D convolutions (dense, BN, ...). */
export interface OtherCost {
  macs: number;
  params: number;
}

export interface DacReplacement {
  method: 'dac';
  name: string;
  rank: number;
  /** [c*rank][kh*kw] */
  depthwise: Float32Array;
  /** [n][c*rank] */
  pointwise: Float32Array;
  bias: Float32Array | null;
}

export interface SpatialReplacement {
  method: 'spatial';
  name: string;
  width: number;
  /** [width][c][kh] : a kh x 1 conv c -> width */
  vertical: Float32Array;
  /** [n][width][kw] : a 1 x kw conv width -> n */
  horizontal: Float32Array;
  bias: Float32Array | null;
}

export interface ChannelReplacement {
  method: 'channel';
  name: string;
  width: number;
  /** [width][c][kh][kw] : a kh x kw conv c -> width */
  first: Float32Array;
  /** [n][width] : a 1x1 conv width -> n */
  second: Float32Array;
  bias: Float32Array | null;
}

export type LayerReplacement = DacReplacement | SpatialReplacement | ChannelReplacement;

/** What one layer of a plan says to do (src/plan). */
export interface LayerPlan {
  name: string;
  method: Method | 'keep';
  /** DAC rank, or the intermediate width c' for spatial/channel. */
  rank: number;
  macsBefore: number;
  macsAfter: number;
  paramsBefore: number;
  paramsAfter: number;
  /** Predicted relative error of the layer's output (data-free estimate). */
  predictedError: number;
  /** Bias correction gives this bias-free conv's replacement a bias (counted in paramsAfter). */
  biasAdded?: boolean;
  reason?: string;
}
